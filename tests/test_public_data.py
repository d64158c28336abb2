"""The public rows' data (issue 25): PH2 and BUSI read in the publishers' formats through the dataset
plug-in path, their committed folds, and every bad input named in one clear error."""
from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data import DATASETS, DatasetEntry, datasets_of, register_dataset
from data import folds as F
from data import prepare as P
from data.base import DataError
from data.public import busi, ph2
from data.real.common import BadInput
from tests.conftest import BUSI_SAMPLE, PH2_SAMPLE, require_sample

PUBLIC = datasets_of("public")
COUNTS = {"ph2": {"common nevus": 80, "atypical nevus": 80, "melanoma": 40},
          "busi": {"normal": 133, "benign": 437, "malignant": 210}}


def test_the_public_datasets_are_registered_through_the_plugin_path():
    assert PUBLIC == ["ph2", "busi", "ph2_criteria"]
    assert datasets_of("paper") == ["prostate", "openkbp", "ham10000", "stoic"]
    with pytest.raises(ValueError, match="'ph2' is already registered"):
        register_dataset(DATASETS["ph2"])
    with pytest.raises(ValueError, match="needs its committed fold table"):
        register_dataset(DatasetEntry(dataclasses.replace(ph2.SPEC, name="ph2_copy"), ph2.synthetic,
                                      ph2.PH2Reader(ph2.SPEC), "public", 5, Path("nowhere.csv")))
    assert "ph2_copy" not in DATASETS


@pytest.mark.parametrize("name", ["ph2", "busi"])
def test_the_committed_folds_are_stratified_and_test_every_image_once(name):
    entry = DATASETS[name]
    table = F.read_table(entry.fold_table, entry.folds)
    assert table.groupby("stratum").size().to_dict() == COUNTS[name]
    per_fold = table.groupby(["stratum", "fold"]).size().unstack()
    assert (per_fold.max(axis=1) - per_fold.min(axis=1) <= 1).all()          # stratified to within one image
    tested = []
    for fold in range(entry.folds):
        split = pd.Series(F.assignment(table, fold, entry.folds))
        tested += list(split[split == "test"].index)
        share = split.value_counts(normalize=True)
        assert abs(share["train"] - 0.7) < 0.02 and abs(share["val"] - 0.1) < 0.02
    assert sorted(tested) == sorted(table["case"])                 # each image tested exactly once


def test_make_folds_is_deterministic_stratified_and_independent_of_input_order():
    cases = [f"c{i:03d}" for i in range(50)]
    strata = ["a" if i % 5 else "b" for i in range(50)]
    one = F.make_folds(cases, strata, 5)
    other = F.make_folds(cases[::-1], strata[::-1], 5)
    pd.testing.assert_frame_equal(one, other)
    assert one.groupby(["stratum", "fold"]).size().unstack().to_numpy().tolist() == [[8] * 5, [2] * 5]
    assert not one.equals(F.make_folds(cases, strata, 5, seed=1))


def test_a_fold_table_that_is_not_one_gives_one_error(tmp_path):
    bad = tmp_path / "folds.csv"
    bad.write_text("case,fold\nx,0\n")
    with pytest.raises(DataError, match=r"folds.csv: missing column\(s\) \['stratum', 'val'\]"):
        F.read_table(bad, 5)
    bad.write_text("case,stratum,fold,val\nx,a,7,0\n")
    with pytest.raises(DataError, match="folds must be 0..4"):
        F.read_table(bad, 5)
    with pytest.raises(DataError, match="fold 5 does not exist"):
        F.assignment(F.read_table(DATASETS["ph2"].fold_table, 5), 5, 5)


# --- PH2 ---------------------------------------------------------------------------------------

def test_ph2_sample_reads_as_published_and_splits_by_the_committed_fold(tmp_path):
    root = require_sample(PH2_SAMPLE)
    with pytest.raises(DataError, match=r"IMD\d{3}.bmp: missing file \(listed in PH2_dataset.xlsx\)"):
        P.load("ph2", root, 32, cache=tmp_path, fold=0)         # the table lists 200, the sample holds 12
    with pytest.warns(UserWarning, match="skipped 188 bad sample"):
        data = P.load("ph2", root, 32, skip_bad=True, cache=tmp_path / "c2", fold=0)
    assert data.counts() == {"train": 7, "val": 1, "test": 4}
    test = data.splits["test"]
    assert sorted(test.case_id) == ["IMD004", "IMD015", "IMD058", "IMD064"]
    labels = dict(zip(test.case_id, test.targets["diagnosis"]))
    assert labels == {"IMD004": 1, "IMD015": 1, "IMD058": 2, "IMD064": 2}    # the README's table
    assert test.image.shape == (4, 3, 32, 32) and 0 <= test.image.min() and test.image.max() <= 1
    seg = test.targets["segmentation"]
    assert set(np.unique(seg)) == {0, 1} and 0.05 < seg.mean() < 0.9
    with pytest.warns(UserWarning, match="ph2_criteria: skipped 188 bad sample"):
        criteria = P.load("ph2_criteria", root, 32, skip_bad=True, cache=tmp_path / "c2", fold=0)
    assert set(criteria.splits["test"].targets) == {"diagnosis", "asymmetry"}
    assert np.array_equal(criteria.splits["test"].targets["diagnosis"], test.targets["diagnosis"])


