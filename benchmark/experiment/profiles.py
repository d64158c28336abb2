"""Profiles (smoke, quick, realcpu, public, paper) as frozen values: everything about a run that is not the cell.

The paper (Sec. 2.2) fixes the optimiser (Adam, lr 1e-4, weight decay 1e-5), the losses, DWA and
the batch sizes (32 for Prostate, 8 otherwise); it gives no epoch count or image size: the choices
below are explained in docs/reproduction.md.

A user changes settings without editing code: ``with_overrides(profile, {"epochs": "50"})``
(``reproduce.py --set epochs=50``) type-checks each value and records it in the profile's
``label`` (``quick+epochs=50``), which names the results folder and the report's groups, so runs
with other settings never mix; ``load_profile_file`` reads a whole custom profile from TOML.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

from models.catalog import BACKBONES


class ProfileError(ValueError):
    """An unknown profile, setting or value: the message names it and lists what is valid."""


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
    data_seed: int = 0              # the synthetic dataset is fixed across training seeds, like real data
    amp: bool = False               # bfloat16 autocast of the training forward and loss (CPU and CUDA)
    channels_last: bool = False     # NHWC memory format for the network and its input images
    bn_recalibration_batches: int = 0  # precise BN before each validation (training.recalibrate_batchnorm)
    # torch CPU threads of a cell: the thread count changes the order of float reductions, so it is
    # part of what a cell is (docs/scaling.md, determinism), never derived from --jobs or the machine.
    threads: int = 1
    # Every k-th sample of the training and validation splits (adjacent axial slices of a patient are
    # nearly the same image); the test split is always whole.
    subsample: int = 1
    description: str = ""
    overrides: tuple[str, ...] = ()  # "key=value" settings changed from the named profile, sorted

    @property
    def label(self) -> str:
        """The profile's name and its overrides: ``quick`` or ``quick+epochs=50+lr=0.0003``."""
        return "+".join((self.name, *self.overrides))

    def settings(self) -> dict:
        """The settings that determine a cell's numbers (name, description and overrides aside)."""
        d = dataclasses.asdict(self)
        for key in ("name", "description", "overrides"):
            d.pop(key)
        return d


PROFILES = {
    "smoke": Profile("smoke", "resnet18", False, epochs=2, image_size=32, batch_size=16,
                     synthetic_sizes=(32, 16, 16), lr=1e-3, bn_recalibration_batches=8,
                     description="plumbing check: every cell in about a minute, numbers mean nothing"),
    "quick": Profile("quick", "resnet18", False, epochs=5, image_size=48, batch_size=32,
                     synthetic_sizes=(320, 96, 192), lr=3e-3, amp=True, bn_recalibration_batches=4,
                     description="CPU default: the whole grid with 3 seeds in under 15 minutes on 2 cores, "
                                 "CTAB attending over a 2x2 bottleneck"),
    "realcpu": Profile("realcpu", "resnet18", False, epochs=4, image_size=64, batch_size=32,
                       synthetic_sizes=(1024, 256, 256), lr=3e-3, amp=True, bn_recalibration_batches=8,
                       subsample=2,
                       description="real data on a CPU: the OpenKBP row (4 methods x 3 seeds) in about 2 hours "
                                   "on 2 cores (docs/reproduction.md lists what it reduces)"),
    "public": Profile("public", "resnet18", False, epochs=20, image_size=64, batch_size=16,
                      synthetic_sizes=(140, 20, 40), lr=1e-3, amp=True, bn_recalibration_batches=8,
                      description="the public rows (PH2, BUSI) on a CPU: 5 folds, every method to its validation "
                                  "plateau (docs/reproduction.md: the curves and the cost)"),
    "paper": Profile("paper", "resnet50", True, epochs=100, image_size=None, batch_size=None,
                     synthetic_sizes=(2000, 400, 400), amp=True,
                     description="the paper's settings: ResNet-50 with ImageNet weights, real data, GPU"),
}
SETTABLE = tuple(f.name for f in dataclasses.fields(Profile) if f.name not in ("name", "description", "overrides"))


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ProfileError(f"unknown profile {name!r}; choose one of {list(PROFILES)}")
    return PROFILES[name]


