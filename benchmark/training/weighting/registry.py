"""The registry of loss weightings: name -> class, and ``build_weighting``."""
from __future__ import annotations

from benchmark.training.weighting.alignedmtl import AlignedMTLWeighting
from benchmark.training.weighting.autolambda import AutoLambda
from benchmark.training.weighting.base import Weighting
from benchmark.training.weighting.cagrad import CAGradWeighting
from benchmark.training.weighting.catalog import NONE, WEIGHTINGS, WeightingSpec, parse
from benchmark.training.weighting.config import ConFIGWeighting
from benchmark.training.weighting.crmogm import CRMOGM
from benchmark.training.weighting.dbmtl import DBMTL
from benchmark.training.weighting.dualproj import DualProjWeighting
from benchmark.training.weighting.dwa import DWA
from benchmark.training.weighting.ew import EW
from benchmark.training.weighting.excessmtl import ExcessMTL
from benchmark.training.weighting.fairgrad import FairGradWeighting
from benchmark.training.weighting.famo import FAMO
from benchmark.training.weighting.gls import GLS
from benchmark.training.weighting.graddrop import GradDropWeighting
from benchmark.training.weighting.gradvac import GradVacWeighting
from benchmark.training.weighting.gradnorm import GradNormWeighting
from benchmark.training.weighting.imtlg import IMTLGWeighting
from benchmark.training.weighting.imtll import IMTLL
from benchmark.training.weighting.mgda import MGDAWeighting
from benchmark.training.weighting.moco import MoCo
from benchmark.training.weighting.moml import MOML
from benchmark.training.weighting.forum import FORUM
from benchmark.training.weighting.modo import MoDo
from benchmark.training.weighting.nashmtl import NashMTLWeighting
from benchmark.training.weighting.pbi import PBI
from benchmark.training.weighting.pcgrad import PCGradWeighting
from benchmark.training.weighting.rlw import RLW
from benchmark.training.weighting.sdmgrad import SDMGrad
from benchmark.training.weighting.stch import STCH
from benchmark.training.weighting.upgrad import UPGradWeighting
from benchmark.training.weighting.uw import UW

CLASSES: dict[str, type[Weighting]] = {cls.name: cls for cls in (
    EW, DWA, UW, RLW, GLS, FAMO, MGDAWeighting, PCGradWeighting, CAGradWeighting, NashMTLWeighting,
    IMTLGWeighting, AlignedMTLWeighting, UPGradWeighting, GradNormWeighting, GradDropWeighting, ConFIGWeighting,
    DualProjWeighting, FairGradWeighting, GradVacWeighting, ExcessMTL, MoDo, SDMGrad, STCH, PBI, IMTLL,
    MoCo, DBMTL, CRMOGM, AutoLambda, MOML, FORUM)}
if list(CLASSES) != list(WEIGHTINGS) or any(CLASSES[n].kind != WEIGHTINGS[n].kind for n in CLASSES):
    raise ImportError("weighting.registry.CLASSES and weighting.catalog.WEIGHTINGS disagree")


def build_weighting(spec: WeightingSpec | str, n_tasks: int) -> Weighting:
    """The weighting ``spec`` for ``n_tasks`` tasks (``none`` and single tasks: the plain loss)."""
    spec = parse(spec) if isinstance(spec, str) else spec
    if spec.name == NONE or n_tasks == 1:
        return EW(n_tasks)
    return CLASSES[spec.name](n_tasks, **spec.params())
