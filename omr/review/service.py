"""What the review station's pages show and do, without the web layer.

`ReviewService` reads the results store (the scanner may be writing it at the same
time: WAL, one short-lived connection per thread, reads in autocommit so no read holds
a snapshot), builds the queue, the card screen's items, the by-question tiles, the
supervisor queue and the examiners' statistics, and records decisions -- the only
thing it writes, as `omr.review.events` events, each checked first.
"""

from __future__ import annotations

import calendar
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from omr.errors import ImageReadError, ReviewError
from omr.layout import CardLayout
from omr.review.events import (
    CARD_CONFIRMED,
    CODE_FIELD,
    POSTPONED,
    VERSION_FIELD,
    CardResolution,
    MachineCard,
    NewEvent,
    ReviewEvent,
    answer_field,
    check_decision,
    earlier_scans,
    entry_round_for,
    live_events,
    resolve_card,
)
from omr.review.results import DOUBLE_ENTRY_META, CodeCounts, group_events
from omr.store import PageGeometry, ResultStore, open_store

__all__ = ["CardView", "Item", "QueueEntry", "ReviewService", "Tile", "ExaminerStats"]

#: a gap between two decisions longer than this is a pause, not work (stats per hour)
PAUSE_S = 300.0
_STATE_ORDER = {"todo": 0, "open": 0, "postponed": 2, "waiting": 3, "disagreement": 1, "verified": 4}


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One review card in an examiner's queue.

    id : the reading's row id; card : its machine reading
    reasons : why it is here (``ambiguous``, flag names)
    todo : doubts left in the examiner's entry; severity : sort key, worst first
    state : ``todo`` / ``open`` (begun) / ``postponed`` / ``waiting`` (for the second
        entry) / ``disagreement`` (for the supervisor) / ``verified``
    entry_round : the examiner's round on it (None: nothing for them)
    """

    id: int
    card: MachineCard
    reasons: tuple[str, ...]
    todo: int
    severity: int
    state: str
    entry_round: int | None


@dataclass(frozen=True, slots=True)
class Item:
    """One thing to decide on the card screen.

    field : ``answer:17`` / ``code_number`` / ``version`` / ``card`` (the whole card)
    label : shown to people; kind : ``doubt`` / ``correction`` / ``card`` / ``disagreement``
    machine : the machine's value; current : the value in this entry
    decided : an examiner decided it in this entry
    question : 1-based question for answers, else 0
    fills : (option, fill percent, state) per box of a question
    entries : for the supervisor, (examiner, value) of each round
    """

    field: str
    label: str
    kind: str
    machine: str
    current: str
    decided: bool
    question: int = 0
    fills: tuple[tuple[str, int, int], ...] = ()
    entries: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CardView:
    """Everything the card screen shows for one examiner."""

    id: int
    card: MachineCard
    entry_round: int | None
    view: CardResolution
    final: CardResolution
    items: tuple[Item, ...]
    active: int
    score: dict
    events: tuple[ReviewEvent, ...]
    history: tuple[ReviewEvent, ...]
    can_finalise: bool
    blocked: str
    whole_card: tuple[str, ...]
    options: str
    versions: str
    barcode: str = ""
    grid: str = ""


@dataclass(frozen=True, slots=True)
class Tile:
    """One card's crop in the by-question mode."""

    id: int
    card: MachineCard
    darkness: float
    machine: str
    current: str
    decided: bool
    fills: tuple[tuple[str, int, int], ...]
    entry_round: int


@dataclass(frozen=True, slots=True)
class ExaminerStats:
    """One examiner's work: what, how fast, how often changed or disputed."""

    examiner: str
    cards: int
    questions: int
    changes: int
    undos: int
    disagreements: int
    active_h: float
    first: str
    last: str

    @property
    def cards_per_hour(self) -> float:
        return self.cards / self.active_h if self.active_h > 0 else 0.0

    @property
    def questions_per_hour(self) -> float:
        return self.questions / self.active_h if self.active_h > 0 else 0.0


@dataclass
class _Snapshot:
    """The queue's inputs, recomputed when the store changes."""

    fingerprint: tuple[int, int, int]
    made: float
    cards: list[tuple[int, MachineCard]]
    events: dict[tuple[str, int, str], list[ReviewEvent]]
    codes: CodeCounts
    all_events: list[ReviewEvent] = field(default_factory=list)


