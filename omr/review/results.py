"""The results as they stand after review: stored readings plus the examiners' events.

`resolved_rows` is what ``omr export``, ``omr scan --out`` and ``omr rescore --db --out``
write: each stored page's row with its current values (`omr.review.events.resolve_card`),
re-scored from the resolved responses with the store's answer key, status ``verified``
for a card confirmed with no doubt left, and two extra columns:

``verified_by``   the examiners whose confirmation counts (``;``-joined), "" otherwise
``value_source``  ``examiner`` when any value is an examiner's correction, else ``machine``

Because the stored readings are never changed and the events are applied after them,
corrections survive ``omr rescore --db`` (the new key re-scores the resolved responses)
and re-runs of ``omr scan`` (stored pages are skipped, their events still apply).  The
duplicate-code check is made again on the current code numbers: a corrected code
number can end (or start) a ``duplicate_code``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from omr.errors import StoreError
from omr.review.events import VERIFIED, CardResolution, MachineCard, ReviewEvent, resolve_card

if TYPE_CHECKING:
    from omr.store import ResultStore, StoredRow
    from scoring import AnswerKey
    from scoring.results import ResultRow

__all__ = [
    "DOUBLE_ENTRY_META",
    "REVIEW_COLUMNS",
    "CodeCounts",
    "ResolvedCard",
    "group_events",
    "resolved_cards",
    "resolved_rows",
]

#: export columns added after the store's ``message``
REVIEW_COLUMNS = ("verified_by", "value_source")
#: meta key set to "1" once the store is reviewed with double entry
DOUBLE_ENTRY_META = "review_double_entry"
_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class ResolvedCard:
    """A stored page with its events applied.

    stored : the stored row (effective status and flags, machine values and scores)
    card : its machine reading
    resolution : its current values, or None when it has no event and no changed duplicate
    duplicate_code : whether another card carries its current code number
    """

    stored: StoredRow
    card: MachineCard
    resolution: CardResolution | None
    duplicate_code: bool


def group_events(events: list[ReviewEvent]) -> dict[tuple[str, int, str], list[ReviewEvent]]:
    """Events by the reading they are about: (source, page, content hash)."""
    groups: dict[tuple[str, int, str], list[ReviewEvent]] = {}
    for e in events:
        groups.setdefault((e.source, e.page, e.content_hash), []).append(e)
    return groups


def _machine(stored: StoredRow) -> MachineCard:
    r = stored.row
    return MachineCard(
        r.source, r.page, stored.content_hash, r.status, r.code_number, r.version, r.responses, r.flags
    )


class CodeCounts:
    """How many cards carry each code number once the examiners' corrections apply.

    Counted per (code number, part): on a layout of several parts the two cards of one
    candidate are no duplicates (as in the store); elsewhere the part is always None.
    """

    def __init__(self, store: ResultStore, groups: dict, double_entry: bool) -> None:
        self._store = store
        self.moved: dict[tuple[str, int, str], str] = {}  # page -> its corrected code number
        self.delta: Counter[tuple[str, int | None]] = Counter()  # (code number, part) -> change
        for (source, page, content_hash), events in groups.items():
            cards = store.machine_cards(
                where="source=? AND page=? AND content_hash=? AND duplicate_of IS NULL AND status <> 'error'",
                params=(source, page, content_hash),
            )
            for card in cards:
                code = resolve_card(card, events, double_entry=double_entry, duplicate_code=False).code_number
                if code != card.code_number:
                    self.moved[(source, page, content_hash)] = code
                    part = store.part_of(source, page)
                    self.delta[card.code_number, part] -= 1
                    self.delta[code, part] += 1
        self._cache: dict[tuple[str, int | None], int] = {}

    def touched(self, code: str, part: int | None = None) -> bool:
        """Whether corrections changed how many cards of this part carry ``code``."""
        return (code, part) in self.delta

    def carried(self, code: str, part: int | None = None) -> int:
        """Cards of ``part`` carrying ``code`` now."""
        if (code, part) not in self._cache:
            self._cache[code, part] = self._store.cards_with_code(code, part) + self.delta.get((code, part), 0)
        return self._cache[code, part]


def resolved_cards(store: ResultStore, *, run_id: int | None = None) -> Iterator[ResolvedCard]:
    """Every stored page (only ``run_id``'s when given) with its events applied, streamed."""
    groups = group_events(store.review_events())
    double_entry = store.meta(DOUBLE_ENTRY_META) == "1"
    codes = CodeCounts(store, groups, double_entry)
    for stored in store.iter_rows(run_id=run_id):
        card = _machine(stored)
        page_key = (card.source, card.page, card.content_hash)
        events = groups.get(page_key)
        current_code = codes.moved.get(page_key, card.code_number)
        touched = codes.touched(current_code, stored.part)
        is_card = not stored.duplicate_of and card.status != "error"
        duplicate = is_card and bool(current_code) and (
            codes.carried(current_code, stored.part) > 1 if touched else "duplicate_code" in card.flags)
        if not events and not touched:
            yield ResolvedCard(stored, card, None, duplicate)
            continue
        resolution = resolve_card(card, events or [], double_entry=double_entry, duplicate_code=duplicate)
        yield ResolvedCard(stored, card, resolution, duplicate)


def _row_of(store: ResultStore, item: ResolvedCard) -> tuple[ResultRow, bool]:
    """The export row of a resolved card, and whether its scores must be recomputed."""
    from omr.store import effective_status_flags

    row, res = item.stored.row, item.resolution
    extra = (*row.extra, ("verified_by", ""), ("value_source", "machine"))
    if res is None:
        return replace(row, extra=extra), False
    base_status, base_flags = store.base_status_flags(row.source, row.page)
    status, flags = effective_status_flags(
        base_status, base_flags, item.stored.duplicate_of or None, item.duplicate_code
    )
    if res.verified and status != "error":
        status = VERIFIED
    extra = (
        *row.extra,
        ("verified_by", ";".join(res.confirmed_by) if res.verified else ""),
        ("value_source", res.value_source),
    )
    new = replace(
        row,
        status=status,
        flags=flags,
        responses=res.responses,
        code_number=res.code_number,
        version=res.version,
        extra=extra,
    )
    rescore = status != "error" and (res.responses != row.responses or res.version != row.version)
    return new, rescore


def resolved_rows(
    store: ResultStore, *, key: AnswerKey | None = None, run_id: int | None = None
) -> Iterator[ResultRow]:
    """The export rows after review (see the module docstring), in (source, page) order.

    Parameters
    ----------
    store : ResultStore
    key : AnswerKey, optional
        Re-scores corrected cards; default: the key the store was scored with
        (`ResultStore.scoring_key`).
    run_id : int, optional
        Only the pages of this run.

    Raises
    ------
    StoreError
        A card was corrected but the store has no answer key to re-score it with.
    """
    from scoring import score_rows

    chunk: list[tuple[ResultRow, bool]] = []

    def flush() -> Iterator[ResultRow]:
        nonlocal key
        todo = [i for i, (_, again) in enumerate(chunk) if again]
        rows = [r for r, _ in chunk]
        if todo:
            if key is None:
                key = store.scoring_key()
            if key is None:
                raise StoreError(
                    f"{store.path}: examiners corrected cards, but the store records no answer key "
                    "to re-score them; run 'omr rescore --db STORE --key KEY.json' once"
                )
            score = score_rows
            if store.layout_parts > 1:  # cards of several parts: the candidate is scored, not the page
                from scoring.candidates import score_part_pages as score
            for i, scored in zip(todo, score([rows[i] for i in todo], key), strict=True):
                rows[i] = scored
        chunk.clear()
        yield from rows

    for item in resolved_cards(store, run_id=run_id):
        chunk.append(_row_of(store, item))
        if len(chunk) >= _CHUNK:
            yield from flush()
    yield from flush()
