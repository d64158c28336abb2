"""Intervals and tests of Table 2's comparisons from the per-case results (``cases.csv``).

For a method against STL on one dataset, with seeds paired (seed k of the method beside seed k of
STL) and the test cases shared by every seed:

- **95 % confidence interval of Δ_task and Δ_mean** (eq. 3) from a two-level paired bootstrap:
  each replicate draws the seeds with replacement and, once, the test cases with replacement;
  method and STL get the same draw, every set-level metric is recomputed on it
  (``cases.CaseMetric``), Δ is eq. (3) on the seed means. Percentile interval.
  The cases are *crossed* with the seeds (every seed is scored on the same test set), so one case
  draw serves all seeds. A cross-validated row is crossed too (every image is tested once per seed,
  by the model of its fold): its cases are drawn *within each fold* (the fold's size kept), so every
  replicate keeps the design's five test folds. docs/report.md, "Intervals".
- **p of "Δ = 0"** from the same bootstrap (twice the smaller tail beyond 0), Holm-adjusted over the
  table: it carries the seed (training) variance as the interval does, and it sets the marks.
- **Paired randomisation test** of "method = STL" at the case level: each replicate swaps, per seed
  and case, the method's prediction with STL's with probability 1/2 and recomputes Δ; two-sided p =
  (1 + #{|Δ*| ≥ |Δ|}) / (1 + R). It is conditional on the trained networks (do *these* networks
  differ on the test population? not: do the training procedures?), so it is reported beside the
  bootstrap p (``p_cases``) and not used for the marks: on the quick grid it gave 0.0005 where the
  interval spanned 0.
- **Minimum detectable Δ** at 80 % power and α = 0.05: (z₀.₉₇₅ + z₀.₈) × the bootstrap standard
  error of Δ_mean; and from the variance split into a seed part (cases fixed) and a case part
  (seeds fixed), the seeds needed to detect a given Δ (the paper's), or ∞ when the case part alone
  exceeds it (more test cases needed, not seeds).
- **Holm's step-down correction** across a table's comparisons.

Fixed generator seed and replicate count: tables are reproducible to the digit. Imports no torch.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.report.cases import CasesError, CaseMetric, align, case_metric, mix
from benchmark.report.stats import relative_delta  # eq. (3), the one Table 2 uses

RESAMPLES = 2000
SEED = 2023           # the paper's year: any fixed value makes the tables reproducible
LEVEL = 0.95
Z_POWER = 1.959963984540054 + 0.8416212335729143   # z_{1-α/2} + z_{power}, α = 0.05, power 0.8


@dataclass
class Comparison:
    """A method against STL on one dataset: point Δs, intervals, p-values and power."""

    deltas: list[float]               # Δ_task, in layout order
    delta_mean: float
    ci: list[tuple[float, float]]     # per task
    delta_mean_ci: tuple[float, float]
    p_tasks: list[float]              # per task, case-level randomisation
    p: float                          # Δ_mean, case-level randomisation test (given the trained models)
    p_bootstrap: float                # Δ_mean, two-sided from the two-level bootstrap (seeds and cases)
    p_tasks_bootstrap: list[float]
    se: float                         # bootstrap SE of Δ_mean
    se_seeds: float                   # seeds resampled, cases fixed
    se_cases: float                   # cases resampled, seeds fixed
    n_seeds: int
    n_cases: int
    resamples: int

    @property
    def mde(self) -> float:
        """The smallest |Δ_mean| this run's size detects with 80 % power at α 0.05."""
        return Z_POWER * self.se

    def seeds_needed(self, target: float) -> float:
        """Seeds (on this test set) for 80 % power against a true Δ_mean of ``target``."""
        if self.n_seeds < 2 or not np.isfinite([self.se_seeds, self.se_cases, target]).all():
            return math.nan  # one seed: its variance is unknown
        room = (abs(target) / Z_POWER) ** 2 - self.se_cases ** 2
        if room <= 0:
            return math.inf
        return float(max(1, math.ceil(self.se_seeds ** 2 * self.n_seeds / room)))


