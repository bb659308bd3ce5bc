import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omr.errors import ReviewError
from omr.review.events import (
    MachineCard,
    ReviewEvent,
    card_doubts,
    check_decision,
    earlier_scans,
    live_events,
    resolve_card,
)

CARD = MachineCard("a.jpg", 1, "h1", "review", "123456782", "A", "AB?D?", ("ambiguous:3,5",))


def ev(i, field, after, *, who="anna", round_=1, before="", undoes=None, content="h1", page=1):
    return ReviewEvent(i, f"t{i}", "a.jpg", page, content, who, field, before, after, round_, "", "", undoes)


def test_current_values_are_the_reading_plus_the_live_events():
    events = [ev(1, "answer:3", "C"), ev(2, "answer:5", "E"), ev(3, "answer:5", "-"), ev(4, "answer:1", "B")]
    r = resolve_card(CARD, events)
    assert r.responses == "BBCD-"
    assert r.changed == ("answer:1", "answer:3", "answer:5") and r.value_source == "examiner"
    assert r.unresolved == () and not r.verified  # resolved, but not confirmed yet
    assert resolve_card(CARD, [*events, ev(5, "card_confirmed", "yes")]).verified


def test_a_doubt_left_keeps_the_card_from_being_verified():
    r = resolve_card(CARD, [ev(1, "answer:3", "C"), ev(2, "card_confirmed", "yes")])
    assert r.unresolved == ("answer:5",) and r.confirmed and not r.verified


def test_undo_is_a_compensating_event_and_restores_the_machine_value():
    events = [ev(1, "answer:3", "C"), ev(2, "answer:3", "?", undoes=1)]
    assert live_events(events) == []
    r = resolve_card(CARD, events)
    assert r.responses == CARD.responses and r.unresolved == ("answer:3", "answer:5")
    assert r.value_source == "machine"
    confirmed = [
        ev(1, "answer:3", "C"),
        ev(2, "answer:5", "C"),
        ev(3, "card_confirmed", "yes"),
        ev(4, "card_confirmed", "", undoes=3),
    ]
    assert not resolve_card(CARD, confirmed).verified


def test_events_of_an_earlier_scan_do_not_apply_but_are_its_history():
    old = [ev(1, "answer:3", "C", content="h0"), ev(2, "card_confirmed", "yes", content="h0")]
    r = resolve_card(CARD, old)
    assert r.responses == CARD.responses and not r.verified
    assert earlier_scans(CARD, old) == old


def test_whole_card_flags_code_and_version_are_doubts():
    card = MachineCard(
        "b.jpg",
        1,
        "h",
        "review",
        "",
        "",
        "ABCDE",
        ("dirty:2", "registration_local:1-10", "version_missing", "marker_missing:top_left"),
    )
    d = card_doubts(card)
    assert d.questions == () and d.code == ("code_unreadable",) and d.version == ("version_missing",)
    assert d.whole_card == ("dirty", "registration_local", "marker_missing")
    assert d.fields == ("code_number", "version")
    r = resolve_card(card, [ev(1, "card_confirmed", "yes")])
    assert r.unresolved == ("code_number", "version") and not r.verified


def test_a_duplicate_code_number_is_a_doubt_until_the_code_moves():
    card = MachineCard("a.jpg", 1, "h1", "review", "123456782", "A", "ABCDE", ("duplicate_code",))
    assert resolve_card(card, [ev(1, "card_confirmed", "yes")], duplicate_code=True).unresolved == (
        "code_number",
    )
    moved = resolve_card(
        card, [ev(1, "code_number", "000000000"), ev(2, "card_confirmed", "yes")], duplicate_code=False
    )
    assert moved.verified and moved.code_number == "000000000"


def test_double_entry_needs_two_agreeing_blind_entries_or_the_supervisor():
    agree = [
        ev(1, "answer:3", "C"),
        ev(2, "answer:5", "E"),
        ev(3, "card_confirmed", "yes"),
        ev(4, "answer:3", "C", who="bob", round_=2),
        ev(5, "answer:5", "E", who="bob", round_=2),
    ]
    half = resolve_card(CARD, agree, double_entry=True)
    assert not half.verified and half.unresolved == ("answer:3", "answer:5")
    both = resolve_card(
        CARD, [*agree, ev(6, "card_confirmed", "yes", who="bob", round_=2)], double_entry=True
    )
    assert both.verified and both.responses == "ABCDE" and both.confirmed_by == ("anna", "bob")
    differ = [
        *agree[:4],
        ev(5, "answer:5", "-", who="bob", round_=2),
        ev(6, "card_confirmed", "yes", who="bob", round_=2),
    ]
    d = resolve_card(CARD, differ, double_entry=True)
    assert d.disagreements == ("answer:5",) and not d.verified and d.responses[4] == "?"
    decided = [*differ, ev(7, "answer:5", "E", who="carol", round_=3)]
    assert not resolve_card(CARD, decided, double_entry=True).verified  # the supervisor confirms too
    settled = resolve_card(
        CARD, [*decided, ev(8, "card_confirmed", "yes", who="carol", round_=3)], double_entry=True
    )
    assert (
        settled.verified and settled.responses == "ABCDE" and settled.confirmed_by == ("anna", "bob", "carol")
    )


def test_a_correction_outside_the_doubts_made_in_one_round_only_is_a_disagreement():
    events = [
        ev(1, "answer:3", "C"),
        ev(2, "answer:5", "E"),
        ev(3, "answer:1", "E"),
        ev(4, "card_confirmed", "yes"),
        ev(5, "answer:3", "C", who="bob", round_=2),
        ev(6, "answer:5", "E", who="bob", round_=2),
        ev(7, "card_confirmed", "yes", who="bob", round_=2),
    ]
    assert resolve_card(CARD, events, double_entry=True).disagreements == ("answer:1",)


@pytest.mark.parametrize(
    ("field", "after", "match"),
    [
        ("answer:3", "?", "not an answer"),
        ("answer:201", "A", "no such question"),
        ("answer:x", "A", "no such question"),
        ("code_number", "12345678", "9 digits"),
        ("code_number", "123456789", "Luhn"),
        ("version", "Z", "use one of ABCD"),
        ("card_confirmed", "no", "only value is 'yes'"),
        ("responses", "A", "unknown field"),
    ],
)
def test_values_an_examiner_cannot_record_are_refused(field, after, match):
    with pytest.raises(ReviewError, match=match):
        check_decision(field, after, questions=200, options="ABCDE", versions="ABCD")


def test_a_valid_decision_passes():
    for field, after in [
        ("answer:1", "E"),
        ("answer:200", "-"),
        ("answer:7", "*"),
        ("code_number", "123456782"),
        ("version", "D"),
        ("card_confirmed", "yes"),
    ]:
        check_decision(field, after, questions=200, options="ABCDE", versions="ABCD")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.sampled_from("ABCDE-*"), st.booleans()), max_size=12))
def test_each_question_holds_its_last_live_decision(decisions):
    events, expected = [], list(CARD.responses)
    history: dict[int, list[tuple[int, str]]] = {}
    for i, (q, value, undo) in enumerate(decisions, start=1):
        stack = history.setdefault(q, [])
        if undo and stack:
            target, _ = stack.pop()
            events.append(ev(i, f"answer:{q}", "", undoes=target))
        else:
            events.append(ev(i, f"answer:{q}", value))
            stack.append((i, value))
    for q, stack in history.items():
        expected[q - 1] = stack[-1][1] if stack else CARD.responses[q - 1]
    assert resolve_card(CARD, events).responses == "".join(expected)
