"""One cell of the grid (dataset, method, seed under a profile): its resolved configuration, identity
(hash and folder) and data."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from benchmark.experiment.profiles import Profile
from benchmark.experiment.store import cell_dir
from data import get_dataset
from data.base import TaskData
from benchmark.training.settings import TrainSettings
from benchmark.training.weighting.catalog import DEFAULT, NONE, parse
from data.prepare import load as load_real
from models.catalog import BASELINE


@dataclass(frozen=True)
class CellConfig:
    """Everything that determines one cell's numbers (device aside)."""

    dataset: str
    method: str
    seed: int
    profile: Profile
    data_source: str                 # synthetic | real
    data_root: str | None = None
    image_size: int | None = None    # resolved size
    batch_size: int | None = None    # resolved batch size
    skip_bad: bool = False           # real data: skip unreadable samples with a warning and a count
    deterministic: bool = False      # deterministic algorithms (GPU reruns bit-identical)
    weighting: str = DEFAULT         # the loss weighting's label (``none`` for STL)
    fold: int | None = None          # cross-validated real data (``DatasetEntry.folds``): the test fold

    @property
    def replicate(self) -> str:
        """``seed 0`` or, cross-validated, ``seed 0 fold 3``: how messages name the cell's run."""
        return f"seed {self.seed}" + ("" if self.fold is None else f" fold {self.fold}")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "profile_label": self.profile.label}

    @classmethod
    def from_dict(cls, d: dict) -> "CellConfig":
        """The config :meth:`to_dict` gave (e.g. a stored ``cell.json``'s ``config``)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        profile = dict(d["profile"])     # JSON has lists where the profile holds tuples
        profile.update(synthetic_sizes=tuple(profile["synthetic_sizes"]), overrides=tuple(profile.get("overrides", ())))
        return cls(**{**{k: v for k, v in d.items() if k in fields}, "profile": Profile(**profile)})

    def train_settings(self, network: int = 0, device: str = "cpu", progress: bool = False) -> TrainSettings:
        """The settings network ``network`` of this cell trains and is scored with (its seed: the
        cell's x 1000 + the index; STL's networks are 0, 1, ...)."""
        return TrainSettings(self.profile, self.batch_size, self.seed * 1000 + network, parse(self.weighting),
                             str(device), progress)

    def directory(self, results: str | Path) -> Path:
        """This cell's folder in the results store (docs/results-schema.md): the profile's label
        (with any overrides) keeps runs with other settings apart."""
        return cell_dir(results, self.profile.label, self.data_source, self.dataset, self.method, self.seed,
                        self.weighting, self.fold)

    def identity(self) -> dict:
        """What the numbers depend on: not where the data lives, nor a profile's name or wording."""
        d = dataclasses.asdict(self)
        d.pop("data_root")
        if d["fold"] is None:        # cells from before folds existed keep their hash
            d.pop("fold")
        d["profile"] = self.profile.settings()
        return d

    def hash(self) -> str:
        """Short hash of :meth:`identity`; a finished cell whose stored hash differs was made with
        other settings and is never silently reused."""
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:12]


def resolve_config(dataset: str, method: str, seed: int, profile: Profile, data_source: str,
                   data_root: str | None = None, skip_bad: bool = False,
                   deterministic: bool = False, weighting: str = DEFAULT, fold: int | None = None) -> CellConfig:
    spec = get_dataset(dataset).spec
    return CellConfig(dataset, method, seed, profile, data_source, data_root,
                      image_size=profile.image_size or spec.native_size,
                      batch_size=profile.batch_size or spec.paper_batch_size, skip_bad=skip_bad,
                      deterministic=deterministic,
                      weighting=NONE if method == BASELINE else parse(weighting).label, fold=fold)


def folds_of(dataset: str, data_source: str) -> list[int | None]:
    """The folds a (dataset, data source) runs: every fold of a cross-validated dataset's real data,
    else ``[None]`` (the reader's own split; a synthetic stand-in has its own)."""
    k = get_dataset(dataset).folds
    return list(range(k)) if k and data_source == "real" else [None]


def load_data(cfg: CellConfig) -> TaskData:
    """The cell's dataset: the synthetic stand-in (drawn with the profile's data seed) or the real
    data, its training and validation splits thinned to every ``profile.subsample``-th sample."""
    entry = get_dataset(cfg.dataset)
    if cfg.data_source == "synthetic":
        n_train, n_val, n_test = cfg.profile.synthetic_sizes
        data = entry.synthetic(cfg.profile.data_seed, n_train, n_val, n_test, cfg.image_size)
    else:
        data = load_real(cfg.dataset, cfg.data_root, cfg.image_size, skip_bad=cfg.skip_bad, fold=cfg.fold)
    k = cfg.profile.subsample
    if k > 1:
        data.splits = {name: split.every(k) if name in ("train", "val") else split for name, split in data.splits.items()}
    return data
