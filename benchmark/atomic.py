"""Files written atomically: to a unique temporary file beside the target, flushed to disk, then
renamed over it (atomic on POSIX). A process killed at any moment leaves the old file or the new
one, never a truncated one; a failed write (no space, read-only) removes its temporary file."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Iterator

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to (any writer: matplotlib, pandas);
    on success it is fsynced and renamed over ``path``, on failure removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as exc:
        # Some writers report a full disk in their own words (matplotlib's PDF backend: "'Stream'
        # object has no attribute 'pos'"): say what it is.
        if not isinstance(exc, OSError) and _free_bytes(path.parent) < 2 ** 20:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 2 ** 62


def write_text(path: str | os.PathLike, text: str) -> None:
    with replacing(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            f.write(text)


def describe(path: str | os.PathLike, exc: OSError) -> str:
    """One line naming the file and why writing it failed (read-only, no space, not a folder ...)."""
    cause = {errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
             errno.EPERM: "permission denied", errno.ENOSPC: "no space left on the device",
             errno.EDQUOT: "disk quota exceeded", errno.ENOTDIR: "a path component is a file, not a folder",
             errno.EEXIST: "a file is in the way of a folder"}.get(exc.errno, exc.strerror or str(exc))
    return f"{exc.filename or path}: {cause}"


def remove_stale_temporaries(folder: str | os.PathLike, older_than: float = 600.0) -> int:
    """Remove temporary files a killed writer left in ``folder`` (only old ones: a live writer's
    are recent); returns how many were removed."""
    folder, now, removed = Path(folder), time.time(), 0
    for tmp in folder.glob(f".*{TMP_SUFFIX}") if folder.is_dir() else ():
        try:
            if now - tmp.stat().st_mtime > older_than:
                tmp.unlink()
                removed += 1
        except OSError:
            continue
    return removed
