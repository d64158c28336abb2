"""The four methods of Table 2 and one constructor for all of them."""
from __future__ import annotations

from data.spec import TaskSpec
from models.base import MultiTaskModel, count_parameters
from models.ctan import CTAN
from models.hps import HPS
from models.mtan import MTAN
from models.stl import STL

MODELS = {"stl": STL, "hps": HPS, "mtan": MTAN, "ctan": CTAN}


def build_model(method: str, tasks: tuple[TaskSpec, ...], backbone: str = "resnet50",
                pretrained: bool = False, in_channels: int = 3) -> MultiTaskModel:
    """Build ``method`` for a dataset's task specs."""
    if method not in MODELS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(MODELS)}")
    return MODELS[method](tuple(tasks), backbone=backbone, pretrained=pretrained, in_channels=in_channels)


__all__ = ["MODELS", "build_model", "count_parameters", "MultiTaskModel"]
