"""Candidates: cards of several parts joined by code number, scored as one card, anomalies flagged."""

from __future__ import annotations

import csv

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import AnswerKey, ResultRow, score_rows
from scoring.candidates import (
    PageRecord,
    join_candidates,
    score_part_pages,
    write_candidates_csv,
)
from tests.scoring.strategies import cohorts, key_dicts

KEY = AnswerKey.from_dict({"versions": {"A": {"key": "ABCDAB"}, "B": {"key": "BADCBA"}}, "pass_percent": 50})


def card(code="123456782", part=1, responses="AB", version="A", status="ok", source=None, **kw):
    return PageRecord(source=source or f"{code}-{part}.jpg", page=1, status=status, code_number=code,
                      version=version, responses=responses, part=part, **kw)


def join(cards, key=KEY, parts=3, questions=2):
    return join_candidates(cards, key, parts=parts, questions=questions)


def test_parts_in_any_order_join_in_part_order():
    (row,) = join([card(part=3, responses="AB"), card(part=1, responses="AB"), card(part=2, responses="CD")])
    assert (row.status, row.responses, row.version, row.flags) == ("ok", "ABCDAB", "A", ())
    assert (row.correct, row.max_points, row.percent, row.passed) == (6, 6, 100, True)
    assert row.pages == ("123456782-1.jpg#1", "123456782-2.jpg#1", "123456782-3.jpg#1")


def test_a_missing_part_is_flagged_and_not_scored():
    (row,) = join([card(part=1), card(part=3)])
    assert (row.status, row.flags, row.responses, row.correct, row.passed) == (
        "review", ("part_missing:2",), "", None, None)


def test_a_part_twice_is_flagged_and_not_scored():
    cards = [card(part=1), card(part=2, source="a.jpg"), card(part=2, source="b.jpg"), card(part=3)]
    (row,) = join(cards)
    assert (row.status, row.flags, row.correct) == ("review", ("part_duplicate:2",), None)
    assert len(row.pages) == 4


def test_parts_of_different_versions_are_flagged_and_not_scored():
    (row,) = join([card(part=1), card(part=2, version="B"), card(part=3)])
    assert (row.status, row.flags, row.correct, row.version) == ("review", ("version_mismatch",), None, "")


def test_a_card_whose_part_was_not_read_is_flagged():
    (row,) = join([card(part=1), card(part=2), card(part=3), card(part=None, source="x.jpg")])
    assert row.flags == ("part_unknown:1",) and row.correct is None


def test_every_anomaly_at_once_is_reported():
    (row,) = join([card(part=1, source="a"), card(part=1, source="b", version="B"), card(part=None)])
    assert row.flags == ("part_missing:2,3", "part_duplicate:1", "part_unknown:1", "version_mismatch")


def test_a_part_in_review_gives_a_provisional_score_in_review():
    cards = [card(part=1, responses="A?", status="review", flags=("ambiguous:2",)), card(part=2, responses="CD"),
             card(part=3, responses="AB")]
    (row,) = join(cards)
    assert (row.status, row.flags, row.correct, row.responses) == ("review", ("part_review:1", "ambiguous:2"), 5,
                                                                   "A?CDAB")


def test_a_version_missing_on_one_part_is_taken_from_the_others():
    cards = [card(part=1, version="", status="review", flags=("version_missing",)), card(part=2, version="B"),
             card(part=3, version="B")]
    (row,) = join(cards)
    assert (row.version, row.status, row.flags) == ("B", "review", ("part_review:1",))


def test_no_version_on_any_part_is_the_keys_own_flag():
    (row,) = join([card(part=p, version="") for p in (1, 2, 3)])
    assert row.flags == ("version_unknown",) and row.correct is None and row.status == "review"