def _ph2_copy(tmp_path: Path) -> Path:
    root = tmp_path / "PH2Dataset"
    shutil.copytree(Path(require_sample(PH2_SAMPLE)) / "PH2Dataset", root)
    return root


def _edit_table(root: Path, edit) -> None:
    import openpyxl
    book = openpyxl.load_workbook(root / ph2.TABLE)
    edit(book.worksheets[0])
    book.save(root / ph2.TABLE)


@pytest.mark.parametrize("case", ["no header", "two diagnoses", "bad asymmetry", "not xlsx", "missing column"])
def test_a_bad_ph2_table_is_one_error_naming_file_and_row(tmp_path, case):
    root = _ph2_copy(tmp_path)
    if case == "no header":
        _edit_table(root, lambda ws: ws.cell(13, 1, "Name"))
        match = r"PH2_dataset.xlsx: no header row starting with 'Image Name'"
    elif case == "two diagnoses":
        _edit_table(root, lambda ws: ws.cell(14, 4, "X"))          # IMD003: common and atypical
        match = r"PH2_dataset.xlsx: row 14 \(IMD003\): 2 clinical diagnoses marked"
    elif case == "bad asymmetry":
        _edit_table(root, lambda ws: ws.cell(15, 6, 3))
        match = r"row 15 \(IMD009\): asymmetry 3 is not 0, 1 or 2"
    elif case == "missing column":
        _edit_table(root, lambda ws: ws.cell(13, 6, "Symmetry"))
        match = r"header row 13 lacks column\(s\) \['Asymmetry'\]"
    else:
        (root / ph2.TABLE).write_text("Image Name;Melanoma\n")
        match = r"PH2_dataset.xlsx: not a readable .xlsx"
    with pytest.raises(DataError, match=match):
        ph2.read_metadata(root / ph2.TABLE)


def test_a_missing_or_misfit_ph2_mask_is_one_error_naming_the_file(tmp_path):
    root = _ph2_copy(tmp_path)
    reader = ph2.PH2Reader(ph2.SPEC)
    image, mask = reader.files(root, "IMD003")
    mask.unlink()
    bad = BadInput(skip=True)
    reader.read(root, 16, _NullWriter(), bad)
    assert any("IMD003_lesion.bmp: missing lesion mask of IMD003" in s for s in bad.skipped)
    from PIL import Image
    Image.new("L", (10, 10)).save(mask)
    with pytest.raises(DataError, match=r"IMD003_lesion.bmp: mask is 10x10 but its image is \d+x\d+"):
        reader.read(root, 16, _NullWriter(), _FirstBadRaises({"IMD003"}))


# --- BUSI --------------------------------------------------------------------------------------

def _busi_repo_layout(src: Path, dest: Path) -> Path:
    """The GitHub copy's layout: data/<class>/images/ and data/<class>/mask/."""
    for cls_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        for f in cls_dir.glob("*.png"):
            sub = "mask" if "_mask" in f.stem else "images"
            (dest / cls_dir.name / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dest / cls_dir.name / sub / f.name)
    return dest


