"""Item analysis and the change report against plain-Python references on random cohorts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import AnswerKey, encode_responses, version_indices
from scoring.changes import compare_keys
from scoring.items import analyse_items, group_size
from tests.scoring.items_reference import reference_changes, reference_items
from tests.scoring.strategies import cohorts, key_dicts


def close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def analyse(key_dict: dict, responses: list[str], versions: list[str]):
    key = AnswerKey.from_dict(key_dict)
    codes = encode_responses(responses, key.options, key.questions)
    return analyse_items(codes, version_indices(versions, key), key)


@st.composite
def cohort_with_key(draw, max_questions=12, max_cards=40):
    key = draw(key_dicts(max_questions=max_questions))
    responses, versions = draw(cohorts(key, max_cards=max_cards))
    if not responses:
        responses, versions = ["-" * key["questions"]], [sorted(key["versions"])[0]]
    if draw(st.booleans()):  # a character outside the alphabet ("other")
        responses[0] = "~" + responses[0][1:]
    return key, responses, versions


@settings(max_examples=150, deadline=None)
@given(cohort_with_key())
def test_item_statistics_match_the_reference(data):
    key_dict, responses, versions = data
    got = analyse(key_dict, responses, versions)
    ref = reference_items(key_dict, list(zip(responses, versions, strict=True)), key_dict["options"])
    assert got.candidates == len(responses) and got.group_size == ref["group"]
    assert (
        close(got.kr20, ref["kr20"])
        and close(got.mean_total, ref["mean"])
        and close(got.var_total, ref["var"])
    )
    for i, m in enumerate(got.questions.tolist()):
        r = ref["items"][m]
        assert close(got.p[i], r["p"]), m
        assert close(got.p_upper[i], r["p_upper"]) and close(got.p_lower[i], r["p_lower"]), m
        assert close(got.discrimination[i], r["D"]), m
        assert close(got.point_biserial[i], r["r_pb"]), (m, got.point_biserial[i], r["r_pb"])
        for j, ch in enumerate(got.bins):
            assert close(got.shares[i, j], r["shares"][ch]), (m, ch)
        assert got.flags[i] == r["flags"], m
        assert got.annulled[i] == (m in key_dict["annulled"])


def test_a_wrong_key_letter_is_flagged():
    """The key says A for question 2, but the strong candidates answer C: both flags."""
    rng = np.random.default_rng(1)
    n, q = 400, 20
    ability = rng.random(n)
    truth = "BCDEA" * 4
    responses = []
    for a in ability:
        row = [truth[i] if rng.random() < a else "ABCDE"[rng.integers(5)] for i in range(q)]
        responses.append("".join(row))
    key_letters = truth[:1] + "A" + truth[2:]
    key = AnswerKey.from_dict({"versions": {"A": {"key": key_letters}}, "pass_percent": 56})
    items = analyse_items(encode_responses(responses, "ABCDE"), np.zeros(n, np.intp), key)
    assert items.flags[1] == ("negative_discrimination", "top_prefers:C")
    assert all(f == () for i, f in enumerate(items.flags) if i != 1)
    assert items.discrimination[0] > 0.3 and items.point_biserial[0] > 0.3
    assert 0.5 < items.kr20 < 1


def test_group_size_and_empty_cohort():
    assert [group_size(n) for n in (0, 1, 2, 3, 10, 100, 101)] == [0, 1, 1, 1, 3, 27, 27]
    key = AnswerKey.from_dict({"versions": {"A": {"key": "AB"}}, "pass_percent": 50})
    items = analyse_items(np.zeros((0, 2), np.uint8), np.zeros(0, np.intp), key)
    assert items.candidates == 0 and math.isnan(items.kr20) and np.isnan(items.p).all()


def test_bad_arrays_are_refused():
    from omr.errors import ScoringError

    key = AnswerKey.from_dict({"versions": {"A": {"key": "AB"}}, "pass_percent": 50})
    with pytest.raises(ScoringError, match=r"version_index: values must be 0..0"):
        analyse_items(np.zeros((2, 2), np.uint8), np.array([0, 3]), key)
    with pytest.raises(ScoringError, match=r"3 questions per card, but the key has 2"):
        analyse_items(np.zeros((2, 3), np.uint8), np.zeros(2, np.intp), key)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_the_change_report_matches_a_per_candidate_loop(data):
    key_a = data.draw(key_dicts(max_questions=12))
    key_b = dict(key_a)
    q = key_a["questions"]
    key_b["annulled"] = data.draw(st.lists(st.integers(1, q), unique=True, max_size=q - 1))  # one must stay
    key_b["pass_percent"] = data.draw(st.integers(0, 100))
    key_b["accepted"] = data.draw(
        st.dictionaries(st.integers(1, q).map(str), st.sampled_from(key_a["options"]), max_size=3)
    )
    responses, versions = data.draw(cohorts(key_a, max_cards=30))
    ka, kb = AnswerKey.from_dict(key_a), AnswerKey.from_dict(key_b)
    codes = encode_responses(responses, ka.options, ka.questions)
    got = compare_keys(codes, version_indices(versions, ka), ka, kb)
    ref = reference_changes(key_a, key_b, list(zip(responses, versions, strict=True)))
    assert got.changed.tolist() == [r["index"] for r in ref]
    for i, r in zip(got.changed.tolist(), ref, strict=True):
        old = (int(got.old.correct[i]), f"{got.old.percent_hundredths[i] / 100:.2f}", bool(got.old.passed[i]))
        new = (int(got.new.correct[i]), f"{got.new.percent_hundredths[i] / 100:.2f}", bool(got.new.passed[i]))
        assert (old, new) == (r["old"], r["new"])
    assert got.passed_to_failed == sum(1 for r in ref if r["old"][2] and not r["new"][2])
    assert got.failed_to_passed == sum(1 for r in ref if not r["old"][2] and r["new"][2])
