"""The registry ``MODELS`` (method name -> class) and ``build_model``, the one constructor."""
from __future__ import annotations

from data.spec import TaskSpec
from models.amx import guard
from models.base import MultiTaskModel
from models.cgc import CGC
from models.catalog import METHODS
from models.cross_stitch import CrossStitch
from models.ctab_only import CTABOnly
from models.ctae_only import CTAEOnly
from models.ctan import CTAN
from models.dselect_k import DSelectK
from models.hps import HPS
from models.ltb import LTB
from models.mmoe import MMoE
from models.mtan import MTAN
from models.ple import PLE
from models.stl import STL

MODELS = {"stl": STL, "hps": HPS, "mtan": MTAN, "ctan": CTAN, "cross_stitch": CrossStitch, "mmoe": MMoE,
          "cgc": CGC, "ple": PLE, "dselect_k": DSelectK, "ltb": LTB,
          "ctae_only": CTAEOnly, "ctab_only": CTABOnly}
if list(MODELS) != list(METHODS):  # the catalog and the classes must name the same methods, in order
    raise ImportError(f"models.registry.MODELS {list(MODELS)} and models.catalog.METHODS {list(METHODS)} disagree")


def build_model(method: str, tasks: tuple[TaskSpec, ...], backbone: str = "resnet50",
                pretrained: bool = False, in_channels: int = 3, **options) -> MultiTaskModel:
    """Build ``method`` for a dataset's task specs, with the AMX bf16 workaround applied (models.amx);
    ``options`` go to the method's class (a study's variant, e.g. CTAN without one of its blocks)."""
    if method not in MODELS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(MODELS)}")
    return guard(MODELS[method](tuple(tasks), backbone=backbone, pretrained=pretrained, in_channels=in_channels,
                                 **options))
