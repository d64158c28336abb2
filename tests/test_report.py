"""Tests of the Table 2 report (issue 4): Δ by eq. (3), ranks, average block, LaTeX marks,
significance marks, partial/foreign input, files and plots, and the paper's own numbers."""
from __future__ import annotations

import math
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.report.__main__ import main as report_main
from benchmark.report.inputs import ReportInputError, load_metrics
from benchmark.report.paper import load_paper_table, rank_and_average
from benchmark.report.render import compute_marks, render_latex, render_markdown
from benchmark.report.stats import compute_report, compute_table, relative_delta
from benchmark.report.write import write_report

TASKS = {"prostate": [("segmentation", "dice", True), ("dose", "mae", False)],
         "stoic": [("covid", "auc", True), ("severity", "auc", True)]}

# Hand-made metrics with known answers: 3 seeds, a lower-is-better metric (mae), a tie in rank
# (MTAN's Δ_mean on STOIC is exactly 0 = STL), a tie in printed M (STOIC covid 70.00 twice).
KNOWN = {
    "prostate": {
        "stl": ([80, 82, 84], [1.0, 1.1, 0.9]),
        "hps": ([81, 84, 87], [0.95, 0.85, 0.9]),      # seg 84 (Δ 2.439), dose 0.9 (Δ +10)
        "mtan": ([79, 80, 81], [1.2, 1.2, 1.2]),       # seg 80 (Δ -2.439), dose 1.2 (Δ -20)
        "ctan": ([83.5, 84.8, 86.7], [0.85, 0.95, 0.75]),  # seg 85 (Δ 3.659), dose 0.85 (Δ +15)
    },
    "stoic": {
        "stl": ([70, 70, 70], [60, 62, 58]),
        "hps": ([77, 77, 77], [60, 61, 59]),           # Δ +10, 0
        "mtan": ([63, 63, 63], [66, 66, 66]),          # Δ -10, +10 -> Δ_mean 0 (ties STL)
        "ctan": ([70, 70, 70], [72, 75, 69]),          # Δ 0, +20
    },
}
SEG = 100 * 2 / 82  # 2.4390...


def metrics_rows(spec=KNOWN, seeds=(0, 1, 2), profile="quick", source="synthetic"):
    rows = []
    for d, methods in spec.items():
        for m, per_task in methods.items():
            for k, ((task, metric, hib), values) in enumerate(zip(TASKS[d], per_task), start=1):
                for s, v in zip(seeds, values):
                    base = dict(dataset=d, method=m, seed=s, task=task, metric=metric, value=v,
                                higher_is_better=hib, primary=True, split="test",
                                data_source=source, profile=profile, task_index=k)
                    rows.append(base)
                    # noise the table must ignore: validation split and a secondary metric
                    rows.append({**base, "split": "val", "value": -999.0})
                    rows.append({**base, "metric": "other", "primary": False, "value": -999.0})
    return pd.DataFrame(rows)


