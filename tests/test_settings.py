"""Settings without editing code (issue 14): --set and profile files, type-checked, part of a
cell's identity (folder, hash, the report's groups) and reaching the training loop."""
from __future__ import annotations

import pandas as pd
import pytest

import reproduce
from benchmark.experiment import store
from benchmark.experiment.cell import resolve_config
from benchmark.experiment.profiles import (PROFILES, SETTABLE, ProfileError, get_profile, load_profile_file,
                                           parse_settings, with_overrides)


def test_overrides_are_type_checked_and_recorded_in_the_label():
    quick = get_profile("quick")
    p = with_overrides(quick, {"epochs": "50", "lr": "3e-4", "image_size": "96", "backbone": "resnet34",
                               "synthetic_sizes": "10,5,5", "amp": "false"})
    assert (p.epochs, p.lr, p.image_size, p.backbone, p.synthetic_sizes, p.amp) == (50, 3e-4, 96, "resnet34",
                                                                                      (10, 5, 5), False)
    assert p.label == "quick+amp=False+backbone=resnet34+epochs=50+image_size=96+lr=0.0003+synthetic_sizes=10x5x5"
    assert with_overrides(p, {"epochs": "5"}).label.count("epochs") == 0      # back to the profile's own value
    assert with_overrides(quick, {"epochs": "5"}) is quick
    assert with_overrides(get_profile("paper"), {"image_size": "none"}).label == "paper"


@pytest.mark.parametrize("settings,message", [
    ({"epoch": "3"}, "unknown setting 'epoch'; valid settings: backbone"),
    ({"epochs": "x"}, "epochs='x': not a valid int"),
    ({"epochs": "2.5"}, "not a valid int"),
    ({"amp": "maybe"}, "not a valid bool"),
    ({"epochs": "0"}, "epochs=0 must be at least 1"),
    ({"backbone": "vgg16"}, "backbone='vgg16' is not one of"),
    ({"synthetic_sizes": "1,2"}, "not a valid tuple"),
    ({"name": "other"}, "unknown setting 'name'"),
])
def test_bad_settings_give_one_clear_error(settings, message):
    with pytest.raises(ProfileError, match=message):
        with_overrides(get_profile("quick"), settings)


def test_every_profile_field_but_its_name_can_be_set():
    for key in SETTABLE:
        value = getattr(get_profile("quick"), key)
        assert with_overrides(get_profile("quick"), {key: str(value)}) == get_profile("quick"), key
    with pytest.raises(ProfileError, match="expected key=value"):
        parse_settings(["epochs"])


def test_overrides_change_the_cells_identity():
    base = resolve_config("stoic", "hps", 0, get_profile("smoke"), "synthetic")
    other = resolve_config("stoic", "hps", 0, with_overrides(get_profile("smoke"), {"epochs": "1"}), "synthetic")
    assert base.hash() != other.hash()
    assert other.directory("r").parts[2] == "smoke+epochs=1-synthetic"
    assert resolve_config("stoic", "hps", 0, with_overrides(get_profile("smoke"), {"epochs": "2"}),
                          "synthetic").hash() == base.hash()     # the same settings are the same cell


def test_set_reaches_the_training_loop_and_the_report(tmp_path):
    args = ["--dataset", "stoic", "--method", "hps", "--no-baseline", "--profile", "smoke", "--seeds", "0", "--data", "synthetic",
            "--results", str(tmp_path), "--no-progress", "--jobs", "1", "--set", "epochs=1", "image_size=16"]
    assert reproduce.main(args) == 0
    cell = store.cell_dir(tmp_path, "smoke+epochs=1+image_size=16", "synthetic", "stoic", "hps", 0)
    epochs = pd.read_csv(cell / "epochs.csv")
    assert set(epochs.epoch) == {0}                                  # one epoch, not the profile's two
    assert '"image_size": 16' in (cell / "cell.json").read_text()
    assert set(pd.read_csv(tmp_path / "metrics.csv").profile) == {"smoke+epochs=1+image_size=16"}
    assert "profile smoke+epochs=1+image_size=16" in (tmp_path / "report" / "table2.md").read_text()


def test_a_profile_file_gives_a_whole_profile_or_changes_a_base(tmp_path):
    whole = tmp_path / "mine.toml"
    fields = {k: v for k, v in vars(get_profile("smoke")).items() if k not in ("name", "overrides", "description")}
    lines = ['name = "mine"'] + [f"{k} = {_toml(v)}" for k, v in fields.items() if v is not None]
    whole.write_text("\n".join(lines).replace("epochs = 2", "epochs = 3") + "\n")
    p = load_profile_file(whole)
    assert p.name == "mine" and p.label == "mine" and p.epochs == 3 and p.synthetic_sizes == (32, 16, 16)
    assert p.image_size == 32
    based = tmp_path / "based.toml"
    based.write_text('base = "smoke"\nepochs = 1\n')
    assert load_profile_file(based) == with_overrides(get_profile("smoke"), {"epochs": "1"})
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nepochs = 3\n')
    with pytest.raises(ProfileError, match="missing setting"):
        load_profile_file(bad)
    bad.write_text('name = "quick"\n')
    with pytest.raises(ProfileError, match="built-in profile"):
        load_profile_file(bad)
    bad.write_text("name = [\n")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile_file(bad)
    assert set(PROFILES) == {"smoke", "quick", "realcpu", "public", "paper"}


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return repr(value)


def test_a_stored_config_reads_back_whole_and_gives_each_network_its_settings():
    """``CellConfig.from_dict`` inverts ``to_dict`` through JSON (a stored cell.json), hash included;
    ``train_settings`` hands each network the cell's settings with its own seed and the parsed weighting."""
    import json

    from benchmark.experiment.cell import CellConfig
    from benchmark.training.weighting.catalog import parse
    profile = with_overrides(get_profile("smoke"), parse_settings(["epochs=3", "lr=0.002"]))
    cfg = resolve_config("openkbp", "hps", 2, profile, "synthetic", weighting="cagrad+c=0.4", fold=3)
    back = CellConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.hash() == cfg.hash()
    settings = cfg.train_settings(1, device="cpu")
    assert (settings.seed, settings.batch_size, settings.profile) == (2001, cfg.batch_size, profile)
    assert settings.weighting == parse("cagrad+c=0.4") and settings.weighting.params()["c"] == 0.4
