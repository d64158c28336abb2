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
    paper: bool = True  # in the paper's Table 2 (the report's default view and --all)


# The paper's four in its order (Table 2; STL is the baseline of eq. 3), then the others.
METHODS = {m.name: m for m in (
    MethodInfo("stl", "STL", "single-task learning: one network per task"),
    MethodInfo("hps", "HPS", "hard parameter sharing (Caruana 1997)"),
    MethodInfo("mtan", "MTAN", "multi-task attention network (Liu et al., CVPR 2019)"),
    MethodInfo("ctan", "CTAN", "cross-task attention network (Kim et al. 2023)"),
    MethodInfo("cross_stitch", "Cross-stitch", "cross-stitch networks (Misra et al., CVPR 2016)", paper=False),
    MethodInfo("mmoe", "MMoE", "multi-gate mixture of experts (Ma et al., KDD 2018)", paper=False),
    MethodInfo("cgc", "CGC", "customized gate control (Tang et al., RecSys 2020)", paper=False),
    MethodInfo("ple", "PLE", "progressive layered extraction (Tang et al., RecSys 2020)", paper=False),
    MethodInfo("dselect_k", "DSelect-k", "differentiable expert selection (Hazimeh et al., NeurIPS 2021)", paper=False),
    MethodInfo("ltb", "LTB", "learning to branch (Guo et al., ICML 2020)", paper=False),
    MethodInfo("ctae_only", "CTAE only", "CTAN without CTAB (ablation)", paper=False),
    MethodInfo("ctab_only", "CTAB only", "HPS with CTAB at the bottleneck (ablation)", paper=False),
)}
PAPER_METHODS = tuple(name for name, m in METHODS.items() if m.paper)
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