def write_csv(tmp_path, df, name="metrics.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def row(table, dataset, method):
    sub = table[(table["dataset"] == dataset) & (table["method"] == method)]
    assert len(sub) == 1, (dataset, method)
    return sub.iloc[0]


def tex_cells(tex):
    """[(dataset, method, {column: cell})] from the tabular body of render_latex."""
    cols = ["task1_mean", "task1_delta", "task2_mean", "task2_delta", "delta_mean", "rank"]
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    out, dataset = [], None
    for line in body.splitlines():
        line = line.strip()
        if not line.endswith(r"\\"):
            continue
        cells = [c.strip() for c in line[:-2].split("&")]
        dataset = cells[0] or dataset
        method = re.sub(r"\\textbf\{(.*)\}", r"\1", cells[1])
        out.append((dataset, method, dict(zip(["method"] + cols, cells[1:]))))
    return out


def mark_of(cell):
    if cell.startswith(r"\textbf{"):
        return "bold"
    if cell.startswith(r"\underline{"):
        return "underline"
    return None


# ----------------------------------------------------------------------------- eq. (3)
def test_eq3_sign_convention():
    assert relative_delta(100.0, 110.0, True) == pytest.approx(10.0)     # higher is better
    assert relative_delta(1.0, 0.9, False) == pytest.approx(10.0)        # lower: less is better
    assert relative_delta(1.0, 1.2, False) == pytest.approx(-20.0)
    assert math.isnan(relative_delta(0.0, 1.0, True))                    # no crash on zero
    assert math.isnan(relative_delta(float("nan"), 1.0, True))


# ----------------------------------------------------------------------------- known answers
def test_known_means_deltas_ranks_and_average():
    rep = compute_report(metrics_rows())
    t = rep.table
    assert len(t) == 12  # 2 datasets x 4 methods + 4 average rows
    hps = row(t, "prostate", "hps")
    assert hps.task1_mean == pytest.approx(84.0) and hps.task1_std == pytest.approx(3.0)
    assert hps.task1_delta == pytest.approx(SEG)
    assert hps.task2_mean == pytest.approx(0.9) and hps.task2_delta == pytest.approx(10.0)
    assert hps.delta_mean == pytest.approx((SEG + 10) / 2)
    assert row(t, "prostate", "mtan").task2_delta == pytest.approx(-20.0)   # lower is better
    assert row(t, "prostate", "ctan").delta_mean == pytest.approx((100 * 3 / 82 + 15) / 2)
    assert row(t, "prostate", "stl").delta_mean == 0.0
    ranks = {m: row(t, "prostate", m)["rank"] for m in ("stl", "hps", "mtan", "ctan")}
    assert ranks == {"ctan": 1, "hps": 2, "stl": 3, "mtan": 4}
    # STOIC: MTAN's Δ_mean is 0 up to float noise -> tied with STL, both rank 3
    ranks = {m: row(t, "stoic", m)["rank"] for m in ("stl", "hps", "mtan", "ctan")}
    assert ranks == {"ctan": 1, "hps": 2, "stl": 3, "mtan": 3}
    # average block: mean of each Δ column over datasets, ranked by its Δ_mean
    avg = {m: row(t, "average", m) for m in ("stl", "hps", "mtan", "ctan")}
    assert avg["hps"].task1_delta == pytest.approx((SEG + 10) / 2)
    assert avg["hps"].task2_delta == pytest.approx(5.0)
    assert avg["ctan"].task2_delta == pytest.approx(17.5)
    assert avg["ctan"].delta_mean == pytest.approx(((100 * 3 / 82 + 15) / 2 + 10) / 2)
    assert avg["mtan"].delta_mean == pytest.approx(-(SEG + 20) / 4)
    assert {m: r["rank"] for m, r in avg.items()} == {"ctan": 1, "hps": 2, "stl": 3, "mtan": 4}
    assert avg["hps"].n_datasets == 2


def test_seed_statistics_are_paired_t_tests():
    t = compute_report(metrics_rows()).table
    hps = row(t, "prostate", "hps")
    st, sh = KNOWN["prostate"]["stl"], KNOWN["prostate"]["hps"]
    assert hps.task2_p == pytest.approx(stats.ttest_rel(sh[1], st[1]).pvalue)
    per_seed = [(relative_delta(b1, m1, True) + relative_delta(b2, m2, False)) / 2
                for b1, m1, b2, m2 in zip(st[0], sh[0], st[1], sh[1])]
    assert hps.delta_mean_std == pytest.approx(np.std(per_seed, ddof=1))
    assert hps.delta_mean_p == pytest.approx(stats.ttest_1samp(per_seed, 0).pvalue)
    assert hps.delta_mean_p > 0.05                       # noisy: must not be crowned
    assert row(t, "prostate", "ctan").delta_mean_p < 0.05  # consistent over seeds
    # constant differences: t undefined -> NaN, not a fake p = 0
    assert math.isnan(row(t, "stoic", "hps").task1_p)
    assert row(t, "prostate", "hps").n_paired == 3


def test_latex_marks_land_where_the_paper_puts_them():
    t = compute_report(metrics_rows()).table
    tex = render_latex(t[t.profile == "quick"])
    cells = {(d, m): c for d, m, c in tex_cells(tex)}
    marks = {(d, m, col): mark_of(v) for (d, m), c in cells.items() for col, v in c.items()
             if mark_of(v)}
    expected = {
        # Prostate: CTAN best everywhere, HPS second; lower-is-better dose handled
        **{("Prostate", "CTAN", c): "bold" for c in
           ("method", "task1_mean", "task1_delta", "task2_mean", "task2_delta", "delta_mean", "rank")},
        **{("Prostate", "HPS", c): "underline" for c in
           ("task1_mean", "task1_delta", "task2_mean", "task2_delta", "delta_mean")},
        # STOIC: tie of printed M (STL and CTAN 70.00 both underlined); CTAN's Δ1 = 0 ties
        # STL's implicit 0 for second place; Δ_mean among MTL methods only
        ("STOIC", "HPS", "task1_mean"): "bold", ("STOIC", "STL", "task1_mean"): "underline",
        ("STOIC", "CTAN", "task1_mean"): "underline", ("STOIC", "HPS", "task1_delta"): "bold",
        ("STOIC", "CTAN", "task1_delta"): "underline", ("STOIC", "CTAN", "task2_mean"): "bold",
        ("STOIC", "MTAN", "task2_mean"): "underline", ("STOIC", "CTAN", "task2_delta"): "bold",
        ("STOIC", "MTAN", "task2_delta"): "underline", ("STOIC", "CTAN", "delta_mean"): "bold",
        ("STOIC", "HPS", "delta_mean"): "underline", ("STOIC", "CTAN", "rank"): "bold",
        ("STOIC", "CTAN", "method"): "bold",
        # Average block: MTL methods only
        ("Average", "HPS", "task1_delta"): "bold", ("Average", "CTAN", "task1_delta"): "underline",
        ("Average", "CTAN", "task2_delta"): "bold", ("Average", "HPS", "task2_delta"): "underline",
        ("Average", "CTAN", "delta_mean"): "bold", ("Average", "HPS", "delta_mean"): "underline",
        ("Average", "CTAN", "rank"): "bold", ("Average", "CTAN", "method"): "bold",
    }
    assert marks == expected
    # mean ± std with several seeds; † on a Δ that is not significant, none on CTAN's
    assert cells[("Prostate", "HPS")]["task1_mean"] == r"\underline{84.00 $\pm$ 3.00}"
    assert cells[("Prostate", "HPS")]["delta_mean"].endswith(r"$^{\dagger}$")
    assert r"\dagger" not in cells[("Prostate", "CTAN")]["delta_mean"]
    assert cells[("Prostate", "STL")]["task1_delta"] == ""          # STL has no Δ, as printed
    assert cells[("Average", "STL")]["task1_mean"] == "--"
    assert "low power" in tex and "seeds 0, 1, 2" in tex and "synthetic" in tex and "quick" in tex


def _structural_tex_checks(tex: str, tasks: int = 2) -> None:
    depth = 0
    for ch in tex.replace(r"\{", "").replace(r"\}", ""):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 1
    for rule in (r"\toprule", r"\bottomrule"):
        assert tex.count(rule) == 1
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    assert tex.count("$") % 2 == 0 and "Δ" not in tex and "±" not in tex
    assert all(len(c) == 2 * tasks + 4 for c in (line.split("&") for line in tex.splitlines()
                                                  if line.endswith(r"\\") and "&" in line))


@pytest.mark.parametrize("which", ["known", "paper"])
def test_latex_compiles_or_is_well_formed(tmp_path, which):
    t = compute_report(metrics_rows()).table if which == "known" else load_paper_table()
    tex = render_latex(t, notes=["2 failed cell(s): prostate/ctan/seed 3 & co_x 50%"])
    _structural_tex_checks(tex)
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed: structural checks only")
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                   + tex + "\\end{document}\n")
    res = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


