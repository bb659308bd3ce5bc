"""Examiners' decisions as append-only events, and the card's current values derived from them.

The machine reading of a page is never changed.  Every human decision is one
`ReviewEvent` (stored in the results store's ``review_events`` table, which SQLite
triggers keep append-only); what a card holds *now* is derived, by the pure functions
here, from its machine reading plus its events::

    machine reading (pages row) ──┐
                                  ├─► resolve_card ──► CardResolution (values, doubts left, verified)
    events of (source, page, content hash) ┘

Fields an event can set:

=================  ==========================================  ==========================
field              value_after                                 what it means
=================  ==========================================  ==========================
``answer:<q>``     ``A``..``E`` / ``-`` (blank) / ``*`` (many)  question q (1-based) reads so
``code_number``    9 digits passing Luhn                       the candidate's code number
``version``        a version letter of the layout              the test version
``card_confirmed`` ``yes``                                     the whole card was looked at
                                                               and its values are right
                                                               (finalises the card)
``postponed``      ``yes``                                     put aside, back of the queue
=================  ==========================================  ==========================

Undo is a new event on the same field with ``undoes`` set to the event it takes back
(never a delete); an undone event no longer counts.  Events are keyed by the page's
source, page number *and* content hash: a page re-scanned into the same path is a new
reading whose doubts are decided afresh, and the decisions on its earlier scan stay in
the audit (`earlier_scans`).

What must be confirmed (`card_doubts`): every ``?``; the code number when the reader
flagged it (``code_mismatch``, ``check_digit``, ``code_unreadable``, or none read) and
while another card carries the same code number (``duplicate_code``); the version when
flagged; and the whole card, by eye, when a flag says wrong reads may exist outside the
``?`` (`WHOLE_CARD_FLAGS`).  A card is ``verified`` when it is confirmed
(``card_confirmed``) with no doubt left.

Double entry (``double_entry=True``): two different examiners resolve the card blind,
in entry rounds 1 and 2; a field on which their confirmed entries differ is a
*disagreement*, settled only by a third examiner's round-3 decision (the supervisor),
who then confirms the card in round 3.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from omr.decode import CODE_REVIEW_FLAGS, is_valid_code
from omr.errors import ReviewError

__all__ = [
    "ANSWER_VALUES",
    "CARD_CONFIRMED",
    "CODE_FIELD",
    "POSTPONED",
    "VERIFIED",
    "VERSION_FIELD",
    "VERSION_FLAGS",
    "WHOLE_CARD_FLAGS",
    "CardDoubts",
    "CardResolution",
    "MachineCard",
    "NewEvent",
    "ReviewEvent",
    "answer_field",
    "card_doubts",
    "entry_round_for",
    "check_decision",
    "earlier_scans",
    "live_events",
    "resolve_card",
]

#: the status of a card whose doubts an examiner resolved and who confirmed it
VERIFIED = "verified"
CODE_FIELD = "code_number"
VERSION_FIELD = "version"
CARD_CONFIRMED = "card_confirmed"
POSTPONED = "postponed"
#: what an examiner may record for a question (never ``?``: that is the doubt itself)
ANSWER_VALUES = "-*"
#: flags after which wrong reads may exist outside the ``?``: a person looks at the whole card
WHOLE_CARD_FLAGS = (
    "dirty",
    "registration_doubtful",
    "registration_local",
    "implausible_multiples",
    "marker_missing",
    "misplaced",
    "dirty_multiples",
    "streak",
    "doubtful_card",
)
#: flags that leave the version to a person
VERSION_FLAGS = (
    "version_missing",
    "version_multiple",
    "version_ambiguous",
    "version_unknown",
    "version_not_in_key",
)
_DUPLICATE_CODE = "duplicate_code"


def answer_field(question: int) -> str:
    """The event field of a question (1-based): ``answer:17``."""
    return f"answer:{question}"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A decision to record (the store gives it its id and time).

    source, page, content_hash : the page's reading the decision is about
    examiner : who decided
    field : ``answer:<q>``, ``code_number``, ``version``, ``card_confirmed``, ``postponed``
    before, after : the value shown before the decision and the value decided
    entry_round : 1; 2 for the blind second entry; 3 for the supervisor
    reason : why it was asked (``ambiguous``, ``code_mismatch``, ``undo``...)
    note : the examiner's free text
    undoes : id of the event this one takes back, or None
    """

    source: str
    page: int
    content_hash: str
    examiner: str
    field: str
    before: str
    after: str
    entry_round: int = 1
    reason: str = ""
    note: str = ""
    undoes: int | None = None


