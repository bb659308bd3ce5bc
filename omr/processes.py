"""Process hygiene of a batch: workers die with their parent, signals end a run cleanly,
scratch folders of killed runs are swept.

* `die_with_parent`: a pool worker asks Linux to SIGKILL it when the process that
  started it ends (``prctl(PR_SET_PDEATHSIG)``), so a main process killed by
  ``kill -9`` leaves no worker reading on forever; the multiprocessing resource
  tracker, which exits once no process holds its pipe, follows them.
* `signals_interrupt`: in the main process, SIGTERM and SIGHUP end the run as Ctrl-C
  does (`KeyboardInterrupt`): the pool is shut down, the scratch folder and any
  half-written output removed by the code that made them, the committed pages kept.
* `sweep_stale_scratch`: scratch folders of runs killed with SIGKILL (which no code of
  theirs can clean) are removed by the next run, known by a lock no process holds.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["SCRATCH_LOCK", "SCRATCH_PREFIX", "die_with_parent", "signals_interrupt", "sweep_stale_scratch"]

#: prefix of the scratch folders of ``omr scan`` runs without ``--db`` (in the temp folder)
SCRATCH_PREFIX = "omr-scan-"
#: the file in a scratch folder its run holds locked (the store's writer lock)
SCRATCH_LOCK = "results.sqlite.lock"
_PR_SET_PDEATHSIG = 1
#: a scratch folder without its lock is taken as abandoned after this long
_UNLOCKED_SCRATCH_AGE_S = 3600.0


def die_with_parent(parent_pid: int) -> None:
    """Have this process killed when its parent ends (Linux; elsewhere nothing is done).

    Call it first thing in a worker (a pool's initializer).  The parent may have died
    before the call: then this process exits at once.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `KeyboardInterrupt` in the main thread
    (as Ctrl-C does), so ``finally`` blocks and context managers clean up; the previous
    handlers come back after it.  Outside the main thread nothing is changed."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def sweep_stale_scratch(folder: str | None = None) -> list[Path]:
    """Remove the scratch folders (`SCRATCH_PREFIX`) whose run is gone; return them.

    A run holds its folder's `SCRATCH_LOCK` locked (``flock``) while it lives, and the
    system releases the lock however the run ends; a folder whose lock can be taken is
    abandoned.  A folder without the lock file is left alone for an hour (its run may
    be starting).  Never raises: what cannot be removed stays.
    """
    base = Path(folder or tempfile.gettempdir())
    removed = []
    try:
        candidates = [p for p in base.iterdir() if p.name.startswith(SCRATCH_PREFIX)]
    except OSError:
        return removed
    for scratch in candidates:
        try:
            if scratch.is_symlink() or not scratch.is_dir():
                continue
            lock = scratch / SCRATCH_LOCK
            if lock.exists():  # (a run locks it the moment it is made: it then fails clearly)
                fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its run is alive
                finally:
                    os.close(fd)
            elif time.time() - scratch.stat().st_mtime < _UNLOCKED_SCRATCH_AGE_S:
                continue
            shutil.rmtree(scratch)
            removed.append(scratch)
        except OSError:
            continue
    return removed
