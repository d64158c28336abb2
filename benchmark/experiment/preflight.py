"""Checks made once, before any cell runs (and by ``--dry-run``): the devices exist and can hold a
tensor, the ImageNet weights a profile needs are on disk, the results folder can be written. Each
failure is one :class:`PreflightError` line naming the value -- not one traceback per cell after the
data was loaded (issue 26). Data roots are checked by ``cli._check_data_root`` and ``prepare_once``."""
from __future__ import annotations

import os
import re
from pathlib import Path

_DEVICE = re.compile(r"^(cpu|cuda|mps|xpu)(:\d+)?$")


class PreflightError(ValueError):
    """A setting that would make every cell fail."""


def check_devices(devices: tuple[str, ...]) -> None:
    """Each device is a torch device this machine has, and a tensor can be put on it."""
    for device in devices:
        if not _DEVICE.match(device):
            raise PreflightError(f"--device {device}: not a torch device (cpu, cuda, cuda:N, mps, xpu:N)")
        if device == "cpu":
            continue
        import torch

        kind, _, index = device.partition(":")
        backend = getattr(torch, kind, None)
        if kind == "mps":
            available = torch.backends.mps.is_available()
        else:
            available = backend is not None and backend.is_available()
        if not available:
            raise PreflightError(f"--device {device}: this machine has no {kind.upper()} device "
                                 f"(torch {torch.__version__} sees none); use --device cpu")
        count = backend.device_count() if kind != "mps" else 1
        if index and int(index) >= count:
            raise PreflightError(f"--device {device}: this machine has {count} {kind} device(s), "
                                 f"{kind}:0 to {kind}:{count - 1}")
        try:
            torch.empty(1, device=device)
        except (RuntimeError, AssertionError) as exc:
            raise PreflightError(f"--device {device}: cannot allocate on it ({exc})") from None


def check_pretrained(backbone: str, pretrained: bool) -> None:
    """A profile that starts from ImageNet weights finds them in the local torch cache (nothing is
    downloaded at run time)."""
    if not pretrained:
        return
    from models.encoder import pretrained_weights_path

    path = pretrained_weights_path(backbone)
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise PreflightError(
            f"the profile starts {backbone} from ImageNet weights, which are not at {path}: this suite never "
            f"downloads at run time; on a machine with internet run `python -c \"import torchvision; "
            f"torchvision.models.{backbone}(weights='IMAGENET1K_V1')\"` and copy the file there (or set "
            f"TORCH_HOME), or train from scratch with --set pretrained=false")


def check_results(results: str | os.PathLike, create: bool) -> None:
    """The results folder is (or can become) a writable folder with room (``store.check_writable``);
    ``create`` False (dry run) only looks."""
    from benchmark.experiment.store import StoreError, check_writable

    path = Path(results)
    if not create:
        if path.exists() and not path.is_dir():
            raise PreflightError(f"--results {path}: is a file, not a folder")
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PreflightError(f"--results {path}: {existing} is not writable")
        return
    try:
        check_writable(path)
    except StoreError as exc:
        raise PreflightError(str(exc)) from None


def check_all(devices: tuple[str, ...], backbone: str, pretrained: bool, results, create: bool) -> None:
    check_devices(devices)
    check_pretrained(backbone, pretrained)
    check_results(results, create)
