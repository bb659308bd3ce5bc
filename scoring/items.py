"""Item analysis of a cohort (what the objections committee needs), vectorised over N × Q.

Per **master** question (the numbers annulments and accepted answers use; each card's
responses are put into master order through its version's ``order``)::

    right[n, q]   the card's answer is the key's letter for its version, or accepted
                  (computed for annulled questions too: the committee judges them)
    total[n]      right answers on the questions that are not annulled (raw count)
    p[q]          difficulty: mean of right[:, q]
    upper, lower  the 27 % of cards with the highest / lowest total (g = round(0.27 N),
                  at least 1; ties broken by card order: a stable sort of total, lower =
                  the first g, upper = the last g)
    D[q]          discrimination: p among upper − p among lower
    r_pb[q]       point-biserial: Pearson correlation of right[:, q] with the rest score
                  total − right[:, q] (the item itself left out when it counts); NaN
                  when either is constant
    shares        per option letter as marked on the card (A..E), then '-' (omit), '*'
                  (several marked), '?' (ambiguous), other: share of all cards
    KR-20         k / (k − 1) · (1 − Σ p(1 − p) / var(total)) over the k questions not
                  annulled, var with divisor N; NaN when k < 2 or var(total) = 0

Flags for a likely key error or a bad question:

    negative_discrimination      D < 0: the weaker candidates got it right more often
    top_prefers:<L>              in the upper group, the most chosen distractor L (the
                                 first in option order of equals) was chosen by more
                                 cards than the right answer (a wrong key letter looks
                                 exactly like this)

Everything is counted with two passes over the (N, Q) codes in blocks, each version's
cards in their own card order (their columns are mapped to master numbers only in the
(Q, ·) sums, never the (N, Q) codes): per code one comparison and column sum gives the
letter counts, one matrix product of the 0/1 right matrix with ``[total, 1]`` gives
Σ right·total and Σ right exactly (float64 sums of integers), and the upper/lower
counts come from a second pass over those cards only.
The letters of distractors are as marked: versions that shuffle the options inside
a question (not only the order of questions) would mix in those columns.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from omr.errors import ScoringError
from scoring.core import _check_codes, _check_version_index, response_alphabet
from scoring.key import AnswerKey

__all__ = ["GROUP_SHARE", "ItemAnalysis", "analyse_items", "group_size"]

#: share of the cohort in each of the upper and lower groups
GROUP_SHARE_PERCENT = 27
GROUP_SHARE = GROUP_SHARE_PERCENT / 100
#: rows per block: the block's temporaries stay a few tens of MB
_BLOCK_ROWS = 16384


@dataclass(frozen=True, slots=True)
class ItemAnalysis:
    """Item statistics of N cards on Q master questions.

    candidates : N
    questions : (Q,) int, master numbers 1..Q
    key_letters : tuple of str, per master question the letters counted right (the
        first version's letter, then accepted ones; other versions' letters too when
        they differ)
    annulled : (Q,) bool
    p, p_upper, p_lower, discrimination, point_biserial : (Q,) float64
    bins : str, the column labels of ``shares``: the options, then ``-*?`` and ``!``
        (any other character)
    shares : (Q, len(bins)) float64, share of all cards per bin
    upper_shares : (Q, len(bins)) float64, the same within the upper group
    flags : tuple of tuple of str, per question
    group_size : g, cards in each of the upper and lower groups
    scored_questions : k, questions not annulled
    mean_total, var_total : mean and variance (divisor N) of the raw total
    kr20 : float (NaN when undefined)
    """

    candidates: int
    questions: NDArray[np.int64]
    key_letters: tuple[str, ...]
    annulled: NDArray[np.bool_]
    p: NDArray[np.float64]
    p_upper: NDArray[np.float64]
    p_lower: NDArray[np.float64]
    discrimination: NDArray[np.float64]
    point_biserial: NDArray[np.float64]
    bins: str
    shares: NDArray[np.float64]
    upper_shares: NDArray[np.float64]
    flags: tuple[tuple[str, ...], ...]
    group_size: int
    scored_questions: int
    mean_total: float
    var_total: float
    kr20: float

    @property
    def omit_rate(self) -> NDArray[np.float64]:
        """Share of cards with nothing marked, per question."""
        return self.shares[:, self.bins.index("-")]

    @property
    def multi_rate(self) -> NDArray[np.float64]:
        """Share of cards with several boxes marked, per question."""
        return self.shares[:, self.bins.index("*")]


def group_size(n: int) -> int:
    """Cards in each of the upper and lower groups: round(0.27 n) half up, at least 1 (0 for n = 0).

    >>> group_size(1000), group_size(3), group_size(1), group_size(0)
    (270, 1, 1, 0)
    """
    if n <= 0:
        return 0
    return max(1, (GROUP_SHARE_PERCENT * n + 50) // 100)


@dataclass(frozen=True, slots=True)
class _Tables:
    """The key per version in card position order, and where each position's master is."""

    master_of: NDArray[np.intp]  # (V, Q) master index (0-based) at card position p
    key_codes: NDArray[np.uint8]  # (V, Q) right code at card position p (annulled included)
    alt_positions: NDArray[np.intp]  # (V, A) card position of each accepted question
    alt_accepts: NDArray[np.bool_]  # (A, 256)
    scored: NDArray[np.bool_]  # (Q,) master question not annulled
    scored_at: NDArray[np.float32]  # (V, Q) 1.0 where card position p holds a scored question
    right_letters: tuple[str, ...]  # per master question


