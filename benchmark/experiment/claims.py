"""Claims on cells, so that runners sharing a results folder (two terminals, two Slurm jobs, hosts
on one network folder) never compute the same cell twice.

A runner claims a cell before computing it by creating ``claim.json`` in the cell's folder with
``O_CREAT | O_EXCL`` (atomic on local file systems and on NFS v3 and later), holding its owner (host,
pid, a random id). While it computes, a thread refreshes the file's modification time every
``HEARTBEAT`` seconds. A claim whose owner process is gone (same host) or whose heartbeat is older
than ``STALE`` seconds (a killed job, a lost node) is taken over: it is renamed aside, which only
one runner can do, and claimed afresh. The claim is removed when the cell is stored or has failed.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

CLAIM = "claim.json"
HEARTBEAT = 10.0
STALE = 60.0


def _owner() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "id": uuid.uuid4().hex}


def read_owner(directory: Path) -> dict | None:
    """The owner of a cell's claim, or None when the cell is not claimed (or the claim is being
    written: an empty file reads as an owner nobody knows yet)."""
    try:
        text = (directory / CLAIM).read_text()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError:
        return {}


def alive(pid) -> bool:
    """Whether process ``pid`` (on this host) exists."""
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: a terminated worker not yet reaped by its parent is a zombie, not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def is_stale(directory: Path, stale: float = STALE) -> bool:
    """True when the claim's owner is gone: a dead process on this host, or no heartbeat for ``stale`` s."""
    owner = read_owner(directory)
    if owner is None:
        return False
    if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int) and not alive(owner["pid"]):
        return True
    try:
        return time.time() - (directory / CLAIM).stat().st_mtime > stale
    except FileNotFoundError:
        return False


@dataclass
class Claim:
    """A held claim; its heartbeat runs until :meth:`release`."""

    directory: Path
    owner: dict
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        threading.Thread(target=self._beat, daemon=True, name=f"claim-{self.directory.name}").start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            try:
                os.utime(self.directory / CLAIM)
            except OSError:
                return

    def held(self) -> bool:
        return (read_owner(self.directory) or {}).get("id") == self.owner["id"]

    def release(self) -> None:
        self._stop.set()
        if self.held():
            (self.directory / CLAIM).unlink(missing_ok=True)


def try_claim(directory: Path, stale: float = STALE) -> Claim | None:
    """Claim the cell in ``directory``; None when a live runner holds it. OSError (read-only,
    no space) propagates: the caller names the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CLAIM
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            seen = read_owner(directory)
            if not is_stale(directory, stale):
                return None
            # Take over: move the stale claim aside, unless it changed since we read it.
            if read_owner(directory) != seen:
                continue
            aside = path.with_name(f".{CLAIM}.stale-{uuid.uuid4().hex[:8]}")
            try:
                os.rename(path, aside)
                aside.unlink(missing_ok=True)
            except FileNotFoundError:
                pass  # another runner took it over first; try to claim again
            continue
        owner = _owner()
        try:
            os.write(fd, json.dumps(owner).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return Claim(directory, owner)
    return None