def test_busi_reads_both_layouts_alike_and_unites_masks(tmp_path):
    root = Path(require_sample(BUSI_SAMPLE)) / "Dataset_BUSI_with_GT"
    found = busi.scan(root)
    assert len(found) == 19 and [len(m) for _, _, m in [found["benign (4)"], found["benign (100)"]]] == [2, 2]
    repo = _busi_repo_layout(root, tmp_path / "data")
    assert {k: (c, len(m)) for k, (c, _, m) in busi.scan(repo).items()} == \
           {k: (c, len(m)) for k, (c, _, m) in found.items()}
    with pytest.warns(UserWarning, match="skipped 761 bad sample"):
        a = P.load("busi", str(root.parent), 32, skip_bad=True, cache=tmp_path / "a", fold=0)
    with pytest.warns(UserWarning, match="skipped 761 bad sample"):
        b = P.load("busi", str(tmp_path), 32, skip_bad=True, cache=tmp_path / "b", fold=0)
    for split in ("train", "val", "test"):
        assert np.array_equal(a.splits[split].image, b.splits[split].image)
        assert np.array_equal(a.splits[split].targets["segmentation"], b.splits[split].targets["segmentation"])
    assert a.counts() == {"train": 10, "val": 3, "test": 6} and a.splits["test"].image.shape[1] == 1
    from data.real.common import read_pair
    _, image, masks = found["benign (4)"]
    union = read_pair(image, masks, 32, "L")[1]
    assert all((read_pair(image, m, 32, "L")[1] <= union).all() for m in masks)
    assert union.sum() > max(read_pair(image, m, 32, "L")[1].sum() for m in masks)
    normal = a.splits["test"].case_id.tolist().index("normal (3)")
    assert a.splits["test"].targets["segmentation"][normal].sum() == 0   # a normal image: empty mask


@pytest.mark.parametrize("case", ["orphan mask", "wrong size", "not binary", "missing class", "mask elsewhere"])
def test_bad_busi_input_is_one_error_naming_the_file(tmp_path, case):
    root = tmp_path / "Dataset_BUSI_with_GT"
    shutil.copytree(Path(require_sample(BUSI_SAMPLE)) / "Dataset_BUSI_with_GT", root)
    from PIL import Image
    if case == "orphan mask":
        (root / "benign" / "benign (1).png").unlink()
        match = r"benign \(1\)_mask.png: a mask without its image"
    elif case == "wrong size":
        Image.new("L", (7, 9)).save(root / "benign" / "benign (1)_mask.png")
        match = r"benign \(1\)_mask.png: mask is 7x9 but its image is"
    elif case == "not binary":
        size = Image.open(root / "benign" / "benign (1).png").size
        Image.fromarray(np.full(size[::-1], 7, np.uint8)).save(root / "benign" / "benign (1)_mask.png")
        match = r"benign \(1\)_mask.png: not a binary mask"
    elif case == "missing class":
        shutil.rmtree(root / "normal")
        match = "expected the class folders normal, benign, malignant"
    else:
        shutil.move(root / "benign" / "benign (1)_mask.png", root / "malignant" / "benign (1)_mask.png")
        match = r"a mask in the malignant folder of an image in the benign folder"
    reader = busi.BUSIReader()
    with pytest.raises(DataError, match=match):
        reader.read(root, 16, _NullWriter(), _FirstBadRaises({"benign (1)"}))


def test_an_image_outside_the_committed_folds_is_an_error(tmp_path):
    root = tmp_path / "Dataset_BUSI_with_GT"
    shutil.copytree(Path(require_sample(BUSI_SAMPLE)) / "Dataset_BUSI_with_GT", root)
    for suffix in ("", "_mask"):
        shutil.copy(root / "benign" / f"benign (1){suffix}.png", root / "benign" / f"benign (9999){suffix}.png")
    with pytest.raises(DataError, match=r"1 image\(s\) not in the committed fold table, first 'benign \(9999\)'"):
        busi.BUSIReader().read(root, 16, _NullWriter(), BadInput(skip=True))


class _NullWriter:
    def append(self, *args, **kwargs):
        pass


class _FirstBadRaises(BadInput):
    """Skips samples missing from a sample folder, raises on the cases under test."""

    def __init__(self, cases: set[str]):
        super().__init__(skip=True)
        self.cases = cases

    def handle(self, exc: DataError) -> None:
        if any(c in str(exc) for c in self.cases):
            raise exc
        super().handle(exc)


# --- what the public rows change downstream ------------------------------------------------------

def test_an_empty_mask_predicted_empty_scores_100_only_where_the_task_says_so():
    from benchmark.report.cases import case_metric
    from benchmark.training import metrics as M
    from benchmark.training.evaluation import _Accumulator
    import torch
    inter = np.array([[0.0], [3.0]])
    pred, true = np.array([[0.0], [4.0]]), np.array([[0.0], [4.0]])   # case 0: nothing, nothing
    assert M.dice(inter, pred, true, np.array([0, 1])) == pytest.approx(75.0)
    assert M.dice(inter, pred, true, np.array([0, 1]), empty_is_perfect=True) == pytest.approx(87.5)
    task = busi.SPEC.task("segmentation")
    acc = _Accumulator(task)
    out = torch.zeros(2, 2, 4, 4)
    out[1, 1, :2] = 1                                   # image 1 predicts its top half
    y = torch.zeros(2, 4, 4, dtype=torch.int64)
    y[1, :2, :2] = 1
    acc.update(out, {task.name: y}, torch.tensor(0.0))
    ids = np.array(["normal", "benign"])
    rows = pd.DataFrame(acc.cases(ids))
    assert rows.set_index("case")["value"].to_dict() == {"normal": 100.0, "benign": pytest.approx(200 * 4 / 12)}
    assert case_metric(rows, "dice").value == pytest.approx(acc.result(ids)["dice"])