_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def _coerce(key: str, kind: str, value):
    """``value`` (text from --set, or a TOML value) as the field's type; one clear error otherwise."""
    text = str(value).strip()
    try:
        if kind == "bool":
            if isinstance(value, bool) or text.lower() in _TRUE + _FALSE:
                return value if isinstance(value, bool) else text.lower() in _TRUE
            raise ValueError
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value) if not isinstance(value, str) else int(text)
        if kind == "int | None":
            return None if text.lower() in ("none", "native") else _coerce(key, "int", value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(text)
        if kind == "str":
            return text
        if kind.startswith("tuple[int"):
            items = value if isinstance(value, (list, tuple)) else text.strip("()[] ").replace("x", ",").split(",")
            out = tuple(_coerce(key, "int", v) for v in items)
            if len(out) != kind.count("int"):
                raise ValueError
            return out
    except ValueError:
        raise ProfileError(f"setting {key}={text!r}: not a valid {kind}") from None
    raise ProfileError(f"setting {key}: type {kind} cannot be set")  # pragma: no cover - every field has a case


def _check(p: Profile) -> Profile:
    """Values a training run can use; one clear error naming the setting otherwise."""
    problems = []
    if p.backbone not in BACKBONES:
        problems.append(f"backbone={p.backbone!r} is not one of {list(BACKBONES)}")
    for key in ("epochs", "threads", "subsample"):
        if getattr(p, key) < 1:
            problems.append(f"{key}={getattr(p, key)} must be at least 1")
    for key in ("image_size", "batch_size"):
        v = getattr(p, key)
        if v is not None and v < (16 if key == "image_size" else 1):
            problems.append(f"{key}={v} is too small")
    if any(n < 1 for n in p.synthetic_sizes):
        problems.append(f"synthetic_sizes={p.synthetic_sizes} must be positive")
    if not p.lr > 0:
        problems.append(f"lr={p.lr} must be positive")
    if p.weight_decay < 0 or p.bn_recalibration_batches < 0 or p.data_seed < 0:
        problems.append("weight_decay, bn_recalibration_batches and data_seed must not be negative")
    if problems:
        raise ProfileError(f"profile {p.label}: " + "; ".join(problems))
    return p


def _format(value) -> str:
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return repr(value) if isinstance(value, float) else str(value)


def with_overrides(profile: Profile, settings: dict[str, object]) -> Profile:
    """``profile`` with ``settings`` (``{"epochs": "50", ...}``) applied, type-checked and recorded
    in its label; a setting equal to the profile's own value changes nothing."""
    kinds = {f.name: f.type for f in dataclasses.fields(Profile)}
    changes = {}
    for key, raw in settings.items():
        if key not in SETTABLE:
            raise ProfileError(f"unknown setting {key!r}; valid settings: {', '.join(SETTABLE)}")
        value = _coerce(key, kinds[key], raw)
        if value != getattr(profile, key):
            changes[key] = value
    if not changes:
        return profile
    new = dataclasses.replace(profile, **changes)
    # The label lists what differs from the named profile (a built-in one, or a file's as loaded).
    reference = PROFILES.get(profile.name, dataclasses.replace(profile, overrides=()))
    done = dict(o.split("=", 1) for o in profile.overrides)
    for key, value in changes.items():
        done.pop(key, None)
        if value != getattr(reference, key):
            done[key] = _format(value)
    return _check(dataclasses.replace(new, overrides=tuple(f"{k}={v}" for k, v in sorted(done.items()))))


def parse_settings(items: list[str]) -> dict[str, str]:
    """``["epochs=50", "lr=3e-4"]`` as a dict; one clear error for an item without ``=``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ProfileError(f"--set {item!r}: expected key=value, e.g. epochs=50; valid keys: {', '.join(SETTABLE)}")
        out[key.strip()] = value.strip()
    return out


def load_profile_file(path: str | Path) -> Profile:
    """A whole custom profile from a TOML file: ``name`` and every setting, or ``base = "quick"``
    and the settings that differ from it (recorded like --set overrides, so the same settings given
    either way are the same run)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such profile file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: not valid TOML ({exc})") from None
    data = dict(data.get("profile", data))
    base = data.pop("base", None)
    if base is not None:  # the settings, not a file's name, identify the run: label = base + overrides
        data.pop("name", None)
        return with_overrides(get_profile(str(base)), data)
    name = str(data.pop("name", "")).strip()
    if not name or not all(c.isalnum() or c in "_-." for c in name):
        raise ProfileError(f"{path}: needs a name of letters, digits, '_', '-' or '.' (name = \"myprofile\")")
    if name in PROFILES:
        raise ProfileError(f"{path}: name {name!r} is a built-in profile; name yours differently or set base = {name!r}")
    kinds = {f.name: f for f in dataclasses.fields(Profile)}
    unknown = sorted(set(data) - set(SETTABLE) - {"description"})
    if unknown:
        raise ProfileError(f"{path}: unknown setting(s) {unknown}; valid settings: {', '.join(SETTABLE)}")
    missing = [k for k, f in kinds.items() if k in SETTABLE and k not in data
               and f.default is dataclasses.MISSING]
    if missing:
        raise ProfileError(f"{path}: missing setting(s) {missing} (or set base = \"quick\" to start from a profile)")
    values = {k: _coerce(k, kinds[k].type, v) for k, v in data.items() if k != "description"}
    return _check(Profile(name=name, description=str(data.get("description", f"from {path.name}")), **values))