# ----------------------------------------------------------------------------- the paper's numbers
PAPER_COLS = ("task1_mean", "task1_delta", "task2_mean", "task2_delta", "delta_mean", "rank")


def test_reference_table_is_complete():
    p = load_paper_table()
    assert len(p) == 20
    assert list(p["dataset"].unique()) == ["prostate", "openkbp", "ham10000", "stoic", "average"]
    assert (p.groupby("dataset")["method"].apply(list) == [["stl", "hps", "mtan", "ctan"]] * 5).all()
    assert p[p.dataset != "average"][["task1_mean", "task2_mean"]].notna().all().all()
    assert row(p, "prostate", "hps").task1_delta == 1.74       # transcribed as printed
    assert row(p, "openkbp", "stl").task2_mean == row(p, "openkbp", "hps").task2_mean == 0.53


def test_marks_reproduce_the_published_table():
    p = load_paper_table()
    got = {(p.at[i, "dataset"], p.at[i, "method"], col, kind)
           for (i, col), kind in compute_marks(p).items()}
    want = {(r.dataset, r.method, col, kind) for r in p.itertuples()
            for kind in ("bold", "underline") for col in getattr(r, kind).split()}
    assert got == want


def test_ranks_and_average_block_from_published_deltas():
    p = load_paper_table()
    got = rank_and_average(p)
    assert list(got["rank"].astype(int)) == list(p["rank"].astype(int))
    avg_got = got[got.dataset == "average"].set_index("method")
    avg_pub = p[p.dataset == "average"].set_index("method")
    for m in ("hps", "mtan", "ctan"):
        for c in ("task1_delta", "task2_delta", "delta_mean"):
            assert avg_got.at[m, c] == pytest.approx(avg_pub.at[m, c], abs=0.006), (m, c)


def paper_metrics() -> pd.DataFrame:
    """One seed whose values are the paper's printed M columns."""
    p = load_paper_table()
    rows = []
    for r in p[p.dataset != "average"].itertuples():
        for k, c in enumerate(("task1", "task2"), start=1):
            rows.append(dict(dataset=r.dataset, method=r.method, seed=0, task=getattr(r, f"{c}_name"),
                             metric=getattr(r, f"{c}_metric"), value=getattr(r, f"{c}_mean"),
                             higher_is_better=getattr(r, f"{c}_higher_is_better"), primary=True,
                             split="test", data_source="real", profile="paper", task_index=k))
    return pd.DataFrame(rows)


