"""Faults of the process: SIGKILL, SIGTERM, SIGHUP of ``omr scan``; a worker that dies."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from omr import batch as batch_module
from omr.batch import WORKER_CRASHED, run_batch
from omr.pages import iter_pages
from omr.store import open_store
from tests.hostile.conftest import OMR, scan, session_processes, stored_pages
from tests.omr.batch_helpers import stub_score, write_cards
from omr.pipeline import process_page


def crashing_process_page(ref, layout, thresholds):
    """Stands in for a decoder that kills its process on one file (runs in a pool worker)."""
    if "-boom" in os.path.basename(ref.source):
        os._exit(3)
    return process_page(ref, layout, thresholds)




def _start(tmp_path: Path, key_path: Path, folder: Path, *extra: str, workers: int = 2
           ) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    log = tmp_path / "scan.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([*OMR, "scan", str(folder), "--key", str(key_path), "--workers", str(workers), *extra],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                env=env)
    return proc, log


def _wait_gone(sid: int, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while (alive := session_processes(sid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


@pytest.fixture(scope="module")
def folder(tmp_path_factory, layout):
    folder = tmp_path_factory.mktemp("many")
    write_cards(folder, 40, layout, seed=11, dpi=100)
    return folder


def _until_stored(proc: subprocess.Popen, log: Path, db: Path, pages: int) -> None:
    deadline = time.monotonic() + 60
    while stored_pages(db) < pages:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "nothing stored within 60 s"
        time.sleep(0.01)


def test_sigkill_of_the_main_process_leaves_no_process_behind(tmp_path, key_path, folder):
    db = tmp_path / "k.sqlite"
    proc, log = _start(tmp_path, key_path, folder, "--db", str(db))
    try:
        _until_stored(proc, log, db, 2)
        assert len(session_processes(proc.pid)) >= 3  # the main process, its workers, the tracker
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        alive = _wait_gone(proc.pid, 5.0)
        assert not alive, f"left running 5 s after the main process was killed: {alive}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_end_the_run_cleanly(tmp_path, key_path, folder, sig):
    db = tmp_path / "t.sqlite"
    out = tmp_path / "t.csv"
    proc, log = _start(tmp_path, key_path, folder, "--db", str(db), "--out", str(out))
    try:
        _until_stored(proc, log, db, 2)
        os.kill(proc.pid, sig)
        code = proc.wait(timeout=20)
        alive = _wait_gone(proc.pid, 5.0)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    stderr = log.read_text()
    assert "Traceback" not in stderr, stderr
    assert code != 0 and not alive, (code, alive)
    assert list((tmp_path / "tmp").iterdir()) == [] and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert stored_pages(db) >= 2  # the committed pages are kept: a re-run resumes


def test_a_scratch_folder_left_by_sigkill_is_swept_by_the_next_run(tmp_path, key_path, folder):
    proc, log = _start(tmp_path, key_path, folder, "--out", str(tmp_path / "x.csv"), workers=1)
    try:
        deadline = time.monotonic() + 60
        while not [p for p in (tmp_path / "tmp").glob("omr-scan-*/results.sqlite") if stored_pages(p) >= 1]:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _wait_gone(proc.pid, 5.0) == []
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert len(list((tmp_path / "tmp").iterdir())) == 1
    env_run = subprocess.run([*OMR, "scan", str(folder / "card-000.jpg"), "--key", str(key_path),
                              "--out", str(tmp_path / "y.csv"), "--workers", "1"], cwd=tmp_path, capture_output=True,
                             env={**os.environ, "TMPDIR": str(tmp_path / "tmp")}, timeout=60)
    assert env_run.returncode == 0, env_run.stderr
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_page_that_crashed_its_worker_is_retried_once_on_a_rerun(tmp_path, layout, monkeypatch, key_path):
    folder = tmp_path / "in"
    write_cards(folder, 2, layout, seed=13)
    (folder / "card-000-boom.jpg").write_bytes((folder / "card-000.jpg").read_bytes() + b"\0")
    monkeypatch.setattr(batch_module, "process_page", crashing_process_page)
    with open_store(tmp_path / "c.sqlite", writer=True) as store:
        summary = run_batch(iter_pages([str(folder)]), store, layout, score=stub_score, workers=2)
        rows = {Path(s.row.source).name: s for s in store.iter_rows(run_id=summary.run_id)}
    monkeypatch.undo()
    crashed = rows["card-000-boom.jpg"]
    assert crashed.row.flags == (WORKER_CRASHED,) and "running the batch again retries it once" in crashed.message
    assert rows["card-001.jpg"].row.status == "ok"
    run = scan(tmp_path, key_path, "in", db="c.sqlite", workers=1)  # the decoder does not crash now
    run.assert_clean()
    assert "read 1, copies 0, already stored 2" in run.stdout and run.returncode == 0
    assert [r["flags"] for r in run.rows if "card-000" in r["source"]] == ["duplicate_code"] * 2  # now read
    again = scan(tmp_path, key_path, "in", db="c.sqlite", workers=1)
    assert "read 0, copies 0, already stored 3" in again.stdout