def test_the_report_averages_a_seed_over_its_folds():
    from benchmark.report.inputs import normalize_metrics
    rows = [{"dataset": "ph2", "method": "hps", "seed": s, "fold": f, "task": "diagnosis", "metric": "accuracy",
             "value": 10 * f + s, "higher_is_better": True, "primary": True, "split": "test"}
            for s in (0, 1) for f in range(5)]
    rows.append({**rows[0], "dataset": "stoic", "fold": "", "value": 3.0})
    df = normalize_metrics(pd.DataFrame(rows))
    assert "fold" not in df.columns and len(df) == 3
    assert df.set_index(["dataset", "seed"])["value"].to_dict() == {("ph2", 0): 20.0, ("ph2", 1): 21.0,
                                                                    ("stoic", 0): 3.0}


def test_public_needs_its_real_data_and_plans_every_fold(tmp_path, capsys):
    from benchmark.experiment.cli import main
    assert main(["--public", "--dry-run", "--results", str(tmp_path)]) == 2
    assert "no real ph2 data (no --data-root given)" in capsys.readouterr().err
    root = require_sample(PH2_SAMPLE)
    assert main(["--public", "--dataset", "ph2", "--method", "stl", "--seeds", "0", "1", "--data-root", root,
                 "--dry-run", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "10 cells" in out and "seed 1 fold 4" in out
    # the public profile, in fp32 (public+amp=False) where the CPU has no native bf16
    assert re.search(r"^profile public(\+amp=False)? \(", out, re.M), out


def test_folds_selects_test_folds_and_rejects_one_that_does_not_exist(tmp_path, capsys):
    from benchmark.experiment.cli import main
    root = require_sample(PH2_SAMPLE)
    base = ["--dataset", "ph2", "--method", "hps", "--no-baseline", "--seeds", "0", "--data", "real", "--data-root", root,
            "--dry-run", "--results", str(tmp_path)]
    assert main(base + ["--folds", "1", "3"]) == 0
    out = capsys.readouterr().out
    assert "seed 0 fold 1" in out and "seed 0 fold 3" in out and "fold 0" not in out and "2 cells" in out
    assert main(base + ["--folds", "5"]) == 2
    assert "--folds 5: ph2 has folds 0..4" in capsys.readouterr().err


def test_a_cross_validated_cell_is_named_by_seed_and_fold_everywhere(tmp_path):
    from benchmark.experiment.cell import resolve_config
    from benchmark.experiment.profiles import get_profile
    from benchmark.experiment.store import _seed_and_fold
    cfg = resolve_config("ph2", "hps", 2, get_profile("public"), "real", fold=3)
    plain = resolve_config("ph2", "hps", 2, get_profile("public"), "synthetic")
    assert cfg.replicate == "seed 2 fold 3" and plain.replicate == "seed 2"
    assert cfg.directory(tmp_path).name == "seed2-fold3" and plain.directory(tmp_path).name == "seed2"
    assert _seed_and_fold("seed2-fold3") == {"seed": 2, "fold": 3} and _seed_and_fold("seed2")["fold"] is None
    assert cfg.hash() != resolve_config("ph2", "hps", 2, get_profile("public"), "real", fold=4).hash()
    assert "fold" not in plain.identity()              # cells from before folds keep their hash


def test_a_data_root_holding_none_of_the_datasets_is_an_error_not_a_fallback(tmp_path, capsys):
    from benchmark.experiment.cli import main
    (tmp_path / "empty").mkdir()
    assert main(["--dataset", "stoic", "--dataset", "ph2", "--data-root", str(tmp_path / "empty"), "--dry-run",
                 "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"--data-root {tmp_path / 'empty'} holds none of stoic, ph2" in err and "PH2_dataset.xlsx" in err
    assert main(["--dataset", "stoic", "--dry-run", "--results", str(tmp_path / "r")]) == 0   # no root: stand-in
