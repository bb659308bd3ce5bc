"""What a key change does to a cohort: every card whose points, percent or pass/fail move.

Both keys score the same ``(N, Q)`` codes with `scoring.score_codes` (one vectorised
pass each); the cards that moved are one comparison of the two results.  Pure: the
caller reads the cards (the results store) and writes the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from omr.errors import ScoringError
from scoring.core import CohortScores, score_codes
from scoring.key import AnswerKey

__all__ = ["KeyChanges", "compare_keys"]


@dataclass(frozen=True, slots=True)
class KeyChanges:
    """The cohort under the old and the new key.

    old, new : CohortScores of every card
    changed : (M,) intp, indices of the cards whose points, percent or pass/fail differ
    passed_to_failed, failed_to_passed : cards whose pass/fail flipped
    changed_points : cards whose points differ
    """

    old: CohortScores
    new: CohortScores
    changed: NDArray[np.intp]
    passed_to_failed: int
    failed_to_passed: int
    changed_points: int

    @property
    def candidates(self) -> int:
        """Cards compared."""
        return int(self.old.correct.shape[0])


def compare_keys(
    codes: NDArray[np.uint8], version_index: NDArray[np.integer], old: AnswerKey, new: AnswerKey
) -> KeyChanges:
    """Score ``codes`` with both keys and find the cards that moved.

    Parameters
    ----------
    codes : (N, Q) uint8 ndarray
        `scoring.encode_responses` with the keys' options.
    version_index : (N,) integer ndarray
        Index into ``old.versions`` per card; ``new`` must have the same versions in
        the same order (a key correction does not rename versions).
    old, new : AnswerKey

    Returns
    -------
    KeyChanges

    Raises
    ------
    ScoringError
        The keys differ in options, questions or version names.

    Examples
    --------
    >>> from scoring import encode_responses
    >>> a = AnswerKey.from_dict({"versions": {"A": {"key": "ABC"}}, "pass_percent": 70})
    >>> b = AnswerKey.from_dict({"versions": {"A": {"key": "ABC"}}, "pass_percent": 70, "annulled": [3]})
    >>> ch = compare_keys(encode_responses(["ABC", "AB-", "A--"], "ABCDE"), np.zeros(3, np.intp), a, b)
    >>> ch.changed.tolist(), ch.failed_to_passed, ch.new.percent_hundredths.tolist()
    ([0, 1, 2], 1, [10000, 10000, 5000])
    """
    if (old.options, old.questions, old.version_names) != (new.options, new.questions, new.version_names):
        raise ScoringError(
            f"cannot compare key {old.source} with {new.source}: options {old.options!r}/{new.options!r}, "
            f"questions {old.questions}/{new.questions}, versions {','.join(old.version_names)}/"
            f"{','.join(new.version_names)} must be the same"
        )
    a = score_codes(codes, version_index, old)
    b = score_codes(codes, version_index, new)
    points = a.correct != b.correct
    flipped = a.passed != b.passed
    moved = points | flipped | (a.percent_hundredths != b.percent_hundredths)
    return KeyChanges(
        old=a,
        new=b,
        changed=np.flatnonzero(moved),
        passed_to_failed=int((a.passed & ~b.passed).sum()),
        failed_to_passed=int((~a.passed & b.passed).sum()),
        changed_points=int(points.sum()),
    )
