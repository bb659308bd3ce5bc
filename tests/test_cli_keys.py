"""`omr key add|list|diff` and `omr scan --key` on a store with another key (issue 15, issue 16 item 7)."""

import csv
import json

import pytest
from click.testing import CliRunner

from omr.cli import cli
from omr.layout import load_layout
from tests.omr.batch_helpers import write_cards

BASE = {
    "exam": "LEK",
    "session": "2026-09",
    "questions": 200,
    "versions": {"A": {"key": "ABCDE" * 40}},
    "pass_percent": 56,
}


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scans")
    write_cards(folder / "one", 2, load_layout(), seed=7)
    write_cards(folder / "two", 2, load_layout(), seed=8)
    return folder


def write_key(path, **changes):
    path.write_text(json.dumps({**BASE, **changes}))
    return path


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_scan_with_another_key_rescores_the_whole_store(scans, tmp_path):
    db = tmp_path / "r.sqlite"
    k1, k2 = write_key(tmp_path / "k1.json"), write_key(tmp_path / "k2.json", annulled=[1, 2, 3, 4, 5])
    first = invoke("scan", scans / "one", "--key", k1, "--db", db, "--workers", 1)
    assert first.exit_code == 0 and "key revision" not in first.output  # a new store takes its key quietly
    second = invoke(
        "scan", scans / "two", "--key", k2, "--db", db, "--workers", 1, "--out", tmp_path / "two.csv"
    )
    assert second.exit_code == 0, second.output
    assert (
        f"key revision 2 added (by scan: omr scan --key {k2}); the store was scored with revision 1"
        in second.output
    )
    assert "re-scored every stored page with key revision 2: rescored 2 rows" in second.output
    invoke("export", "--db", db, "--out", tmp_path / "all.csv")
    rows = read_csv(tmp_path / "all.csv")
    assert len(rows) == 4 and {r["max_points"] for r in rows} == {"195"}  # no page kept the old key
    assert sum(int(rows[0][c]) for c in rows[0] if c.startswith("correct:")) == int(rows[0]["correct"])
    assert {r["max_points"] for r in read_csv(tmp_path / "two.csv")} == {"195"}
    listed = invoke("key", "list", "--db", db)
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].startswith("1  ") and "by scan: omr scan --key" in lines[0]
    assert lines[2].startswith("2 (current)  ") and "max points 195" in lines[3]
    assert "4 pages scored with it" in lines[3] and "0 pages scored with it" in lines[1]
    third = invoke("scan", scans / "two", "--key", k2, "--db", db, "--workers", 1, "--by", "x")
    assert "key revision" not in third.output  # same key: nothing added, nothing re-scored


def test_key_add_and_diff(scans, tmp_path):
    db = tmp_path / "r.sqlite"
    k1 = write_key(tmp_path / "k1.json")
    invoke("scan", scans / "one", "--key", k1, "--db", db, "--workers", 1)
    letters = "ABCDE" * 40
    k2 = write_key(
        tmp_path / "k2.json",
        annulled=[17, 133],
        accepted={"45": "BD"},
        versions={"A": {"key": "C" + letters[1:]}},
    )
    result = invoke(
        "key",
        "add",
        "--db",
        db,
        k2,
        "--by",
        "Komisja egzaminacyjna",
        "--reason",
        "objections decided 2026-10-02",
    )
    assert result.exit_code == 0, result.output
    assert "key revision 2 added (by Komisja egzaminacyjna: objections decided 2026-10-02)" in result.output
    assert "rescored 2 rows" in result.output and "max points 200 → 198" in result.output
    same = invoke("key", "add", "--db", db, k2, "--by", "a", "--reason", "b")
    assert "is the current key revision 2 already; nothing added" in same.output
    diff = invoke("key", "diff", "--db", db, 1, 2)
    assert diff.exit_code == 0
    assert diff.output.splitlines() == [
        "revision 1 -> 2: 4 changes",
        "  annulled: 17, 133",
        "  accepted 45: - -> BD",
        "  version A letters (master numbers): 1: A -> C",
        "  max points: 200 -> 198",
    ]
    assert invoke("key", "diff", "--db", db, 2, 2).output.startswith("revision 2 -> 2: no difference")
    missing = invoke("key", "diff", "--db", db, 1, 9)
    assert missing.exit_code == 2 and "has no key revision 9 (it has 1, 2)" in missing.output
    needs_who = invoke("key", "add", "--db", db, k2)
    assert needs_who.exit_code == 2 and "Missing option '--by'" in needs_who.output


def test_rescore_db_records_a_revision(scans, tmp_path):
    db = tmp_path / "r.sqlite"
    invoke("scan", scans / "one", "--key", write_key(tmp_path / "k1.json"), "--db", db, "--workers", 1)
    result = invoke(
        "rescore",
        "--db",
        db,
        "--key",
        write_key(tmp_path / "k2.json", annulled=[9]),
        "--by",
        "examiner",
        "--reason",
        "9 annulled",
    )
    assert result.exit_code == 0, result.output
    assert "key revision 2 added (by examiner: 9 annulled)" in result.output
    assert "rescored 2 rows" in result.output
    assert "2 (current)" in invoke("key", "list", "--db", db).output
