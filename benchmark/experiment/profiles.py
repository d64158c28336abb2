"""Profiles (smoke, quick, paper) as frozen values: everything about a run that is not the cell.

The paper (Sec. 2.2) fixes the optimiser (Adam, lr 1e-4, weight decay 1e-5), the losses, DWA and
the batch sizes (32 for Prostate, 8 otherwise); it gives no epoch count or image size: the choices
below are explained in docs/reproduction.md.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    backbone: str
    pretrained: bool
    epochs: int
    image_size: int | None          # None: each dataset's own size (paper profile)
    batch_size: int | None          # None: the paper's batch size of each dataset
    synthetic_sizes: tuple[int, int, int]  # train/val/test samples of the synthetic stand-ins
    lr: float = 1e-4
    weight_decay: float = 1e-5
    dwa_temperature: float = 2.0
    data_seed: int = 0              # the synthetic dataset is fixed across training seeds, like real data
    amp: bool = False               # bfloat16 autocast in training, on CUDA devices only
    bn_recalibration_batches: int = 0  # precise BN before each validation (training.recalibrate_batchnorm)
    description: str = ""


PROFILES = {
    "smoke": Profile("smoke", "resnet18", False, epochs=2, image_size=32, batch_size=16,
                     synthetic_sizes=(32, 16, 16), lr=1e-3, bn_recalibration_batches=8,
                     description="plumbing check: every cell in about a minute, numbers mean nothing"),
    "quick": Profile("quick", "resnet18", False, epochs=5, image_size=32, batch_size=32,
                     synthetic_sizes=(384, 96, 192), lr=3e-3, bn_recalibration_batches=8,
                     description="CPU default: the whole grid with 3 seeds in under 15 minutes on 2 cores"),
    "paper": Profile("paper", "resnet50", True, epochs=100, image_size=None, batch_size=None,
                     synthetic_sizes=(2000, 400, 400), amp=True,
                     description="the paper's settings: ResNet-50 with ImageNet weights, real data, GPU"),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]
