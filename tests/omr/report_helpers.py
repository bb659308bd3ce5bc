"""A results store of a synthetic LEK cohort (no images): for the report tests and a look by eye."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omr.pages import PageRef
from omr.pipeline import PageOutcome, PageTimings
from omr.store import open_store
from scoring import AnswerKey, score_rows
from scoring.results import ResultRow
from tests.omr.batch_helpers import code_number

OPTIONS = "ABCDE"


def lek_key(seed: int = 0, **changes) -> dict:
    rng = np.random.default_rng(seed)
    letters = "".join(np.array(list(OPTIONS))[rng.integers(0, 5, 200)])
    return {
        "exam": "LEK",
        "session": "2026-09",
        "questions": 200,
        "versions": {"A": {"key": letters}},
        "pass_percent": 56,
        **changes,
    }


def cohort_store(
    path: Path, key: dict, n: int, *, seed: int = 0, review_every: int = 7, wrong_key_at: int | None = None
) -> list[ResultRow]:
    """``n`` cards of candidates of varied ability; every ``review_every``-th card is in review
    (a '?'), one an error.  ``wrong_key_at``: the key's letter at that master number (0-based)
    is not what the strong candidates mark (they mark the next letter)."""
    rng = np.random.default_rng(seed)
    truth = list(key["versions"]["A"]["key"])
    if wrong_key_at is not None:
        truth[wrong_key_at] = OPTIONS[(OPTIONS.index(truth[wrong_key_at]) + 1) % 5]
    k = AnswerKey.from_dict(key)
    rows = []
    for i in range(n):
        skill = rng.uniform(0.3, 0.95)
        marks = [t if rng.random() < skill else str(rng.choice(list(OPTIONS + "--*"))) for t in truth]
        status, flags = "ok", ()
        if review_every and i % review_every == 3:
            marks[10] = "?"
            status, flags = "review", ("ambiguous:11",)
        rows.append(
            ResultRow(
                source=f"scan-{i:04d}.jpg",
                page=1,
                status=status,
                code_number=code_number(i),
                version="A",
                responses="".join(marks),
                flags=flags,
            )
        )
    rows.append(ResultRow(source="torn.jpg", page=1, status="error", flags=("markers_not_found",)))
    scored = score_rows(rows, k)
    t = PageTimings(0.0, 0.0, 0.0)
    with open_store(path) as store:
        rev = store.apply_key(k, by="test", reason="cohort").revision.number
        outcomes = [
            (
                PageOutcome(
                    PageRef(
                        source=r.source, page=1, path="/x/" + r.source, content_hash=f"h{j}", kind="jpeg"
                    ),
                    r,
                    None,
                    t,
                ),
                r,
            )
            for j, r in enumerate(scored)
        ]
        store.write_outcomes(outcomes, key_revision=rev)
    return scored
