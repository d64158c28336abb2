"""The reader protocol of a real dataset, as a base class (docs/extending.md).

``data.prepare`` asks a dataset's reader where its raw files are, what they are, and to turn them
into cached arrays once; training never decodes the raw files again. A reader may be a subclass of
:class:`Reader` (new datasets) or a module with the same names (the paper's four, ``data/real/``).

Required: ``LAYOUT`` (one line for error messages: what the folder holds), :meth:`Reader.inventory`
and :meth:`Reader.read`. Everything else has a default. A format's own library (Pillow, SimpleITK,
openpyxl) is imported only when that format is read.
"""
from __future__ import annotations

from pathlib import Path

from data.base import DataError

REQUIRED = ("LAYOUT", "inventory", "read")
PROTOCOL = ("VERSION", "LAYOUT", "SUBDIRS", "looks_like", "inventory", "params", "read", "describe")


class Reader:
    """Base class of a real dataset's reader; subclass it, set ``LAYOUT``, write ``inventory`` and ``read``."""

    VERSION: str = "1"              # bump whenever the preprocessing changes: it keys the cache
    LAYOUT: str = ""                # e.g. "images/<class>/*.png beside *_mask.png"
    SUBDIRS: tuple[str, ...] = ()   # folders below a --data-root where the dataset may sit

    def looks_like(self, path: Path) -> bool:
        """Is ``path`` this dataset's folder (default: its inventory can be taken)."""
        try:
            return bool(self.inventory(path))
        except (DataError, OSError):
            return False

    def inventory(self, root: Path) -> list[Path]:
        """The raw files the dataset uses (they fingerprint the cache); a structural error raises
        :class:`data.base.DataError` naming the file."""
        raise NotImplementedError

    def params(self, size: int) -> dict:
        """The preprocessing parameters that key the cache (a changed value prepares afresh)."""
        return {"size": size}

    def read(self, root: Path, size: int, writer, bad) -> dict:
        """Append every sample to ``writer`` (:class:`data.real.cache.EntryWriter`: ``append(split,
        image=, targets=, case_id=)``), hand each bad sample's DataError to ``bad.handle`` (it raises
        unless ``--skip-bad``), and return facts for the manifest (JSON-able)."""
        raise NotImplementedError

    def describe(self, manifest: dict) -> str:
        """One line naming the data a run used (printed and stored with the results)."""
        c = manifest["counts"]
        return (f"{manifest['dataset']} ({manifest['params']['size']} px; train {c['train']} / val {c['val']} / "
                f"test {c['test']} samples)")


def protocol_problems(reader) -> list[str]:
    """What ``reader`` (a :class:`Reader` or a module) lacks of the protocol; empty when it conforms."""
    missing = [name for name in PROTOCOL if not hasattr(reader, name)]
    if isinstance(reader, Reader):
        cls = type(reader)
        missing += [f"{name} (not overridden)" for name in ("inventory", "read")
                    if getattr(cls, name) is getattr(Reader, name)]
        if not reader.LAYOUT:
            missing.append("LAYOUT (empty)")
    return missing
