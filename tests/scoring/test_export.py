"""Results files: the spec §6 CSV and JSON Lines, written and read back exactly."""

from __future__ import annotations

import csv
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omr.errors import ScoringError
from scoring import RESULT_COLUMNS, ResultRow, read_csv, read_jsonl, read_results, write_csv, write_jsonl

HEADER = ",".join(RESULT_COLUMNS)
ROWS = [
    ResultRow(source="scans/a b.jpg", page=1, status="ok", code_number="012345674", version="A",
              responses="-AB*?E", flags=("rotated:180",), correct=111, max_points=198,
              percent=Decimal("56.06"), passed=True),
    ResultRow(source='odd,"name".tif', page=3, status="review", code_number="", version="",
              responses="=A+B-@", flags=("ambiguous:17,45", "version_missing"), correct=0, max_points=198,
              percent=Decimal("0.00"), passed=False),
    ResultRow(source="broken.jpg", page=1, status="error", flags=("image_unreadable",)),
]


def test_csv_layout(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    assert write_csv(ROWS, path) == 3
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(RESULT_COLUMNS)
    assert lines[1] == "scans/a b.jpg,1,ok,012345674,A,-AB*?E,111,198,56.06,true,rotated:180"
    # responses only of capitals and -*? as they are (spec §6); anything else a formula could be is quoted
    assert lines[2] == ('"odd,""name"".tif",3,review,,,\'=A+B-@,0,198,0.00,false,'
                        '"ambiguous:17,45;version_missing"')
    assert lines[3] == "broken.jpg,1,error,,,,,,,,image_unreadable"


def test_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_csv(ROWS, path)
    assert read_csv(path) == ROWS
    assert read_results(path) == ROWS


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    assert write_jsonl(ROWS, path) == 3
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first == {"source": "scans/a b.jpg", "page": 1, "status": "ok", "code_number": "012345674",
                     "version": "A", "responses": "-AB*?E", "correct": 111, "max_points": 198,
                     "percent": "56.06", "passed": True, "flags": "rotated:180"}
    assert read_jsonl(path) == ROWS
    assert read_results(path) == ROWS


def test_extra_columns_are_written_after_the_required_ones_and_kept(tmp_path: Path) -> None:
    rows = [ResultRow(source="a", page=1, status="ok", extra=(("certificate", "wynik 1.00%"), ("room", "7"))),
            ResultRow(source="b", page=1, status="error")]
    path = tmp_path / "r.csv"
    write_csv(rows, path)
    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header == [*RESULT_COLUMNS, "certificate", "room"]
    back = read_csv(path)
    assert back[0] == rows[0]
    assert back[1].extra == (("certificate", ""), ("room", ""))
    jl = tmp_path / "r.jsonl"
    write_jsonl(rows, jl)
    assert read_jsonl(jl)[0] == rows[0]


def test_a_row_with_a_column_the_header_lacks_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("old", encoding="utf-8")
    rows = [ResultRow(source="a", page=1, status="ok"),
            ResultRow(source="b", page=1, status="ok", extra=(("room", "7"),))]
    with pytest.raises(ScoringError, match=r"row 2 \(b page 1\) has column 'room' that the header"):
        write_csv(rows, path)
    assert path.read_text(encoding="utf-8") == "old"
    assert list(tmp_path.iterdir()) == [path]
    write_csv(rows, path, extra_columns=["room"])
    assert read_csv(path)[1].extra == (("room", "7"),)


def test_columns_in_any_order_and_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    cols = list(reversed(RESULT_COLUMNS))
    values = {"source": "a.jpg", "page": "2", "status": "ok", "code_number": "000000000", "version": "B",
              "responses": "AB", "correct": "1", "max_points": "2", "percent": "50.00", "passed": "true",
              "flags": ""}
    text = ",".join(cols) + "\n" + ",".join(values[c] for c in cols) + "\n"
    path.write_text("\ufeff" + text, encoding="utf-8")
    (r,) = read_csv(path)
    assert (r.source, r.page, r.code_number, r.percent, r.passed, r.flags) == (
        "a.jpg", 2, "000000000", Decimal("50.00"), True, ())


@pytest.mark.parametrize(
    ("header", "line", "message"),
    [
        ("source,page,status", "a,1,ok", r"missing columns code_number, version, responses"),
        (HEADER, "a,1,ok,,,,1,2,150.00,true,", r"column 'percent': '150.00' is not a percentage"),
        (",".join(RESULT_COLUMNS), "a,x,ok,,,,,,,,", r"line 2: column 'page': 'x' is not a whole number"),
        (",".join(RESULT_COLUMNS), "a,1,fine,,,,,,,,", r"line 2: column 'status': 'fine': expected one of"),
        (HEADER, "a,1,ok,,,,1,2,50.00,yes,", r"column 'passed': 'yes': expected true or false"),
        (",".join(RESULT_COLUMNS), "a,1,ok,,,,1,2,fifty,true,", r"column 'percent': 'fifty' is not a number"),
        (",".join(RESULT_COLUMNS), "a,1,ok", r"line 2: 3 cells, but the header has 11"),
        (",".join(RESULT_COLUMNS) + ",page", "", r"column 'page' appears more than once"),
        ("", "", r"empty file"),
    ],
)
def test_broken_csv_names_file_line_and_column(tmp_path: Path, header: str, line: str, message: str) -> None:
    path = tmp_path / "r.csv"
    path.write_text(f"{header}\n{line}\n" if header else "", encoding="utf-8")
    with pytest.raises(ScoringError, match=message):
        read_csv(path)


def test_unreadable_results(tmp_path: Path) -> None:
    with pytest.raises(ScoringError, match=r"cannot read results .*none\.csv"):
        read_csv(tmp_path / "none.csv")
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"source": "a"}\n[1]\n', encoding="utf-8")
    with pytest.raises(ScoringError, match=r"r\.jsonl line 1: missing page, status"):
        read_jsonl(bad)
    bad.write_text("{\n", encoding="utf-8")
    with pytest.raises(ScoringError, match=r"r\.jsonl line 1: not JSON"):
        read_jsonl(bad)


