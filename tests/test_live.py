"""Saying what happens (issue 26): with --jobs > 1 the parent prints each running cell's epoch, losses and
ETA (plain lines in a log, the cells bar's postfix on a terminal); nothing writes carriage returns into
a log file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmark.experiment.live import STATUS, LiveStatus, read_status, status_line

ROOT = Path(__file__).resolve().parents[1]


def _state(epoch: int, network: str = "joint", networks: int = 1) -> dict:
    return {"network": network, "index": 1, "networks": networks, "epochs": 20, "epoch": epoch,
            "seconds_per_epoch": 12.0, "eta_seconds": 12.0 * (20 - epoch), "updated": time.time(),
            "train_loss": {"segmentation": 0.3125, "diagnosis": 0.5}, "val_loss": {"segmentation": 0.25, "diagnosis": 0.75}}


def test_a_status_line_names_cell_network_epoch_losses_and_eta():
    assert status_line("busi/hps seed 0 fold 2", _state(7)) == (
        "[live] busi/hps seed 0 fold 2: epoch 7/20, train/val loss segmentation 0.312/0.25 diagnosis 0.5/0.75, "
        "ETA 3 min")
    line = status_line("busi/stl seed 1", _state(19, "segmentation", 2))
    assert "segmentation (1 of 2): epoch 19/20" in line and line.endswith("ETA 12 s")


class _Bar:
    def __init__(self):
        self.postfix = None

    def set_postfix_str(self, text, refresh=True):
        self.postfix = text


def test_live_status_prints_each_new_epoch_once_and_skips_finished_cells(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    printed = []
    live = LiveStatus({"A": a, "B": b}, log=printed.append, interval=60)
    assert live.poll() == [] and printed == []                     # nothing written yet
    (a / STATUS).write_text(json.dumps(_state(1)))
    (b / STATUS).write_text("{not json")                           # a half-seen file is skipped, not fatal
    live.poll()
    live.poll()                                                    # the same epoch again: no new line
    assert len(printed) == 1 and printed[0].startswith("[live] A: epoch 1/20")
    (a / STATUS).write_text(json.dumps(_state(2)))
    (b / STATUS).write_text(json.dumps(_state(5)))
    live.finished("B")
    live.poll()
    assert [p.split(":")[0] for p in printed] == ["[live] A", "[live] A"] and "epoch 2/20" in printed[1]
    bar = _Bar()
    on_terminal = LiveStatus({"A": a}, bar=bar, log=printed.append, interval=60)
    on_terminal.poll()
    assert bar.postfix == "A 2/20" and len(printed) == 2           # in place, not printed
    assert read_status(tmp_path / "missing") is None


def test_a_parallel_run_into_a_log_has_live_lines_and_no_carriage_returns(tmp_path):
    log = tmp_path / "run.log"
    env = {**os.environ, "CTAN_LIVE_SECONDS": "0.2"}
    with open(log, "w") as out:
        status = subprocess.run([sys.executable, "reproduce.py", "--dataset", "stoic", "--method", "stl", "--method",
                                 "hps", "--profile", "smoke", "--set", "epochs=4", "--seeds", "0", "--data",
                                 "synthetic", "--jobs", "2", "--no-report", "--results", str(tmp_path / "r")],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=600).returncode
    text = log.read_text()
    assert status == 0, text
    assert "\r" not in text
    live = [line for line in text.splitlines() if line.startswith("[live] ")]
    assert any("stoic/hps seed 0: epoch" in line for line in live), text
    assert any("stoic/stl seed 0 covid (1 of 2): epoch" in line for line in live), text
    assert not list((tmp_path / "r").rglob(STATUS))                # a stored cell's status file is gone