def _tables(key: AnswerKey) -> _Tables:
    q = key.questions
    letter = {c: k for k, c in enumerate(key.options)}
    master_of = np.array([v.order for v in key.versions], dtype=np.intp) - 1
    key_codes = np.array([[letter[c] for c in v.answers] for v in key.versions], dtype=np.uint8)
    position_of = np.argsort(master_of, axis=1)
    alt_positions = np.array(
        [[position_of[v, a.question - 1] for a in key.accepted] for v in range(len(key.versions))],
        dtype=np.intp,
    ).reshape(len(key.versions), -1)
    alt_accepts = np.zeros((len(key.accepted), 256), dtype=bool)
    by_master: list[list[str]] = [[] for _ in range(q)]
    for version, masters in zip(key.versions, master_of.tolist(), strict=True):
        for p, m in enumerate(masters):
            if version.answers[p] not in by_master[m]:
                by_master[m].append(version.answers[p])
    for i, a in enumerate(key.accepted):
        alt_accepts[i, [letter[c] for c in a.letters]] = True
        by_master[a.question - 1] += [c for c in a.letters if c not in by_master[a.question - 1]]
    scored = np.ones(q, dtype=bool)
    scored[[m - 1 for m in key.annulled]] = False
    return _Tables(
        master_of,
        key_codes,
        alt_positions,
        alt_accepts,
        scored,
        scored[master_of].astype(np.float32),
        tuple("".join(x) for x in by_master),
    )


def _by_version(
    codes: NDArray[np.uint8], versions: NDArray[np.intp], n_versions: int
) -> Iterator[tuple[int, NDArray[np.uint8], NDArray[np.intp] | slice]]:
    """The rows of each version: (v, their codes, their indices in ``codes``)."""
    if n_versions == 1:
        yield 0, codes, slice(None)
        return
    for v in range(n_versions):
        rows = np.flatnonzero(versions == v)
        if rows.size:
            yield v, codes[rows], rows


def _right(c: NDArray[np.uint8], v: int, t: _Tables) -> NDArray[np.bool_]:
    """(n, Q) card order: the answer is the version's key letter or an accepted one."""
    right = c == t.key_codes[v]
    if t.alt_positions.shape[1]:
        positions = t.alt_positions[v]
        right[:, positions] |= t.alt_accepts[np.arange(positions.size), c[:, positions]]
    return right


def _letter_counts(c: NDArray[np.uint8], n_bins: int) -> NDArray[np.int64]:
    """(Q, bins) how many rows hold each code per column (the last bin: that code or above).

    One comparison and column sum per code: on this machine 2.3× `np.bincount` of
    ``code + bins * column`` (which needs the whole block as intp).
    """
    counts = np.empty((c.shape[1], n_bins), dtype=np.int64)
    for k in range(n_bins - 1):
        counts[:, k] = (c == k).sum(axis=0, dtype=np.int32)
    counts[:, -1] = c.shape[0] - counts[:, :-1].sum(axis=1)
    return counts


