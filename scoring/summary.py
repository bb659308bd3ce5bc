"""A session's results in the form of CEM's notices (pure: from a cohort's scores).

Over the candidates given (the caller picks them: finalised cards): how many, the
mean, median, highest and lowest points, how many are below the pass mark, the
maximum possible and how many questions were annulled; per field of medicine
(regulation §2) the mean, median, lowest and highest points, its maximum, and the
distribution (how many candidates scored 0, 1, …, max points in it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scoring.core import CohortScores
from scoring.key import AnswerKey

__all__ = ["FieldSummary", "SessionSummary", "summarise_session"]


@dataclass(frozen=True, slots=True)
class FieldSummary:
    """One field of medicine: points per candidate summarised.

    distribution : tuple of int, candidates with 0, 1, ..., max_points points
    """

    name: str
    max_points: int
    mean: float
    median: float
    lowest: int
    highest: int
    distribution: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """The session's notice figures (points; NaN / 0 when there is no candidate)."""

    exam: str
    session: str
    candidates: int
    mean: float
    median: float
    highest: int
    lowest: int
    below_pass: int
    pass_percent: int
    max_points: int
    annulled: int
    fields: tuple[FieldSummary, ...]

    def lines(self) -> list[str]:
        """The notice as text lines (English labels, Polish field names)."""
        out = [
            f"{self.exam or 'exam'} {self.session or ''}".strip(),
            f"candidates: {self.candidates}",
            f"maximum possible: {self.max_points} points ({self.annulled} questions annulled)",
            f"mean: {self.mean:.2f}, median: {self.median:g}, highest: {self.highest}, lowest: {self.lowest}",
            f"below the pass mark ({self.pass_percent}%): {self.below_pass}",
        ]
        for f in self.fields:
            out.append(
                f"  {f.name}: mean {f.mean:.2f} / {f.max_points}, median {f.median:g}, "
                f"range {f.lowest}-{f.highest}"
            )
        return out


def summarise_session(scores: CohortScores, key: AnswerKey) -> SessionSummary:
    """The notice figures of the candidates in ``scores`` (one row each).

    Examples
    --------
    >>> from scoring import encode_responses, score_codes
    >>> key = AnswerKey.from_dict({"versions": {"A": {"key": "ABCD"}}, "pass_percent": 50,
    ...                            "annulled": [4], "domains": {"x": 2, "y": 2}})
    >>> s = score_codes(encode_responses(["ABCD", "A---", "----"], "ABCDE"), np.zeros(3, np.intp), key)
    >>> summary = summarise_session(s, key)
    >>> summary.candidates, summary.mean, summary.below_pass, summary.max_points, summary.annulled
    (3, 1.3333333333333333, 2, 3, 1)
    >>> summary.fields[0].distribution, summary.fields[1].distribution
    ((1, 1, 1), (2, 1))
    """
    n = int(scores.correct.shape[0])
    correct = scores.correct.astype(np.int64)
    fields = []
    for d, name in enumerate(scores.domain_names):
        points = scores.domain_correct[:, d].astype(np.int64)
        most = int(scores.domain_max[d])
        hist = np.bincount(np.clip(points, 0, most), minlength=most + 1) if n else np.zeros(most + 1, int)
        fields.append(
            FieldSummary(
                name=name,
                max_points=most,
                mean=float(points.mean()) if n else float("nan"),
                median=float(np.median(points)) if n else float("nan"),
                lowest=int(points.min()) if n else 0,
                highest=int(points.max()) if n else 0,
                distribution=tuple(int(c) for c in hist),
            )
        )
    return SessionSummary(
        exam=key.exam,
        session=key.session,
        candidates=n,
        mean=float(correct.mean()) if n else float("nan"),
        median=float(np.median(correct)) if n else float("nan"),
        highest=int(correct.max()) if n else 0,
        lowest=int(correct.min()) if n else 0,
        below_pass=int((~scores.passed).sum()),
        pass_percent=key.pass_percent,
        max_points=scores.max_points,
        annulled=len(key.annulled),
        fields=tuple(fields),
    )
