import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from omr.cli import cli
from omr.layout import load_layout
from tests.omr.batch_helpers import blank_page, write_cards, write_key


@pytest.fixture(scope="module")
def layout():
    return load_layout()


@pytest.fixture(scope="module")
def key_path(tmp_path_factory):
    return write_key(tmp_path_factory.mktemp("key"))


@pytest.fixture(scope="module")
def scans(tmp_path_factory, layout):
    folder = tmp_path_factory.mktemp("scans")
    write_cards(folder, 4, layout, seed=5)
    blank_page(folder / "blank.png")
    (folder / "empty.jpg").write_bytes(b"")
    return folder


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_scan_writes_one_row_per_page_and_exits_1_on_error_pages(scans, key_path, tmp_path):
    out, jsonl = tmp_path / "r.csv", tmp_path / "r.jsonl"
    result = invoke("scan", scans, "--key", key_path, "--out", out, "--jsonl", jsonl, "--workers", 1)
    assert result.exit_code == 1, result.output
    assert "scanned 6 pages" in result.output and "ok 4, review 0, error 2" in result.output
    rows = {os.path.basename(r["source"]): r for r in read_csv(out)}
    assert len(rows) == 6
    assert list(read_csv(out)[0])[:11] == ["source", "page", "status", "code_number", "version", "responses",
                                           "correct", "max_points", "percent", "passed", "flags"]
    from scoring import load_key
    from scoring.rows import detail_columns

    assert list(read_csv(out)[0])[11:] == ["message", "verified_by", "value_source",
                                            *detail_columns(load_key(key_path))]
    assert list(read_csv(out)[0])[14:18] == ["certificate", "correct:choroby wewnętrzne",
                                             "max_points:choroby wewnętrzne", "percent:choroby wewnętrzne"]
    card = rows["card-000.jpg"]
    fields = [name.split(":", 1)[1] for name in card if name.startswith("correct:")]
    assert len(fields) == 10 and sum(int(card[f"correct:{f}"]) for f in fields) == int(card["correct"])
    assert sum(int(card[f"max_points:{f}"]) for f in fields) == 200
    assert card["certificate"] == (f"z wynikiem {card['percent']}% ({card['correct']} "
                                   f"{card['certificate'].split()[4]} / 200 możliwych)")
    assert rows["empty.jpg"]["certificate"] == "" and rows["empty.jpg"]["correct:pediatria"] == ""
    assert card["status"] == "ok" and card["page"] == "1" and len(card["responses"]) == 200
    assert card["max_points"] == "200" and card["passed"] in ("true", "false")
    assert rows["empty.jpg"]["status"] == "error" and rows["empty.jpg"]["flags"] == "image_unreadable"
    assert rows["empty.jpg"]["correct"] == ""
    assert "empty.jpg: empty file (0 bytes)" in rows["empty.jpg"]["message"] and card["message"] == ""
    assert rows["blank.png"]["flags"] in ("page_not_found", "markers_not_found")
    assert len(jsonl.read_text().splitlines()) == 6


