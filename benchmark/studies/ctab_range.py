"""CTAB's dynamic range on trained CTAN cells (issue 22, item 5): how far apart, over the test
images, the sizes of eq. (2)'s outputs lie.

    python -m benchmark.studies.ctab_range CELL_DIR [CELL_DIR ...] [--data-root PATH]

Eq. (2), Ā_t = Ê_t (Ê_{t'}ᵀ Ê_t) / (N√d), is cubic in the embeddings, so an image whose embedding is
k times larger than usual comes out k³ times larger. Per cell and task, over the test split: the
root-mean-square of each image's Ā_t and of its embedding Ê_t, and the ratios largest / median and
median / smallest of each; a cubic law shows as ratio(Ā) ≈ ratio(Ê)³.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from benchmark.evaluate import CellError, load_cell
from benchmark.training.batches import batches
from data.base import DataError


def ranges(net, split, batch_size: int) -> dict[str, dict[str, float]]:
    """Per task: largest/median and median/smallest of the per-image RMS of Ê_t and of Ā_t."""
    emb, out = {}, {}
    rms = lambda t: t.float().pow(2).flatten(1).mean(1).sqrt()

    def keep_embedding(k):
        def hook(module, inputs, output):  # returns None: the output is left as it is
            emb.setdefault(k, []).append(rms(output))
        return hook

    def keep_outputs(module, inputs, outputs):
        for k, a in enumerate(outputs):
            out.setdefault(k, []).append(rms(a))

    hooks = [m.register_forward_hook(keep_embedding(k)) for k, m in enumerate(net.ctab.embed)]
    hooks.append(net.ctab.register_forward_hook(keep_outputs))
    net.eval()
    with torch.inference_mode():
        for batch in batches(split, batch_size):
            net(batch["image"])
    for h in hooks:
        h.remove()
    res = {}
    for k, task in enumerate(net.tasks):
        e, a = torch.cat(emb[k]).numpy(), torch.cat(out[k]).numpy()
        res[task.name] = {"embed_max_over_median": float(e.max() / np.median(e)),
                          "embed_median_over_min": float(np.median(e) / max(e.min(), 1e-30)),
                          "ctab_max_over_median": float(a.max() / np.median(a)),
                          "ctab_median_over_min": float(np.median(a) / max(a.min(), 1e-30))}
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmark.studies.ctab_range", description=__doc__.split("\n\n")[0])
    ap.add_argument("cells", nargs="+")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args(argv)
    print("cell | task | Ê max/median | Ê median/min | Ā max/median | Ā median/min")
    for cell in args.cells:
        try:
            cfg, networks, data = load_cell(Path(cell), args.data_root)
        except (CellError, DataError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        (_, net), = networks
        for task, r in ranges(net, data.splits["test"], cfg.batch_size).items():
            print(f"{cfg.dataset}/{cfg.method} seed {cfg.seed} | {task} | {r['embed_max_over_median']:.2f} | "
                  f"{r['embed_median_over_min']:.2f} | {r['ctab_max_over_median']:.2f} | {r['ctab_median_over_min']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
