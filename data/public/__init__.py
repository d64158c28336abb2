"""Public datasets of the same kinds of task pair as the paper's (issue 25), small enough to train to
convergence on a CPU: PH2 (``ph2``, ``ph2_criteria``) and BUSI (``busi``). Each module holds its specs,
its reader (a :class:`data.real.reader.Reader`) and a synthetic stand-in for tests; ``ENTRIES`` are
registered through :func:`data.register_dataset`, the path users' dataset plug-ins take too
(docs/extending.md). They have no official split: folds are committed under ``data/folds/``.
"""
from __future__ import annotations

from data.public import busi, ph2


def entries(entry_type) -> list:
    """The public datasets as ``entry_type`` (``data.DatasetEntry``) values, in the order tables show them."""
    return [
        entry_type(ph2.SPEC, ph2.synthetic, ph2.PH2Reader(ph2.SPEC), "public", ph2.FOLDS, ph2.FOLD_TABLE),
        entry_type(busi.SPEC, busi.synthetic, busi.BUSIReader(), "public", busi.FOLDS, busi.FOLD_TABLE),
        entry_type(ph2.CRITERIA_SPEC, ph2.synthetic_criteria, ph2.PH2Reader(ph2.CRITERIA_SPEC), "public",
                   ph2.FOLDS, ph2.FOLD_TABLE),
    ]
