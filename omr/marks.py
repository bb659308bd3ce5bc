"""From box features to box states and to one response character per question.

Box states: ``BLANK`` (0), ``MARKED`` (1), ``AMBIGUOUS`` (2).  A question reads
(spec §2)::

    marked boxes   ambiguous boxes   response
    0              0                 '-'
    1              0                 the option's letter
    >= 2           any               '*'   (a multiple answer whatever the doubtful box is)
    <= 1           >= 1              '?'   (a person must look)

Decision on one box, in the plane of its two main features::

    stroke (share of samples drawn as lines, counted only when the lines are
     ^      darker than peak_mark; lighter ones are a faint stroke, blank)
     |   MARKED (a cross or a tick, pen or pencil, even blurred)
 mark+ - - - - - - - - - - - - - - - - - - - - - -
     |   AMBIGUOUS            |
blank+ - - - - - - - - - -    |  MARKED (a light but even pencil fill)
     |   BLANK                |
     +-----------+------------+----------------------> fill (mean darkness)
               fill_blank   fill_mark

lines count only when they spread over the box (``stroke_spread_mark``: a tick or a
cross reaches ~0.6 mm or more from its centre along its length, a dark speck of dirt
does not); a compact dark blob is AMBIGUOUS, not a mark.

plus: a box whose strokes sit on one half only (a half-filled box) is AMBIGUOUS
unless its fill is clearly that of a full box.  (The share of clearly dark samples,
``ink``, is a third vote for MARKED.)

What the other boxes of a question, the dirt around a box and the printed outlines
say is the marking policy's (`omr.policy`), applied to these states before the
responses are read.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from calibration import MarkThresholds
from omr.grid import Feature

__all__ = [
    "AMBIGUOUS",
    "BLANK",
    "MARKED",
    "classify_boxes",
    "doubtful_questions",
    "read_responses",
]

BLANK, MARKED, AMBIGUOUS = 0, 1, 2


def classify_boxes(features: NDArray[np.float32], thresholds: MarkThresholds) -> NDArray[np.int8]:
    """(N,) int8 state of every box from its (N, F) features (`omr.grid.FEATURE_NAMES`)."""
    fill, ink, asymmetry = features[:, Feature.FILL], features[:, Feature.INK], features[:, Feature.ASYMMETRY]
    stroke, peak = features[:, Feature.STROKE], features[:, Feature.PEAK]
    t = thresholds
    # lines mark a box when they are dark and reach across it: a speck of dirt is as
    # dark as a pen line but compact (it is left ambiguous, never a mark by itself)
    # (lines drawn over much of the box are a mark a little lighter too: a cross
    # blurred by a poor scan loses its darkest tenth, a faint stroke has few lines)
    dark_lines = (stroke >= t.stroke_mark) & (peak >= t.peak_mark)
    many_lines = (stroke >= t.strong_stroke_mark) & (peak >= t.strong_stroke_peak)
    drawn = (dark_lines | many_lines) & (features[:, Feature.SPREAD] >= t.stroke_spread_mark)
    crossed = features[:, Feature.CROSS] >= t.cross_mark
    marked = (ink >= t.ink_mark) | (fill >= t.fill_mark) | drawn | crossed
    faint_or_none = (stroke < t.stroke_blank) | (peak < t.peak_blank)
    blank = (ink < t.ink_blank) & (fill < t.fill_blank) & faint_or_none & ~crossed
    lopsided = (asymmetry >= t.half_asymmetry) & (fill < t.half_fill_max)
    states = np.full(fill.shape, AMBIGUOUS, dtype=np.int8)
    states[blank] = BLANK
    states[marked & ~lopsided] = MARKED
    return states


def doubtful_questions(states: NDArray[np.int8]) -> NDArray[np.bool_]:
    """(Q,) which questions of the (Q, C) states read '?': a doubtful box, at most one marked.

    >>> doubtful_questions(np.array([[0, 1, 0], [2, 1, 0], [2, 1, 1]], dtype=np.int8)).tolist()
    [False, True, False]
    """
    return ((states == AMBIGUOUS).sum(axis=1) > 0) & ((states == MARKED).sum(axis=1) <= 1)


def read_responses(states: NDArray[np.int8], options: str) -> str:
    """One response character per question from (Q, C) box states.

    >>> s = np.array([[0, 1, 0], [0, 0, 0], [1, 1, 0], [2, 1, 0]], dtype=np.int8)
    >>> read_responses(s, "ABC")
    'B-*?'
    """
    n_marked = (states == MARKED).sum(axis=1)
    first_marked = np.argmax(states == MARKED, axis=1)
    letters = np.frombuffer(options.encode("ascii"), dtype=np.uint8)
    codes = letters[first_marked]
    codes = np.where(n_marked == 0, ord("-"), codes)
    codes = np.where(doubtful_questions(states), ord("?"), codes)
    codes = np.where(n_marked >= 2, ord("*"), codes)
    return codes.astype(np.uint8).tobytes().decode("ascii")
