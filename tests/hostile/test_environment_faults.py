"""Environment faults through the console script: one clear message, no traceback, the
README's exit codes (0 ok, 1 a page error, 2 usage, 3 environment fault, 130 interrupted).

Faults are made for real where that is portable (a process file size limit for a full
disk, ``/dev/full``, random bytes for a corrupt store, SQLite's own read-only mode);
the tests run as root on CI, where permission bits do not stop a write.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import omr.batch
import omr.store
from omr.cli import main
from omr.layout import load_layout
from scoring import ResultRow, read_csv, write_csv
from tests.hostile.conftest import stored_pages
from tests.omr.batch_helpers import code_number, write_cards

KEY = {"exam": "LEK", "session": "2026-09", "questions": 200, "versions": {"A": {"key": "ABCDE" * 40}}}


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six cards and a key."""
    folder = tmp_path_factory.mktemp("faults")
    write_cards(folder / "in", 6, load_layout(), seed=11)
    (folder / "key.json").write_text(json.dumps(KEY), encoding="utf-8")
    return folder


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: object
             ) -> tuple[int, str, str]:
    """``omr ARGS...`` through the console script in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["omr", *(str(a) for a in args)])
    with pytest.raises(SystemExit) as info:
        main()
        sys.exit(0)  # main returns normally on success
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    code = info.value.code
    return (0 if code is None else int(code)), out, err


def run_limited(args: list[str], max_file_bytes: int) -> subprocess.CompletedProcess[str]:
    """``omr ARGS...`` in a subprocess that may write no file beyond ``max_file_bytes``
    (a full disk, portably: writes past the limit fail with EFBIG, SIGXFSZ ignored)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", "from omr.cli import main; main()", *args],
                          capture_output=True, text=True, preexec_fn=limit, env=env, timeout=120)


def results_csv(path: Path, n: int) -> Path:
    rows = [ResultRow(source=f"scans/{i:04d}.jpg", page=1, status="ok", code_number=code_number(i), version="A",
                      responses="ABCDE" * 40) for i in range(n)]
    write_csv(rows, path)
    return path


# -- the store ----------------------------------------------------------------------------


def test_a_full_disk_under_the_store_is_exit_3_and_the_rerun_resumes(batch: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    args = ["scan", str(batch / "in"), "--key", str(batch / "key.json"), "--db", str(db), "--workers", "1"]
    full = run_limited(args, 60_000)  # the schema fits, the pages do not
    assert full.returncode == 3, full.stderr
    assert "Traceback" not in full.stderr
    assert full.stderr.startswith(f"error: StoreError: {db}: cannot be written (disk I/O error)")
    assert "run the same command again" in full.stderr and len(full.stderr.strip().splitlines()) == 1
    again = run_limited(args, 10_000_000)
    assert again.returncode == 0, again.stderr
    assert "scanned 6 pages" in again.stdout
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*), count(DISTINCT source) FROM pages").fetchone() == (6, 6)
    con.close()