def analyse_items(
    codes: NDArray[np.uint8], version_index: NDArray[np.integer], key: AnswerKey
) -> ItemAnalysis:
    """Item statistics of a cohort (see the module docstring for every definition).

    Parameters
    ----------
    codes : (N, Q) uint8 ndarray
        `scoring.encode_responses` with ``key.options``, card position order.
    version_index : (N,) integer ndarray
        Index into ``key.versions`` per card (`scoring.version_indices`).
    key : AnswerKey

    Returns
    -------
    ItemAnalysis

    Raises
    ------
    ScoringError
        Arrays of the wrong shape or type, or a version index out of range.

    Examples
    --------
    >>> from scoring import encode_responses
    >>> key = AnswerKey.from_dict({"versions": {"A": {"key": "AB"}}, "pass_percent": 50})
    >>> codes = encode_responses(["AB", "AC", "B-", "AB"], key.options)
    >>> items = analyse_items(codes, np.zeros(4, np.intp), key)
    >>> items.p.tolist(), items.shares[1, :3].tolist(), items.omit_rate.tolist()
    ([0.75, 0.5], [0.0, 0.5, 0.25], [0.0, 0.25])
    """
    _check_codes(codes, "codes", key.questions)
    n, q = codes.shape
    version_index = _check_version_index(version_index, n, key)
    if _BLOCK_ROWS * q >= 2**24:
        raise ScoringError(f"{q} questions: the exact float32 sums need fewer than {2**24 // _BLOCK_ROWS}")
    t = _tables(key)
    n_versions = len(key.versions)
    bins = response_alphabet(key.options) + "!"
    n_bins = len(bins)

    counts = np.zeros((q, n_bins), dtype=np.int64)  # master order
    sums = np.zeros((q, 2), dtype=np.float64)  # Σ right·total, Σ right (master order)
    total = np.empty(n, dtype=np.int64)
    for start in range(0, n, _BLOCK_ROWS):
        stop = min(n, start + _BLOCK_ROWS)
        for v, c, rows in _by_version(codes[start:stop], version_index[start:stop], n_versions):
            right = _right(c, v, t)
            counts[t.master_of[v]] += _letter_counts(c, n_bins)
            right_f = right.astype(np.float32)
            block_total = right_f @ t.scored_at[v]  # exact: sums <= Q
            total[start:stop][rows] = block_total.astype(np.int64)
            # exact in float32: a block's sums stay under 2**24 (_BLOCK_ROWS × the largest total)
            both = np.column_stack([block_total, np.ones_like(block_total)])
            sums[t.master_of[v]] += right_f.T @ both

    g = group_size(n)
    order = np.argsort(total, kind="stable")
    group_counts, group_right = [], []
    for group in (np.sort(order[:g]), np.sort(order[n - g :])):  # lower, upper
        c_sum = np.zeros((q, n_bins), dtype=np.int64)
        r_sum = np.zeros(q, dtype=np.int64)
        for start in range(0, group.size, _BLOCK_ROWS):
            pick = group[start : start + _BLOCK_ROWS]
            for v, c, _ in _by_version(codes[pick], version_index[pick], n_versions):
                c_sum[t.master_of[v]] += _letter_counts(c, n_bins)
                r_sum[t.master_of[v]] += _right(c, v, t).sum(axis=0)
        group_counts.append(c_sum)
        group_right.append(r_sum)

    with np.errstate(invalid="ignore", divide="ignore"):
        right_count = np.rint(sums[:, 1])
        p = right_count / n if n else np.full(q, np.nan)
        p_lower = group_right[0] / g if g else np.full(q, np.nan)
        p_upper = group_right[1] / g if g else np.full(q, np.nan)
        discrimination = p_upper - p_lower
        # rest score y = total − s·x (s: the item counts in total); Σx = Σx², so
        # Σxy = Sxt − s·Sx, Σy = St − s·Sx, Σy² = Stt − 2s·Sxt + s·Sx; in int64, exact
        s = t.scored.astype(np.int64)
        sum_t = int(total.sum())
        sum_tt = int(np.dot(total, total))
        sx, sxt = np.rint(sums[:, 1]).astype(np.int64), np.rint(sums[:, 0]).astype(np.int64)
        sxy = sxt - s * sx
        sy = sum_t - s * sx
        syy = sum_tt - 2 * s * sxt + s * sx
        cov = n * sxy - sx * sy
        var_x = n * sx - sx * sx
        var_y = n * syy - sy * sy
        point_biserial = np.where(
            (var_x > 0) & (var_y > 0),
            cov / np.sqrt(var_x.astype(np.float64) * var_y.astype(np.float64)),
            np.nan,
        )
        shares = counts / n if n else np.full((q, n_bins), np.nan)
        upper_shares = group_counts[1] / g if g else np.full((q, n_bins), np.nan)
    mean_total = sum_t / n if n else math.nan
    var_total = (n * sum_tt - sum_t * sum_t) / (n * n) if n else math.nan  # exact integers, one division
    k = int(t.scored.sum())
    pq = float((p * (1 - p))[t.scored].sum()) if n else math.nan
    kr20 = k / (k - 1) * (1 - pq / var_total) if k >= 2 and n and var_total > 0 else math.nan

    flags = []
    for m in range(q):
        f: list[str] = []
        if discrimination[m] < 0:
            f.append("negative_discrimination")
        distractors = [k for k, letter in enumerate(key.options) if letter not in t.right_letters[m]]
        if distractors:
            top = max(distractors, key=lambda k: (group_counts[1][m, k], -k))  # the first of equals
            if group_counts[1][m, top] > group_right[1][m]:
                f.append(f"top_prefers:{key.options[top]}")
        flags.append(tuple(f))
    return ItemAnalysis(
        candidates=n,
        questions=np.arange(1, q + 1),
        key_letters=t.right_letters,
        annulled=~t.scored,
        p=p,
        p_upper=p_upper,
        p_lower=p_lower,
        discrimination=discrimination,
        point_biserial=point_biserial,
        bins=bins,
        shares=shares,
        upper_shares=upper_shares,
        flags=tuple(flags),
        group_size=g,
        scored_questions=k,
        mean_total=mean_total,
        var_total=var_total,
        kr20=kr20,
    )
