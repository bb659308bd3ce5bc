"""The hostile suite: each input a careless operator or a hostile user gives `omr scan`,
built in ``tmp_path``, run as the real command in a subprocess under a timeout.

Every case asserts: one row per page or one clear failure, no hang (the case's timeout),
no traceback, and, where the input could blow memory up, the command's peak RSS
(``wait4``'s ``ru_maxrss``, of the main process reading in-process with ``--workers 1``).
"""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from omr.layout import load_layout
from tests.omr.batch_helpers import write_key

#: the omr command, run by the interpreter of the tests
OMR = [sys.executable, "-c", "from omr.cli import main; main()"]


@dataclass
class Run:
    """What one ``omr`` command did."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float
    seconds: float
    rows: list[dict[str, str]]

    def assert_clean(self) -> None:
        """No traceback, whatever the outcome."""
        assert "Traceback" not in self.stderr and "Traceback" not in self.stdout, self.stderr


def run_omr(*args: object, cwd: Path, timeout: float = 30.0, out: Path | None = None,
            env: dict[str, str] | None = None) -> Run:
    """Run ``omr ARGS`` in ``cwd``; kill its whole session and fail after ``timeout``."""
    log_out, log_err = cwd / f".omr-{time.monotonic_ns()}.out", cwd / f".omr-{time.monotonic_ns()}.err"
    with open(log_out, "wb") as fo, open(log_err, "wb") as fe:
        t0 = time.monotonic()
        proc = subprocess.Popen([*OMR, *map(str, args)], cwd=cwd, stdout=fo, stderr=fe,
                                start_new_session=True, env=env)
    hung = threading.Event()

    def kill() -> None:
        hung.set()
        os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - t0
    stdout = log_out.read_bytes().decode("utf-8", "replace")
    stderr = log_err.read_bytes().decode("utf-8", "replace")
    log_out.unlink()
    log_err.unlink()
    assert not hung.is_set(), f"omr {' '.join(map(str, args))} hung (killed after {timeout} s): {stderr}"
    rows = []
    if out is not None and out.exists():
        with open(out, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    return Run(proc.returncode, stdout, stderr, usage.ru_maxrss / 1024, seconds, rows)


@pytest.fixture(scope="session")
def layout():
    return load_layout()


@pytest.fixture(scope="session")
def key_path(tmp_path_factory):
    return write_key(tmp_path_factory.mktemp("key"))


@pytest.fixture(scope="session")
def card_bytes(tmp_path_factory, layout):
    """The bytes of a few small readable cards (JPEG, 100 DPI)."""
    from tests.omr.batch_helpers import write_cards

    folder = tmp_path_factory.mktemp("cards")
    return [p.read_bytes() for p in write_cards(folder, 6, layout, seed=16)]


def scan(tmp_path: Path, key_path: Path, *inputs: object, workers: int = 1, db: str = "r.sqlite",
         out: str = "r.csv", timeout: float = 30.0, extra: tuple = ()) -> Run:
    """``omr scan INPUTS --key --db --out --workers`` in ``tmp_path``."""
    return run_omr("scan", *inputs, "--key", key_path, "--db", db, "--out", out, "--workers", workers,
                   *extra, cwd=tmp_path, timeout=timeout, out=tmp_path / out)


def session_processes(sid: int) -> list[str]:
    """The processes still alive in session ``sid`` (pid and command line)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")[:120]
                alive.append(f"{entry.name}: {command!r}")
        except (OSError, ValueError):
            continue
    return alive


def stored_pages(db: Path) -> int:
    """Pages committed in the store ``db`` (read-only; 0 while it cannot be read)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            return con.execute("SELECT count(*) FROM pages").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0
