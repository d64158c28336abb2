"""What the real-data readers share: the bad-sample policy, resizing, publishers' label tables,
seeded stratified splits for datasets without an official one, and image + mask pairs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from data.base import DataError

# Systematic stratified allocation (70/10/20): within each stratum (shuffled with the seed) position
# i gets _PATTERN[i % 10], the position counter running on across strata, so every split gets its
# share of every stratum (to within one) and the overall split is 70/10/20.
_PATTERN = ("train", "test", "train", "val", "train", "train", "test", "train", "train", "train")


class BadInput:
    """What to do with a bad sample: raise its DataError, or (``skip``) record it and go on."""

    def __init__(self, skip: bool):
        self.skip, self.skipped = skip, []

    def handle(self, exc: DataError) -> None:
        if not self.skip:
            raise exc
        self.skipped.append(str(exc))


def resize(stack: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """Resize ``[N, H, W]`` or ``[N, C, H, W]`` to ``size`` x ``size``: bilinear with antialiasing
    for intensities, nearest for labels and masks (dtype kept)."""
    if stack.shape[-2:] == (size, size):
        return stack
    import torch  # torch's antialiased resampling; imported here so that the readers stay torch-free
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))
    t4 = t if t.ndim == 4 else t[:, None]
    if nearest:
        out = F.interpolate(t4, size=(size, size), mode="nearest-exact")
    else:
        out = F.interpolate(t4, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    out = out if t.ndim == 4 else out[:, 0]
    return out.numpy().astype(stack.dtype, copy=False)


def read_label_table(path: Path, required: tuple[str, ...], key: str, what: str) -> pd.DataFrame:
    """A publisher's label CSV as strings: one clear error for a missing or corrupt file, missing
    columns, or an id (``key``) listed twice."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"{path}: missing file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: corrupt CSV ({str(exc).splitlines()[0][:120]})") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing} (has {list(table.columns)})")
    table = table.apply(lambda c: c.str.strip())
    dup = table[key].duplicated()
    if dup.any():
        raise DataError(f"{path}: {what} {table[key][dup].iloc[0]} is listed twice")
    return table


def stratified_split(keys: list, strata: list, seed: int) -> dict:
    """Seeded stratified assignment of ``keys`` to train/val/test (70/10/20), as ``{key: split}``."""
    rng = np.random.default_rng(seed)
    by_stratum: dict = {}
    for k, s in zip(keys, strata):
        by_stratum.setdefault(s, []).append(k)
    out, position = {}, 0
    for s in sorted(by_stratum, key=str):
        members = sorted(by_stratum[s], key=str)
        for i in rng.permutation(len(members)):
            out[members[i]] = _PATTERN[position % len(_PATTERN)]
            position += 1
    return out


def _open(path: Path) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()  # decodes now: a truncated or corrupt file fails here, not later
        return im
    except FileNotFoundError:
        raise DataError(f"{path}: missing file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: corrupt or truncated image ({exc})") from None


def read_pair(image_path: Path, mask_path, size: int, mode: str = "RGB") -> tuple[np.ndarray, np.ndarray]:
    """The image in [0, 1] as [C, size, size] (``mode`` "RGB": 3 channels, "L": 1) and the binary lesion
    mask as [size, size], squashed to a square; ``mask_path`` may be a list of masks of the same image,
    united (BUSI's images with several lesions)."""
    im = _open(image_path).convert(mode)
    paths = list(mask_path) if isinstance(mask_path, (list, tuple)) else [mask_path]
    m = np.zeros((im.size[1], im.size[0]), bool)
    for path in paths:
        m |= _binary_mask(path, im.size)
    pixels = np.asarray(im.resize((size, size), Image.BILINEAR), np.float32) / 255.0
    binary = Image.fromarray((m * 255).astype(np.uint8)).resize((size, size), Image.NEAREST)
    chw = pixels.transpose(2, 0, 1) if pixels.ndim == 3 else pixels[None]
    return chw, np.asarray(binary) > 127


def _binary_mask(mask_path: Path, im_size: tuple[int, int]) -> np.ndarray:
    """A mask file as a boolean array; one error for a size that is not its image's or non-binary values."""
    mask = _open(mask_path)
    if mask.size != im_size:
        raise DataError(f"{mask_path}: mask is {mask.size[0]}x{mask.size[1]} but its image is "
                        f"{im_size[0]}x{im_size[1]}")
    m = np.asarray(mask.convert("L"))
    values = np.unique(m)
    if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
        raise DataError(f"{mask_path}: not a binary mask (values {values[:6].tolist()}...)")
    return m > 0
