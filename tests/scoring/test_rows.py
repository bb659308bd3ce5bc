"""Scoring results rows: which rows get a score, which go to review, and re-scoring."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omr.flags import INFO_FLAGS
from scoring import AnswerKey, ResultRow, rescore_rows, score_rows
from tests.scoring.reference import reference_score
from tests.scoring.strategies import cohorts, key_dicts

KEY2 = {"questions": 4, "versions": {"A": {"key": "ABCD"}, "B": {"key": "DCBA", "order": [4, 3, 2, 1]}},
        "pass_percent": 50}


def row(responses: str = "ABCD", version: str = "A", status: str = "ok", flags: tuple[str, ...] = (),
        code_number: str = "012345674", **kw: object) -> ResultRow:
    return ResultRow(source="s.jpg", page=1, status=status, code_number=code_number, version=version,
                     responses=responses, flags=flags, **kw)  # type: ignore[arg-type]


@pytest.fixture
def key2() -> AnswerKey:
    return AnswerKey.from_dict(KEY2)


def test_ok_and_review_rows_get_scores(key2: AnswerKey) -> None:
    got = score_rows([row("ABCD"), row("DC?-", "B", "review", ("ambiguous:3",))], key2)
    assert [(r.correct, r.max_points, r.percent, r.passed) for r in got] == [
        (4, 4, Decimal("100.00"), True), (2, 4, Decimal("50.00"), True)]
    assert got[1].status == "review" and got[1].flags == ("ambiguous:3",)
    assert str(got[0].percent) == "100.00"


def test_error_rows_keep_empty_scores(key2: AnswerKey) -> None:
    err = ResultRow(source="x.jpg", page=2, status="error", flags=("markers_not_found",), correct=3)
    assert score_rows([err], key2) == [replace(err, correct=None)]


@pytest.mark.parametrize(
    ("version", "flag"), [("", "version_unknown"), ("C", "version_not_in_key")]
)
def test_a_version_the_key_cannot_decide_goes_to_review_unscored(
    key2: AnswerKey, version: str, flag: str
) -> None:
    (got,) = score_rows([row(version=version, flags=("version_missing",) if not version else ())], key2)
    assert got.status == "review" and got.flags[-1] == flag
    assert (got.correct, got.max_points, got.percent, got.passed) == (None, None, None, None)


def test_a_single_version_key_scores_any_version_and_keeps_flags() -> None:
    key = AnswerKey.from_dict({"versions": {"A": {"key": "ABCD"}}, "pass_percent": 50})
    got = score_rows([row(version="", status="review", flags=("version_missing",)), row(version="B")], key)
    assert [r.correct for r in got] == [4, 4]
    assert [r.status for r in got] == ["review", "ok"]
    assert got[0].flags == ("version_missing",) and got[1].flags == ()


def test_wrong_length_goes_to_review_unscored(key2: AnswerKey) -> None:
    (got,) = score_rows([row("ABC")], key2)
    assert got.status == "review" and got.flags == ("responses_length",) and got.correct is None


def test_characters_outside_the_alphabet_leave_the_row_unscored(key2: AnswerKey) -> None:
    got = score_rows([row("AxCé"), row("ABCD")], key2)
    assert got[0].status == "review" and got[0].flags == ("responses_invalid:2,4",)
    assert (got[0].correct, got[0].max_points, got[0].percent, got[0].passed) == (None, None, None, None)
    assert (got[1].status, got[1].correct, got[1].percent) == ("ok", 4, Decimal("100.00"))


# -- a results file is not trusted for what its content contradicts (issue 16, item 16) ----


@pytest.mark.parametrize(
    ("edited", "status", "flags"),
    [
        (row("AB?D"), "review", ("ambiguous:3",)),  # edited to ok, the '?' kept
        (row("AB?D", flags=("rotated:90",)), "review", ("rotated:90", "ambiguous:3")),
        (row("AB?D", status="review", flags=("ambiguous:1,3", "code_mismatch")), "review",
         ("ambiguous:3", "code_mismatch")),
        (row("ABCD", status="review", flags=("ambiguous:3",)), "ok", ()),  # the examiner resolved it
        (row("ABCD", code_number="12345674"), "review", ("code_unreadable",)),  # its leading zero lost
        (row("ABCD", code_number="012345675"), "review", ("check_digit",)),
        (row("ABCD", code_number="O12345674"), "review", ("code_unreadable",)),
        (row("ABCD", code_number="０12345674"), "review", ("code_unreadable",)),  # a full-width digit
        (row("ABCD", code_number=""), "review", ("code_unreadable",)),
        (row("ABCD", status="review", flags=("check_digit",)), "ok", ()),  # the code corrected
        (row("ABCD", flags=("marker_missing:top_right",)), "review", ("marker_missing:top_right",)),
        # an examiner's verified row keeps the flags saying why it was reviewed
        (row("ABCD", status="verified", flags=("ambiguous:3",)), "verified", ("ambiguous:3",)),
        (row("AB?D", status="verified"), "review", ("ambiguous:3",)),
        (row("ABCD", flags=("markers_not_found",)), "error", ("markers_not_found",)),
        (row("", status="error", flags=("image_unreadable",)), "error", ("image_unreadable",)),
    ],
)
def test_status_and_flags_are_derived_from_the_row(key2: AnswerKey, edited: ResultRow, status: str,
                                                   flags: tuple[str, ...]) -> None:
    (got,) = score_rows([edited], key2)
    assert (got.status, got.flags) == (status, flags)
    assert (got.correct is None) == (status == "error")


def test_a_row_with_a_bad_code_number_is_never_ok(key2: AnswerKey) -> None:
    codes = ["012345674", "12345674", "012345675", "0123456740", "01234567a", "", " 12345674", "012345674 "]
    got = score_rows([row("ABCD", code_number=c) for c in codes], key2)
    assert [r.status for r in got] == ["ok"] + ["review"] * (len(codes) - 1)


def test_rescoring_redecides_scoring_flags_and_restores_ok(key2: AnswerKey) -> None:
    only_a = AnswerKey.from_dict({**KEY2, "versions": {"A": KEY2["versions"]["A"], "C": {"key": "AAAA"}}})
    info = f"{sorted(INFO_FLAGS)[0]}:1"  # an informational reader flag (with an argument)
    first = score_rows([row("DCBA", "B", flags=(info,)), row("DCBA", "B", flags=("code_mismatch",))], only_a)
    assert [r.status for r in first] == ["review", "review"]
    assert first[0].flags == (info, "version_not_in_key")
    again = score_rows(first, key2)
    assert [r.status for r in again] == ["ok", "review"]  # code_mismatch still needs a person
    assert [r.flags for r in again] == [(info,), ("code_mismatch",)]
    assert [r.correct for r in again] == [4, 4]


def test_details_columns(key2: AnswerKey) -> None:
    lek = AnswerKey.from_dict({"exam": "LEK", "versions": {"A": {"key": "A" * 200}}, "annulled": [1, 2]})
    got = score_rows([row("A" * 111 + "-" * 89), row(status="error")], lek, details=True)
    extra = dict(got[0].extra)
    assert extra["certificate"] == "z wynikiem 55.05% (109 punktów / 198 możliwych)"
    assert extra["correct:choroby wewnętrzne"] == "37" and extra["correct:pediatria"] == "29"
    assert (extra["max_points:choroby wewnętrzne"], extra["percent:choroby wewnętrzne"]) == ("37", "100.00")
    assert extra["correct:położnictwo i ginekologia"] == "16"  # questions 96..111 of 96..121
    assert extra["percent:położnictwo i ginekologia"] == "61.54"  # 16 / 26, half up
    assert (extra["correct:psychiatria"], extra["percent:psychiatria"]) == ("0", "0.00")
    assert list(dict(got[1].extra).values()) == [""] * 31
    assert score_rows(got, lek)[0].extra == ()  # stale details are dropped


def test_other_extra_columns_are_kept(key2: AnswerKey) -> None:
    (got,) = score_rows([row(extra=(("room", "12"), ("certificate", "old")))], key2)
    assert got.extra == (("room", "12"),)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_rows_match_the_reference(data: st.DataObject) -> None:
    key = data.draw(key_dicts())
    responses, versions = data.draw(cohorts(key))
    got = score_rows([row(r, v) for r, v in zip(responses, versions, strict=True)], AnswerKey.from_dict(key))
    for r, resp, version in zip(got, responses, versions, strict=True):
        ref = reference_score(key, resp, version)
        assert (r.correct, r.max_points, str(r.percent), r.passed) == (
            ref.correct, ref.max_points, ref.percent, ref.passed)


def test_rescore_reports_what_changed(key2: AnswerKey) -> None:
    cards = [row("ABCD"), row("AB--"), row("A---"), row(status="error"),
             row("ABC?", status="review", flags=("ambiguous:4",))]
    rows = score_rows(cards, key2)
    assert [r.passed for r in rows] == [True, True, False, None, True]
    tougher = AnswerKey.from_dict({**KEY2, "pass_percent": 60, "annulled": [1]})
    report = rescore_rows(rows, tougher)
    assert [r.correct for r in report.rows] == [3, 1, 0, None, 2]
    assert report.changed_score == 4
    assert (report.passed_to_failed, report.failed_to_passed, report.changed_pass) == (1, 0, 1)
    assert (report.ok, report.review, report.error) == (3, 1, 1)
    assert report.max_points_before == (4,) and report.max_points == 3
    assert report.summary().startswith(
        "rescored 5 rows: 4 changed score, 1 changed pass/fail (1 pass→fail, 0 fail→pass); "
        "ok 3, review 1, error 1; max points 4 → 3")


def test_rescore_with_the_same_key_changes_nothing(key2: AnswerKey) -> None:
    rows = score_rows([row("ABCD"), row("DCBA", "B"), row("ABCD", "")], key2)
    report = rescore_rows(rows, key2)
    assert report.rows == rows
    assert (report.changed_score, report.changed_pass, report.status_changed) == (0, 0, 0)
