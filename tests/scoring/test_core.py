"""The vectorised core against a plain-Python Fraction reference, and its invariants."""

from __future__ import annotations

import dataclasses
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omr.errors import AnswerKeyError, ScoringError
from scoring import (
    AnswerKey,
    certificate_line,
    decode_responses,
    encode_responses,
    format_percent,
    passed_mask,
    percent_hundredths,
    score_codes,
    score_responses,
)
from tests.scoring.reference import reference_score
from tests.scoring.strategies import cohorts, key_dicts


def _check_against_reference(data: dict, responses: list[str], versions: list[str]) -> None:
    key = AnswerKey.from_dict(data)
    got = score_responses(responses, versions, key)
    assert got.correct.shape == (len(responses),)
    assert got.domain_correct.shape == (len(responses), len(key.domains))
    for i, (resp, version) in enumerate(zip(responses, versions, strict=True)):
        ref = reference_score(data, resp, version)
        assert (int(got.correct[i]), got.max_points) == (ref.correct, ref.max_points), (i, resp, version)
        assert format_percent(got.percent_hundredths[i]) == ref.percent
        assert bool(got.passed[i]) is ref.passed
        assert tuple(got.domain_correct[i].tolist()) == ref.domains


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_matches_the_fraction_reference(data: st.DataObject) -> None:
    key = data.draw(key_dicts())
    responses, versions = data.draw(cohorts(key))
    _check_against_reference(key, responses, versions)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_matches_the_reference_across_block_boundaries(data: st.DataObject) -> None:
    """More cards than one block (4096) with mixed versions: rows must land where they belong."""
    key = data.draw(key_dicts(max_questions=8))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    alphabet = np.array(list(key["options"] + "-*?"))
    n = 4096 + 37
    responses = ["".join(row) for row in alphabet[rng.integers(0, len(alphabet), (n, key["questions"]))]]
    versions = list(np.array(sorted(key["versions"]))[rng.integers(0, len(key["versions"]), n)])
    _check_against_reference(key, responses, versions)


@settings(max_examples=100, deadline=None)
@given(key_dicts())
def test_marking_the_key_gives_full_marks(data: dict) -> None:
    key = AnswerKey.from_dict(data)
    got = score_responses([v.answers for v in key.versions], list(key.version_names), key)
    assert (got.correct == key.max_points).all()
    if key.max_points:
        assert (got.percent_hundredths == 10000).all()
        assert got.passed.all()
    assert (got.domain_correct == got.domain_max).all()


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_permuting_the_questions_consistently_keeps_every_score(data: st.DataObject) -> None:
    """Version B prints version A's questions in another order: same answers, same scores."""
    key = data.draw(key_dicts())
    q = key["questions"]
    a = {"key": key["versions"][sorted(key["versions"])[0]]["key"]}  # identity order
    perm = data.draw(st.permutations(range(q)))
    b = {"key": "".join(a["key"][p] for p in perm), "order": [p + 1 for p in perm]}
    permuted = {**key, "versions": {"A": a, "B": b}}
    responses, _ = data.draw(cohorts(permuted))
    k = AnswerKey.from_dict(permuted)
    on_a = score_responses(responses, ["A"] * len(responses), k)
    on_b = score_responses(["".join(r[p] for p in perm) for r in responses], ["B"] * len(responses), k)
    for name in ("correct", "percent_hundredths", "passed", "domain_correct"):
        np.testing.assert_array_equal(getattr(on_a, name), getattr(on_b, name))


# -- percentages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("correct", "max_points", "text"),
    [
        (111, 198, "56.06"),  # 56.0606…
        (1, 32, "3.13"),  # 3.125 rounds up
        (3, 32, "9.38"),  # 9.375
        (1, 160, "0.63"),  # 0.625
        (1, 80, "1.25"),  # exact
        (1, 64, "1.56"),  # 1.5625 rounds down
        (0, 200, "0.00"),
        (200, 200, "100.00"),
        (197, 197, "100.00"),
        (112, 200, "56.00"),
        (1, 3, "33.33"),
        (2, 3, "66.67"),
    ],
)
def test_percent_rounds_half_up_exactly(correct: int, max_points: int, text: str) -> None:
    assert format_percent(int(percent_hundredths(correct, max_points))) == text


def test_percent_matches_decimal_half_up_for_every_count_up_to_250() -> None:
    m = np.repeat(np.arange(1, 251), np.arange(2, 252))
    c = np.concatenate([np.arange(k + 1) for k in range(1, 251)])
    got = [format_percent(h) for h in (percent_hundredths(c[i], int(m[i])) for i in range(0, len(c), 7))]
    want = [str((Decimal(100 * int(c[i])) / int(m[i])).quantize(Decimal("0.01"), ROUND_HALF_UP))
            for i in range(0, len(c), 7)]
    assert got == want


@given(st.integers(1, 100_000).flatmap(lambda m: st.tuples(st.integers(0, m), st.just(m))),
       st.integers(0, 100))
def test_percent_and_passed_match_fractions(counts: tuple[int, int], pass_percent: int) -> None:
    correct, max_points = counts
    exact = Fraction(100 * correct, max_points)
    want = int(exact * 100 + Fraction(1, 2))  # floor: the value is never negative
    assert int(percent_hundredths(correct, max_points)) == want
    assert bool(passed_mask(correct, max_points, pass_percent)) is (exact >= pass_percent)


def test_passed_is_decided_on_the_exact_ratio_not_the_rounded_percent() -> None:
    # 55.996 % rounds to 56.00 but is below 56 %: not passed
    assert Fraction(100 * 13999, 25000) < 56
    assert format_percent(int(percent_hundredths(13999, 25000))) == "56.00"
    assert passed_mask(np.array([13999, 14000]), 25000, 56).tolist() == [False, True]