@dataclass(frozen=True, slots=True)
class ReviewEvent:
    """A stored decision: a `NewEvent` with its id and UTC time (``2026-12-03T08:01:02.345Z``)."""

    id: int
    at: str
    source: str
    page: int
    content_hash: str
    examiner: str
    field: str
    before: str
    after: str
    entry_round: int = 1
    reason: str = ""
    note: str = ""
    undoes: int | None = None


@dataclass(frozen=True, slots=True)
class MachineCard:
    """What the machine read on one stored page (its ``pages`` row).

    flags : the effective flags (with ``duplicate_code`` / ``duplicate_page:`` as stored)
    """

    source: str
    page: int
    content_hash: str
    status: str
    code_number: str
    version: str
    responses: str
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CardDoubts:
    """What a person must confirm on a card before it can be finalised.

    questions : 1-based questions read ``?``
    code : the reasons the code number needs a person (flags), empty when it does not
    version : likewise for the version
    whole_card : the flags asking for the whole card to be looked at
    """

    questions: tuple[int, ...]
    code: tuple[str, ...]
    version: tuple[str, ...]
    whole_card: tuple[str, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields that need a decision (``answer:<q>``, ``code_number``, ``version``)."""
        return (
            *(answer_field(q) for q in self.questions),
            *((CODE_FIELD,) if self.code else ()),
            *((VERSION_FIELD,) if self.version else ()),
        )

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every reason at once (for the queue's filter): ``ambiguous``, the flags' names."""
        return tuple(
            dict.fromkeys(
                (*(("ambiguous",) if self.questions else ()), *self.code, *self.version, *self.whole_card)
            )
        )


def _flag_name(flag: str) -> str:
    return flag.split(":", 1)[0]


def card_doubts(card: MachineCard, *, duplicate_code: bool | None = None) -> CardDoubts:
    """The doubts of a machine reading (see the module docstring).

    Parameters
    ----------
    card : MachineCard
    duplicate_code : bool, optional
        Whether another card now carries this card's code number; by default, whether
        the stored flags say so.

    Examples
    --------
    >>> card = MachineCard("a.jpg", 1, "h", "review", "", "A", "A?B?", ("ambiguous:2,4", "dirty:2"))
    >>> d = card_doubts(card)
    >>> d.questions, d.code, d.whole_card
    ((2, 4), ('code_unreadable',), ('dirty',))
    """
    names = [_flag_name(f) for f in card.flags]
    questions = tuple(i + 1 for i, ch in enumerate(card.responses) if ch == "?")
    code = [n for n in names if n in CODE_REVIEW_FLAGS]
    if not card.code_number and not code:
        code.append("code_unreadable")
    if _DUPLICATE_CODE in names if duplicate_code is None else duplicate_code:
        code.append(_DUPLICATE_CODE)
    return CardDoubts(
        questions=questions,
        code=tuple(dict.fromkeys(code)),
        version=tuple(dict.fromkeys(n for n in names if n in VERSION_FLAGS)),
        whole_card=tuple(dict.fromkeys(n for n in names if n in WHOLE_CARD_FLAGS)),
    )


def check_decision(field: str, after: str, *, questions: int, options: str, versions: str) -> None:
    """Refuse a value an examiner cannot record (the app and the store call this).

    Raises
    ------
    ReviewError
        Unknown field, a question out of range, a letter not on the card, a code number
        that is not 9 digits or fails its Luhn check, a version not on the card.
    """
    if field.startswith("answer:"):
        number = field.split(":", 1)[1]
        if not number.isdigit() or not 1 <= int(number) <= questions:
            raise ReviewError(f"{field}: no such question (the card has 1..{questions})")
        if len(after) != 1 or after not in options + ANSWER_VALUES:
            raise ReviewError(
                f"{field}: {after!r} is not an answer; use one of {options}, '-' (blank) "
                "or '*' (several marked)"
            )
    elif field == CODE_FIELD:
        if not (len(after) == 9 and after.isdigit()):
            raise ReviewError(f"code number {after!r}: type the 9 digits printed on the card")
        if not is_valid_code(after):
            raise ReviewError(f"code number {after} fails its Luhn check digit; check the digits again")
    elif field == VERSION_FIELD:
        if len(after) != 1 or after not in versions:
            raise ReviewError(f"version {after!r}: use one of {versions}")
    elif field in (CARD_CONFIRMED, POSTPONED):
        if after != "yes":
            raise ReviewError(f"{field}: the only value is 'yes' (take it back with an undo)")
    else:
        raise ReviewError(
            f"unknown field {field!r}; use answer:<q>, code_number, version, card_confirmed or postponed"
        )


def live_events(events: Iterable[ReviewEvent]) -> list[ReviewEvent]:
    """The decisions that still count: neither undone nor undo events, in id order."""
    events = sorted(events, key=lambda e: e.id)
    undone = {e.undoes for e in events if e.undoes is not None}
    return [e for e in events if e.undoes is None and e.id not in undone]


def earlier_scans(card: MachineCard, events: Iterable[ReviewEvent]) -> list[ReviewEvent]:
    """Events on the same source and page but another content: the page was re-scanned."""
    return [
        e
        for e in events
        if (e.source, e.page) == (card.source, card.page) and e.content_hash != card.content_hash
    ]


@dataclass(frozen=True, slots=True)
class CardResolution:
    """A card's current values and what is left to do.

    responses, code_number, version : current values (machine reading + decisions)
    changed : fields whose current value differs from the machine's
    examiner_fields : fields whose current value an examiner decided
    unresolved : doubt fields without a decision yet (``answer:17``, ``code_number``...)
    disagreements : fields on which the two blind entries differ (double entry)
    duplicate_code : the current code number is carried by another card too
    confirmed : the card was confirmed (``card_confirmed``) in every required round
    confirmed_by : examiners whose confirmation counts, in order
    rounds_confirmed : the entry rounds in which the card was confirmed
    verified : confirmed with no doubt left: the card's status becomes ``verified``
    postponed : put aside (and not confirmed since)
    doubts : the machine reading's doubts (`card_doubts`)
    """

    responses: str
    code_number: str
    version: str
    changed: tuple[str, ...]
    examiner_fields: tuple[str, ...]
    unresolved: tuple[str, ...]
    disagreements: tuple[str, ...]
    duplicate_code: bool
    confirmed: bool
    confirmed_by: tuple[str, ...]
    rounds_confirmed: tuple[int, ...]
    verified: bool
    postponed: bool
    doubts: CardDoubts

    @property
    def value_source(self) -> str:
        """``examiner`` when any current value is an examiner's correction, else ``machine``."""
        return "examiner" if self.changed else "machine"


def _latest(events: Sequence[ReviewEvent]) -> dict[str, ReviewEvent]:
    """The last live decision per field (events in id order)."""
    last: dict[str, ReviewEvent] = {}
    for e in events:
        last[e.field] = e
    return last


def resolve_card(
    card: MachineCard,
    events: Iterable[ReviewEvent],
    *,
    double_entry: bool = False,
    duplicate_code: bool | None = None,
) -> CardResolution:
    """The current values of a card: its machine reading plus its live decisions.

    Parameters
    ----------
    card : MachineCard
    events : iterable of ReviewEvent
        Events of this page; those of another content hash (an earlier scan) are ignored.
    double_entry : bool
        Require two blind entries (rounds 1 and 2) that agree, or a round-3 decision.
    duplicate_code : bool, optional
        Whether another card carries the *current* code number (the caller knows the
        store); by default the stored ``duplicate_code`` flag, dropped once the code
        number was corrected.

    Returns
    -------
    CardResolution

    Examples
    --------
    >>> card = MachineCard("a.jpg", 1, "h", "review", "123456782", "A", "A?", ("ambiguous:2",))
    >>> ev = ReviewEvent(1, "t", "a.jpg", 1, "h", "anna", "answer:2", "?", "C")
    >>> r = resolve_card(card, [ev])
    >>> r.responses, r.unresolved, r.verified
    ('AC', (), False)
    >>> ok = ReviewEvent(2, "t", "a.jpg", 1, "h", "anna", "card_confirmed", "", "yes")
    >>> resolve_card(card, [ev, ok]).verified
    True
    """
    mine = [
        e for e in events if (e.source, e.page, e.content_hash) == (card.source, card.page, card.content_hash)
    ]
    live = live_events(mine)
    by_round = {r: _latest([e for e in live if e.entry_round == r]) for r in (1, 2, 3)}
    machine = _machine_values(card)
    confirmed_rounds = tuple(r for r in (1, 2, 3) if CARD_CONFIRMED in by_round[r])
    values: dict[str, str] = {}
    decided: set[str] = set()
    disagreements: list[str] = []
    fields = {f for r in (1, 2, 3) for f in by_round[r] if f not in (CARD_CONFIRMED, POSTPONED)}
    for field in sorted(fields, key=_field_order):
        third = by_round[3].get(field)
        if third is not None:
            values[field] = third.after
            decided.add(field)
            continue
        first, second = by_round[1].get(field), by_round[2].get(field)
        if not double_entry:
            chosen = first or second
            if chosen is not None:
                values[field] = chosen.after
                decided.add(field)
            continue
        # double entry: each confirmed round's value (its decision, or the machine's)
        if not {1, 2} <= set(confirmed_rounds):
            continue  # not both entered yet: the field counts as undecided
        a = first.after if first else machine.get(field, "")
        b = second.after if second else machine.get(field, "")
        if a == b:
            values[field] = a
            decided.add(field)
        else:
            disagreements.append(field)
    doubts = card_doubts(card, duplicate_code=False)
    responses = list(card.responses)
    for field, value in values.items():
        if field.startswith("answer:"):
            q = int(field.split(":", 1)[1])
            if 1 <= q <= len(responses):
                responses[q - 1] = value
    code = values.get(CODE_FIELD, card.code_number)
    version = values.get(VERSION_FIELD, card.version)
    if duplicate_code is None:
        duplicate_code = _DUPLICATE_CODE in {_flag_name(f) for f in card.flags} and CODE_FIELD not in values
    unresolved = [f for f in doubts.fields if f not in decided]
    if duplicate_code and CODE_FIELD not in unresolved:
        unresolved.append(CODE_FIELD)
    if double_entry:
        both = {1, 2} <= set(confirmed_rounds)
        # once the supervisor decided anything, the card waits for the supervisor's confirmation
        confirmed = both and (3 in confirmed_rounds if by_round[3] else not disagreements)
    else:
        confirmed = 1 in confirmed_rounds or 2 in confirmed_rounds
    counting = (1, 2, 3)
    confirmed_by = tuple(
        dict.fromkeys(by_round[r][CARD_CONFIRMED].examiner for r in counting if CARD_CONFIRMED in by_round[r])
    )
    postponed = any(
        POSTPONED in by_round[r]
        and (CARD_CONFIRMED not in by_round[r] or by_round[r][POSTPONED].id > by_round[r][CARD_CONFIRMED].id)
        for r in (1, 2, 3)
    )
    changed = tuple(f for f in sorted(values, key=_field_order) if values[f] != machine.get(f, ""))
    verified = confirmed and not unresolved and not disagreements and card.status != "error"
    return CardResolution(
        responses="".join(responses),
        code_number=code,
        version=version,
        changed=changed,
        examiner_fields=tuple(sorted(values, key=_field_order)),
        unresolved=tuple(unresolved),
        disagreements=tuple(disagreements),
        duplicate_code=bool(duplicate_code),
        confirmed=confirmed,
        confirmed_by=confirmed_by,
        rounds_confirmed=confirmed_rounds,
        verified=verified,
        postponed=postponed and not confirmed,
        doubts=card_doubts(card, duplicate_code=bool(duplicate_code)),
    )


def _machine_values(card: MachineCard) -> dict[str, str]:
    """The machine's value of every field an event can set."""
    values = {answer_field(i + 1): ch for i, ch in enumerate(card.responses)}
    values[CODE_FIELD] = card.code_number
    values[VERSION_FIELD] = card.version
    return values


def _field_order(field: str) -> tuple[int, int]:
    """Questions in order, then code number, then version."""
    if field.startswith("answer:"):
        return (0, int(field.split(":", 1)[1]))
    return (1, 0 if field == CODE_FIELD else 1)


def entry_round_for(
    card: MachineCard, events: Iterable[ReviewEvent], examiner: str, *, double_entry: bool
) -> int | None:
    """The entry round ``examiner`` works in on this card, or None when there is none for them.

    Single entry: always round 1.  Double entry: the round the examiner already entered
    in; else round 1 when nobody entered yet, round 2 when only round 1 did (by someone
    else: the second entry is blind and by another person); else round 3 (supervisor)
    when the two entries disagree and the examiner made neither.

    Examples
    --------
    >>> card = MachineCard("a.jpg", 1, "h", "review", "123456782", "A", "A?", ("ambiguous:2",))
    >>> first = ReviewEvent(1, "t", "a.jpg", 1, "h", "anna", "answer:2", "?", "C")
    >>> entry_round_for(card, [first], "bob", double_entry=True)
    2
    """
    mine = [
        e for e in events if (e.source, e.page, e.content_hash) == (card.source, card.page, card.content_hash)
    ]
    if not double_entry:
        return 1
    by_round = {r: {e.examiner for e in mine if e.entry_round == r} for r in (1, 2, 3)}
    for r in (1, 2, 3):
        if examiner in by_round[r]:
            return r
    if not by_round[1]:
        return 1
    if not by_round[2]:
        return 2
    if resolve_card(card, mine, double_entry=True).disagreements:
        return 3
    return None
