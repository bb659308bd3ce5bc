"""Hostile results files: `omr rescore` on a CSV someone edited (issue 16, item 16)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from scoring import RESULT_COLUMNS, read_csv
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