def test_a_corrupt_store_is_exit_3_naming_the_file(batch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "junk.sqlite"
    db.write_bytes(os.urandom(8192))
    code, _, err = run_main(monkeypatch, capsys, "scan", batch / "in", "--key", batch / "key.json", "--db", db,
                            "--workers", 1)
    assert code == 3
    assert err.startswith(f"error: StoreError: {db}: not a usable results store (file is not a database)")
    assert "give another --db" in err
    code, _, err = run_main(monkeypatch, capsys, "export", "--db", db, "--out", tmp_path / "r.csv")
    assert code == 3 and "not a usable results store" in err
    assert not (tmp_path / "r.csv").exists()


def test_a_store_damaged_inside_is_exit_3(batch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.sqlite"
    assert run_main(monkeypatch, capsys, "scan", batch / "in", "--key", batch / "key.json", "--db", db,
                    "--workers", 1)[0] == 0
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(db.read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)  # every page after the header's
    db.write_bytes(bytes(data))
    code, _, err = run_main(monkeypatch, capsys, "export", "--db", db, "--out", tmp_path / "r.csv")
    assert code == 3
    assert err.startswith(f"error: StoreError: {db}: not a usable results store")


def test_a_read_only_store_is_exit_3(batch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.sqlite"
    assert run_main(monkeypatch, capsys, "scan", batch / "in", "--key", batch / "key.json", "--db", db,
                    "--workers", 1)[0] == 0
    real_connect = sqlite3.connect

    def read_only(path: object, **kwargs: object) -> sqlite3.Connection:
        # SQLite's own read-only open: what a read-only file, folder or mount gives (root
        # ignores permission bits, so chmod cannot make one here)
        return real_connect(f"file:{path}?mode=ro", uri=True, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(omr.store.sqlite3, "connect", read_only)
    code, _, err = run_main(monkeypatch, capsys, "scan", batch / "in", "--key", batch / "key.json", "--db", db,
                            "--workers", 1)
    assert code == 3
    assert err.startswith(f"error: StoreError: {db}: cannot be written, it is read-only (attempt to write a "
                          "readonly database)")
    code, _, err = run_main(monkeypatch, capsys, "rescore", "--db", db, "--key", batch / "key.json")
    assert code == 3 and "read-only" in err


def test_store_faults_name_the_store_and_the_remedy() -> None:
    path = Path("r.sqlite")
    for text, says in [("database or disk is full", "the disk is full"),
                       ("attempt to write a readonly database", "read-only"),
                       ("file is not a database", "not a usable results store"),
                       ("database disk image is malformed", "not a usable results store"),
                       ("database is locked", "in use by another process"),
                       ("unable to open database file", "check that its folder exists"),
                       ("disk I/O error", "the disk may be full")]:
        message = str(omr.store.store_fault(path, sqlite3.OperationalError(text)))
        assert message.startswith(f"r.sqlite: {says}") or says in message, (text, message)
        assert text in message


# -- output files -------------------------------------------------------------------------


def test_a_results_file_over_a_full_disk_is_exit_3_and_the_old_file_stays(tmp_path: Path) -> None:
    results = results_csv(tmp_path / "in.csv", 400)  # ~90 KB of CSV
    (tmp_path / "key.json").write_text(json.dumps(KEY), encoding="utf-8")
    out = tmp_path / "out.csv"
    out.write_text("the earlier results\n", encoding="utf-8")
    full = run_limited(["rescore", str(results), "--key", str(tmp_path / "key.json"), "--out", str(out)], 40_000)
    assert full.returncode == 3, full.stderr
    assert full.stderr.startswith(f"error: OutputError: cannot write results {out}: File too large")
    assert "Traceback" not in full.stderr
    assert out.read_text(encoding="utf-8") == "the earlier results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "key.json", "out.csv"]  # no .partial left


def test_a_device_is_written_in_place_and_a_full_one_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    results = results_csv(tmp_path / "in.csv", 50)
    (tmp_path / "key.json").write_text(json.dumps(KEY), encoding="utf-8")
    full = tmp_path / "full.csv"
    full.symlink_to("/dev/full")  # a link: were it replaced by a rename, /dev/full itself stays intact
    code, _, err = run_main(monkeypatch, capsys, "rescore", results, "--key", tmp_path / "key.json",
                            "--out", full)
    assert code == 3
    assert err.startswith(f"error: OutputError: cannot write results {full}: No space left on device: free "
                          "space on its disk")
    assert full.is_symlink() and full.is_char_device()
    assert not (tmp_path / ".full.csv.partial").exists()


@pytest.mark.parametrize(("where", "says"), [("missing/r.csv", "its folder does not exist"),
                                             ("in.csv/r.csv", "a part of the path is not a folder")])
def test_an_output_path_that_cannot_be_written_is_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str], where: str,
                                                         says: str) -> None:
    results = results_csv(tmp_path / "in.csv", 3)
    (tmp_path / "key.json").write_text(json.dumps(KEY), encoding="utf-8")
    code, _, err = run_main(monkeypatch, capsys, "rescore", results, "--key", tmp_path / "key.json",
                            "--jsonl", tmp_path / where)
    assert code == 3
    assert err.startswith(f"error: OutputError: cannot write results {tmp_path / where}: ") and says in err


# -- the exit-code table ------------------------------------------------------------------


def test_the_readme_exit_code_table(batch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    key = batch / "key.json"
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "bad-key.json").write_text('{"exam": "LEK", "versions": {"A": {"key": "AB"}}}', encoding="utf-8")
    (tmp_path / "bad-layout.json").write_text("{}", encoding="utf-8")
    (tmp_path / "x-key.json").write_text(json.dumps({**KEY, "versions": {"X": KEY["versions"]["A"]}}),
                                         encoding="utf-8")
    (tmp_path / "junk.sqlite").write_bytes(b"\x00junk" * 1000)
    results = results_csv(tmp_path / "r.csv", 3)
    cases = [
        (0, ["rescore", results, "--key", key, "--out", tmp_path / "o.csv"], ""),
        (1, ["scan", tmp_path / "empty.jpg", "--key", key, "--out", tmp_path / "o.csv", "--workers", 1], ""),
        (2, ["scan", batch / "in", "--key", key, "--out", tmp_path / "o.csv", "--workers", 0], "--workers"),
        (2, ["scan", batch / "in", "--key", tmp_path / "bad-key.json", "--out", tmp_path / "o.csv"],
         "error: AnswerKeyError: answer key"),
        (2, ["scan", batch / "in", "--key", key, "--layout", tmp_path / "bad-layout.json", "--out",
             tmp_path / "o.csv"], "error: LayoutError: "),
        (2, ["rescore", key, "--key", key, "--out", tmp_path / "o.csv"], "error: ScoringError: "),
        (2, ["rescore", results, "--key", tmp_path / "x-key.json", "--out", tmp_path / "o.csv"],
         "versions.X: 'X' is not a version of this card: the card's version labels are A, B, C, D"),
        (2, ["scan", batch / "in", "--key", tmp_path / "x-key.json", "--out", tmp_path / "o.csv"],
         "versions.X: 'X' is not a version of this card"),
        (3, ["export", "--db", tmp_path / "junk.sqlite", "--out", tmp_path / "o.csv"], "error: StoreError: "),
        (3, ["inspect", batch / "in" / "card-000.jpg", "--out", tmp_path / "no" / "o.png"],
         f"error: OutputError: cannot write overlay {tmp_path / 'no' / 'o.png'}: No such file or directory"),
        (3, ["calibrate", batch / "in", "--out", tmp_path / "no" / "t.json"],
         f"error: OutputError: cannot write thresholds {tmp_path / 'no' / 't.json'}: No such file"),
    ]
    for expected, args, says in cases:
        code, _, err = run_main(monkeypatch, capsys, *args)
        assert code == expected, (args, err)
        assert says in err


def test_ctrl_c_says_how_many_pages_are_stored_and_exits_130(
        batch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real = omr.batch.process_page
    calls = []

    def interrupted_at_the_fourth(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(omr.batch, "process_page", interrupted_at_the_fourth)
    monkeypatch.setattr(omr.batch, "WRITE_GROUP_PAGES", 1)  # each page committed as it is read
    db = tmp_path / "r.sqlite"
    args = ["scan", batch / "in", "--key", batch / "key.json", "--db", db, "--out", tmp_path / "r.csv",
            "--workers", 1]
    code, _, err = run_main(monkeypatch, capsys, *args)
    assert code == 130
    assert err.strip() == (f"interrupted: scan stopped: 3 pages of this run are stored in {db} (3 in the store); "
                           "no results file was written. Run the same command again to resume: stored pages "
                           "are not read again")
    assert not (tmp_path / "r.csv").exists()
    monkeypatch.setattr(omr.batch, "process_page", real)
    code, out, _ = run_main(monkeypatch, capsys, *args)
    assert code == 0 and "(read 3, copies 0, already stored 3)" in out
    assert len(read_csv(tmp_path / "r.csv")) == 6

    calls.clear()
    monkeypatch.setattr(omr.batch, "process_page", interrupted_at_the_fourth)
    code, _, err = run_main(monkeypatch, capsys, "scan", batch / "in", "--key", batch / "key.json",
                            "--out", tmp_path / "nodb.csv", "--workers", 1)
    assert code == 130 and "without --db nothing is kept" in err and "give --db FILE" in err


def test_sigterm_stops_a_scan_like_ctrl_c(batch: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    slow = ("import time, omr.batch as b; real = b.process_page\n"
            "def slow(*a, **k):\n    time.sleep(0.3); return real(*a, **k)\n"
            "b.process_page = slow; b.WRITE_GROUP_PAGES = 1\n"
            "from omr.cli import main; main()")
    proc = subprocess.Popen([sys.executable, "-c", slow, "scan", str(batch / "in"), "--key",
                             str(batch / "key.json"), "--db", str(db), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not stored_pages(db):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no page stored within 60 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.startswith("interrupted: scan stopped: ") and "Run the same command again to resume" in err
    assert "Traceback" not in err
    stored = int(err.split("scan stopped: ")[1].split()[0])
    assert stored == stored_pages(db) and 1 <= stored < 6




def test_a_key_for_a_store_is_checked_against_the_store_layouts_versions(
        batch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.sqlite"
    assert run_main(monkeypatch, capsys, "scan", batch / "in", "--key", batch / "key.json", "--db", db,
                    "--workers", 1)[0] == 0
    x_key = tmp_path / "x-key.json"
    x_key.write_text(json.dumps({**KEY, "versions": {"X": KEY["versions"]["A"]}}), encoding="utf-8")
    for args in (["key", "add", "--db", db, x_key, "--by", "anna", "--reason", "test"],
                 ["export", "--db", db, "--candidates", tmp_path / "c.csv", "--key", x_key]):
        code, _, err = run_main(monkeypatch, capsys, *args)
        assert code == 2, (args, err)
        assert "versions.X: 'X' is not a version of this card: the card's version labels are A, B, C, D" in err