def _delta_interval(b: float, m: float, hib: bool, half: float = 0.005) -> tuple[float, float]:
    """Range of eq. (3) over all M_b, M_m that print as b and m (2 decimals)."""
    vals = [relative_delta(bb, mm, hib) for bb in (b - half, b + half) for mm in (m - half, m + half)]
    return min(vals) - half, max(vals) + half  # and the Δ's own rounding


# Printed Δ that the printed M columns cannot give (see docs/report.md)
KNOWN_MISPRINTS = {("prostate", "hps", "task1_delta"): (1.74, 1.61),
                   ("openkbp", "hps", "task1_delta"): (-0.52, -0.59)}


def test_published_M_values_give_back_published_deltas_and_ranks():
    t = compute_report(paper_metrics()).table
    p = load_paper_table()
    for r in p[(p.dataset != "average") & (p.method != "stl")].itertuples():
        got = row(t, r.dataset, r.method)
        stl = row(p, r.dataset, "stl")
        intervals = []
        for c in ("task1", "task2"):
            published, computed = getattr(r, f"{c}_delta"), got[f"{c}_delta"]
            lo, hi = _delta_interval(stl[f"{c}_mean"], getattr(r, f"{c}_mean"), getattr(r, f"{c}_higher_is_better"))
            intervals.append((lo, hi))
            key = (r.dataset, r.method, f"{c}_delta")
            if key in KNOWN_MISPRINTS:  # explicit: printed value outside what its M columns allow
                printed, ours = KNOWN_MISPRINTS[key]
                assert published == printed and round(computed, 2) == ours
                assert not lo <= published <= hi
            elif getattr(r, f"{c}_metric") != "mae":
                # 4-significant-digit metrics: within 0.02 percentage points
                assert computed == pytest.approx(published, abs=0.02), key
            else:
                # MAE printed to 0.01 Gy on ~0.5-1 Gy: Δ only known to ~±1 pp; must be inside
                assert lo <= published <= hi, (key, lo, hi)
        lo = np.mean([i[0] for i in intervals]) - 0.005
        hi = np.mean([i[1] for i in intervals]) + 0.005
        assert lo <= r.delta_mean <= hi, (r.dataset, r.method)
    for r in p.itertuples():
        assert row(t, r.dataset, r.method)["rank"] == r.rank, (r.dataset, r.method)
    # average block of the reproduced numbers is the mean of its dataset rows
    for m in ("hps", "mtan", "ctan"):
        ds = t[(t.method == m) & (t.dataset != "average")]
        assert row(t, "average", m).delta_mean == pytest.approx(ds.delta_mean.mean())


# ----------------------------------------------------------------------------- partial input
def test_missing_stl_gives_na_with_note_and_other_datasets_still_work(tmp_path):
    df = metrics_rows()
    df = df[~((df.dataset == "stoic") & (df.method == "stl"))]
    rep = compute_report(df)
    t = rep.table
    ctan = row(t, "stoic", "ctan")
    assert math.isnan(ctan.task1_delta) and math.isnan(ctan.delta_mean) and pd.isna(ctan["rank"])
    assert any("stoic: no STL" in n for n in rep.notes[("quick", "synthetic")])
    assert row(t, "prostate", "ctan")["rank"] == 1
    assert row(t, "average", "ctan").n_datasets == 1
    md = render_markdown(t, rep.notes[("quick", "synthetic")])
    assert "n/a" in md and "no STL" in md
    _structural_tex_checks(render_latex(t))


def test_single_task_dataset_and_nan_values():
    df = metrics_rows()
    df = df[~((df.dataset == "stoic") & (df.task == "severity"))].copy()
    nan_row = (df.dataset == "prostate") & (df.method == "hps") & (df.seed == 2) & (df.task == "dose") \
        & (df.split == "test") & df.primary
    df.loc[nan_row, "value"] = np.nan
    rep = compute_report(df)
    t = rep.table
    hps = row(t, "stoic", "hps")
    assert hps.delta_mean == pytest.approx(10.0) and math.isnan(hps.task2_mean)
    assert any("only one task" in n for n in rep.notes[("quick", "synthetic")])
    hp = row(t, "prostate", "hps")
    assert hp.task2_mean == pytest.approx(0.9) and hp.task2_n == 2
    _structural_tex_checks(render_latex(t))
    render_markdown(t)


def test_failed_cells_are_listed(tmp_path):
    df = metrics_rows()
    df = df[~((df.dataset == "prostate") & (df.method == "ctan") & (df.seed == 2))]
    path = write_csv(tmp_path, df)
    pd.DataFrame([dict(dataset="prostate", method="ctan", seed=2, data_source="synthetic",
                       profile="quick", error="RuntimeError: out of memory")]).to_csv(
        tmp_path / "failures.csv", index=False)
    write_report(path, tmp_path / "out", plots=False)
    md = (tmp_path / "out" / "table2.md").read_text()
    assert "Failed cells (1)" in md and "out of memory" in md
    assert "prostate/ctan/seed 2" in (tmp_path / "out" / "table2.tex").read_text()
    assert (tmp_path / "out" / "failures.csv").is_file()
    assert row(pd.read_csv(tmp_path / "out" / "table2.csv"), "prostate", "ctan").n_seeds == 2