def _seed_weights(rng: np.random.Generator, n_seeds: int, resamples: int) -> np.ndarray:
    draws = rng.integers(0, n_seeds, (resamples, n_seeds))
    return np.stack([np.bincount(d, minlength=n_seeds) for d in draws]) / n_seeds


def _case_counts(rng: np.random.Generator, universe: np.ndarray, strata: dict | None, resamples: int) -> np.ndarray:
    """Bootstrap counts of the cases ``[R, n]``: one multinomial draw over all cases, or (``strata``:
    case -> fold) one within each stratum, its size kept."""
    labels = np.array([str((strata or {}).get(c, "")) for c in universe])   # no strata: one, all cases
    counts = np.zeros((resamples, len(universe)))
    for label in sorted(set(labels)):
        cols = np.flatnonzero(labels == label)
        counts[:, cols] = rng.multinomial(len(cols), np.full(len(cols), 1 / len(cols)), size=resamples)
    return counts


def compare(method: dict[int, list[CaseMetric]], baseline: dict[int, list[CaseMetric]],
            higher_is_better: list[bool], resamples: int = RESAMPLES, seed: int = SEED,
            strata: dict | None = None) -> Comparison:
    """``method[seed]`` and ``baseline[seed]``: each task's :class:`CaseMetric`, in the same order.
    Only seeds both have are used (paired); each task on the cases both have for every seed.
    ``strata`` (case -> fold) makes the case draw stratified by fold."""
    seeds = sorted(set(method) & set(baseline))
    if not seeds:
        raise CasesError("no seed that both the method and STL have")
    n_tasks = len(higher_is_better)
    rng = np.random.default_rng(seed)
    common = []
    for k in range(n_tasks):
        sets = [set(m[k].cases) for s in seeds for m in (method[s], baseline[s])]
        cases = np.array(sorted(set.intersection(*sets)))
        if not len(cases):
            raise CasesError(f"task {k + 1}: no case scored for every seed of both methods")
        common.append(cases)
    a = {s: [align(method[s][k], common[k]) for k in range(n_tasks)] for s in seeds}
    b = {s: [align(baseline[s][k], common[k]) for k in range(n_tasks)] for s in seeds}
    universe = np.array(sorted(set().union(*map(set, common))))
    cols = [np.searchsorted(universe, c) for c in common]
    n = len(universe)
    counts = _case_counts(rng, universe, strata, resamples)
    sw = _seed_weights(rng, len(seeds), resamples)
    flat = np.full((1, len(seeds)), 1 / len(seeds))
    ones = np.ones((1, n))

    def deltas(case_w: np.ndarray, seed_w: np.ndarray) -> np.ndarray:  # [R, tasks]
        out = []
        for k, hib in enumerate(higher_is_better):
            w = case_w[:, cols[k]]
            fa = np.stack([a[s][k].evaluate(w) for s in seeds], 1)        # [R|1, seeds]
            fb = np.stack([b[s][k].evaluate(w) for s in seeds], 1)
            out.append(relative_delta((seed_w * fb).sum(1), (seed_w * fa).sum(1), hib))
        return np.stack(out, 1)

    point = deltas(ones, flat)[0]
    both, only_seeds, only_cases = deltas(counts, sw), deltas(ones, sw), deltas(counts, flat)
    lo, hi = 100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2
    ci = [tuple(np.nanpercentile(both[:, k], [lo, hi])) for k in range(n_tasks)]
    mean_both = both.mean(1)
    # randomisation: per seed and case, swap the two methods' predictions with probability 1/2
    perm = []
    for k, hib in enumerate(higher_is_better):
        fa, fb = [], []
        for s in seeds:
            swap = rng.random((resamples, len(common[k]))) < 0.5
            fa.append(a[s][k].evaluate(np.ones((resamples, len(common[k]))), mix(a[s][k], b[s][k], swap)))
            fb.append(b[s][k].evaluate(np.ones((resamples, len(common[k]))), mix(b[s][k], a[s][k], swap)))
        perm.append(relative_delta(np.mean(fb, 0), np.mean(fa, 0), hib))
    perm = np.stack(perm, 1)

    def p_value(null: np.ndarray, observed: float) -> float:
        null = null[np.isfinite(null)]
        if not np.isfinite(observed) or not len(null):
            return math.nan
        return float((1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / (1 + len(null)))

    return Comparison(deltas=[float(x) for x in point], delta_mean=float(point.mean()), ci=[tuple(map(float, c)) for c in ci],
                      delta_mean_ci=tuple(map(float, np.nanpercentile(mean_both, [lo, hi]))),
                      p_tasks=[p_value(perm[:, k], point[k]) for k in range(n_tasks)],
                      p_tasks_bootstrap=[bootstrap_p(both[:, k]) for k in range(n_tasks)],
                      p=p_value(perm.mean(1), float(point.mean())), p_bootstrap=bootstrap_p(mean_both),
                      se=float(np.nanstd(mean_both, ddof=1)), se_seeds=float(np.nanstd(only_seeds.mean(1), ddof=1)),
                      se_cases=float(np.nanstd(only_cases.mean(1), ddof=1)), n_seeds=len(seeds),
                      n_cases=int(min(len(c) for c in common)), resamples=resamples)


def bootstrap_p(replicates: np.ndarray) -> float:
    """Two-sided p of "Δ = 0" from bootstrap replicates of Δ: twice the smaller tail mass on either
    side of 0, at least 1 / (1 + R). Consistent with the percentile interval: p < 0.05 exactly when
    the 95 % interval excludes 0 (up to the replicates' granularity)."""
    r = np.asarray(replicates, float)
    r = r[np.isfinite(r)]
    if not len(r):
        return math.nan
    tail = min(np.mean(r <= 0), np.mean(r >= 0))
    return float(min(1.0, max(2 * tail, 1 / (1 + len(r)))))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(pvalues, float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m, running = len(order), 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        out[j] = running
    return out


def table_intervals(cases: pd.DataFrame, layout: dict[str, list[tuple[str, str, bool]]],
                    methods: list[tuple[str, str, str]], baseline: str = "stl",
                    resamples: int = RESAMPLES) -> pd.DataFrame:
    """One row per (dataset, method) of a (profile, data_source) group's test cases: Δs with
    intervals, p-values (raw and Holm-adjusted over the rows), MDE. ``layout[dataset]`` is Table 2's
    (task, metric, higher_is_better) order; ``methods`` lists each row as (label, method, weighting):
    the label is the table's method column (``hps`` in Table 2's view, ``hps+pcgrad`` in the
    extended one)."""
    test = cases[cases["split"] == "test"]
    rows = []
    for dataset, tasks in layout.items():
        sub = test[test["dataset"] == dataset]
        by = dict(tuple(sub.groupby(["method", "weighting", "seed", "task"])))
        strata = fold_of_case(sub)

        def metrics_of(method: str, weighting: str) -> dict[int, list[CaseMetric]]:
            seeds = sorted({k[2] for k in by if k[0] == method and k[1] == weighting})
            out = {}
            for s in seeds:
                try:
                    out[s] = [case_metric(by[(method, weighting, s, t)], metric) for t, metric, _ in tasks]
                except (KeyError, CasesError):
                    continue
            return out

        base_weighting = next((w for m, w, _, _ in by if m == baseline), None)
        if base_weighting is None:
            continue
        base = metrics_of(baseline, base_weighting)
        for label, method, weighting in methods:
            if method == baseline:
                continue
            mine = metrics_of(method, weighting)
            if not mine or not base:
                continue
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore", RuntimeWarning)  # a one-class resample's AUC is NaN
                    c = compare(mine, base, [h for _, _, h in tasks], resamples, strata=strata)
            except CasesError:
                continue
            row = {"dataset": dataset, "method": label, "weighting": weighting, "n_seeds": c.n_seeds,
                   "n_folds": len(set(strata.values())) if strata else 0, "n_cases": c.n_cases,
                   "resamples": c.resamples}
            for k, (task, metric, _) in enumerate(tasks, start=1):
                row.update({f"task{k}_name": task, f"task{k}_metric": metric, f"task{k}_delta": c.deltas[k - 1],
                            f"task{k}_ci_low": c.ci[k - 1][0], f"task{k}_ci_high": c.ci[k - 1][1],
                            f"task{k}_p": c.p_tasks_bootstrap[k - 1], f"task{k}_p_cases": c.p_tasks[k - 1]})
            row.update(delta_mean=c.delta_mean, delta_mean_ci_low=c.delta_mean_ci[0],
                       delta_mean_ci_high=c.delta_mean_ci[1], delta_mean_p_cases=c.p,
                       delta_mean_p=c.p_bootstrap, se=c.se, se_seeds=c.se_seeds,
                       se_cases=c.se_cases, mde=c.mde, comparison=c)
            rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        out["delta_mean_p_holm"] = holm(out["delta_mean_p"])
        out["significant"] = out["delta_mean_p_holm"] < 0.05
    return out


def fold_of_case(cases: pd.DataFrame) -> dict | None:
    """``{case: fold}`` of a cross-validated dataset's test cases (``cases.csv``'s ``fold`` column),
    None for a fixed split; a case tested in two folds is an error (the fold table is one partition)."""
    if "fold" not in cases.columns:
        return None
    folds = cases.loc[~cases["fold"].astype(str).str.strip().isin(("", "nan", "None")), ["case", "fold"]]
    if folds.empty:
        return None
    per_case = folds.drop_duplicates().groupby("case")["fold"].nunique()
    if (per_case > 1).any():
        raise CasesError(f"case {per_case[per_case > 1].index[0]!r} is tested in more than one fold")
    return dict(folds.drop_duplicates("case").itertuples(index=False, name=None))


def layout_of(table: pd.DataFrame) -> dict[str, list[tuple[str, str, bool]]]:
    """Each dataset's (task, metric, higher_is_better) in Table 2's column order, from a table of
    ``stats.compute_report`` (its ``average`` rows skipped)."""
    out = {}
    for r in table[table["dataset"] != "average"].drop_duplicates("dataset").itertuples():
        tasks, k = [], 1
        while isinstance(getattr(r, f"task{k}_name", None), str) and getattr(r, f"task{k}_name"):
            tasks.append((getattr(r, f"task{k}_name"), getattr(r, f"task{k}_metric"),
                          bool(getattr(r, f"task{k}_higher_is_better"))))
            k += 1
        out[r.dataset] = tasks
    return out


def _folds_text(iv: pd.DataFrame) -> str:
    folds = sorted(set(iv["n_folds"])) if "n_folds" in iv and len(iv) else []
    if not any(folds):
        return ""
    return (f" (cross-validated: {', '.join(map(str, folds))} folds per seed, every case tested once per seed; "
            f"cases drawn within their fold)")


def caption(iv: pd.DataFrame) -> str:
    seeds = sorted(set(iv["n_seeds"])) if len(iv) else []
    cases = sorted(set(iv["n_cases"])) if len(iv) else []
    return (f"Δ in % (eq. 3, positive = better than STL) with 95 % intervals from a two-level paired bootstrap "
            f"({RESAMPLES} replicates, generator seed {SEED}: seeds drawn with replacement, then the test cases once, "
            f"the same draw for the method and STL, every metric recomputed on it); p of Δ = 0 from that bootstrap, "
            f"Holm-adjusted over the table's {len(iv)} comparisons, * marks p_Holm < 0.05; p_cases: a case-level "
            f"randomisation test ({RESAMPLES} swaps of method and STL per seed and case), conditional on the trained "
            f"networks, so it ignores the seed variance and is not used for the marks. Seeds per comparison: {', '.join(map(str, seeds))}; "
            f"test cases: {', '.join(map(str, cases))}{_folds_text(iv)}. MDE: the smallest |Δ_mean| this size detects with 80 % "
            f"power at α = 0.05; seeds for paper: the seeds (on this test set) needed to detect the paper's "
            f"Δ_mean (∞: the test set's own case variance is too large for it).")


def _fmt(v: float, ci: tuple[float, float]) -> str:
    return f"{v:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]" if np.isfinite(v) else "n/a"


def render_intervals_markdown(iv: pd.DataFrame, paper: pd.DataFrame | None, title: str) -> str:
    """Markdown of :func:`table_intervals`'s rows, with the paper's Δ_mean and the seeds it needs."""
    from benchmark.report.render import _md_table, dataset_label, method_label

    lines = [f"# {title}", "", caption(iv), ""]
    published = {} if paper is None else {(r.dataset, r.method): r.delta_mean for r in paper.itertuples()}
    rows = []
    width = max((len(r.comparison.deltas) for r in iv.itertuples()), default=2)
    for r in iv.itertuples():
        c = r.comparison
        target = published.get((r.dataset, r.method), math.nan)
        need = c.seeds_needed(target) if np.isfinite(target) else math.nan
        tasks = [_fmt(getattr(r, f"task{k}_delta"), (getattr(r, f"task{k}_ci_low"), getattr(r, f"task{k}_ci_high")))
                 for k in range(1, len(c.deltas) + 1)]
        tasks += [""] * (width - len(tasks))
        rows.append([dataset_label(r.dataset), method_label(r.method), *tasks,
                     _fmt(r.delta_mean, (r.delta_mean_ci_low, r.delta_mean_ci_high)) + ("*" if r.significant else ""),
                     f"{r.delta_mean_p:.4f} / {r.delta_mean_p_holm:.4f}", f"{r.delta_mean_p_cases:.4f}", f"{r.mde:.2f}",
                     "n/a" if not np.isfinite(target) else f"{target:+.2f}",
                     "∞" if math.isinf(need) else ("n/a" if math.isnan(need) else f"{int(need)}"),
                     f"{r.n_seeds} × {r.n_cases}"])
    head = ["Dataset", "Method", *[f"Δ task {k} [95 % CI]" for k in range(1, width + 1)], "Δ_mean [95 % CI]",
            "p / p_Holm", "p_cases", "MDE", "paper Δ_mean", "seeds for paper", "seeds × cases"]
    lines += _md_table(head, rows, align="r")
    return "\n".join(lines) + "\n"


def render_intervals_latex(iv: pd.DataFrame, label: str = "tab:intervals") -> str:
    """LaTeX of Δ_mean with its interval and Holm-adjusted p, one row per (dataset, method)."""
    from benchmark.report.render import dataset_label, method_label, tex_escape

    body = [f"{tex_escape(dataset_label(r.dataset))} & {tex_escape(method_label(r.method))} & "
            f"${r.delta_mean:+.2f}$ & $[{r.delta_mean_ci_low:+.2f}, {r.delta_mean_ci_high:+.2f}]$"
            f"{'$^{*}$' if r.significant else ''} & ${r.delta_mean_p_holm:.3f}$ & ${r.mde:.2f}$ \\\\"
            for r in iv.itertuples()]
    return "\n".join([r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{llrrrr}", r"\toprule",
                      r"Dataset & Method & $\Delta_{mean}$ (\%) & 95\,\% CI & $p_\mathrm{Holm}$ & MDE \\", r"\midrule",
                      *body, r"\bottomrule", r"\end{tabular}", r"\caption{" + tex_escape(caption(iv)) + "}",
                      r"\label{" + label + "}", r"\end{table}", ""])
