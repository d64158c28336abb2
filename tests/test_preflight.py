"""Fail fast (issue 26): settings that would make every cell fail are one error line before any cell
runs, in --dry-run too; STL is added as the baseline when --method leaves it out."""
from __future__ import annotations

import pytest

import reproduce
from benchmark import api
from benchmark.experiment.preflight import PreflightError, check_devices, check_pretrained, check_results

SMOKE = ["--dataset", "stoic", "--profile", "smoke", "--seeds", "0", "--data", "synthetic", "--no-progress"]


@pytest.mark.parametrize("extra,message", [
    (["--device", "gpu7"], "--device gpu7: not a torch device"),
    (["--devices", "cpu,cuda:5"], "--device cuda:5: this machine has"),
    (["--profile", "paper"], "from ImageNet weights, which are not at"),
])
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_bad_device_or_missing_weights_is_one_line_before_any_cell(extra, message, dry_run, tmp_path,
                                                                     monkeypatch, capsys):
    import torch

    if "cuda" in message and torch.cuda.is_available() and torch.cuda.device_count() > 5:
        pytest.skip("this machine has six CUDA devices")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))   # no ImageNet weights there
    args = SMOKE[:2] + ["--method", "stl", "--seeds", "0", "--data", "synthetic", "--no-progress",
                        "--results", str(tmp_path / "results")]
    args += extra if "--profile" in extra else ["--profile", "smoke"] + extra
    status = reproduce.main(args + (["--dry-run"] if dry_run else []))
    out, err = capsys.readouterr()
    assert status == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "Traceback" not in out + err and not (tmp_path / "results" / "runs").exists()


def test_a_results_path_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "metrics.csv"
    target.write_text("not a folder")
    assert reproduce.main(SMOKE + ["--method", "stl", "--results", str(target), "--dry-run"]) == 2
    assert f"--results {target}: is a file, not a folder" in capsys.readouterr().err


def test_the_checks_pass_on_what_this_machine_has(tmp_path):
    check_devices(("cpu",))
    check_pretrained("resnet18", False)                          # from scratch: nothing to find
    check_results(tmp_path / "new" / "folder", create=False)     # a dry run creates nothing
    assert not (tmp_path / "new").exists()
    check_results(tmp_path / "new" / "folder", create=True)
    assert (tmp_path / "new" / "folder").is_dir() and not list((tmp_path / "new" / "folder").iterdir())
    with pytest.raises(PreflightError, match="xpu7"):
        check_devices(("xpu7",))


def test_stl_is_added_as_the_baseline_unless_asked_not_to(tmp_path, capsys):
    assert reproduce.main(SMOKE + ["--method", "hps", "--results", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "STL added as the baseline" in out and "2 cells" in out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("stoic ")] == ["stl", "hps"]
    assert reproduce.main(SMOKE + ["--method", "hps", "--no-baseline", "--results", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "baseline" not in out and "1 cell\n" in out
    assert reproduce.main(SMOKE + ["--method", "stl", "--method", "hps", "--results", str(tmp_path), "--dry-run"]) == 0
    assert "baseline" not in capsys.readouterr().out


def test_the_python_api_checks_and_adds_the_baseline_too(tmp_path):
    with pytest.raises(PreflightError, match="gpu7"):
        api.run_grid(["stoic"], ["hps"], seeds=[0], profile="smoke", data="synthetic", device="gpu7",
                     results=tmp_path)
    notes = []
    with pytest.raises(PreflightError):
        api.run_grid(["stoic"], ["hps"], seeds=[0], profile="smoke", data="synthetic", device="gpu7",
                     results=tmp_path, log=notes.append)
    assert any("STL added as the baseline" in n for n in notes)
