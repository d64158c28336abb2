"""The methods' names, as data: what the CLI, the report, the speed tool and the docs read.

Torch-free on purpose (the report renders tables without torch); ``models.MODELS`` maps each name
to its class and refuses to import if the two disagree.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodInfo:
    name: str
    label: str          # as tables print it
    reference: str


# In the paper's order (Table 2); STL is the baseline of eq. (3).
METHODS = {m.name: m for m in (
    MethodInfo("stl", "STL", "single-task learning: one network per task"),
    MethodInfo("hps", "HPS", "hard parameter sharing (Caruana 1997)"),
    MethodInfo("mtan", "MTAN", "multi-task attention network (Liu et al., CVPR 2019)"),
    MethodInfo("ctan", "CTAN", "cross-task attention network (Kim et al. 2023)"),
)}
BASELINE = "stl"
# Encoder backbones (torchvision ResNets; models/encoder.py builds them).
BACKBONES = ("resnet18", "resnet34", "resnet50")


def bottleneck_side(image_size: int) -> int:
    """Side of the ResNet encoder's stage-4 output (CTAB's N = side²) for a square input: the stem's
    stride-2 conv and max-pool and stages 2-4 each map x to floor((x - 1) / 2) + 1."""
    side = image_size
    for _ in range(5):
        side = (side - 1) // 2 + 1
    return side