# (a NUL is refused on reading: no file name or text of ours holds one)
texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\x00"), max_size=12)
rows = st.builds(
    ResultRow,
    source=texts, page=st.integers(1, 10**6), status=st.sampled_from(["ok", "review", "error"]),
    code_number=st.text("0123456789", max_size=9), version=st.text("ABCD", max_size=1),
    responses=st.text("ABCDE-*?=+@ ", max_size=30),
    flags=st.lists(st.text("abcdefghijklmnopqrstuvwxyz_:,0123456789", min_size=1, max_size=12), max_size=3)
    .map(tuple),
    correct=st.none() | st.integers(0, 200), max_points=st.none() | st.integers(0, 200),
    percent=st.none() | st.integers(0, 10000).map(lambda h: Decimal(h).scaleb(-2)),
    passed=st.none() | st.booleans(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(rows, max_size=5))
def test_any_rows_round_trip(tmp_path: Path, rs: list[ResultRow]) -> None:
    write_csv(rs, tmp_path / "r.csv")
    write_jsonl(rs, tmp_path / "r.jsonl")
    assert read_csv(tmp_path / "r.csv") == rs
    assert read_jsonl(tmp_path / "r.jsonl") == rs


@pytest.mark.parametrize("unnamed", [True, False], ids=["unnamed-file", "exclusive-name"])
def test_a_planted_link_at_the_old_temporary_name_is_not_followed(tmp_path, monkeypatch, unnamed):
    from scoring import export as export_module

    if not unnamed:  # a file system without O_TMPFILE
        monkeypatch.delattr(export_module.os, "O_TMPFILE")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / ".r.csv.partial").symlink_to(victim)
    write_csv([ResultRow(source="a.jpg", page=1, status="error")], tmp_path / "r.csv")
    assert victim.read_text() == "keep me"
    assert read_csv(tmp_path / "r.csv")[0].source == "a.jpg"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.csv.partial", "r.csv", "victim.txt"]
    assert oct((tmp_path / "r.csv").stat().st_mode & 0o777) == oct(0o644 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_write_leaves_neither_a_file_nor_a_temporary_one(tmp_path):
    def rows():
        yield ResultRow(source="a.jpg", page=1, status="error")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        write_csv(rows(), tmp_path / "r.csv")
    assert list(tmp_path.iterdir()) == []


def test_a_name_that_is_not_utf8_is_exported(tmp_path):
    odd = os.fsdecode(b"card-\xff.jpg")
    row = ResultRow(source=odd, page=1, status="error", flags=(f"duplicate_page:{odd}",))
    write_csv([row], tmp_path / "r.csv")
    text = (tmp_path / "r.csv").read_bytes().decode("utf-8")  # still UTF-8
    assert "card-\\xff.jpg" in text
    write_jsonl([row], tmp_path / "r.jsonl")
    assert read_jsonl(tmp_path / "r.jsonl")[0].source == odd  # lossless
