"""Real-data loaders (issue 5): fixtures in each publisher's format, the OpenKBP sample, the cache,
``--data auto|real|synthetic``, and one clear error per kind of bad input."""
from __future__ import annotations

import gzip
import os
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from data import prepare as P
from data.base import DataError
from data.real import cache as C
from data.real import common
from data.real import ham10000 as real_ham10000
from data.real import openkbp as real_openkbp
from data.real import prostate as real_prostate
from data.real import stoic as real_stoic
from tests.conftest import require_openkbp_sample
from tests.real_fixtures import OKBP_ORGANS, write_ham, write_openkbp, write_prostate, write_stoic


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache (never the repository's data/cache/)."""
    monkeypatch.setenv(C.ENV_VAR, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _error(fn, *args, **kwargs) -> str:
    """The message of the DataError ``fn`` raises: one line, no library traceback text."""
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert info.value.__cause__ is None or isinstance(info.value.__cause__, DataError)
    return msg


# ------------------------------------------------------------------------------------------ OpenKBP

def test_openkbp_fixture_shapes_units_and_masks(tmp_path):
    vols = write_openkbp(tmp_path / "okbp")
    d = P.load("openkbp", str(tmp_path / "okbp"), 128)
    assert d.source == "real" and d.counts() == {"train": 2 * 5, "val": 5, "test": 5}  # OAR slices 58..62
    tr = d.splits["train"]
    assert tr.image.shape == (10, 1, 128, 128) and tr.targets["dose"].shape == (10, 1, 128, 128)
    assert tr.targets["segmentation"].dtype == np.int64 and tr.extras["dose_mask"].dtype == bool
    assert list(tr.case_id) == ["pt_1"] * 5 + ["pt_2"] * 5
    v = vols["pt_1"]
    z = np.arange(58, 63)
    np.testing.assert_allclose(tr.targets["dose"][:5, 0], np.moveaxis(v["dose"][:, :, z], 2, 0), atol=1e-4)
    np.testing.assert_array_equal(tr.extras["dose_mask"][:5], np.moveaxis(v["possible_dose_mask"][:, :, z], 2, 0))
    expected = np.zeros((128, 128, 5), np.int64)
    for k, organ in enumerate(OKBP_ORGANS, start=1):  # later organs win where they overlap
        expected[v[organ][:, :, z]] = k
    np.testing.assert_array_equal(tr.targets["segmentation"][:5], np.moveaxis(expected, 2, 0))
    hu = np.moveaxis(v["ct"][:, :, z], 2, 0) - 1000
    np.testing.assert_allclose(tr.image[:5, 0], np.clip(hu, -1000, 1000) / 1000, atol=1e-5)
    small = P.load("openkbp", str(tmp_path / "okbp"), 32)
    assert small.splits["val"].image.shape == (5, 1, 32, 32)
    assert set(np.unique(small.splits["val"].targets["segmentation"])) <= set(range(5))


def test_openkbp_sample_matches_raw_csvs(tmp_path):
    root = Path(require_openkbp_sample())
    entry, manifest = P.prepare("openkbp", root, 128)
    assert manifest["cases"] == {"train": 12, "val": 3, "test": 3}
    assert manifest["counts"] == {"train": 1047, "val": 297, "test": 280}
    splits = C.load_entry(entry)
    assert isinstance(splits["train"].image, np.memmap)
    for split, pt in (("train", "pt_17"), ("test", "pt_295")):
        s = splits[split]
        rows = np.flatnonzero(s.case_id == pt)
        pdir = root / real_openkbp.SPLIT_DIRS[split] / pt
        raw = {}
        for name in ("dose", "possible_dose_mask") + OKBP_ORGANS:  # read independently of the loader
            df = pd.read_csv(pdir / f"{name}.csv", index_col=0)
            vol = np.zeros(128 ** 3, np.float32 if name == "dose" else bool)
            vol[df.index.values] = df["data"].values if name == "dose" else True
            raw[name] = vol.reshape(128, 128, 128)
        organs = np.stack([raw[o] for o in OKBP_ORGANS])
        z = np.nonzero(organs.any(axis=(0, 1, 2)))[0]
        assert len(rows) == len(z)
        dose = np.moveaxis(raw["dose"][:, :, z], 2, 0)
        np.testing.assert_allclose(s.targets["dose"][rows, 0], dose, atol=1e-4)
        assert 50 < dose.max() < 90  # Gy
        pdm = np.moveaxis(raw["possible_dose_mask"][:, :, z], 2, 0)
        np.testing.assert_array_equal(s.extras["dose_mask"][rows], pdm)
        label = s.targets["segmentation"][rows]
        for k, organ in enumerate(OKBP_ORGANS, start=1):
            listed = np.moveaxis(raw[organ][:, :, z], 2, 0)
            later = np.moveaxis(organs[k:].any(axis=0)[:, :, z], 2, 0)
            assert np.array_equal(label == k, listed & ~later), organ  # exactly the listed voxels
        assert (label[~np.moveaxis(organs.any(axis=0)[:, :, z], 2, 0)] == 0).all()


# The official open-kbp evaluator (provided_code/dose_evaluation_class.py at ce625e62f3b0, run by hand on
# the sample's three test patients pt_257, pt_263, pt_295; docs/datasets.md) printed these scores (Gy)
# for these perturbations of the reference dose, each written as the challenge's prediction CSVs.
OFFICIAL_SCORES = {"plus1": (1.0, 0.9231236599741302),                 # +1 Gy inside the possible-dose mask
                   "scale09": (2.7791964948580854, 4.594855270001881),  # 0.9 x the reference
                   "shift2": (4.541768375967714, 11.820962149935193)}   # rolled 2 rows, then masked


def _perturbed(volumes, kind):
    def predict(rows):
        ref, mask = np.asarray(volumes.dose[rows], np.float64), np.asarray(volumes.dose_mask[rows])
        return {"plus1": (ref + 1.0) * mask, "scale09": 0.9 * ref,
                "shift2": np.roll(ref, 2, axis=1) * mask}[kind]
    return predict


@pytest.mark.parametrize("kind", sorted(OFFICIAL_SCORES))
def test_openkbp_dose_and_dvh_scores_equal_the_official_evaluators(kind):
    from benchmark.training.volumes import challenge_scores
    d = P.load("openkbp", require_openkbp_sample(), 32)
    task = d.spec.task("dose")
    assert [c for c, _ in d.volumes.patients()] == ["pt_257", "pt_263", "pt_295"]
    assert d.volumes.image.shape[-1] == 32 and d.volumes.dose.shape[-1] == 128   # input at 32 px, reference native
    scores = challenge_scores(d.volumes, task, _perturbed(d.volumes, kind))
    dose, dvh = OFFICIAL_SCORES[kind]
    assert scores["dose_score"] == pytest.approx(dose, abs=1e-5)
    assert scores["dvh_score"] == pytest.approx(dvh, abs=1e-5)
    exact = challenge_scores(d.volumes, task, lambda rows: np.asarray(d.volumes.dose[rows], np.float64))
    assert exact == {"dose_score": 0.0, "dvh_score": 0.0}


def test_openkbp_volumes_cover_every_dose_and_structure_voxel():
    d = P.load("openkbp", require_openkbp_sample(), 32)
    v, root = d.volumes, Path(require_openkbp_sample())
    for case, rows in v.patients():
        pdir = root / "test-pats" / case
        pdm = pd.read_csv(pdir / "possible_dose_mask.csv", index_col=0)
        assert int(np.asarray(v.dose_mask[rows]).sum()) == len(pdm)          # no slice of the mask is left out
        dose = pd.read_csv(pdir / "dose.csv", index_col=0)["data"]
        assert float(np.asarray(v.dose[rows], np.float64).sum()) == pytest.approx(dose.sum(), rel=1e-6)
        for bit, (name, _) in enumerate(real_openkbp.DVH_STRUCTURES):
            listed = len(pd.read_csv(pdir / f"{name}.csv", index_col=0)) if (pdir / f"{name}.csv").is_file() else 0
            assert int(((np.asarray(v.structures[rows]) >> bit) & 1).sum()) == listed, (case, name)
        assert (np.diff(v.z[rows]) > 0).all()


def test_volume_predictions_are_resized_to_the_native_grid_and_masked():
    import torch
    from benchmark.training.volumes import challenge_scores, evaluate_volumes
    d = P.load("openkbp", require_openkbp_sample(), 32)
    task = d.spec.task("dose")

    class Constant(torch.nn.Module):     # predicts 7 Gy everywhere, at the input's 32 px
        def forward(self, x):
            return {"dose": torch.full((len(x), 1, *x.shape[-2:]), 7.0 / task.scale)}
    got = evaluate_volumes(Constant(), task, d.volumes, batch_size=16)
    want = challenge_scores(d.volumes, task, lambda rows: np.full(d.volumes.dose[rows].shape, 7.0))
    assert got["dose_score"] == pytest.approx(want["dose_score"], rel=1e-6)
    assert got["dvh_score"] == pytest.approx(want["dvh_score"], rel=1e-6)


def test_openkbp_sample_end_to_end(tmp_path):
    sample = require_openkbp_sample()
    import reproduce
    results = tmp_path / "results"
    status = reproduce.main(["--dataset", "openkbp", "--method", "hps", "--no-baseline", "--data", "real", "--data-root", sample,
                             "--profile", "smoke", "--seeds", "0", "--results", str(results), "--no-progress",
                             "--no-report"])
    assert status == 0
    metrics = pd.read_csv(results / "metrics.csv")
    assert len(metrics) and set(metrics["data_source"]) == {"real"}
    assert {"dice", "mae", "dose_score", "dvh_score"} <= set(metrics["metric"])
    assert np.isfinite(metrics[metrics.metric.isin(["mae", "dose_score", "dvh_score"])]["value"]).all()


# ------------------------------------------------------------------------------------------ HAM10000

def test_ham10000_lesion_split_saved_and_stratified(tmp_path):
    md = write_ham(tmp_path / "ham")
    d = P.load("ham10000", str(tmp_path / "ham"), 16)
    assert sum(d.counts().values()) == len(md) and all(n > 0 for n in d.counts().values())
    (entry, manifest), = C.entries("ham10000")
    split = pd.read_csv(entry / "split.csv")
    assert split.groupby("lesion_id")["split"].nunique().max() == 1  # no lesion in two splits
    assert set(split[split.split == "train"]["dx"]) == set(real_ham10000.CLASSES)  # every class in train
    tr = d.splits["train"]
    assert tr.image.shape[1:] == (3, 16, 16) and 0 <= tr.image.min() and tr.image.max() <= 1
    lookup = md.set_index("image_id")["dx"]
    assert [real_ham10000.CLASSES[k] for k in tr.targets["diagnosis"]] == [lookup[i] for i in tr.case_id]
    assert tr.targets["segmentation"][:, 8, 8].all() and not tr.targets["segmentation"][:, 0, 0].any()
    again, _ = P.prepare("ham10000", tmp_path / "ham", 16, cache=tmp_path / "elsewhere")  # seeded: same split
    assert (again / "split.csv").read_text() == (entry / "split.csv").read_text()


# ------------------------------------------------------------------------------------------ STOIC

def test_stoic_25d_slices_labels_and_split(tmp_path):
    ref = write_stoic(tmp_path / "stoic", flip_first=True)
    d = P.load("stoic", str(tmp_path / "stoic"), 16)
    assert sum(d.counts().values()) == 12 and all(n > 0 for n in d.counts().values())
    all_ids = np.concatenate([s.case_id for s in d.splits.values()])
    assert sorted(all_ids.astype(int)) == list(ref.PatientID)
    lo, hi = real_stoic.HU_WINDOW
    expected = [(np.clip(-1000 + 100 * z, lo, hi) - lo) / (hi - lo) * 2 - 1 for z in (3, 4, 6)]  # 35/50/65 % of 10
    for s in d.splits.values():
        assert s.image.shape[1:] == (3, 16, 16)
        np.testing.assert_allclose(s.image[:, :, 8, 8], np.tile(expected, (len(s), 1)), atol=1e-5)  # incl. flipped
        labels = ref.set_index(ref.PatientID.astype(str)).loc[s.case_id]
        assert list(s.targets["covid"]) == list(labels.probCOVID)
        assert list(s.targets["severity"]) == list(labels.probSevere)
    (entry, _), = C.entries("stoic")
    assert set(pd.read_csv(entry / "split.csv").split) == {"train", "val", "test"}


# ------------------------------------------------------------------------------------------ Prostate

@pytest.mark.parametrize("split_folders", [False, True])
def test_prostate_nifti_format(tmp_path, split_folders):
    vols = write_prostate(tmp_path / "prostate", split_folders=split_folders)
    d = P.load("prostate", str(tmp_path / "prostate"), 16)
    assert sum(len(set(s.case_id)) for s in d.splits.values()) == 10
    assert all(len(s) == 6 * len(set(s.case_id)) for s in d.splits.values())  # organ slices z = 3..8
    s = d.splits["train"]
    assert s.image.shape[1:] == (1, 16, 16) and s.targets["segmentation"].shape[1:] == (16, 16)
    cols = lambda k: np.nonzero(s.targets["segmentation"] == k)[2].mean()  # noqa: E731
    rows = lambda k: np.nonzero(s.targets["segmentation"] == k)[1].mean()  # noqa: E731
    organs = list(real_prostate.ORGANS)
    assert cols(organs.index("left_femur") + 1) > 8 > cols(organs.index("right_femur") + 1)  # radiological
    assert rows(organs.index("bladder") + 1) < 8 < rows(organs.index("rectum") + 1)  # anterior up
    assert 0 < s.targets["dose"].max() <= 78 and s.extras["dose_mask"].any()
    d128 = P.load("prostate", str(tmp_path / "prostate"), 24)
    first = d128.splits["train"].case_id[0]
    dose = vols[first]["dose"]
    np.testing.assert_allclose(d128.splits["train"].targets["dose"][0, 0],
                               resize_ref(dose[::-1, ::-1, 3].T, 24), atol=1e-3)


def resize_ref(a: np.ndarray, size: int) -> np.ndarray:
    return common.resize(a[None].astype(np.float32), size)[0]


# ------------------------------------------------------------------------------------------ cache

def test_cache_reused_keyed_on_raw_files_and_atomic(tmp_path, monkeypatch, _cache):
    root = tmp_path / "okbp"
    write_openkbp(root)
    first = P.load("openkbp", str(root), 32)
    assert isinstance(first.splits["train"].image, np.memmap)
    monkeypatch.setattr(real_openkbp, "read", lambda *a: pytest.fail("raw data decoded twice"))
    again = P.load("openkbp", str(root), 32)
    np.testing.assert_array_equal(again.splits["train"].image, first.splits["train"].image)
    manifest = C.entries("openkbp")[0][1]
    assert manifest["counts"] == {"train": 10, "val": 5, "test": 5} and manifest["source"] == str(root.resolve())
    monkeypatch.undo()
    monkeypatch.setenv(C.ENV_VAR, str(_cache))
    # Changed raw data gets a new entry: double pt_1's dose
    path = root / "train-pats" / "pt_1" / "dose.csv"
    df = pd.read_csv(path, index_col=0)
    df["data"] *= 2
    df.to_csv(path)
    changed = P.load("openkbp", str(root), 32)
    assert len(C.entries("openkbp")) == 2
    assert changed.splits["train"].targets["dose"][:5].sum() == pytest.approx(
        2 * first.splits["train"].targets["dose"][:5].sum(), rel=1e-4)

    def interrupted(root, size, writer, bad):
        writer.append("train", np.zeros((2, 1, 4, 4)), {"segmentation": np.zeros((2, 4, 4), np.int64)}, "x")
        raise KeyboardInterrupt

    monkeypatch.setattr(real_openkbp, "read", interrupted)
    with pytest.raises(KeyboardInterrupt):
        P.load("openkbp", str(root), 16)
    assert len(C.entries("openkbp")) == 2 and not list((_cache / "openkbp").glob(".tmp-*"))


def test_resolve_source_auto_real_synthetic(tmp_path):
    parent = tmp_path / "datasets"
    write_openkbp(parent / "openkbp")
    assert P.resolve_source("openkbp", "synthetic", str(parent)) == "synthetic"
    assert P.resolve_source("openkbp", "auto", None) == "synthetic"
    assert P.resolve_source("openkbp", "auto", str(parent)) == "real"                 # parent/openkbp
    assert P.resolve_source("openkbp", "auto", str(parent / "openkbp")) == "real"     # the folder itself
    assert P.resolve_source("ham10000", "auto", str(parent)) == "synthetic"
    msg = _error(P.resolve_source, "ham10000", "real", str(parent))
    assert "ham10000" in msg and "HAM10000_metadata.csv" in msg
    assert "no such folder" in _error(P.resolve_source, "openkbp", "auto", str(tmp_path / "nowhere"))
    # Prepared once with the CLI, auto finds it in the cache without --data-root
    assert P.main(["openkbp", "--source", str(parent), "--size", "32"]) == 0
    assert P.resolve_source("openkbp", "auto", None) == "real"
    assert P.load("openkbp", None, 32).counts() == {"train": 10, "val": 5, "test": 5}
    shutil.rmtree(parent)  # raw data gone: the entry prepared at that size is still served
    assert P.load("openkbp", None, 32).counts()["train"] == 10
    assert "prepared only at size(s) [32]" in _error(P.load, "openkbp", None, 16)


def test_prepare_cli_reports_counts(tmp_path, capsys):
    write_stoic(tmp_path / "stoic")
    assert P.main(["stoic", "--source", str(tmp_path / "stoic"), "--size", "16"]) == 0
    out = capsys.readouterr().out
    assert "prepared in" in out and "train 8 patients" in out and "test 3 patients" in out
    assert P.main(["stoic", "--source", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ bad input

def _truncate(path: Path, keep: float = 0.5) -> None:
    b = path.read_bytes()
    path.write_bytes(b[: int(len(b) * keep)])


def test_bad_missing_folder(tmp_path):
    write_openkbp(tmp_path / "okbp")
    shutil.rmtree(tmp_path / "okbp" / "test-pats")
    msg = _error(P.load, "openkbp", str(tmp_path / "okbp"), 32)
    assert "test-pats" in msg and "missing folder" in msg


def test_bad_truncated_csv(tmp_path):
    write_openkbp(tmp_path / "okbp")
    path = tmp_path / "okbp" / "train-pats" / "pt_2" / "ct.csv"
    text = path.read_text()
    path.write_text(text[: text.rindex(",", 0, len(text) // 2)])  # cut inside a row: "index" without value
    msg = _error(P.load, "openkbp", str(tmp_path / "okbp"), 32)
    assert str(path) in msg and "truncated" in msg


def test_bad_corrupt_csv(tmp_path):
    write_openkbp(tmp_path / "okbp")
    path = tmp_path / "okbp" / "validation-pats" / "pt_201" / "dose.csv"
    path.write_bytes(b",data\n12,3.5\n\x00\xff\xfe\x89garbage,,,\n")
    assert str(path) in _error(P.load, "openkbp", str(tmp_path / "okbp"), 32)


def test_bad_index_outside_volume(tmp_path):
    write_openkbp(tmp_path / "okbp")
    path = tmp_path / "okbp" / "train-pats" / "pt_1" / "Brainstem.csv"
    with open(path, "a") as f:
        f.write(f"{128 ** 3},\n")
    msg = _error(P.load, "openkbp", str(tmp_path / "okbp"), 32)
    assert str(path) in msg and "outside the 128x128x128 volume" in msg


def test_bad_corrupt_and_truncated_jpeg_png(tmp_path):
    write_ham(tmp_path / "ham")
    jpg = tmp_path / "ham" / "HAM10000_images_part_1" / "ISIC_0000003.jpg"
    _truncate(jpg)
    msg = _error(P.load, "ham10000", str(tmp_path / "ham"), 16)
    assert str(jpg) in msg and "corrupt or truncated" in msg
    shutil.copy(tmp_path / "ham" / "HAM10000_images_part_1" / "ISIC_0000004.jpg", jpg)
    png = tmp_path / "ham" / "HAM10000_segmentations_lesion_tschandl" / "ISIC_0000005_segmentation.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    msg = _error(P.load, "ham10000", str(tmp_path / "ham"), 16)
    assert str(png) in msg and "corrupt or truncated" in msg


def test_bad_image_without_mask(tmp_path):
    write_ham(tmp_path / "ham")
    (tmp_path / "ham" / "HAM10000_segmentations_lesion_tschandl" / "ISIC_0000002_segmentation.png").unlink()
    msg = _error(P.load, "ham10000", str(tmp_path / "ham"), 16)
    assert "ISIC_0000002.jpg" in msg and "without a mask" in msg


def test_bad_unknown_label(tmp_path):
    md = write_ham(tmp_path / "ham")
    md.loc[3, "dx"] = "melanoma"
    md.to_csv(tmp_path / "ham" / "HAM10000_metadata.csv", index=False)
    msg = _error(P.load, "ham10000", str(tmp_path / "ham"), 16)
    assert "HAM10000_metadata.csv" in msg and "unknown diagnosis 'melanoma'" in msg
    ref = write_stoic(tmp_path / "stoic")
    ref.loc[0, "probCOVID"] = 2
    ref.to_csv(tmp_path / "stoic" / "metadata" / "reference.csv", index=False)
    msg = _error(P.load, "stoic", str(tmp_path / "stoic"), 16)
    assert "reference.csv" in msg and "unknown label probCOVID='2'" in msg


def test_bad_corrupt_mha_and_wrong_shape(tmp_path):
    write_stoic(tmp_path / "stoic")
    mha = tmp_path / "stoic" / "data" / "mha" / "104.mha"
    _truncate(mha)
    msg = _error(P.load, "stoic", str(tmp_path / "stoic"), 16)
    assert str(mha) in msg and "corrupt or truncated MHA" in msg
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((20, 20), np.int16)), str(mha))  # a 2D image
    msg = _error(P.load, "stoic", str(tmp_path / "stoic"), 16)
    assert str(mha) in msg and "expected a 3D" in msg


def test_bad_nifti_truncated_and_wrong_shape(tmp_path):
    write_prostate(tmp_path / "prostate", n=10)
    ct = tmp_path / "prostate" / "patient03" / "ct.nii.gz"
    _truncate(ct)
    msg = _error(P.load, "prostate", str(tmp_path / "prostate"), 16)
    assert str(ct) in msg and "corrupt or truncated NIfTI" in msg
    write_prostate(tmp_path / "p2", n=10)
    dose = tmp_path / "p2" / "patient05" / "dose.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((24, 20, 11), np.float32), np.diag([2.0, 2.0, 3.0, 1.0])), dose)
    msg = _error(P.load, "prostate", str(tmp_path / "p2"), 16)
    assert str(dose) in msg and "shape (24, 20, 11)" in msg
    (tmp_path / "p2" / "structure_map.json").write_text('{"Rectum": "rectum"}')
    assert "no structure is mapped" in _error(P.load, "prostate", str(tmp_path / "p2"), 16)


def test_skip_bad_skips_with_one_warning_and_a_count(tmp_path):
    md = write_ham(tmp_path / "ham")
    _truncate(tmp_path / "ham" / "HAM10000_images_part_1" / "ISIC_0000000.jpg")
    with gzip.open(tmp_path / "ham" / "unused.gz", "wb") as f:  # stray files are ignored
        f.write(b"x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = P.load("ham10000", str(tmp_path / "ham"), 16, skip_bad=True)
    skipped = [w for w in caught if "skipped 1 bad sample" in str(w.message)]
    assert len(skipped) == 1 and "ISIC_0000000.jpg" in str(skipped[0].message)
    assert sum(d.counts().values()) == len(md) - 1
    assert "ISIC_0000000.jpg: corrupt or truncated" in C.entries("ham10000")[0][1]["skipped"][0]
    # The cached entry lacks a sample: without --skip-bad it is an error, not silently fewer data
    msg = _error(P.load, "ham10000", str(tmp_path / "ham"), 16)
    assert "--skip-bad" in msg and "ISIC_0000000.jpg" in msg


def test_the_paper_profiles_models_train_on_real_openkbp_slices_at_128px():
    """Every method at the paper profile's size (ResNet-50, OpenKBP's native 128 px; random weights,
    the ImageNet file is not here) takes two training steps and predicts a whole test patient's
    dose: a first GPU run does not die on a shape."""
    import numpy as np

    from benchmark.experiment.profiles import get_profile
    from benchmark.training.loop import make_optimizer, train_epoch
    from benchmark.training.losses import make_loss
    from benchmark.training.volumes import evaluate_volumes
    from benchmark.training.weighting.registry import build_weighting
    from data.base import Split
    from models.registry import MODELS, build_model

    from data import DATASETS
    paper = get_profile("paper")
    d = P.load("openkbp", require_openkbp_sample(), paper.image_size or DATASETS["openkbp"].spec.native_size)
    train = d.splits["train"]
    rows = np.linspace(0, len(train) - 1, 4).astype(int)                 # four slices of different patients
    tiny = Split(train.image[rows], {t: y[rows] for t, y in train.targets.items()}, train.case_id[rows],
                 {e: x[rows] for e, x in train.extras.items()})
    start = d.volumes.patients()[0][1].start
    few = type(d.volumes)(**{k: v[start + 40:start + 44] for k, v in vars(d.volumes).items()})  # 4 slices
    for method in MODELS:
        model = build_model(method, d.spec.tasks, paper.backbone, False, d.spec.in_channels)
        for tasks, net in model.networks():
            losses = {t.name: make_loss(t) for t in tasks}
            weighting = build_weighting("dwa", len(tasks))
            mean, _, _ = train_epoch(net, tasks, tiny, losses, make_optimizer(net, paper), weighting, 2,
                                     np.random.default_rng(0), amp=False)
            assert np.isfinite(mean).all(), method
            for t in tasks:
                if t.dvh:
                    scores = evaluate_volumes(net, t, few, batch_size=4)
                    assert np.isfinite(list(scores.values())).all(), method
        assert d.volumes.image.shape[-1] == 128


def test_exported_openkbp_predictions_read_back_to_the_scores_reported(tmp_path):
    """benchmark.evaluate --export writes each test patient as the challenge's pt_N.csv; read back with
    the reader of dose.csv, the files give the dose and DVH scores the run reported (so the official
    evaluator, fed the same files, scores the same predictions), negative predictions included: the
    format keeps only doses above 0, and so do our scores."""
    import types

    import torch
    from benchmark import evaluate as E
    from benchmark.training.volumes import challenge_scores, evaluate_volumes
    d = P.load("openkbp", require_openkbp_sample(), 32)
    task = d.spec.task("dose")

    class Ramp(torch.nn.Module):     # a dose that varies over the slice (the voxel order matters) and
        def forward(self, x):        # is negative in places (the challenge's format keeps only doses > 0)
            ramp = torch.linspace(-20 / task.scale, 60 / task.scale, x.shape[-1]).expand(len(x), 1, x.shape[-2], x.shape[-1])
            return {"dose": ramp.contiguous()}
    cfg = types.SimpleNamespace(batch_size=16, profile=types.SimpleNamespace(channels_last=False))
    files = E.export(cfg, [([task], Ramp())], d, "test", tmp_path)
    csvs = sorted(p.name for p in files if p.suffix == ".csv")
    assert csvs == ["pt_257.csv", "pt_263.csv", "pt_295.csv"]
    read_back: dict[str, np.ndarray] = {}
    for case, rows in d.volumes.patients():
        idx, values = real_openkbp.read_sparse(tmp_path / f"{case}.csv", mask=False)
        vol = np.zeros(real_openkbp.SHAPE, np.float64).reshape(-1)
        vol[idx] = values
        read_back[case] = np.moveaxis(vol.reshape(real_openkbp.SHAPE)[:, :, d.volumes.z[rows]], 2, 0)
        assert (read_back[case][~np.asarray(d.volumes.dose_mask[rows])] == 0).all()   # masked as the challenge's writer
    by_rows = {rows.start: case for case, rows in d.volumes.patients()}
    from_files = challenge_scores(d.volumes, task, lambda rows: read_back[by_rows[rows.start]])
    reported = evaluate_volumes(Ramp(), task, d.volumes, batch_size=16)
    assert from_files["dose_score"] == pytest.approx(reported["dose_score"], rel=1e-6)
    assert from_files["dvh_score"] == pytest.approx(reported["dvh_score"], rel=1e-6)
    assert reported["dose_score"] > 1.0                                    # a real error, not a trivial zero


def test_dose_error_split_by_slice_kind_adds_up_to_the_challenges_dose_score():
    """benchmark.studies.dose_slices: its dose score is the one evaluate_volumes reports for the same
    model; the two slice kinds' error shares add up to 1; a uniform 1 Gy error on every mask voxel gives
    1 Gy per voxel on both kinds and error shares equal to the voxel shares."""
    import torch
    from benchmark.studies.dose_slices import error_by_slice_kind
    from benchmark.training.volumes import evaluate_volumes, predictor
    d = P.load("openkbp", require_openkbp_sample(), 32)
    task, v = d.spec.task("dose"), d.volumes

    class Ramp(torch.nn.Module):
        def forward(self, x):
            ramp = torch.linspace(0, 60 / task.scale, x.shape[-1]).expand(len(x), 1, x.shape[-2], x.shape[-1])
            return {"dose": ramp.contiguous()}
    split = error_by_slice_kind(v, task, predictor(Ramp(), task, v, 16))
    assert split["dose_score"] == pytest.approx(evaluate_volumes(Ramp(), task, v, 16)["dose_score"], rel=1e-6)
    assert split["error_share_oar_slices"] + split["error_share_other_slices"] == pytest.approx(1.0)
    assert 0 < split["voxel_share_oar_slices"] < 1                 # the sample has both kinds of slice
    off_by_one = error_by_slice_kind(v, task, lambda rows: np.asarray(v.dose[rows], np.float64) + 1.0)
    assert off_by_one["dose_score"] == pytest.approx(1.0)
    assert off_by_one["gy_per_voxel_oar_slices"] == pytest.approx(1.0)
    assert off_by_one["gy_per_voxel_other_slices"] == pytest.approx(1.0)
    assert off_by_one["error_share_oar_slices"] == pytest.approx(off_by_one["voxel_share_oar_slices"])
    zero = error_by_slice_kind(v, task, lambda rows: np.zeros(v.dose[rows].shape))
    assert zero["dose_score"] == pytest.approx(zero["zero_prediction_dose_score"])


def test_a_bad_file_is_one_error_before_any_cell(tmp_path, capsys):
    """Prepared once for the whole grid, in the main process: one error line naming the file, exit 2,
    and no cell started (it used to fail once per cell, each preparing the data again)."""
    import reproduce
    write_openkbp(tmp_path / "okbp")
    path = tmp_path / "okbp" / "validation-pats" / "pt_201" / "dose.csv"
    path.write_bytes(b",data\n12,3.5\n\x00\xff\xfe\x89garbage,,,\n")
    status = reproduce.main(["--dataset", "openkbp", "--method", "stl", "--method", "hps", "--data", "real",
                             "--data-root", str(tmp_path / "okbp"), "--profile", "smoke", "--seeds", "0", "1",
                             "--results", str(tmp_path / "results"), "--no-progress", "--jobs", "1"])
    assert status == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and str(path) in errors[0] and "Traceback" not in err
    assert not (tmp_path / "results" / "runs").exists()