class ReviewService:
    """The review station's logic over one results store.

    Parameters
    ----------
    db_path : str or Path
    layout : CardLayout
        The store's card layout.
    key : AnswerKey, optional
        Scores the provisional results; default: the key the store was scored with.
    double_entry : bool
        Two blind entries per card, disagreements to a supervisor; recorded in the
        store (``meta``) so the export requires it too.
    """

    def __init__(
        self,
        db_path: str | Path,
        layout: CardLayout,
        *,
        key: object | None = None,
        double_entry: bool = False,
    ) -> None:
        self.db_path = Path(db_path)
        self.layout = layout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._images: OrderedDict[int, tuple[str, NDArray[np.uint8]]] = OrderedDict()
        store = self.store()
        if double_entry and store.meta(DOUBLE_ENTRY_META) != "1":
            store.set_meta(DOUBLE_ENTRY_META, "1")
        self.double_entry = store.meta(DOUBLE_ENTRY_META) == "1"
        self.key = key if key is not None else store.scoring_key()

    # -- the store, one connection per thread ---------------------------------------
    def store(self) -> ResultStore:
        """This thread's connection to the store (opened on first use)."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = open_store(self.db_path)
            self._local.store = store
        return store

    def _snap(self) -> _Snapshot:
        store = self.store()
        fp = store.fingerprint()
        with self._lock:
            snap = self._snapshot
            if snap is not None and snap.fingerprint == fp and time.monotonic() - snap.made < 2.0:
                return snap
        cards = store.numbered_cards(where="status <> 'error' AND duplicate_of IS NULL")
        all_events = store.review_events()
        groups = group_events(all_events)
        snap = _Snapshot(
            fp, time.monotonic(), cards, groups, CodeCounts(store, groups, self.double_entry), all_events
        )
        with self._lock:
            self._snapshot = snap
        return snap

    def _duplicate(self, snap: _Snapshot, card: MachineCard, code: str) -> bool:
        if not code:
            return False
        part = self.store().part_of(card.source, card.page)  # cards of parts: per (code, part)
        if snap.codes.touched(code, part):
            return snap.codes.carried(code, part) > 1
        if code == card.code_number:
            return "duplicate_code" in card.flags
        return snap.codes.carried(code, part) > 0

    def _events(self, snap: _Snapshot, card: MachineCard) -> list[ReviewEvent]:
        return snap.events.get((card.source, card.page, card.content_hash), [])

    def _resolutions(
        self, snap: _Snapshot, card: MachineCard, entry_round: int | None
    ) -> tuple[CardResolution, CardResolution]:
        """(the examiner's entry, the card as a whole) for ``card``."""
        events = self._events(snap, card)
        final = resolve_card(
            card,
            events,
            double_entry=self.double_entry,
            duplicate_code=self._duplicate(snap, card, _current_code(card, events, self.double_entry)),
        )
        if not self.double_entry or entry_round == 3 or entry_round is None:
            return final, final
        mine = [e for e in events if e.entry_round == entry_round]
        code = _current_code(card, mine, False)
        return resolve_card(card, mine, duplicate_code=self._duplicate(snap, card, code)), final

    # -- the queue ------------------------------------------------------------------
    def queue(
        self, examiner: str, reason: str | None = None, *, include_done: bool = True
    ) -> list[QueueEntry]:
        """The review cards, worst first (doubts left, whole-card flags), filtered by ``reason``.

        Postponed cards come after the others; cards waiting for another examiner, and
        verified ones, last.
        """
        snap = self._snap()
        entries = []
        for row_id, card in snap.cards:
            events = self._events(snap, card)
            if card.status != "review" and not events:
                continue
            entry_round = entry_round_for(card, events, examiner, double_entry=self.double_entry)
            view, final = self._resolutions(snap, card, entry_round)
            reasons = final.doubts.reasons or tuple(f.split(":", 1)[0] for f in card.flags)
            if reason and reason not in reasons and not any(r.startswith(reason) for r in reasons):
                continue
            state = _state(view, final, entry_round, self.double_entry)
            if not include_done and state in ("verified", "waiting"):
                continue
            d = final.doubts
            severity = 3 * len(d.whole_card) + 2 * bool(d.code) + 2 * bool(d.version) + len(view.unresolved)
            entries.append(
                QueueEntry(row_id, card, reasons, len(view.unresolved), severity, state, entry_round)
            )
        entries.sort(key=lambda e: (_STATE_ORDER[e.state], -e.severity, e.card.source, e.card.page))
        return entries

    def reasons(self) -> list[tuple[str, int]]:
        """Every reason in the queue with how many cards carry it (for the filter)."""
        counts: dict[str, int] = {}
        for e in self.queue("", None):
            for r in e.reasons:
                counts[r] = counts.get(r, 0) + 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def next_card(self, examiner: str, after: int | None = None, reason: str | None = None) -> int | None:
        """The next card with work for ``examiner`` (the worst first, not ``after``)."""
        for e in self.queue(examiner, reason, include_done=False):
            if e.id != after and e.state in ("todo", "open", "disagreement") and e.entry_round is not None:
                return e.id
        for e in self.queue(examiner, reason, include_done=False):  # then the postponed ones
            if e.id != after and e.state == "postponed" and e.entry_round is not None:
                return e.id
        return None

    def supervisor_queue(self, examiner: str) -> list[QueueEntry]:
        """Cards whose two blind entries disagree (double entry)."""
        return [e for e in self.queue(examiner) if e.state == "disagreement"]

    # -- one card -------------------------------------------------------------------
    def _card(self, row_id: int) -> MachineCard:
        got = self.store().numbered_cards(where="id=?", params=(row_id,))
        if not got:
            raise ReviewError(
                f"card {row_id} is not in the store any more (its page was re-scanned: open the queue again)"
            )
        return got[0][1]

    def card_view(self, row_id: int, examiner: str, extra_questions: Sequence[int] = ()) -> CardView:
        """The card screen's content for ``examiner``."""
        card = self._card(row_id)
        snap = self._snap()
        events = self._events(snap, card)
        entry_round = entry_round_for(card, events, examiner, double_entry=self.double_entry)
        view, final = self._resolutions(snap, card, entry_round)
        fill = self.store().fill_matrix(card.source, card.page)
        items = self._items(card, view, final, entry_round, events, fill, extra_questions)
        active = next((i for i, it in enumerate(items) if not it.decided and it.kind != "card"), len(items))
        blocked = ""
        if entry_round is None:
            blocked = "both entries of this card are made by others" if self.double_entry else ""
        elif entry_round == 3:
            left = [it.field for it in items if not it.decided]
            blocked = f"decide {', '.join(left)} first" if left else ""
        elif view.unresolved:
            blocked = "doubts left: " + ", ".join(view.unresolved)
        barcode, grid = self.store().code_reads(card.source, card.page)
        can_finalise = (
            entry_round is not None
            and not blocked
            and not (entry_round in view.rounds_confirmed or (not self.double_entry and view.confirmed))
        )
        # an examiner sees the decisions of their own entry only (the second entry is blind)
        shown = [
            e for e in events if not self.double_entry or e.entry_round == entry_round or entry_round == 3
        ]
        return CardView(
            id=row_id,
            card=card,
            entry_round=entry_round,
            view=view,
            final=final,
            items=tuple(items),
            active=active,
            score=self._score(card, view),
            events=tuple(shown),
            history=tuple(earlier_scans(card, self.store().review_events(card.source, card.page))),
            can_finalise=can_finalise,
            blocked=blocked,
            whole_card=final.doubts.whole_card,
            options=self.layout.options,
            versions=self.layout.version.labels,
            barcode=barcode,
            grid=grid,
        )

    def _items(
        self,
        card: MachineCard,
        view: CardResolution,
        final: CardResolution,
        entry_round: int | None,
        events: list[ReviewEvent],
        fill: object,
        extra_questions: Sequence[int],
    ) -> list[Item]:
        machine = {CODE_FIELD: card.code_number, VERSION_FIELD: card.version}
        current = {CODE_FIELD: view.code_number, VERSION_FIELD: view.version}
        if entry_round == 3:
            live = live_events(events)
            items = []
            for f in final.disagreements:
                third = _last(live, f, 3)
                items.append(
                    self._item(
                        card,
                        f,
                        "disagreement",
                        machine,
                        current,
                        fill,
                        decided=third is not None,
                        value=third.after if third else "?",
                        entries=_round_values(card, live, f),
                    )
                )
            return items
        fields = list(view.doubts.fields)
        fields += [f for f in view.examiner_fields if f not in fields]
        fields += [
            answer_field(q)
            for q in extra_questions
            if 1 <= q <= self.layout.questions and answer_field(q) not in fields
        ]
        items = []
        for f in fields:
            kind = "doubt" if f in view.doubts.fields else "correction"
            value = view.responses[int(f.split(":")[1]) - 1] if f.startswith("answer:") else current[f]
            items.append(
                self._item(
                    card, f, kind, machine, current, fill, decided=f in view.examiner_fields, value=value
                )
            )
        if view.doubts.whole_card:
            items.append(
                Item(
                    "card",
                    "Whole card: look over every answer (" + ", ".join(view.doubts.whole_card) + ")",
                    "card",
                    "",
                    "",
                    view.confirmed,
                )
            )
        return items

    def _item(
        self,
        card: MachineCard,
        f: str,
        kind: str,
        machine: dict,
        current: dict,
        fill: object,
        *,
        decided: bool,
        value: str,
        entries: tuple[tuple[str, str], ...] = (),
    ) -> Item:
        if f.startswith("answer:"):
            q = int(f.split(":")[1])
            return Item(
                f,
                f"Question {q}",
                kind,
                card.responses[q - 1],
                value,
                decided,
                q,
                self._fills(fill, q),
                entries,
            )
        label = "Code number" if f == CODE_FIELD else "Version"
        return Item(f, label, kind, machine[f], value, decided, entries=entries)

    def _fills(self, fill: object, q: int) -> tuple[tuple[str, int, int], ...]:
        if fill is None:
            return ()
        n = len(self.layout.options)
        feats, states = fill.features, fill.states  # type: ignore[attr-defined]
        k = (q - 1) * n
        return tuple(
            (opt, int(round(100 * float(feats[k + i, 0]))), int(states[k + i]))
            for i, opt in enumerate(self.layout.options)
        )

    def _score(self, card: MachineCard, view: CardResolution) -> dict:
        """The provisional score of the entry's current values (``?`` counts wrong)."""
        if self.key is None:
            return {"text": "no answer key in the store (run omr rescore --db STORE --key KEY)"}
        from scoring import score_rows
        from scoring.results import ResultRow

        row = score_rows(
            [
                ResultRow(
                    source=card.source,
                    page=card.page,
                    status="review",
                    code_number=view.code_number,
                    version=view.version,
                    responses=view.responses,
                )
            ],
            self.key,
        )[0]  # type: ignore[arg-type]
        if row.correct is None:
            return {"text": "cannot be scored: " + ";".join(row.flags)}
        return {
            "correct": row.correct,
            "max_points": row.max_points,
            "percent": f"{row.percent}",
            "passed": row.passed,
            "text": f"{row.correct} / {row.max_points} = {row.percent} %, {'pass' if row.passed else 'fail'}",
        }

    # -- decisions ------------------------------------------------------------------
    def _checked(
        self, row_id: int, content_hash: str, examiner: str
    ) -> tuple[MachineCard, list[ReviewEvent], int]:
        if not examiner:
            raise ReviewError("log in with your name first")
        card = self._card(row_id)
        if card.content_hash != content_hash:
            raise ReviewError(
                f"{card.source} page {card.page} was re-scanned while you looked at it; reload the card"
            )
        events = self.store().review_events(card.source, card.page)
        mine = [e for e in events if e.content_hash == card.content_hash]
        entry_round = entry_round_for(card, mine, examiner, double_entry=self.double_entry)
        if entry_round is None:
            raise ReviewError(
                f"{card.source} page {card.page}: both entries are made by other examiners; "
                "only a third examiner can settle a disagreement"
            )
        return card, mine, entry_round

    def decide(
        self, row_id: int, content_hash: str, examiner: str, field_name: str, value: str, note: str = ""
    ) -> int:
        """Record one decision; return its event id.

        Raises
        ------
        ReviewError
            Bad value (`check_decision`), the card re-scanned meanwhile, no round for this
            examiner, or the card already confirmed in their entry (undo that first).
        """
        card, events, entry_round = self._checked(row_id, content_hash, examiner)
        check_decision(
            field_name,
            value,
            questions=self.layout.questions,
            options=self.layout.options,
            versions=self.layout.version.labels,
        )
        live = live_events(events)
        if _last(live, CARD_CONFIRMED, entry_round) is not None:
            raise ReviewError("this card is finalised in your entry; undo the finalisation (U) to change it")
        before = _before(card, live, field_name, entry_round)
        reason = _reason(card, field_name)
        return self.store().append_events(
            [
                NewEvent(
                    card.source,
                    card.page,
                    card.content_hash,
                    examiner,
                    field_name,
                    before,
                    value,
                    entry_round,
                    reason,
                    note,
                )
            ]
        )[0]

    def finalise(self, row_id: int, content_hash: str, examiner: str) -> int:
        """Confirm the card in the examiner's entry (refused while a doubt is left)."""
        view = self.card_view(row_id, examiner)
        if view.card.content_hash != content_hash:
            raise ReviewError(
                f"{view.card.source} page {view.card.page} was re-scanned while you looked at it; "
                "reload the card"
            )
        if not view.can_finalise:
            raise ReviewError("cannot finalise: " + (view.blocked or "already finalised in your entry"))
        card, _, entry_round = self._checked(row_id, content_hash, examiner)
        reason = ",".join(view.whole_card) or "reviewed"
        return self.store().append_events(
            [
                NewEvent(
                    card.source,
                    card.page,
                    card.content_hash,
                    examiner,
                    CARD_CONFIRMED,
                    "",
                    "yes",
                    entry_round,
                    reason,
                )
            ]
        )[0]

    def postpone(self, row_id: int, content_hash: str, examiner: str) -> int:
        """Put the card aside (it goes to the back of the queue)."""
        card, _, entry_round = self._checked(row_id, content_hash, examiner)
        return self.store().append_events(
            [
                NewEvent(
                    card.source,
                    card.page,
                    card.content_hash,
                    examiner,
                    POSTPONED,
                    "",
                    "yes",
                    entry_round,
                    "postponed",
                )
            ]
        )[0]

    def carry_over(self, row_id: int, content_hash: str, examiner: str) -> int:
        """Apply the decisions made on this page's earlier scan to this one; return how many.

        A page re-scanned into the same path is a new reading, decided afresh; this
        records, as new events of the examiner's entry (reason ``earlier scan``), the
        last live value of each field decided in the same entry round on the most
        recent earlier scan -- not its confirmation: the examiner still looks and
        finalises.  Fields this entry already decided are left alone.
        """
        card, events, entry_round = self._checked(row_id, content_hash, examiner)
        earlier = earlier_scans(card, self.store().review_events(card.source, card.page))
        if not earlier:
            return 0
        latest_hash = max(earlier, key=lambda e: e.id).content_hash
        old = [
            e
            for e in live_events(e for e in earlier if e.content_hash == latest_hash)
            if e.entry_round == entry_round and e.field not in (CARD_CONFIRMED, POSTPONED)
        ]
        live = live_events(events)
        decided = {e.field for e in live if e.entry_round == entry_round}
        new = []
        for field_name, e in {e.field: e for e in old}.items():
            if field_name in decided:
                continue
            check_decision(
                field_name,
                e.after,
                questions=self.layout.questions,
                options=self.layout.options,
                versions=self.layout.version.labels,
            )
            new.append(
                NewEvent(
                    card.source,
                    card.page,
                    card.content_hash,
                    examiner,
                    field_name,
                    _before(card, live, field_name, entry_round),
                    e.after,
                    entry_round,
                    "earlier scan",
                    f"as decided by {e.examiner} on scan {latest_hash[:10]} (event {e.id})",
                )
            )
        if new:
            self.store().append_events(new)
        return len(new)

    def undo(self, row_id: int, content_hash: str, examiner: str) -> int | None:
        """Take back the examiner's last live decision on this card (a new event); None if none."""
        card, events, entry_round = self._checked(row_id, content_hash, examiner)
        live = [
            e
            for e in live_events(events)
            if e.examiner == examiner and e.entry_round == entry_round and e.field != POSTPONED
        ]
        if not live:
            return None
        target = live[-1]
        rest = [e for e in live_events(events) if e.id != target.id]
        restored = _before(card, rest, target.field, entry_round) if target.field != CARD_CONFIRMED else ""
        return self.store().append_events(
            [
                NewEvent(
                    card.source,
                    card.page,
                    card.content_hash,
                    examiner,
                    target.field,
                    target.after,
                    restored,
                    entry_round,
                    "undo",
                    f"undoes event {target.id}",
                    target.id,
                )
            ]
        )[0]

    # -- by question ----------------------------------------------------------------
    def question_tiles(self, question: int, examiner: str, *, only_doubts: bool = True) -> list[Tile]:
        """The same question on every review card, darkest first."""
        if not 1 <= question <= self.layout.questions:
            raise ReviewError(f"question {question}: the card has 1..{self.layout.questions}")
        snap = self._snap()
        f = answer_field(question)
        tiles = []
        for row_id, card in snap.cards:
            events = self._events(snap, card)
            if card.status != "review" and not events:
                continue
            if only_doubts and card.responses[question - 1] != "?":
                continue
            entry_round = entry_round_for(card, events, examiner, double_entry=self.double_entry)
            if entry_round is None or entry_round == 3:
                continue
            view, _ = self._resolutions(snap, card, entry_round)
            if view.confirmed and (not self.double_entry or entry_round in view.rounds_confirmed):
                continue
            fills = self._fills(self.store().fill_matrix(card.source, card.page), question)
            darkness = max((p for _, p, _ in fills), default=0)
            tiles.append(
                Tile(
                    row_id,
                    card,
                    darkness,
                    card.responses[question - 1],
                    view.responses[question - 1],
                    f in view.examiner_fields,
                    fills,
                    entry_round,
                )
            )
        tiles.sort(key=lambda t: (-t.darkness, t.card.source))
        return tiles

    def doubt_counts(self, examiner: str) -> list[tuple[int, int]]:
        """(question, how many review cards read it '?'), for the by-question index."""
        counts = np.zeros(self.layout.questions + 1, np.int64)
        for _, card in self._snap().cards:
            if card.status == "review":
                for i, ch in enumerate(card.responses[: self.layout.questions]):
                    if ch == "?":
                        counts[i + 1] += 1
        return [(q, int(counts[q])) for q in range(1, self.layout.questions + 1) if counts[q]]

    # -- statistics -----------------------------------------------------------------
    def stats(self) -> list[ExaminerStats]:
        """Per examiner: cards finalised, questions decided, changes, undos, disagreements, pace."""
        snap = self._snap()
        by_examiner: dict[str, list[ReviewEvent]] = {}
        for e in snap.all_events:
            by_examiner.setdefault(e.examiner, []).append(e)
        disputed: dict[str, int] = {}
        for _, card in snap.cards:
            events = self._events(snap, card)
            if not self.double_entry or not events:
                continue
            final = resolve_card(card, events, double_entry=True)
            for f in final.disagreements:
                for e in {e.examiner for e in events if e.field == f and e.entry_round in (1, 2)}:
                    disputed[e] = disputed.get(e, 0) + 1
        out = []
        for name, events in sorted(by_examiner.items()):
            live = live_events(events)
            times = sorted(_epoch(e.at) for e in events)
            active = sum(min(b - a, PAUSE_S) for a, b in zip(times, times[1:], strict=False)) + 30.0
            out.append(
                ExaminerStats(
                    examiner=name,
                    cards=sum(e.field == CARD_CONFIRMED for e in live),
                    questions=sum(e.field.startswith("answer:") for e in live),
                    changes=sum(
                        e.field not in (CARD_CONFIRMED, POSTPONED)
                        and e.before not in ("", e.after)
                        and e.before != "?"
                        for e in live
                    ),
                    undos=sum(e.undoes is not None for e in events),
                    disagreements=disputed.get(name, 0),
                    active_h=active / 3600.0,
                    first=events[0].at,
                    last=events[-1].at,
                )
            )
        return out

    # -- images ---------------------------------------------------------------------
    def geometry(self, row_id: int) -> tuple[MachineCard, PageGeometry]:
        card = self._card(row_id)
        geo = self.store().page_geometry(card.source, card.page)
        if geo is None:
            raise ReviewError(
                f"{card.source} page {card.page}: the store holds no registration for it "
                "(scanned by an older omr? scan it again into a new store)"
            )
        return card, geo

    def page_image(self, row_id: int) -> NDArray[np.uint8]:
        """The page as it was read (decoded again from its file, checked by content hash)."""
        from omr.pages import LastFile, PageRef, describe_file, load_page

        card, geo = self.geometry(row_id)
        with self._lock:
            if row_id in self._images:
                self._images.move_to_end(row_id)
                return self._images[row_id][1]
        kept = LastFile()
        info = describe_file(geo.path, keep=kept)
        if info.content_hash != geo.content_hash:
            why = info.error or "its content changed since it was read (re-scanned? scan it again)"
            raise ImageReadError(f"{geo.path}: cannot show the page as it was read: {why}")
        gray = load_page(
            PageRef(card.source, card.page, geo.path, info.content_hash, info.kind, info.pages), kept=kept
        )
        with self._lock:
            self._images[row_id] = (geo.content_hash, gray)
            while len(self._images) > 6:
                self._images.popitem(last=False)
        return gray


def _current_code(card: MachineCard, events: list[ReviewEvent], double_entry: bool) -> str:
    return resolve_card(card, events, double_entry=double_entry, duplicate_code=False).code_number


def _state(view: CardResolution, final: CardResolution, entry_round: int | None, double_entry: bool) -> str:
    """Where a card stands for one examiner (see `QueueEntry.state`)."""
    if final.verified:
        return "verified"
    if final.disagreements:
        return "disagreement"
    if entry_round is None or (double_entry and entry_round in view.rounds_confirmed):
        return "waiting"
    if view.postponed:
        return "postponed"
    return "open" if view.examiner_fields else "todo"


def _last(live: list[ReviewEvent], field_name: str, entry_round: int) -> ReviewEvent | None:
    found = None
    for e in live:
        if e.field == field_name and e.entry_round == entry_round:
            found = e
    return found


def _round_values(card: MachineCard, live: list[ReviewEvent], field_name: str) -> tuple[tuple[str, str], ...]:
    """(examiner, value) of rounds 1 and 2 on a field (the machine's value where a round left it)."""
    out = []
    for r in (1, 2):
        e = _last(live, field_name, r)
        confirm = _last(live, CARD_CONFIRMED, r)
        who = e.examiner if e else (confirm.examiner if confirm else f"round {r}")
        out.append((who, e.after if e else _before(card, [], field_name, r)))
    return tuple(out)


def _before(card: MachineCard, live: list[ReviewEvent], field_name: str, entry_round: int) -> str:
    """The value a field shows in this entry before a new decision."""
    e = _last(live, field_name, entry_round)
    if e is not None:
        return e.after
    if field_name.startswith("answer:"):
        return card.responses[int(field_name.split(":")[1]) - 1]
    return {CODE_FIELD: card.code_number, VERSION_FIELD: card.version}.get(field_name, "")


def _reason(card: MachineCard, field_name: str) -> str:
    """Why a field was asked: ``ambiguous``, the flag, or ``correction``."""
    names = [f.split(":", 1)[0] for f in card.flags]
    if field_name.startswith("answer:"):
        return "ambiguous" if card.responses[int(field_name.split(":")[1]) - 1] == "?" else "correction"
    if field_name == CODE_FIELD:
        return (
            ",".join(
                n for n in names if n in ("code_mismatch", "check_digit", "code_unreadable", "duplicate_code")
            )
            or "correction"
        )
    return ",".join(n for n in names if n.startswith("version_")) or "correction"


def _epoch(at: str) -> float:
    """Seconds since 1970 of an event time (``2026-12-03T08:01:02.345Z``)."""
    millis = int(at[20:23]) / 1000 if len(at) >= 23 and at[20:23].isdigit() else 0.0
    return calendar.timegm(time.strptime(at[:19], "%Y-%m-%dT%H:%M:%S")) + millis