def test_no_question_left_to_score_gives_zero_and_nobody_passes() -> None:
    # a key file annulling every question is refused (test_key); the core stays defined on one
    key = dataclasses.replace(AnswerKey.from_dict({"questions": 2, "versions": {"A": {"key": "AB"}},
                                                   "pass_percent": 0}), annulled=(1, 2))
    got = score_responses(["AB", "--"], ["A", "A"], key)
    assert got.max_points == 0
    assert got.correct.tolist() == [0, 0]
    assert got.percent_hundredths.tolist() == [0, 0]
    assert got.passed.tolist() == [False, False]


def test_credit_policy_gives_everyone_the_annulled_points() -> None:
    key = AnswerKey.from_dict({"questions": 4, "versions": {"A": {"key": "ABCD"}}, "annulled": [2, 3],
                               "annulled_policy": "credit", "pass_percent": 50})
    got = score_responses(["----", "A---", "ABCD"], ["A"] * 3, key)
    assert got.max_points == 4
    assert got.correct.tolist() == [2, 3, 4]
    assert got.passed.tolist() == [True, True, True]


def test_certificate_line() -> None:
    assert certificate_line(111, 198) == "z wynikiem 56.06% (111 punktów / 198 możliwych)"
    assert certificate_line(1, 200) == "z wynikiem 0.50% (1 punkt / 200 możliwych)"
    assert certificate_line(122, 200) == "z wynikiem 61.00% (122 punkty / 200 możliwych)"
    assert certificate_line(112, 200) == "z wynikiem 56.00% (112 punktów / 200 możliwych)"
    assert certificate_line(0, 199) == "z wynikiem 0.00% (0 punktów / 199 możliwych)"


def test_format_percent_refuses_negative() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        format_percent(-1)


# -- encoding ------------------------------------------------------------------------------


def test_encoding_codes() -> None:
    codes = encode_responses(["ABCDE", "-*?xé"], "ABCDE")
    assert codes.dtype == np.uint8
    assert codes.tolist() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 8]]


@given(st.lists(st.text(alphabet="ABCD-*?", min_size=6, max_size=6), max_size=8))
def test_encoding_round_trips(responses: list[str]) -> None:
    assert decode_responses(encode_responses(responses, "ABCD", 6), "ABCD") == responses


def test_encoding_rejects_a_card_of_the_wrong_length() -> None:
    with pytest.raises(ScoringError, match=r"responses\[1\]: 4 characters, expected 5"):
        encode_responses(["ABCDE", "ABCD"], "ABCDE")


def test_encoding_rejects_bad_options() -> None:
    with pytest.raises(ScoringError, match="distinct printable ASCII"):
        encode_responses(["A"], "AA")
    with pytest.raises(ScoringError, match="other than"):
        encode_responses(["A"], "A-")


# -- contracts -------------------------------------------------------------------------------


@pytest.fixture
def two_versions() -> AnswerKey:
    return AnswerKey.from_dict({"questions": 3, "versions": {"A": {"key": "ABC"}, "B": {"key": "CBA",
                                "order": [3, 2, 1]}}, "pass_percent": 56})


def test_a_card_whose_version_the_key_lacks_is_an_error(two_versions: AnswerKey) -> None:
    with pytest.raises(AnswerKeyError, match=r"versions\[1\]: card version 'C' is not in the answer key"):
        score_responses(["ABC", "ABC"], ["A", "C"], two_versions)
    with pytest.raises(AnswerKeyError, match=r"versions\[0\]: card version ''"):
        score_responses(["ABC"], [""], two_versions)


def test_a_single_version_key_scores_cards_without_a_version() -> None:
    key = AnswerKey.from_dict({"versions": {"A": {"key": "ABC"}}, "pass_percent": 56})
    assert score_responses(["ABC"], [""], key).correct.tolist() == [3]


def test_score_codes_checks_its_arrays(two_versions: AnswerKey) -> None:
    with pytest.raises(ScoringError, match="uint8 array"):
        score_codes(np.zeros((2, 3), np.int64), np.zeros(2, np.intp), two_versions)
    with pytest.raises(ScoringError, match="4 questions per card, but the key has 3"):
        score_codes(np.zeros((2, 4), np.uint8), np.zeros(2, np.intp), two_versions)
    with pytest.raises(ScoringError, match=r"version_index: values must be 0..1"):
        score_codes(np.zeros((2, 3), np.uint8), np.array([0, 2]), two_versions)
    with pytest.raises(ScoringError, match="one entry per card"):
        score_responses(["ABC"], [], two_versions)


def test_an_empty_cohort(two_versions: AnswerKey) -> None:
    got = score_responses([], [], two_versions)
    assert got.correct.shape == (0,) and got.domain_correct.shape == (0, 0)


def test_lek_key_splits_points_by_the_regulation_fields() -> None:
    key = AnswerKey.from_dict({"exam": "LEK", "questions": 200, "versions": {"A": {"key": "A" * 200}},
                               "annulled": [1]})
    got = score_responses(["A" * 200], ["A"], key)
    assert got.domain_names[0] == "choroby wewnętrzne" and len(got.domain_names) == 10
    assert got.domain_correct.tolist() == [[38, 29, 27, 26, 14, 20, 20, 10, 7, 8]]
    assert got.domain_max.tolist() == [38, 29, 27, 26, 14, 20, 20, 10, 7, 8]
    assert key.pass_percent == 56
