"""Hostile results files: `omr rescore` on a CSV someone edited (issue 16, item 16)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from scoring import RESULT_COLUMNS, read_csv, read_jsonl
from tests.hostile.test_environment_faults import KEY, run_main

GOOD = {"source": "s/a.jpg", "page": "1", "status": "ok", "code_number": "012345674", "version": "A",
        "responses": "ABCDE" * 40, "correct": "200", "max_points": "200", "percent": "100.00", "passed": "true",
        "flags": ""}


def write(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=RESULT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_rescore_derives_status_and_flags_from_an_edited_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "key.json"
    key.write_text(json.dumps(KEY), encoding="utf-8")
    doubt = "AB?DE" + "ABCDE" * 39
    rows = [
        GOOD,
        {**GOOD, "source": "s/doubt.jpg", "responses": doubt},  # edited to ok, its '?' kept
        {**GOOD, "source": "s/luhn.jpg", "code_number": "012345675"},
        {**GOOD, "source": "s/zero.jpg", "code_number": "12345674"},  # a spreadsheet ate the zero
        {**GOOD, "source": "s/letter.jpg", "responses": "ABCDX" + "ABCDE" * 39},
    ]
    results = write(tmp_path / "edited.csv", rows)
    code, out, _ = run_main(monkeypatch, capsys, "rescore", results, "--key", key, "--out", tmp_path / "new.csv")
    assert code == 0
    assert "ok 1, review 4, error 0" in out
    got = {r.source: r for r in read_csv(tmp_path / "new.csv")}
    assert (got["s/a.jpg"].status, got["s/a.jpg"].correct) == ("ok", 200)
    assert (got["s/doubt.jpg"].status, got["s/doubt.jpg"].flags, got["s/doubt.jpg"].correct) == (
        "review", ("ambiguous:3",), 199)
    assert (got["s/luhn.jpg"].status, got["s/luhn.jpg"].flags) == ("review", ("check_digit",))
    assert (got["s/zero.jpg"].status, got["s/zero.jpg"].flags) == ("review", ("code_unreadable",))
    letter = got["s/letter.jpg"]
    assert (letter.status, letter.flags) == ("review", ("responses_invalid:5",))
    assert (letter.correct, letter.max_points, letter.percent, letter.passed) == (None, None, None, None)


@pytest.mark.parametrize("column", ["source", "responses", "code_number", "flags"])
def test_a_nul_in_any_cell_is_refused_naming_line_and_column(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], column: str) -> None:
    key = tmp_path / "key.json"
    key.write_text(json.dumps(KEY), encoding="utf-8")
    value = GOOD[column] or "rotated:90"
    results = write(tmp_path / "nul.csv", [GOOD, {**GOOD, column: value[:2] + "\x00" + value[2:]}])
    code, _, err = run_main(monkeypatch, capsys, "rescore", results, "--key", key, "--out", tmp_path / "new.csv")
    assert code == 2
    assert err.startswith(f"error: ScoringError: {results} line 3: column {column!r}: a NUL character at "
                          "position 3")
    assert not (tmp_path / "new.csv").exists()


def test_a_nul_in_json_lines_is_refused_too(tmp_path: Path) -> None:
    from omr.errors import ScoringError
    from scoring import read_jsonl

    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({**GOOD, "page": 1, "source": "a\x00.jpg"}) + "\n", encoding="utf-8")
    with pytest.raises(ScoringError, match=r"r\.jsonl line 1: column 'source': a NUL character at position 2"):
        read_jsonl(path)


# -- CSV injection (issue 16, item 15) ------------------------------------------------------

#: what a spreadsheet (Excel, LibreOffice, Google Sheets) takes for the start of a formula
SPREADSHEET_FORMULA = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def evaluated(cell: str) -> bool:
    """The spreadsheet rule: a cell is a formula when, after any spaces, it starts with
    one of `SPREADSHEET_FORMULA`; a leading apostrophe makes it text."""
    return not cell.startswith("'") and cell.lstrip(" ").startswith(SPREADSHEET_FORMULA)


HOSTILE_NAMES = ["=HYPERLINK(\"x\",\"y\").jpg", "+1+1.jpg", "-2+3+cmd|' -C calc'!A0.jpg", "@SUM(A1).jpg",
                 "\t=1.jpg", "\r=1.jpg", " =1.jpg", "＝1.jpg", "'=1.jpg", "''@x.jpg", "'quoted'.jpg"]


def test_no_exported_cell_is_a_formula_and_the_file_round_trips(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from omr.layout import load_layout
    from tests.omr.batch_helpers import write_cards

    monkeypatch.chdir(tmp_path)
    (tmp_path / "key.json").write_text(json.dumps(KEY), encoding="utf-8")
    cards = write_cards(tmp_path / "cards", 2, load_layout(), seed=4)
    cards[0].rename(tmp_path / "-card.jpg")
    cards[1].rename(tmp_path / "@card.jpg")
    for i, name in enumerate(HOSTILE_NAMES):
        (tmp_path / name).write_bytes(b"not an image %d" % i)  # error rows: the message quotes the name
    names = ["-card.jpg", "@card.jpg", *HOSTILE_NAMES]
    code, _, _ = run_main(monkeypatch, capsys, "scan", "--key", "key.json", "--out", "r.csv", "--jsonl", "r.jsonl",
                          "--workers", 1, "--", *names)
    assert code == 1  # the hostile names are not images
    with open("r.csv", newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    header, body = table[0], table[1:]
    assert len(body) == len(names)
    responses = header.index("responses")
    for cells in body:
        for column, cell in enumerate(cells):
            if column == responses and set(cell) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ-*?"):
                continue  # spec §6's 200 characters, written as they are (module docstring of scoring.export)
            assert not evaluated(cell), (header[column], cell)
    assert sum(evaluated(c) for c in header) == 0
    read = read_csv("r.csv")
    assert sorted(r.source for r in read) == sorted(names)
    assert read == read_jsonl("r.jsonl")  # the CSV reads back what the JSON Lines (written raw) hold
    cards_read = {r.source: r for r in read if r.status != "error"}
    assert set(cards_read) == {"-card.jpg", "@card.jpg"}
    assert all(len(r.responses) == 200 for r in cards_read.values())
    code, _, _ = run_main(monkeypatch, capsys, "rescore", "r.csv", "--key", "key.json", "--out", "again.csv")
    assert code == 0
    assert read_csv("again.csv") == read
    assert Path("again.csv").read_text(encoding="utf-8") == Path("r.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize("responses", ["=1+2", "+A", "@A", "-A-B(", " -1", "\t-", "-a"])
def test_responses_that_are_not_responses_are_quoted_like_text(tmp_path: Path, responses: str) -> None:
    from scoring import ResultRow, write_csv

    write_csv([ResultRow(source="a.jpg", page=1, status="review", responses=responses)], tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="", encoding="utf-8") as fh:
        (_, cells) = list(csv.reader(fh))
    assert not evaluated(cells[5]) and cells[5] == "'" + responses
    assert read_csv(tmp_path / "r.csv")[0].responses == responses
