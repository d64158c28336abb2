"""Checkpoints of one network's training, so that a killed cell resumes where it stopped.

In the network's checkpoint folder:

- ``last.pt``: the full training state after the last saved epoch: weights, optimiser (Adam's
  moments and steps), the loss weighting's state (DWA's loss history), the batch-order generator,
  torch's generator, model selection so far (best score and epoch, first-epoch losses) and the
  per-epoch rows. Restoring it and training on gives exactly the numbers of an uninterrupted run on
  the CPU (tested by killing a cell mid-epoch). Removed when the cell is stored, unless kept.
- ``selected.pt``: the weights of the selected epoch (kept: ``python -m benchmark.evaluate`` reads it).
- ``result.json``: written when the network's training has finished (selected epoch, validation
  metrics, epoch rows): a resumed cell does not train that network again.

Files are written atomically (``benchmark.atomic``); ``every`` seconds bound how often ``last.pt``
is saved (0: after every epoch), so short cells pay nothing and long ones lose at most that much.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from benchmark.atomic import replacing, write_text

LAST, SELECTED, RESULT = "last.pt", "selected.pt", "result.json"


def _save(obj, path: Path) -> None:
    with replacing(path) as tmp:
        torch.save(obj, tmp)


class Checkpoints:
    """The checkpoint folder of one network of a cell."""

    def __init__(self, folder: Path | str, every: float = 120.0, keep_last: bool = False):
        self.folder, self.every, self.keep_last = Path(folder), every, keep_last
        self._saved_at = time.monotonic()

    def due(self) -> bool:
        """Whether ``last.pt`` should be saved now (``every`` seconds since the previous save)."""
        return time.monotonic() - self._saved_at >= self.every

    def save(self, state: dict, selected: dict | None) -> None:
        """Save the training state (``last.pt``) and, when it changed, the selected weights first:
        killed between the two, ``selected.pt`` is newer than ``last.pt`` says, and the resumed run
        replays the epochs up to it, selecting them again (training is deterministic)."""
        if selected is not None:
            _save(selected, self.folder / SELECTED)
        _save(state, self.folder / LAST)
        self._saved_at = time.monotonic()

    def resume(self) -> dict | None:
        """The saved training state, or None (nothing saved: train from the start)."""
        path = self.folder / LAST
        return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None

    def selected(self) -> dict:
        return torch.load(self.folder / SELECTED, map_location="cpu", weights_only=True)

    def finish(self, selected: dict, result: dict, last: dict) -> None:
        """The network has finished: its selected weights and its result; ``last.pt`` goes (or, when
        asked to keep it, holds the final training state)."""
        _save(selected, self.folder / SELECTED)
        write_text(self.folder / RESULT, json.dumps(result, default=float))
        if self.keep_last:
            _save(last, self.folder / LAST)
        else:
            (self.folder / LAST).unlink(missing_ok=True)

    def result(self) -> dict | None:
        """The finished network's result, or None when its training has not finished."""
        path = self.folder / RESULT
        return json.loads(path.read_text()) if path.is_file() else None