def test_error_pages_and_copies_are_no_cards_and_codeless_cards_are_listed():
    cards = [card(part=1), card(part=2), card(part=3),
             card(part=2, source="copy.jpg", duplicate_of="123456782-2.jpg"),
             PageRecord("broken.jpg", 1, "error", "", "", ""),
             card(code="", part=1, source="nocode.jpg", status="review", flags=("code_unreadable",))]
    rows = join(cards)
    assert [(r.code_number, r.status, r.flags) for r in rows] == [
        ("123456782", "ok", ()), ("", "review", ("code_unknown",))]
    assert rows[1].pages == ("nocode.jpg#1",)


def test_one_part_layout_is_one_card_per_candidate():
    key = AnswerKey.from_dict({"versions": {"A": {"key": "AB"}}, "pass_percent": 50})
    rows = join([card(part=None), card(code="000000000", part=None, source="b"),
                 card(code="000000000", part=None, source="c")], key=key, parts=1)
    assert [(r.code_number, r.flags) for r in rows] == [("000000000", ("part_duplicate:1",)),
                                                         ("123456782", ())]


def test_part_pages_carry_no_score_of_their_own():
    rows = [ResultRow("a.jpg", 1, "review", "123456782", "A", "AB", ("responses_length",), 1, 6, None, False),
            ResultRow("b.jpg", 1, "review", "123456782", "A", "AB", ("ambiguous:1", "version_unknown"))]
    out = score_part_pages(rows, KEY)
    assert [(r.status, r.flags, r.correct, r.passed) for r in out] == [
        ("ok", (), None, None), ("review", ("ambiguous:1",), None, None)]


def test_candidates_csv(tmp_path):
    rows = join([card(part=1), card(part=2, responses="CD"), card(part=3), card(code="000000000", part=1)])
    path = tmp_path / "candidates.csv"
    assert write_candidates_csv(rows, path) == 2
    with open(path, newline="", encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert list(got[0]) == ["code_number", "status", "version", "responses", "correct", "max_points",
                            "percent", "passed", "flags", "pages"]
    assert got[0] == {"code_number": "000000000", "status": "review", "version": "", "responses": "",
                      "correct": "", "max_points": "", "percent": "", "passed": "",
                      "flags": "part_missing:2,3", "pages": "000000000-1.jpg#1"}
    assert (got[1]["responses"], got[1]["percent"], got[1]["passed"]) == ("ABCDAB", "100.00", "true")


@st.composite
def split_cohorts(draw):
    """A key, cards scored whole, and the same cards cut into parts and shuffled."""
    key_dict = draw(key_dicts(max_questions=24))
    q = key_dict["questions"]
    parts = draw(st.sampled_from([d for d in (1, 2, 3, 4) if q % d == 0]))
    responses, versions = draw(cohorts(key_dict, max_cards=6))
    codes = [f"{i:09d}" for i in range(len(responses))]
    pages = [
        PageRecord(f"{code}-{p}.jpg", 1, "ok", code, version, text[(p - 1) * (q // parts):p * (q // parts)], p)
        for code, text, version in zip(codes, responses, versions, strict=True)
        for p in range(1, parts + 1)
    ]
    return AnswerKey.from_dict(key_dict), parts, codes, responses, versions, draw(st.permutations(pages))


@settings(max_examples=150, deadline=None)
@given(split_cohorts())
def test_joined_candidates_score_as_one_card_with_the_same_responses(case):
    key, parts, codes, responses, versions, pages = case
    joined = join_candidates(pages, key, parts=parts, questions=key.questions // parts)
    whole = score_rows([ResultRow(f"{c}.jpg", 1, "ok", c, v, r)
                        for c, r, v in zip(codes, responses, versions, strict=True)], key)
    assert [r.code_number for r in joined] == codes
    for cand, row in zip(joined, whole, strict=True):
        assert (cand.responses, cand.version, cand.status, cand.flags) == (
            row.responses, row.version, row.status, row.flags)
        assert (cand.correct, cand.max_points, cand.percent, cand.passed) == (
            row.correct, row.max_points, row.percent, row.passed)


@pytest.mark.parametrize("status", ["ok", "review"])
def test_joined_status_follows_the_pages(status):
    (row,) = join([card(part=1, status=status), card(part=2), card(part=3)])
    assert row.status == status
