"""An example dataset plug-in (docs/extending.md): "shapes", grey images of one bright shape whose
pixels are segmented and whose kind (disc, square, bar) is classified -- a spec, a synthetic stand-in
and a reader of a folder of PNGs. Use it with

    python reproduce.py --plugin docs/examples/my_dataset.py --dataset shapes --method stl --method hps \
        --profile smoke --seeds 0                                   # the stand-in
    python reproduce.py --plugin docs/examples/my_dataset.py --dataset shapes --data real --data-root DIR ...

DIR holds ``labels.csv`` (``image,kind,split``) and ``images/<image>.png`` beside ``masks/<image>.png``.
tests/test_plugins.py copies this file into a temporary folder and runs both.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.plugins import register_dataset
from data import DatasetEntry
from data.base import DataError, Split, TaskData
from data.real.common import read_label_table, read_pair
from data.real.reader import Reader
from data.spec import DatasetSpec, TaskSpec
from data.synthetic import ellipse, grid, make_splits

KINDS = ("disc", "square", "bar")
SPEC = DatasetSpec("shapes", "Shapes", (TaskSpec("segmentation", "pixel", "segmentation", 2, "dice"),
                                        TaskSpec("kind", "image", "multiclass", len(KINDS), "accuracy", KINDS)),
                   in_channels=1, paper_batch_size=8, native_size=64)


def _draw(rng: np.random.Generator, n: int, size: int) -> Split:
    kind = rng.integers(0, len(KINDS), n)
    x, y = grid(size)
    cx, cy = rng.uniform(-0.4, 0.4, n)[:, None, None], rng.uniform(-0.4, 0.4, n)[:, None, None]
    square = (np.abs(x - cx) < 0.3) & (np.abs(y - cy) < 0.3)
    bar = (np.abs(x - cx) < 0.5) & (np.abs(y - cy) < 0.12)
    mask = np.where((kind == 0)[:, None, None], ellipse(size, cx[:, 0, 0], cy[:, 0, 0], 0.3, 0.3),
                    np.where((kind == 1)[:, None, None], square, bar))
    image = (0.2 + 0.6 * mask + rng.normal(0, 0.1, mask.shape)).astype(np.float32)[:, None]
    return Split(image, {"segmentation": mask.astype(np.int64), "kind": kind.astype(np.int64)}, np.arange(n))


def synthetic(seed: int, n_train: int, n_val: int, n_test: int, size: int) -> TaskData:
    return TaskData(SPEC, make_splits(_draw, seed, n_train, n_val, n_test, size), "synthetic",
                    "synthetic shapes").validate()


class ShapesReader(Reader):
    """Only what the protocol requires: LAYOUT, inventory, read (the rest are Reader's defaults)."""

    LAYOUT = "labels.csv (image,kind,split) with images/<image>.png and masks/<image>.png"

    def inventory(self, root: Path) -> list[Path]:
        table = read_label_table(root / "labels.csv", ("image", "kind", "split"), "image", "image")
        return [root / "labels.csv"] + [root / d / f"{i}.png" for i in table["image"] for d in ("images", "masks")]

    def read(self, root: Path, size: int, writer, bad) -> dict:
        table = read_label_table(root / "labels.csv", ("image", "kind", "split"), "image", "image")
        for r in table.itertuples(index=False):
            try:
                if r.kind not in KINDS or r.split not in ("train", "val", "test"):
                    raise DataError(f"{root / 'labels.csv'}: {r.image}: unknown kind {r.kind!r} or split {r.split!r}")
                img, seg = read_pair(root / "images" / f"{r.image}.png", root / "masks" / f"{r.image}.png", size, "L")
            except DataError as exc:
                bad.handle(exc)
                continue
            writer.append(r.split, image=img[None], targets={"segmentation": seg[None].astype(np.int64),
                                                             "kind": np.array([KINDS.index(r.kind)])},
                          case_id=[r.image])
        return {"unit": "images"}


register_dataset(DatasetEntry(SPEC, synthetic, ShapesReader(), group="user"))
