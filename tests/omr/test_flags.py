"""The flag vocabulary: the README's table, and the one status decision."""

import re
from pathlib import Path

import pytest

from omr.flags import INFO_FLAGS, STATUS_OF, Flag, decide_status

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_table() -> dict[str, str]:
    """Flag name -> the status column of the README's flag table."""
    text = README.read_text(encoding="utf-8")
    rows = {}
    # the page rows' table, then the candidates' (every candidate flag means review)
    for header in ("| flag | status | meaning |", "| candidate flag | meaning |"):
        table = text[text.index(header) :].split("\n\n", 1)[0]
        for line in table.splitlines()[2:]:
            cells = [c.strip() for c in line.strip("|").split("|")]
            for name in re.findall(r"`([a-z_0-9]+)(?::[^`]*)?`", cells[0]):
                rows[name] = cells[1] if header.startswith("| flag") else "review"
    return rows


def test_every_flag_of_the_readme_table_is_in_the_vocabulary_with_its_status():
    table = _readme_table()
    assert len(table) >= 25
    for name, status in table.items():
        assert name in {f.value for f in Flag}, name
        assert STATUS_OF[Flag(name)] in status.split("/"), (name, status)


def test_the_vocabulary_holds_nothing_the_readme_does_not_explain():
    table = _readme_table()
    unexplained = {f.value for f in Flag} - set(table) - {"scoring", "barcode_library"}
    assert not unexplained


@pytest.mark.parametrize(
    ("flags", "status"),
    [
        ((), "ok"),
        (("rotated:180", "mirrored", "bitonal", "barcode_unreadable", "barcode_off_box"), "ok"),
        (("rotated:180", "ambiguous:1"), "review"),
        (("registration_local:1-10",), "review"),
        (("duplicate_code",), "review"),
        (("markers_not_found",), "error"),
        (("ambiguous:1", "internal_error"), "error"),
        (("a_flag_nobody_taught_us",), "review"),
    ],
)
def test_the_status_is_the_worst_any_flag_means(flags, status):
    assert decide_status(flags) == status


def test_a_status_given_is_never_lowered():
    assert decide_status(("rotated:90",), at_least="review") == "review"
    assert decide_status(("duplicate_code",), at_least="error") == "error"


def test_the_info_flags_are_the_ok_ones():
    assert INFO_FLAGS == {f for f, s in STATUS_OF.items() if s == "ok"}
