"""The speed tool (issue 7) on a tiny run: files, columns and finite positive values; no timing asserted."""
from __future__ import annotations

import math

import pandas as pd

from benchmark import speed

COLUMNS = ("method", "suite_images_per_s", "bare_images_per_s", "overhead_ratio", "achieved_gflops",
           "peak_gflops", "peak_memory_mb", "data_wait_share", "eval_ms_per_sample", "gflop_per_step")


def test_tiny_speed_run_writes_csv_and_markdown(tmp_path):
    speed.main(["--profile", "smoke", "--methods", "stl,hps", "--steps", "1", "--warmup", "1",
                "--repeats", "1", "--threads", "1", "--set", "batch_size=4", "--out", str(tmp_path)])
    df = pd.read_csv(tmp_path / "speed.csv")
    assert list(df.method) == ["stl", "hps"] and (df.batch_size == 4).all()
    for column in COLUMNS:
        assert column in df.columns, column
    for column in COLUMNS[1:]:
        values = df[column].astype(float)
        assert all(math.isfinite(v) for v in values), column
        assert (values > 0).all() or column == "data_wait_share", column
    assert (df.data_wait_share >= 0).all() and (df.data_wait_share < 1).all()
    assert (df.networks == [2, 1]).all()  # STL: a step is one batch through each single-task network
    text = (tmp_path / "speed.md").read_text()
    assert "| stl |" in text and "| hps |" in text and "load average" in text
    assert "--profile smoke --set batch_size=4 " in text           # the header is a command that reruns it


def test_ratios_name_the_method_pairs():
    df = pd.DataFrame({"method": ["hps", "mtan", "ctan"], "suite_step_ms": [1.0, 2.5, 3.0],
                       "gflop_per_step": [1.0, 2.0, 2.0]})
    r = speed.ratios(df)
    assert r["MTAN/HPS step"] == 2.5 and r["CTAN/MTAN step"] == 1.2 and r["CTAN/HPS FLOPs"] == 2.0
