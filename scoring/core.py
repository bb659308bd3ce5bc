"""Vectorised, exact scoring of a whole cohort (spec §5).

Responses are an ``(N, Q)`` uint8 array of small codes, one row per card in card
position order::

    code  0 .. C-1   option letter k of the key's options (C = len(options))
    code  C          '-'  nothing marked
    code  C+1        '*'  two or more marked
    code  C+2        '?'  ambiguous (counts wrong until a reviewer resolves it)
    code  C+3        any other character (never right; `score_rows` flags it)

Per version the key becomes a row of codes in card position order (annulled positions
hold 255, which no response has) plus, for accepted alternatives, the card position
of each such question and a (A, 256) table of the codes it accepts.  Scoring the cards
of version v in a block of rows is then one comparison, a fix-up of the few
alternative columns, and one small matrix product that counts, per card, the right
answers per field of medicine and in all (sums of 0/1 in float32 are exact)::

    right (n, Q)    = codes == key_codes[v]          (| accepted alternatives)
    counts (n, D+1) = right @ weights[v]             weights[v, p, d] = 1 when card
                                                     position p of version v holds a
                                                     scored question of field d;
                                                     column D: every scored question

Percentages are integers of hundredths, rounded half up with integer arithmetic:
``p = (20000 * correct + max) // (2 * max)`` is ``round_half_up(10000 * correct / max)``
because ``floor(x + 1/2) = floor((2 * 10000 * correct + max) / (2 * max))``.  ``passed``
compares ``correct * 100 >= pass_percent * max_points`` exactly, never the rounded figure.

With ``max_points == 0`` (every question annulled under ``exclude``) nobody can score:
percent is 0.00 and nobody passes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from omr.errors import AnswerKeyError, ScoringError
from scoring.key import AnswerKey

__all__ = [
    "CohortScores",
    "certificate_line",
    "decode_responses",
    "encode_responses",
    "format_percent",
    "passed_mask",
    "percent_decimal",
    "percent_hundredths",
    "response_alphabet",
    "score_codes",
    "score_responses",
    "version_indices",
]

#: key code of an annulled position: no response code ever equals it
_NEVER = 255
#: cards scored per block: the block's arrays stay in cache
_BLOCK_ROWS = 4096


@dataclass(frozen=True, slots=True)
class CohortScores:
    """Scores of N cards under one key.

    correct : (N,) int32 ndarray
        Points per card (annulled questions add one each under ``credit``).
    max_points : int
        The same for every card.
    percent_hundredths : (N,) int64 ndarray
        ``100 * correct / max_points`` in hundredths, rounded half up (5606 is 56.06 %).
    passed : (N,) bool ndarray
        ``correct * 100 >= pass_percent * max_points``.
    domain_correct : (N, D) int32 ndarray
        Points per field of medicine, columns in ``domain_names`` order (D may be 0).
    domain_names : tuple of str
    domain_max : (D,) int32 ndarray
        Points possible per field.
    """

    correct: NDArray[np.int32]
    max_points: int
    percent_hundredths: NDArray[np.int64]
    passed: NDArray[np.bool_]
    domain_correct: NDArray[np.int32]
    domain_names: tuple[str, ...]
    domain_max: NDArray[np.int32]


# -- responses ---------------------------------------------------------------------------


def response_alphabet(options: str) -> str:
    """The characters with a code, in code order: the options, then ``-*?``.

    Any other character has code ``len(options) + 3``.

    >>> response_alphabet("ABCDE")
    'ABCDE-*?'
    """
    _check_options(options)
    return options + "-*?"


def encode_responses(
    responses: Sequence[str], options: str, questions: int | None = None
) -> NDArray[np.uint8]:
    """Turn response strings into an ``(N, Q)`` uint8 code array (no per-character loop).

    Parameters
    ----------
    responses : sequence of str
        One string per card, one character per question (spec §2).
    options : str
        The option letters, e.g. ``"ABCDE"``.
    questions : int, optional
        Q; by default the length of the first string.

    Returns
    -------
    codes : (N, Q) uint8 ndarray
        Codes as in the module docstring.

    Raises
    ------
    ScoringError
        A string whose length is not Q (names its index), or unusable ``options``.

    Examples
    --------
    >>> encode_responses(["AB-", "E*?", "Ax "], "ABCDE").tolist()
    [[0, 1, 5], [4, 6, 7], [0, 8, 8]]
    """
    lut = _code_table(options)
    n = len(responses)
    if n == 0:
        return np.zeros((0, questions or 0), dtype=np.uint8)
    lengths = np.fromiter(map(len, responses), dtype=np.int64, count=n)
    q = int(lengths[0]) if questions is None else questions
    bad = np.flatnonzero(lengths != q)
    if bad.size:
        i = int(bad[0])
        raise ScoringError(
            f"responses[{i}]: {lengths[i]} characters, expected {q} (one per question); "
            f"{bad.size} of {n} cards have the wrong length — check the layout and the key"
        )
    codes = np.empty((n, q), dtype=np.uint8)
    table = lut.tobytes()
    step = _BLOCK_ROWS * 4  # a few MB of text at a time: the temporaries stay small
    for start in range(0, n, step):
        joined = "".join(responses[start:start + step])
        try:  # bytes.translate is the fastest byte -> code lookup (a C loop, no index array)
            block = np.frombuffer(joined.encode("ascii").translate(table), dtype=np.uint8)
        except UnicodeEncodeError:  # a non-ASCII character: one code point per character
            points = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
            block = lut[np.minimum(points, 255)]  # 128..255 are all "other"
        codes[start:start + step] = block.reshape(-1, q)
    return codes


def decode_responses(codes: NDArray[np.uint8], options: str) -> list[str]:
    """Inverse of `encode_responses`; the "other" code becomes ``'\\ufffd'``.

    >>> decode_responses(np.array([[0, 5, 8]], np.uint8), "ABCDE")
    ['A-\\ufffd']
    """
    _check_codes(codes, "codes")
    chars = np.array(list(response_alphabet(options) + "\ufffd"))
    table = np.minimum(codes, len(options) + 3)
    return ["".join(row) for row in chars[table]]


@functools.lru_cache(maxsize=16)
def _code_table(options: str) -> NDArray[np.uint8]:
    """(256,) uint8: byte → response code."""
    alphabet = response_alphabet(options)
    lut = np.full(256, len(options) + 3, dtype=np.uint8)
    lut[[ord(c) for c in alphabet]] = np.arange(len(alphabet), dtype=np.uint8)
    lut.setflags(write=False)
    return lut


def _check_options(options: str) -> None:
    """Options must be distinct printable ASCII letters other than ``-*?``."""
    if (not isinstance(options, str) or not options or len(set(options)) != len(options)
            or len(options) > 32
            or any(c in "-*?" or not (c.isascii() and c.isprintable()) for c in options)):
        raise ScoringError(
            f"options {options!r}: need 1..32 distinct printable ASCII letters other than '-*?'"
        )


def _check_codes(codes: object, name: str, questions: int | None = None) -> None:
    """``codes`` must be a 2-D uint8 array (with ``questions`` columns)."""
    if not isinstance(codes, np.ndarray) or codes.ndim != 2 or codes.dtype != np.uint8:
        what = (f"{codes.dtype} array of shape {codes.shape}" if isinstance(codes, np.ndarray)
                else type(codes).__name__)
        raise ScoringError(f"{name}: expected an (N, Q) uint8 array of response codes, got {what}")
    if questions is not None and codes.shape[1] != questions:
        raise ScoringError(f"{name}: {codes.shape[1]} questions per card, but the key has {questions}; "
                           "use the key written for this card")


def _check_version_index(version_index: object, n: int, key: AnswerKey) -> NDArray[np.integer]:
    """``version_index`` must be (n,) integers indexing ``key.versions``; returned as an array."""
    index = np.asarray(version_index)
    if index.shape != (n,) or not np.issubdtype(index.dtype, np.integer):
        raise ScoringError(f"version_index: expected ({n},) integers, got {index.dtype} "
                           f"array of shape {index.shape}")
    if n and (index.min() < 0 or index.max() >= len(key.versions)):
        raise ScoringError(f"version_index: values must be 0..{len(key.versions) - 1} (the key's versions "
                           f"{', '.join(key.version_names)})")
    return index


# -- versions ----------------------------------------------------------------------------


def version_indices(versions: Sequence[str], key: AnswerKey) -> NDArray[np.intp]:
    """Index into ``key.versions`` of every card's version.

    A card with an empty version is scored with the key's only version when it has
    exactly one.

    Raises
    ------
    AnswerKeyError
        A card whose version the key lacks (names the card's index and the version).

    >>> from scoring.key import AnswerKey
    >>> key = AnswerKey.from_dict({"versions": {"A": {"key": "AB"}, "B": {"key": "BA"}}, "pass_percent": 50})
    >>> version_indices(["B", "A"], key).tolist()
    [1, 0]
    """
    index = {name: i for i, name in enumerate(key.version_names)}
    if len(index) == 1:
        index[""] = 0
    out = np.fromiter((index.get(v, -1) for v in versions), dtype=np.intp, count=len(versions))
    bad = np.flatnonzero(out < 0)
    if bad.size:
        i = int(bad[0])
        raise AnswerKeyError(
            f"versions[{i}]: card version {versions[i]!r} is not in the answer key {key.source} "
            f"(it has {', '.join(key.version_names)}); {bad.size} cards affected — add the version to "
            "the key, or send those cards to review"
        )
    return out


# -- the key as arrays -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _KeyTables:
    """The key laid out for `score_codes` (built once per key)."""

    key_codes: NDArray[np.uint8]  # (V, Q) right code per card position, _NEVER when annulled
    alt_positions: NDArray[np.intp]  # (V, A) card position of each accepted alternative
    alt_accepts: NDArray[np.bool_]  # (A, 256) response code accepted for it
    weights: NDArray[np.float32]  # (V, Q, D + 1) see the module docstring
    domain_max: NDArray[np.int32]  # (D,)
    domain_credit: NDArray[np.int32]  # (D,) annulled points given to everyone per field
    credit: int  # annulled points given to everyone


@functools.lru_cache(maxsize=8)
def _key_tables(key: AnswerKey) -> _KeyTables:
    """Lay out ``key`` as arrays in card position order, per version."""
    q, n_versions, n_domains = key.questions, len(key.versions), len(key.domains)
    letter = {c: k for k, c in enumerate(key.options)}
    annulled = np.zeros(q + 1, dtype=bool)  # by master number (index 0 unused)
    annulled[list(key.annulled)] = True
    domain_of = np.full(q + 1, -1, dtype=np.intp)  # by master number
    for d, domain in enumerate(key.domains):
        domain_of[list(domain.questions)] = d
    accepted = [a for a in key.accepted if not annulled[a.question]]  # annulment wins

    key_codes = np.empty((n_versions, q), dtype=np.uint8)
    alt_positions = np.empty((n_versions, len(accepted)), dtype=np.intp)
    weights = np.zeros((n_versions, q, n_domains + 1), dtype=np.float32)
    for v, version in enumerate(key.versions):
        master = np.array(version.order, dtype=np.intp)  # (Q,) master number per position
        key_codes[v] = [letter[c] for c in version.answers]
        scored = ~annulled[master]
        key_codes[v, ~scored] = _NEVER
        position_of = np.empty(q + 1, dtype=np.intp)
        position_of[master] = np.arange(q)
        alt_positions[v] = [position_of[a.question] for a in accepted]
        positions = np.flatnonzero(scored & (domain_of[master] >= 0))
        weights[v, positions, domain_of[master[positions]]] = 1.0
        weights[v, scored, n_domains] = 1.0
    alt_accepts = np.zeros((len(accepted), 256), dtype=bool)
    for i, a in enumerate(accepted):
        alt_accepts[i, [letter[c] for c in a.letters]] = True

    in_domain = np.array([len(d.questions) for d in key.domains], dtype=np.int32)
    annulled_in = np.array([int(annulled[list(d.questions)].sum()) for d in key.domains], dtype=np.int32)
    credit = key.annulled_policy == "credit"
    for array in (key_codes, alt_positions, alt_accepts, weights):
        array.setflags(write=False)
    return _KeyTables(
        key_codes=key_codes,
        alt_positions=alt_positions,
        alt_accepts=alt_accepts,
        weights=weights,
        domain_max=in_domain if credit else in_domain - annulled_in,
        domain_credit=annulled_in if credit else np.zeros_like(annulled_in),
        credit=len(key.annulled) if credit else 0,
    )


# -- scoring -----------------------------------------------------------------------------


def score_codes(codes: NDArray[np.uint8], version_index: NDArray[np.integer], key: AnswerKey) -> CohortScores:
    """Score a cohort of encoded responses.

    Parameters
    ----------
    codes : (N, Q) uint8 ndarray
        From `encode_responses` with ``key.options``; card position order.
    version_index : (N,) integer ndarray
        Index into ``key.versions`` per card (`version_indices`).
    key : AnswerKey

    Returns
    -------
    CohortScores

    Raises
    ------
    ScoringError
        Arrays of the wrong shape or type, or a version index out of range.

    Examples
    --------
    >>> from scoring.key import AnswerKey
    >>> key = AnswerKey.from_dict({"questions": 4, "versions": {"A": {"key": "ABCD"}},
    ...                            "annulled": [4], "accepted": {"2": "C"}, "pass_percent": 60})
    >>> codes = encode_responses(["ABCD", "ACCA", "B-*?"], key.options)
    >>> s = score_codes(codes, np.zeros(3, np.intp), key)
    >>> s.correct.tolist(), s.max_points, s.percent_hundredths.tolist(), s.passed.tolist()
    ([3, 3, 0], 3, [10000, 10000, 0], [True, True, False])
    """
    _check_codes(codes, "codes", key.questions)
    version_index = _check_version_index(version_index, codes.shape[0], key)
    n = codes.shape[0]
    tables = _key_tables(key)
    n_versions, n_domains = len(key.versions), len(key.domains)
    counts = np.empty((n, n_domains + 1), dtype=np.int32)
    block = min(_BLOCK_ROWS, max(n, 1))
    right_f32 = np.empty((block, key.questions), dtype=np.float32)
    alt_rows = np.arange(tables.alt_positions.shape[1])
    for start in range(0, n, block):
        c_block = codes[start:start + block]
        v_block = version_index[start:start + block]
        for v in range(n_versions) if n_versions > 1 else (0,):
            rows = np.flatnonzero(v_block == v) if n_versions > 1 else np.arange(c_block.shape[0])
            m = rows.size
            if m == 0:
                continue
            c = c_block if m == c_block.shape[0] else c_block[rows]
            right = c == tables.key_codes[v]
            if alt_rows.size:
                positions = tables.alt_positions[v]
                right[:, positions] |= tables.alt_accepts[alt_rows, c[:, positions]]
            np.copyto(right_f32[:m], right)
            counts[start + rows] = right_f32[:m] @ tables.weights[v]
    correct = counts[:, n_domains] + np.int32(tables.credit)
    max_points = key.max_points
    return CohortScores(
        correct=correct,
        max_points=max_points,
        percent_hundredths=percent_hundredths(correct, max_points),
        passed=passed_mask(correct, max_points, key.pass_percent),
        domain_correct=counts[:, :n_domains] + tables.domain_credit,
        domain_names=tuple(d.name for d in key.domains),
        domain_max=tables.domain_max,
    )


def score_responses(responses: Sequence[str], versions: Sequence[str], key: AnswerKey) -> CohortScores:
    """Score response strings with their cards' versions (`encode_responses` + `score_codes`).

    Parameters
    ----------
    responses : sequence of str, length N
        One character per question, card position order (spec §2).
    versions : sequence of str, length N
        Each card's version; ``""`` is allowed when the key has one version.
    key : AnswerKey

    Returns
    -------
    CohortScores

    Raises
    ------
    AnswerKeyError
        A card whose version the key lacks.
    ScoringError
        A response string of the wrong length, or ``responses`` and ``versions`` of
        different lengths.

    Examples
    --------
    >>> from scoring.key import AnswerKey
    >>> key = AnswerKey.from_dict({"versions": {"A": {"key": "ABC"}, "B": {"key": "CBA", "order": [3, 2, 1]}},
    ...                            "annulled": [1], "pass_percent": 56})
    >>> score_responses(["ABC", "CBA", "-B-"], ["A", "B", "B"], key).correct.tolist()
    [2, 2, 1]
    """
    if len(responses) != len(versions):
        raise ScoringError(f"responses ({len(responses)}) and versions ({len(versions)}) must have one "
                           "entry per card")
    codes = encode_responses(responses, key.options, key.questions)
    return score_codes(codes, version_indices(versions, key), key)


# -- percentages and the certificate -----------------------------------------------------


def percent_hundredths(correct: NDArray[np.integer] | int, max_points: int) -> NDArray[np.int64]:
    """``100 * correct / max_points`` in hundredths, rounded half up, exactly.

    0 when ``max_points`` is 0 (nothing could be scored).

    >>> percent_hundredths(np.array([111, 1, 2]), 198).tolist()
    [5606, 51, 101]
    """
    c = np.asarray(correct, dtype=np.int64)
    if max_points <= 0:
        return np.zeros_like(c)
    return (20000 * c + max_points) // (2 * max_points)


def passed_mask(correct: NDArray[np.integer] | int, max_points: int, pass_percent: int) -> NDArray[np.bool_]:
    """``correct * 100 >= pass_percent * max_points`` (exact); False when ``max_points`` is 0.

    >>> passed_mask(np.array([111, 110]), 198, 56).tolist()
    [True, False]
    """
    c = np.asarray(correct, dtype=np.int64)
    return (c * 100 >= pass_percent * max_points) & (max_points > 0)


def format_percent(hundredths: int) -> str:
    """Hundredths of a percent as text with two decimals (5606 → ``"56.06"``).

    >>> format_percent(5606), format_percent(10000), format_percent(5)
    ('56.06', '100.00', '0.05')
    """
    h = int(hundredths)
    if h < 0:
        raise ValueError(f"hundredths: a percentage cannot be negative, got {h}")
    return f"{h // 100}.{h % 100:02d}"


def percent_decimal(hundredths: int) -> Decimal:
    """Hundredths of a percent as an exact two-decimal `Decimal` (5606 → ``Decimal('56.06')``)."""
    return Decimal(format_percent(hundredths))


def _points_word(n: int) -> str:
    """Polish plural of "punkt" for ``n``: 1 punkt, 2-4 punkty (not 12-14), else punktów."""
    if n == 1:
        return "punkt"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return "punkty"
    return "punktów"


def certificate_line(correct: int, max_points: int) -> str:
    """A candidate's result as the certificate words it.

    The regulation's wording (§16: the certificate states the result "z wynikiem"
    the percentage to two decimals, with the points and the points possible).

    >>> certificate_line(111, 198)
    'z wynikiem 56.06% (111 punktów / 198 możliwych)'
    >>> certificate_line(122, 200)
    'z wynikiem 61.00% (122 punkty / 200 możliwych)'
    """
    percent = format_percent(int(percent_hundredths(correct, max_points)))
    possible = "możliwego" if max_points == 1 else "możliwych"
    return f"z wynikiem {percent}% ({correct} {_points_word(correct)} / {max_points} {possible})"
