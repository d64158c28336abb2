"""Live training curves: each network's per-epoch losses, loss weights, validation metrics and
selection score as TensorBoard event files in its cell's folder, so that ``tensorboard --logdir
results/runs`` watches a whole grid while it runs (:class:`EpochLog`); and the live status of a grid
run with ``--jobs`` > 1: each worker writes its network's epoch, losses and ETA to the cell's
``status.json`` (:class:`StatusFile`), the parent prints them (:class:`LiveStatus`). Written once per
epoch, never per step."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from benchmark.atomic import write_text as atomic_write
from benchmark.training.loop import EpochEnd


class EpochLog:
    """An ``on_epoch`` hook of ``train_network`` writing to ``folder``."""

    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter  # tensorboard loads only when curves are written

        self.writer = SummaryWriter(log_dir=str(folder))

    def __call__(self, end: EpochEnd) -> None:
        w, e = self.writer, end.epoch
        for k, t in enumerate(end.tasks):
            w.add_scalar(f"train_loss/{t.name}", float(end.train_losses[k]), e)
            w.add_scalar(f"loss_weight/{t.name}", float(end.weights[k]), e)
            w.add_scalar(f"val_loss/{t.name}", end.val[t.name]["loss"], e)
            w.add_scalar(f"val_{t.metric}/{t.name}", end.val[t.name][t.metric], e)
        w.add_scalar("selection_score", end.score, e)
        w.flush()

    def close(self) -> None:
        self.writer.close()


STATUS = "status.json"


class StatusFile:
    """An ``on_epoch`` hook writing the network's progress to ``<cell>/status.json`` (atomically), which
    the parent of ``--jobs`` > 1 workers reads for its live status (:class:`LiveStatus`)."""

    def __init__(self, cell: Path, network: str, index: int, networks: int, epochs: int):
        self.path = Path(cell) / STATUS
        self.base = {"network": network, "index": index + 1, "networks": networks, "epochs": epochs}
        self.started = time.time()

    def __call__(self, end: EpochEnd) -> None:
        done = end.epoch + 1
        per_epoch = (time.time() - self.started) / done      # since this process began the network
        state = {**self.base, "epoch": done, "seconds_per_epoch": per_epoch,
                 "eta_seconds": per_epoch * (self.base["epochs"] - done), "updated": time.time(),
                 "train_loss": {t.name: float(end.train_losses[k]) for k, t in enumerate(end.tasks)},
                 "val_loss": {t.name: float(end.val[t.name]["loss"]) for t in end.tasks}}
        try:
            atomic_write(self.path, json.dumps(state))
        except OSError:
            pass  # a status line is a courtesy: never fail a cell for it

    def close(self) -> None:
        pass


def read_status(cell: Path) -> dict | None:
    try:
        return json.loads((Path(cell) / STATUS).read_text())
    except (OSError, ValueError):
        return None


def status_line(name: str, state: dict) -> str:
    """One running cell: network k of n, epoch, losses, ETA of this network."""
    losses = " ".join(f"{t} {v:.3g}/{state['val_loss'].get(t, float('nan')):.3g}" for t, v in state["train_loss"].items())
    network = f" {state['network']} ({state['index']} of {state['networks']})" if state["networks"] > 1 else ""
    eta = state["eta_seconds"]
    eta_text = f"{eta / 60:.0f} min" if eta >= 90 else f"{eta:.0f} s"
    return f"[live] {name}{network}: epoch {state['epoch']}/{state['epochs']}, train/val loss {losses}, ETA {eta_text}"


class LiveStatus:
    """The parent's view of the running cells (``--jobs`` > 1, where the workers' own bars are off).

    A thread polls the status files of the cells not yet finished every ``interval`` seconds. On a
    terminal (``bar`` given) the running cells' epochs go into the cells bar's postfix, in place; in a
    log, one plain line per new epoch of a cell -- no carriage returns."""

    def __init__(self, cells: dict[str, Path], bar=None, log=print, interval: float | None = None):
        if interval is None:   # $CTAN_LIVE_SECONDS: how often to look (default 5 s)
            interval = float(os.environ.get("CTAN_LIVE_SECONDS", "5"))
        self.cells, self.bar, self.log, self.interval = dict(cells), bar, log, interval
        self.seen: dict[str, tuple] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="live-status")

    def __enter__(self) -> "LiveStatus":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * self.interval)

    def finished(self, name: str) -> None:
        self.cells.pop(name, None)

    def poll(self) -> list[str]:
        """New status lines (and the bar's postfix) from the status files now on disk."""
        lines, short = [], []
        for name, cell in list(self.cells.items()):
            state = read_status(cell)
            if state is None or (cell / "cell.json").exists():
                continue
            key = (state["network"], state["epoch"])
            short.append(f"{name} {state['epoch']}/{state['epochs']}")
            if self.seen.get(name) != key:
                self.seen[name] = key
                lines.append(status_line(name, state))
        if self.bar is not None:
            self.bar.set_postfix_str("; ".join(short), refresh=True)
        else:
            for line in lines:
                self.log(line)
        return lines

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a status thread must never take the run down
                pass
