"""Exclusive locks that keep two processes from computing the same result at once.

``exclusive_lock(result_file)`` takes an ``fcntl.flock`` lock on the hidden file
``.<name>.lock`` beside ``result_file`` without waiting. The grid runner locks its points
under another name (``kind="grid"``, ``.<name>.grid.lock``), since the run inside a point
takes the run lock itself. The operating system releases it when
its holder exits, even when the holder is killed with SIGKILL, so a crashed run never leaves a
stale lock behind. The lock file records the holder (process id and host) for the error
message, and stays in place afterwards.

NOTE: ``flock`` is not reliable on every network file system. Processes on several machines
that share one results folder should be coordinated by one scheduler instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import Iterator


class BusyError(RuntimeError):
    """Raised when another process holds the lock of a result."""


def lock_file_for(result_file: str | Path, kind: str = "") -> Path:
    result_file = Path(result_file)
    return result_file.parent / f".{result_file.stem}{'.' + kind if kind else ''}.lock"


@contextlib.contextmanager
def exclusive_lock(result_file: str | Path, *, kind: str = "",
                   hint: str = "wait for it to end, then rerun") -> Iterator[Path]:
    """Hold the lock of ``result_file`` for the duration of the block; yield the lock file.

    Raises BusyError, naming the holder and ``hint``, when another process holds it.
    """
    lock_file = lock_file_for(result_file, kind)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "an unknown process"
            raise BusyError(f"{Path(result_file).name} is being computed by {holder}; {hint}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield lock_file
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
