"""What one network's training and scoring need, resolved once and passed whole: the profile (epochs,
optimiser, precision, memory layout, precise BN), the batch size, the network's seed, the loss
weighting with its hyper-parameters, the device and whether to show an epoch bar.

A cell builds one per network (``benchmark.experiment.cell.CellConfig.train_settings``); the training
loop (``loop.train_network``) and scoring (``scoring.score``) read it and take no loose copies of its
fields.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from benchmark.training.weighting.catalog import DEFAULT, WeightingSpec, parse

if TYPE_CHECKING:  # profiles belong to the experiment layer above the training loop
    from benchmark.experiment.profiles import Profile


@dataclass(frozen=True)
class TrainSettings:
    """How one network trains and is scored."""

    profile: Profile
    batch_size: int
    seed: int                                    # the network's (a cell's seed x 1000 + its index)
    weighting: WeightingSpec = field(default_factory=lambda: parse(DEFAULT))
    device: str = "cpu"
    progress: bool = False                       # an epoch bar (on a terminal only)

    @property
    def channels_last(self) -> bool:
        return self.profile.channels_last
