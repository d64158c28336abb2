"""The loss weightings' names, as data: what the CLI, the report and the docs read (torch-free).

Each method has its authors' hyper-parameters as defaults; ``parse`` turns a command-line spec
(``cagrad`` or ``cagrad+c=0.4``) into a checked :class:`WeightingSpec` whose label names the cell.
``weighting/registry.py`` maps each name to its class and refuses to import if the two disagree.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WeightingInfo:
    name: str
    label: str                                  # as tables print it
    kind: str                                   # "loss": a weighted sum; "gradient": per-task gradients;
                                                # "bilevel": weights learnt from a look-ahead (weighting/bilevel.py)
    reference: str
    defaults: tuple[tuple[str, object], ...] = ()


WEIGHTINGS = {w.name: w for w in (
    WeightingInfo("ew", "EW", "loss", "equal weights: the sum of the task losses"),
    WeightingInfo("dwa", "DWA", "loss", "Dynamic Weight Averaging (Liu et al., CVPR 2019); the paper's",
                  (("T", 2.0),)),
    WeightingInfo("uw", "UW", "loss", "uncertainty weighting (Kendall et al., CVPR 2018)", (("init", -0.5),)),
    WeightingInfo("rlw", "RLW", "loss", "random loss weighting (Lin et al., TMLR 2022)"),
    WeightingInfo("gls", "GLS", "loss", "geometric loss strategy (Chennupati et al., CVPRW 2019)"),
    WeightingInfo("famo", "FAMO", "loss", "fast adaptive multitask optimization (Liu et al., NeurIPS 2023)",
                  (("lr", 0.025), ("gamma", 0.001))),
    WeightingInfo("mgda", "MGDA", "gradient", "multiple-gradient descent (Sener & Koltun, NeurIPS 2018)"),
    WeightingInfo("pcgrad", "PCGrad", "gradient", "projecting conflicting gradients (Yu et al., NeurIPS 2020)"),
    WeightingInfo("cagrad", "CAGrad", "gradient", "conflict-averse gradient descent (Liu et al., NeurIPS 2021)",
                  (("c", 0.5), ("rescale", 1))),
    WeightingInfo("nashmtl", "Nash-MTL", "gradient", "Nash bargaining (Navon et al., ICML 2022)",
                  (("update_weights_every", 1), ("optim_niter", 20), ("max_norm", 1.0))),
    WeightingInfo("imtlg", "IMTL-G", "gradient", "impartial MTL, gradient part (Liu et al., ICLR 2021)"),
    WeightingInfo("alignedmtl", "Aligned-MTL", "gradient",
                  "aligned MTL (Senushkin et al., CVPR 2023)", (("scale_mode", "min"),)),
    WeightingInfo("upgrad", "UPGrad", "gradient", "unconflicting projection of gradients (Quinton & Rey, 2024)"),
    WeightingInfo("gradnorm", "GradNorm", "gradient", "gradient normalisation (Chen et al., ICML 2018)",
                  (("alpha", 1.5),)),
    WeightingInfo("graddrop", "GradDrop", "gradient", "gradient sign dropout (Chen et al., NeurIPS 2020)",
                  (("leak", 0.0),)),
    WeightingInfo("config", "ConFIG", "gradient", "conflict-free inverse gradients (Liu et al., ICLR 2025)"),
    WeightingInfo("dualproj", "DualProj", "gradient", "the mean projected onto the dual cone (Quinton & Rey, 2024)"),
    WeightingInfo("fairgrad", "FairGrad", "gradient", "α-fair gradient (Ban & Ji, ICML 2024)", (("alpha", 1.0),)),
    WeightingInfo("gradvac", "GradVac", "gradient", "gradient vaccine (Wang et al., ICLR 2021)", (("beta", 0.5),)),
    WeightingInfo("excessmtl", "ExcessMTL", "gradient", "excess-risk weighting (He et al., ICML 2024)",
                  (("robust_step_size", 1e-2),)),
    WeightingInfo("modo", "MoDo", "gradient", "multi-objective gradient, double sampling (Chen et al., NeurIPS 2023)",
                  (("gamma", 1e-3), ("rho", 0.1))),
    WeightingInfo("sdmgrad", "SDMGrad", "gradient", "direction-oriented stochastic MGDA (Xiao et al., NeurIPS 2023)",
                  (("lamda", 0.3), ("niter", 20))),
    WeightingInfo("stch", "STCH", "loss", "smooth Tchebycheff scalarization (Lin et al., ICML 2024)",
                  (("mu", 1.0), ("warmup_epoch", 4))),
    WeightingInfo("pbi", "PBI", "loss", "penalty-based boundary intersection (Zhang & Li, TEVC 2007)", (("theta", 5.0),)),
    WeightingInfo("imtll", "IMTL-L", "loss", "impartial MTL, loss part (Liu et al., ICLR 2021)"),
    WeightingInfo("moco", "MoCo", "gradient", "momentum-corrected MOO gradient (Fernando et al., ICLR 2023)",
                  (("beta", 0.5), ("beta_sigma", 0.5), ("gamma", 0.1), ("gamma_sigma", 0.5), ("rho", 0.0))),
    WeightingInfo("dbmtl", "DB-MTL", "gradient", "dual-balancing MTL (Lin et al., 2023)",
                  (("beta", 0.9), ("beta_sigma", 0.0))),
    WeightingInfo("crmogm", "CR-MOGM", "gradient", "MGDA with EMA-smoothed weights (Zhou et al., NeurIPS 2022)",
                  (("alpha", 0.9),)),
    WeightingInfo("autolambda", "Auto-Lambda", "bilevel", "task weights from a one-step look-ahead (Liu et al., TMLR 2022)",
                  (("init", 0.1), ("lr", 1e-4))),
    WeightingInfo("moml", "MOML", "bilevel", "multi-objective meta learning (Ye et al., NeurIPS 2021)",
                  (("inner_lr", 0.1), ("outer_lr", 1e-3))),
    WeightingInfo("forum", "FORUM", "bilevel", "first-order multi-gradient bilevel optimisation (Ye et al., ECAI 2024)",
                  (("phi", 0.1), ("inner_step", 5), ("inner_lr", 0.1), ("outer_lr", 1e-3))),
)}
DEFAULT = "dwa"   # the paper's (Sec. 2.2)
NONE = "none"     # STL: one task per network, nothing to weigh


class WeightingError(ValueError):
    """An unknown weighting or hyper-parameter, or a bad value: the message lists what is valid."""


@dataclass(frozen=True)
class WeightingSpec:
    """A weighting with its hyper-parameters (the defaults overridden by ``changed``)."""

    name: str
    changed: tuple[tuple[str, object], ...] = ()

    @property
    def label(self) -> str:
        """``cagrad`` or ``cagrad+c=0.4``: the cell's folder and the CSVs' ``weighting`` column."""
        return "+".join((self.name, *(f"{k}={v}" for k, v in self.changed)))

    def params(self) -> dict[str, object]:
        info = WEIGHTINGS.get(self.name)
        return {**dict(info.defaults if info else ()), **dict(self.changed)}


def parse(text: str) -> WeightingSpec:
    """``NAME`` or ``NAME+KEY=VALUE+...`` as a checked spec (values take the default's type)."""
    name, *items = text.strip().split("+")
    name = name.lower()
    if name == NONE:
        return WeightingSpec(NONE)
    if name not in WEIGHTINGS:
        raise WeightingError(f"unknown weighting {name!r}; choose one of {', '.join(WEIGHTINGS)}")
    defaults = dict(WEIGHTINGS[name].defaults)
    changed = {}
    keys = {k.lower(): k for k in defaults}                      # keys match whatever their case
    for item in items:
        key, sep, value = item.partition("=")
        key = keys.get(key.strip().lower(), key)
        if not sep or key not in defaults:
            valid = ", ".join(f"{k} (default {v})" for k, v in defaults.items()) or "none"
            raise WeightingError(f"weighting {name}: {item!r} is not KEY=VALUE of one of its hyper-parameters: {valid}")
        kind = type(defaults[key])
        try:
            typed = kind(float(value)) if kind in (int, float) else value
        except ValueError:
            raise WeightingError(f"weighting {name}: {key}={value!r} is not a {kind.__name__}") from None
        if kind is int and float(value) != int(float(value)):
            raise WeightingError(f"weighting {name}: {key}={value!r} is not a whole number")
        if typed != defaults[key]:
            changed[key] = typed
    return WeightingSpec(name, tuple(sorted(changed.items())))