def test_foreign_csv_without_optional_columns(tmp_path):
    df = metrics_rows()
    df = df[df.split == "test"].drop(columns=["profile", "data_source", "task_index"])
    df["method"] = df["method"].str.upper()
    df["primary"] = df["primary"].map({True: "1", False: "0"})
    df["higher_is_better"] = df["higher_is_better"].map({True: "true", False: "False"})
    df["extra"] = "x"
    df = df.iloc[::-1][["value", "task", "metric", "seed", "method", "dataset", "split",
                        "primary", "higher_is_better", "extra"]]  # dose rows seen first
    t = compute_table(load_metrics(write_csv(tmp_path, df)))
    hps = row(t, "prostate", "hps")
    assert hps.task1_name == "segmentation" and hps.task2_name == "dose"  # paper order
    assert hps.task2_delta == pytest.approx(10.0)
    assert hps.profile == "unknown"


def test_task_index_decides_column_order():
    df = metrics_rows()
    df["dataset"] = df["dataset"].replace({"stoic": "mydata"})
    df.loc[df.dataset == "mydata", "task_index"] = df.loc[df.dataset == "mydata", "task"].map(
        {"covid": 2, "severity": 1})
    t = compute_report(df).table
    assert row(t, "mydata", "hps").task1_name == "severity"
    assert row(t, "mydata", "hps").task2_delta == pytest.approx(10.0)


def test_load_metrics_reports_one_clear_error(tmp_path):
    bad = write_csv(tmp_path, metrics_rows().drop(columns=["value", "primary"]), "bad.csv")
    with pytest.raises(ReportInputError, match=r"bad\.csv.*value, primary"):
        load_metrics(bad)
    df = metrics_rows()
    df["primary"] = df["primary"].astype(object)
    df.loc[0, "primary"] = "maybe"
    with pytest.raises(ReportInputError, match=r"bad2\.csv.*'primary'.*maybe"):
        load_metrics(write_csv(tmp_path, df, "bad2.csv"))
    with pytest.raises(ReportInputError, match="not found"):
        load_metrics(tmp_path / "nope.csv")
    assert report_main(["--metrics", str(bad), "--out", str(tmp_path / "o")]) == 2


