"""Stopping a run cleanly (issue 26): the first SIGINT (Ctrl-C) or SIGTERM raises :class:`Stopped` in
the main thread; the runner then abandons the running epochs (each network resumes from its last
checkpoint), releases the claims of the cells it was running, rebuilds the top-level CSVs from the
cells that finished, and the command line renders the report and exits 128 + the signal (130, 143).
A second signal exits at once."""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """A stop signal arrived. A ``BaseException`` (as ``KeyboardInterrupt``): a cell's
    ``except Exception`` does not record it as the cell's failure."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Stopped` once; a second one exits at once
    (``os._exit``: nothing more is written). Outside the main thread (a notebook's worker thread) the
    handlers cannot be set, and the block runs without them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum, _frame):
        received.append(signum)
        if len(received) > 1:
            os.write(2, f"\n{signal.Signals(signum).name} again: exiting now\n".encode())
            os._exit(128 + signum)
        raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