def test_the_console_script_exits_1_when_a_page_is_an_error(scans, key_path, tmp_path, monkeypatch, capsys):
    from omr.cli import main

    monkeypatch.setattr(sys, "argv", ["omr", "scan", str(scans / "empty.jpg"), "--key", str(key_path),
                                      "--out", str(tmp_path / "r.csv"), "--workers", "1"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    assert "error 1" in capsys.readouterr().out


def test_all_good_pages_exit_0(scans, key_path, tmp_path):
    result = invoke("scan", scans / "card-00[0-2].jpg", "--key", key_path, "--out", tmp_path / "r.csv",
                    "--workers", 1)
    assert result.exit_code == 0, result.output
    assert "scanned 3 pages" in result.output


def test_db_export_and_resume(scans, key_path, tmp_path):
    db, out = tmp_path / "r.sqlite", tmp_path / "scan.csv"
    first = invoke("scan", scans, "--key", key_path, "--db", db, "--out", out, "--workers", 2)
    assert "read 6" in first.output
    again = invoke("scan", scans, "--key", key_path, "--db", db, "--workers", 1)
    assert "scanned 6 pages" in again.output and "already stored 6" in again.output
    exported = invoke("export", "--db", db, "--out", tmp_path / "export.csv")
    assert exported.exit_code == 0 and "exported 6 pages (ok 4, review 0, error 2)" in exported.output
    assert read_csv(tmp_path / "export.csv") == read_csv(out)


def test_rescore_db_in_place(scans, key_path, tmp_path):
    db = tmp_path / "r.sqlite"
    invoke("scan", scans, "--key", key_path, "--db", db, "--workers", 1)
    new_key = tmp_path / "new.json"
    data = json.loads(key_path.read_text())
    new_key.write_text(json.dumps({**data, "annulled": [1, 2, 3, 4, 5]}))
    result = invoke("rescore", "--db", db, "--key", new_key, "--out", tmp_path / "new.csv")
    assert result.exit_code == 0, result.output
    assert "rescored 6 rows: 4 changed score" in result.output
    assert "re-scored: ok 4, review 0, error 2" in result.output
    rows = read_csv(tmp_path / "new.csv")
    assert {r["max_points"] for r in rows if r["status"] == "ok"} == {"195"}
    exported = invoke("export", "--db", db, "--out", tmp_path / "export.csv")
    assert exported.exit_code == 0 and read_csv(tmp_path / "export.csv") == rows


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scan", "nope/*.jpg", "--key", "{key}", "--out", "x.csv"], "nope/*.jpg: no such file or folder"),
        (["scan", "{scans}", "--key", "{key}"], "nothing to write: give --out, --jsonl or --db"),
        (["export", "--db", "{key}"], "nothing to write"),
        (["rescore", "--key", "{key}", "--out", "x.csv"], "give RESULTS (a results CSV or JSON Lines"),
        (["rescore", "{key}", "--db", "{key}", "--key", "{key}"], "give RESULTS or --db, not both"),
    ],
)
def test_usage_errors_exit_2(scans, key_path, args, message):
    result = CliRunner().invoke(cli, [a.format(key=key_path, scans=scans) for a in args])
    assert result.exit_code == 2 and message in result.output


def test_progress_bar_on_request(scans, key_path, tmp_path):
    result = invoke("scan", scans, "--key", key_path, "--out", tmp_path / "r.csv", "--workers", 1,
                    "--progress")
    assert "6/6" in result.output and "error=2" in result.output


def _stored(db) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            return con.execute("SELECT count(*) FROM pages").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_a_batch_killed_with_sigkill_resumes_to_the_same_results(layout, key_path, tmp_path):
    folder = tmp_path / "in"
    write_cards(folder, 36, layout, seed=7, dpi=120)
    blank_page(folder / "blank.png")
    (folder / "cut.jpg").write_bytes((folder / "card-000.jpg").read_bytes()[:5000])
    total = 38
    ref = invoke("scan", folder, "--key", key_path, "--db", tmp_path / "ref.sqlite",
                 "--out", tmp_path / "ref.csv", "--workers", 1)
    assert f"scanned {total} pages" in ref.output

    db = tmp_path / "killed.sqlite"
    cmd = [sys.executable, "-c", "from omr.cli import main; main()", "scan", str(folder),
           "--key", str(key_path), "--db", str(db), "--workers", "2"]
    log = tmp_path / "killed.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while _stored(db) < 6:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the batch stored nothing within 60 s"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its pool workers
        except ProcessLookupError:
            pass
    partial = _stored(db)
    assert 6 <= partial < total, f"killed after {partial} of {total} pages: kill earlier"

    resumed = invoke("scan", folder, "--key", key_path, "--db", db, "--out", tmp_path / "resumed.csv",
                     "--workers", 1)
    assert f"already stored {partial}" in resumed.output and f"read {total - partial}" in resumed.output
    assert resumed.exit_code == 1  # the blank page and the cut JPEG
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*), count(DISTINCT source || '#' || page) FROM pages").fetchone() == (
        total, total)
    assert read_csv(tmp_path / "resumed.csv") == read_csv(tmp_path / "ref.csv")
