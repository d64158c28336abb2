"""Plug-ins (benchmark/plugins.py): a user's architecture, weighting, dataset and task kind from a folder
outside the tree, trained in worker processes into the report; clashes and inconsistent entries fail at
start-up."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark import plugins
from benchmark.training.weighting.catalog import WeightingInfo
from models.catalog import MethodInfo

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "my_plugin.py"


def _reproduce(args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "reproduce.py"), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=900, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


def test_a_plugin_from_outside_the_tree_trains_in_workers_into_the_report(tmp_path):
    plugin = tmp_path / "user" / "my_plugin.py"
    plugin.parent.mkdir()
    shutil.copy(EXAMPLE, plugin)
    run = _reproduce(["--plugin", str(plugin), "--dataset", "stoic", "--method", "stl", "--method", "hps_gate",
                      "--weighting", "fixed+w=0.7", "--profile", "smoke", "--seeds", "0", "--data", "synthetic",
                      "--results", str(tmp_path / "res"), "--no-progress", "--jobs", "2"], cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    metrics = pd.read_csv(tmp_path / "res" / "metrics.csv")
    assert set(zip(metrics["method"], metrics["weighting"])) == {("stl", "none"), ("hps_gate", "fixed+w=0.7")}
    assert metrics["value"].notna().all()
    # not the paper's view (table2: its methods with DWA), the extended one, labelled from the plug-in's entries
    assert "HPS+gate + Fixed (w=0.7)" in (tmp_path / "res" / "report" / "extended.md").read_text()


def test_a_plugin_is_a_choice_of_the_command_line(tmp_path):
    run = _reproduce(["--plugin", str(EXAMPLE), "--help"], cwd=tmp_path)
    assert run.returncode == 0 and "hps_gate" in run.stdout


def test_a_clash_is_one_error_at_start_up(tmp_path):
    clash = tmp_path / "clash.py"
    clash.write_text("from benchmark.plugins import register_method\nfrom models.catalog import MethodInfo\n"
                     "from models.hps import HPS\nregister_method(MethodInfo('hps', 'HPS', 'again', paper=False), HPS)\n")
    run = _reproduce(["--plugin", str(clash), "--dataset", "stoic", "--dry-run"], cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"error: plug-in {clash}: method 'hps' is already registered; "
                                               f"choose another name"]


def test_a_missing_plugin_file_is_named(tmp_path):
    run = _reproduce(["--plugin", str(tmp_path / "nope.py"), "--dry-run"], cwd=tmp_path)
    assert run.returncode == 2 and f"plug-in {tmp_path / 'nope.py'}: no such file" in run.stderr


def test_inconsistent_entries_are_refused():
    from benchmark.training.weighting.ew import EW
    from models.hps import HPS
    with pytest.raises(plugins.PluginError, match="the class says name 'ew'"):
        plugins.register_weighting(WeightingInfo("ew2", "EW2", "loss", "EW under another name"), EW)
    with pytest.raises(plugins.PluginError, match="takes no \\['beta'\\]"):
        class EW3(EW):
            name = "ew3"
        plugins.register_weighting(WeightingInfo("ew3", "EW3", "loss", "x", (("beta", 1.0),)), EW3)
    with pytest.raises(plugins.PluginError, match="is not a models.base.MultiTaskModel"):
        plugins.register_method(MethodInfo("plain", "Plain", "x", paper=False), dict)
    with pytest.raises(plugins.PluginError, match="paper=True"):
        plugins.register_method(MethodInfo("hps2", "HPS2", "x"), HPS)
    with pytest.raises(plugins.PluginError, match="'none' is already registered"):
        plugins.register_weighting(WeightingInfo("none", "None", "loss", "x"), EW)


KIND_EXAMPLE = ROOT / "docs" / "examples" / "my_task_kind.py"


def test_a_task_kind_dataset_architecture_and_weighting_from_outside_the_tree_reach_the_report(tmp_path):
    """The issue's whole plug-in path at once: image-level regression (a kind the suite lacks) in a
    dataset of the user's, trained by the suite's and the user's architectures under the user's weighting."""
    user = tmp_path / "user"
    user.mkdir()
    for example in (KIND_EXAMPLE, EXAMPLE):
        shutil.copy(example, user / example.name)
    run = _reproduce(["--plugin", str(user / KIND_EXAMPLE.name), "--plugin", str(user / EXAMPLE.name),
                      "--dataset", "discs", "--method", "stl", "--method", "hps", "--method", "hps_gate",
                      "--weighting", "dwa", "--weighting", "fixed+w=0.7", "--profile", "smoke", "--seeds", "0",
                      "--results", str(tmp_path / "res"), "--no-progress", "--jobs", "2"], cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    metrics = pd.read_csv(tmp_path / "res" / "metrics.csv")
    area = metrics[(metrics["task"] == "area") & (metrics["split"] == "test")]
    assert set(area["metric"]) == {"image_mae"} and len(area) == 5 and area["value"].between(0, 100).all()
    assert not area["higher_is_better"].any()
    # the report resamples cases: its recomputation of the kind's metric is the stored value
    from benchmark.report.cases import case_metric, load_cases
    cases = load_cases(tmp_path / "res" / "cases.csv")
    for row in area.itertuples():
        rows = cases[(cases["method"] == row.method) & (cases["weighting"] == row.weighting) & (cases["task"] == "area")]
        assert case_metric(rows, "image_mae").value == pytest.approx(row.value, rel=1e-9)
    report = tmp_path / "res" / "report"
    table = (report / "table2.md").read_text()
    assert "| Discs | STL |" in table and "area (MAE, %, lower is better)" in table
    assert "| Discs | HPS |" in (report / "intervals.md").read_text()
    assert "HPS+gate + Fixed (w=0.7)" in (report / "extended.md").read_text()


def test_inconsistent_task_kinds_are_refused():
    from benchmark.training.kinds import KINDS, PixelRegression, TaskKind
    from data.spec import METRICS, TASK_KINDS, KindInfo, MetricSpec
    before = (dict(KINDS), dict(TASK_KINDS), dict(METRICS))
    with pytest.raises(plugins.PluginError, match="task kind 'regression' is already registered"):
        plugins.register_task_kind(PixelRegression)

    class Partial(TaskKind):
        info = KindInfo("partial", "image", ("mae",), "l1", labels=False)

        def make_loss(self, task):
            return None
    with pytest.raises(plugins.PluginError, match=r"does not define \['statistics', 'result', 'cases'\]"):
        plugins.register_task_kind(Partial)

    class NoSpec(PixelRegression):
        info = KindInfo("nospec", "pixel", ("rmse",), "l1", labels=False)
    with pytest.raises(plugins.PluginError, match=r"need a MetricSpec each; none given for \['rmse'\]"):
        plugins.register_task_kind(NoSpec)
    with pytest.raises(plugins.PluginError, match="metric 'mae' is already registered"):
        plugins.register_task_kind(NoSpec, metrics=(MetricSpec("mae", "MAE", "Gy", False),))

    class Sideways(PixelRegression):
        info = KindInfo("sideways", "voxel", ("mae",), "l1", labels=False)
    with pytest.raises(plugins.PluginError, match="outputs must be 'pixel' or 'image', got 'voxel'"):
        plugins.register_task_kind(Sideways)
    with pytest.raises(plugins.PluginError, match="is not a benchmark.training.kinds.TaskKind"):
        plugins.register_task_kind(dict)
    assert (dict(KINDS), dict(TASK_KINDS), dict(METRICS)) == before      # nothing half-registered


def test_a_task_of_an_unregistered_kind_or_the_wrong_outputs_is_refused():
    from data.spec import TaskSpec
    with pytest.raises(ValueError, match="target must be one of"):
        TaskSpec("age", "image", "image_regression_not_registered", 1, "image_mae")
    with pytest.raises(ValueError, match="a regression task predicts per pixel, its kind must be 'pixel'"):
        TaskSpec("dose", "image", "regression", 1, "mae")


DATASET_EXAMPLE = ROOT / "docs" / "examples" / "my_dataset.py"


def _shapes_folder(root: Path) -> Path:
    """A real-format folder for the example dataset: PNG images and masks and labels.csv."""
    import numpy as np
    from PIL import Image
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = ["image,kind,split"]
    rng = np.random.default_rng(0)
    for i in range(24):
        mask = np.zeros((40, 40), np.uint8)
        mask[10:25, 5 + i % 10:20 + i % 10] = 255
        Image.fromarray(mask).save(root / "masks" / f"s{i}.png")
        Image.fromarray((mask * 0.6 + rng.integers(0, 60, (40, 40))).astype(np.uint8)).save(root / "images" / f"s{i}.png")
        rows.append(f"s{i},{('disc', 'square', 'bar')[i % 3]},{('train', 'train', 'val', 'test')[i % 4]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_a_dataset_plugin_from_outside_the_tree_trains_on_its_stand_in_and_its_real_files(tmp_path):
    plugin = tmp_path / "user" / "my_dataset.py"
    plugin.parent.mkdir()
    shutil.copy(DATASET_EXAMPLE, plugin)
    common = ["--plugin", str(plugin), "--dataset", "shapes", "--method", "stl", "--method", "hps", "--profile",
              "smoke", "--seeds", "0", "--no-progress", "--jobs", "2"]
    run = _reproduce(common + ["--data", "synthetic", "--results", str(tmp_path / "syn")], cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    table = (tmp_path / "syn" / "report" / "table2.md").read_text()
    assert "| Shapes |" in table and "HPS" in table
    folder = _shapes_folder(tmp_path / "shapes-data")
    run = _reproduce(common + ["--data", "real", "--data-root", str(folder), "--results", str(tmp_path / "real")],
                     cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    metrics = pd.read_csv(tmp_path / "real" / "metrics.csv")
    assert set(metrics["data_source"]) == {"real"} and set(metrics["dataset"]) == {"shapes"}
    assert metrics["value"].notna().all()
    (folder / "masks" / "s3.png").unlink()
    run = _reproduce(common + ["--data", "real", "--data-root", str(folder), "--results", str(tmp_path / "bad"),
                               "--force"], cwd=tmp_path)
    assert run.returncode == 2 and run.stderr.strip().endswith("masks/s3.png: cannot read (No such file or directory)")


def test_an_inconsistent_dataset_plugin_is_one_error_at_start_up(tmp_path):
    bad = tmp_path / "bad_dataset.py"
    bad.write_text("from benchmark.plugins import register_dataset\nfrom data import DatasetEntry, DATASETS\n"
                   "from data.real.reader import Reader\nimport dataclasses\n"
                   "spec = dataclasses.replace(DATASETS['stoic'].spec, name='mine')\n"
                   "register_dataset(DatasetEntry(spec, DATASETS['stoic'].synthetic, Reader(), group='user'))\n")
    run = _reproduce(["--plugin", str(bad), "--dataset", "stoic", "--dry-run"], cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"error: plug-in {bad}: dataset 'mine': reader lacks inventory (not overridden); reader lacks read "
        f"(not overridden); reader lacks LAYOUT (empty)"]