# ----------------------------------------------------------------------------- files, CLI, plots
def _epochs(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (d, m, s, prof, src), _ in df.groupby(["dataset", "method", "seed", "profile", "data_source"]):
        for e in range(4):
            for task, metric, _hib in TASKS[d]:
                rows.append(dict(dataset=d, method=m, seed=s, data_source=src, profile=prof,
                                 network="joint" if m != "stl" else task, epoch=e, task=task,
                                 train_loss=1 / (e + 1 + s), loss_weight=1.0 if m == "stl" else 1 + 0.1 * e,
                                 val_loss=1.2 / (e + 1), val_metric=metric, val_value=50 + e,
                                 selected=e == 3, seconds=0.1))
    return pd.DataFrame(rows)


def test_write_report_files_plots_and_compare(tmp_path):
    df = metrics_rows()
    path = write_csv(tmp_path, df)
    _epochs(df).to_csv(tmp_path / "epochs.csv", index=False)
    out = tmp_path / "report"
    assert report_main(["--metrics", str(path), "--out", str(out), "--compare-paper"]) == 0
    names = {p.name for p in out.iterdir()}
    for stem in ("delta_mean", "delta_tasks", "training_curves", "dwa_weights", "compare_paper"):
        for ext in ("png", "pdf"):
            assert f"{stem}.{ext}" in names
            assert (out / f"{stem}.{ext}").stat().st_size > 1000
    t = pd.read_csv(out / "table2.csv")
    assert {"dataset", "method", "task1_mean", "task1_delta", "task2_mean", "task2_delta",
            "delta_mean", "rank"} <= set(t.columns)
    assert (t.dataset == "average").sum() == 4
    cmp = pd.read_csv(out / "compare_paper.csv")
    r = cmp[(cmp.dataset == "prostate") & (cmp.method == "hps")].iloc[0]
    assert r.task1_delta_published == 1.74
    assert r.task1_delta_diff == pytest.approx(r.task1_delta_reproduced - 1.74)
    assert "published vs reproduced" in (out / "compare_paper.md").read_text()


def test_groups_get_suffixes_and_filters_select_one(tmp_path):
    df = pd.concat([metrics_rows(), metrics_rows(profile="smoke")])
    path = write_csv(tmp_path, df)
    written = write_report(path, tmp_path / "a", plots=False)
    names = {p.name for p in written}
    assert {"table2_quick-synthetic.csv", "table2_smoke-synthetic.tex",
            "table2_smoke-synthetic.md"} <= names
    written = write_report(path, tmp_path / "b", plots=False, profile="smoke")
    assert {"table2.csv", "table2.tex", "table2.md"} <= {p.name for p in written}
    assert "profile smoke" in (tmp_path / "b" / "table2.md").read_text()


def test_report_is_deterministic(tmp_path):
    path = write_csv(tmp_path, metrics_rows())
    write_report(path, tmp_path / "a", plots=False)
    write_report(path, tmp_path / "b", plots=False)
    for name in ("table2.csv", "table2.tex", "table2.md", "per_seed.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_empty_metrics_do_not_crash(tmp_path):
    path = write_csv(tmp_path, metrics_rows().iloc[0:0])
    written = write_report(path, tmp_path / "o")
    assert (tmp_path / "o" / "table2.md").is_file() and written


# ----------------------------------------------------------------------------- any number of tasks
def test_a_three_task_dataset_renders_in_every_format(tmp_path):
    """A user's dataset with three tasks next to Table 2's two-task ones: Δ, Δ_mean, ranks, every
    file and the plots follow the tasks in the CSV; two-task rows leave the third column empty."""
    third = {"stl": [40.0, 42.0, 44.0], "hps": [44.0, 46.0, 48.0], "mtan": [40.0, 40.0, 40.0],
             "ctan": [50.0, 50.0, 50.0]}
    df = metrics_rows()
    extra = df[(df.dataset == "stoic") & (df.task == "covid")].copy()
    extra["task"], extra["task_index"] = "mortality", 3
    for m, vals in third.items():
        for s, v in zip((0, 1, 2), vals):
            sel = (extra.method == m) & (extra.seed == s) & (extra.split == "test") & extra.primary
            extra.loc[sel, "value"] = v
    df = pd.concat([df, extra], ignore_index=True)
    df.loc[df.dataset == "stoic", "dataset"] = "mydata"
    path = write_csv(tmp_path, df)
    _epochs(metrics_rows()).to_csv(tmp_path / "epochs.csv", index=False)
    out = tmp_path / "report"
    assert report_main(["--metrics", str(path), "--out", str(out), "--compare-paper"]) == 0

    t = pd.read_csv(out / "table2.csv")
    assert {"task3_name", "task3_mean", "task3_delta", "task3_p"} <= set(t.columns)
    ctan = row(t, "mydata", "ctan")
    assert ctan.task3_name == "mortality" and ctan.task3_delta == pytest.approx(100 * (50 - 42) / 42)
    assert ctan.delta_mean == pytest.approx((0.0 + 20.0 + 100 * 8 / 42) / 3)   # covid Δ 0, severity Δ +20
    assert pd.isna(row(t, "prostate", "ctan").task3_name)
    assert row(t, "mydata", "ctan")["rank"] == 1
    seeds = pd.read_csv(out / "per_seed.csv")
    assert "task3_delta" in seeds.columns

    tex = (out / "table2.tex").read_text()
    _structural_tex_checks(tex, tasks=3)
    assert r"\begin{tabular}{llcccccccc}" in tex and r"$M_{task3}$ & $\Delta_{task3}\uparrow$" in tex
    assert "Tasks 1 / 2 / 3" in tex and "mortality (AUC" in tex
    md = (out / "table2.md").read_text()
    assert "Δ_task3 ↑" in md and "| M_task3 |" in md
    header = next(line for line in md.splitlines() if line.startswith("| Dataset"))
    assert header.count("|") == 11
    for stem in ("delta_mean", "delta_tasks", "training_curves", "compare_paper"):
        assert (out / f"{stem}.png").stat().st_size > 1000 and (out / f"{stem}.pdf").is_file()
    assert (out / "compare_paper.md").is_file()


def test_run_beside_a_reference_run(tmp_path):
    """--reference: per test metric, the reference's and this run's mean, the difference and whether the
    run lies inside the reference's mean ± 2 std; a missing reference is one clear error."""
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    write_csv(ref_dir, metrics_rows())
    (ref_dir / "provenance.json").write_text('{"commit": "abc123", "wall_seconds": 10}')
    run = metrics_rows()
    moved = (run.method == "hps") & (run.task == "segmentation") & (run.split == "test") & run.primary
    run.loc[moved, "value"] += 10.0                     # hps seg 84 -> 94, reference std 3: outside
    paths = write_report(write_csv(tmp_path, run), tmp_path / "out", reference=str(ref_dir))
    cmp = pd.read_csv(tmp_path / "out" / "reference_ref.csv")
    assert len(cmp) == 32                                # 2 datasets x 4 methods x 2 tasks x (primary, other)
    hps = cmp[(cmp.method == "hps") & (cmp.task == "segmentation") & (cmp.metric == "dice")].iloc[0]
    assert hps.mean_ref == pytest.approx(84.0) and hps.mean_run == pytest.approx(94.0)
    assert hps["diff"] == pytest.approx(10.0) and not hps.within_spread
    others = cmp[~((cmp.method == "hps") & (cmp.metric == "dice"))]
    assert others.within_spread.all() and (others["diff"].abs() < 1e-9).all()
    md = (tmp_path / "out" / "reference_ref.md").read_text()
    assert "commit abc123" in md and md.count("| NO |") == 1
    assert tmp_path / "out" / "reference_ref.md" in paths
    with pytest.raises(ReportInputError, match="no reference 'nope'"):
        write_report(write_csv(tmp_path, run), tmp_path / "out2", reference="nope")


def test_a_finished_run_becomes_a_reference_with_its_provenance(tmp_path, monkeypatch):
    import json

    from benchmark.report import reference as R
    monkeypatch.setattr(R, "REFERENCE_DIR", tmp_path / "refs")
    results = tmp_path / "results"
    cell = results / "runs" / "quick-synthetic" / "stoic" / "hps" / "seed0"
    cell.mkdir(parents=True)
    (cell / "cell.json").write_text(json.dumps({"config": {"seed": 0, "profile": {"name": "quick"}},
                                                "config_hash": "h1", "wall_seconds": 12.5,
                                                "versions": {"code": "c0ffee"}, "data": {"counts": {"test": 4}}}))
    write_csv(results, metrics_rows())
    _epochs(metrics_rows()).to_csv(results / "epochs.csv", index=False)
    assert R.main(["--results", str(results), "--name", "tiny", "--command", "python reproduce.py", "--elapsed", "60"]) == 0
    assert (tmp_path / "refs" / "tiny" / "epochs.csv").read_text() == (results / "epochs.csv").read_text()
    prov = json.loads((tmp_path / "refs" / "tiny" / "provenance.json").read_text())
    assert prov["commits"] == ["c0ffee"] and prov["cells"] == 1 and prov["cell_wall_seconds_sum"] == 12.5
    assert prov["per_cell"][0]["config_hash"] == "h1" and prov["elapsed_seconds"] == 60
    stored = pd.read_csv(tmp_path / "refs" / "tiny" / "metrics.csv")
    assert set(stored["split"]) == {"test"} and len(stored) == 2 * 16 * 3
    assert R.references() == ["tiny"]
    assert R.main(["--results", str(tmp_path / "nothing"), "--name", "x", "--command", "c"]) == 2


def test_secondary_metrics_table_with_the_challenges_published_scores(tmp_path):
    """OpenKBP's dose_score/dvh_score (not Table 2's primary metrics) get their own table: mean and
    sample standard deviation over seeds per method, the published challenge scores beside them; a
    run with primary metrics only writes no such table."""
    rows = []
    for m, scores in {"stl": [13.0, 14.0, 15.0], "hps": [12.0, 12.0, 12.0]}.items():
        for s, v in enumerate(scores):
            base = dict(dataset="openkbp", method=m, seed=s, task_index=2, higher_is_better=False,
                        split="test", data_source="real", profile="realcpu")
            rows += [{**base, "task": "segmentation", "task_index": 1, "metric": "dice", "value": 50.0 + s,
                      "higher_is_better": True, "primary": True},
                     {**base, "task": "dose", "metric": "mae", "value": 1.0 + s / 10, "primary": True},
                     {**base, "task": "dose", "metric": "dose_score", "value": v, "primary": False},
                     {**base, "task": "dose", "metric": "dose_score", "value": -1.0, "primary": False, "split": "val"},
                     {**base, "task": "dose", "metric": "dvh_score", "value": 2 * v, "primary": False}]
    df = pd.DataFrame(rows)
    write_report(write_csv(tmp_path, df), tmp_path / "out", plots=False)
    sec = pd.read_csv(tmp_path / "out" / "secondary.csv").set_index(["method", "metric"])
    assert sec.loc[("stl", "dose_score"), "mean"] == pytest.approx(14.0)
    assert sec.loc[("stl", "dose_score"), "std"] == pytest.approx(1.0)
    assert sec.loc[("stl", "dvh_score"), "mean"] == pytest.approx(28.0)
    assert sec.loc[("hps", "dose_score"), "std"] == 0 and sec.loc[("hps", "dose_score"), "n_seeds"] == 3
    md = (tmp_path / "out" / "secondary.md").read_text()
    assert "| STL | none | 14.00 ± 1.00 (n = 3) | 28.00 ± 2.00 (n = 3) |" in md
    assert "*2.31* | *1.55*" in md                      # the challenge winner, both scores
    one_seed = df[(df["method"] == "stl") | (df["seed"] == 0)]        # HPS with one seed: no "± nan"
    write_report(write_csv(tmp_path, one_seed, "one.csv"), tmp_path / "one", plots=False)
    assert "| HPS | dwa | 12.00 (n = 1, no spread) | 24.00 (n = 1, no spread) |" in (
        tmp_path / "one" / "secondary.md").read_text()
    primary_only = df[df["primary"]]
    write_report(write_csv(tmp_path, primary_only, "p.csv"), tmp_path / "p", plots=False)
    assert not (tmp_path / "p" / "secondary.md").exists()


def test_extended_table_ablation_and_heatmap_from_architecture_by_weighting_rows(tmp_path):
    """Rows beyond the paper's view (CTAN's ablations, a second weighting) go to extended.*, ablation.* and
    the heat map; table2.* keeps exactly the paper's four methods under DWA, unchanged by the extra rows."""
    base = metrics_rows()
    extra = []
    for method, weighting, shift in (("ctae_only", "dwa", -1.0), ("ctab_only", "dwa", 0.5), ("hps", "pcgrad", 2.0)):
        rows = base[base["method"] == "ctan"].copy()
        rows["method"], rows["weighting"] = method, weighting
        rows.loc[rows["metric"] == "dice", "value"] += shift
        extra.append(rows)
    paper_only = base.assign(weighting=np.where(base["method"] == "stl", "none", "dwa"))
    write_report(write_csv(tmp_path, paper_only, "p.csv"), tmp_path / "p", plots=False)
    full = pd.concat([paper_only, *extra])
    write_report(write_csv(tmp_path, full, "f.csv"), tmp_path / "f", plots=True)
    out = tmp_path / "f"
    assert (out / "table2.csv").read_text() == (tmp_path / "p" / "table2.csv").read_text()
    ext = pd.read_csv(out / "extended.csv")
    assert {"hps+pcgrad", "ctae_only+dwa", "ctab_only+dwa", "ctan+dwa", "stl"} <= set(ext["method"])
    # one row per (dataset, method): STL, the baseline, is listed once per dataset and first
    assert not ext.duplicated(["dataset", "method"]).any()
    assert (ext.groupby("dataset", sort=False)["method"].first() == "stl").all()
    abl = pd.read_csv(out / "ablation.csv")
    assert {"ctan", "ctae_only", "ctab_only", "mtan", "hps"} <= set(abl["method"])
    assert (out / "heatmap.png").stat().st_size > 1000


def test_an_unknown_filter_is_an_error_naming_what_exists(tmp_path, capsys):
    path = write_csv(tmp_path, metrics_rows())
    assert report_main(["--metrics", str(path), "--out", str(tmp_path / "out"), "--profile", "nosuch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {path}: no rows with profile 'nosuch'; it holds ['quick']"]
    assert report_main(["--metrics", str(path), "--out", str(tmp_path / "out"), "--data-source", "rea"]) == 2
    assert "no rows with data_source 'rea'; it holds ['synthetic']" in capsys.readouterr().err
    assert report_main(["--metrics", str(path), "--out", str(tmp_path / "out"), "--profile", "quick",
                        "--no-plots"]) == 0


def test_file_names_never_change_silently_when_a_second_profile_lands(tmp_path):
    """One group: plain names. A second profile in the same folder: per-group names, and the plain
    table2.tex of the earlier render is removed (a LaTeX \\input then fails instead of keeping a stale
    table), saying so; a file of the user's own in the folder stays."""
    out = tmp_path / "report"
    quick = metrics_rows()
    write_report(write_csv(tmp_path, quick), out, plots=False)
    assert (out / "table2.tex").is_file()
    (out / "my_notes.md").write_text("mine")
    both = pd.concat([quick, metrics_rows(profile="realcpu", source="real")])
    said = []
    written = write_report(write_csv(tmp_path, both, "both.csv"), out, plots=False, log=said.append)
    names = {p.name for p in out.iterdir()}
    assert "table2.tex" not in names and "table2.md" not in names
    assert {"table2_quick-synthetic.tex", "table2_realcpu-real.tex", "my_notes.md"} <= names
    assert {p.name for p in written} == names - {"my_notes.md"}
    assert len(said) == 1 and "now per (profile, data source)" in said[0] and "table2.tex" in said[0]


def test_heat_map_columns_are_catalog_labels_with_their_hyper_parameters():
    from benchmark.report.extended import delta_matrix

    table = pd.DataFrame({"dataset": ["stoic"] * 4, "method": ["stl", "hps+dwa", "hps+cagrad+c=0.4", "ctan+dwa"],
                          "delta_mean": [0.0, 1.0, 2.0, 3.0]})
    m = delta_matrix(table, "stoic")
    assert list(m.columns) == ["DWA", "CAGrad (c=0.4)"] and list(m.index) == ["HPS", "CTAN"]
    assert m.loc["HPS", "CAGrad (c=0.4)"] == 2.0 and np.isnan(m.loc["CTAN", "CAGrad (c=0.4)"])
