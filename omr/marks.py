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

plus: a box whose strokes sit on one half only (a half-filled box) is AMBIGUOUS
unless its fill is clearly that of a full box.  (The share of clearly dark samples,
``ink``, is a third vote for MARKED.)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from calibration import MarkThresholds

__all__ = [
    "AMBIGUOUS",
    "BLANK",
    "MARKED",
    "classify_boxes",
    "clear_faint_beside_fill",
    "doubt_lines_beside_fills",
    "read_responses",
]

BLANK, MARKED, AMBIGUOUS = 0, 1, 2


def classify_boxes(features: NDArray[np.float32], thresholds: MarkThresholds) -> NDArray[np.int8]:
    """(N,) int8 state of every box from its (N, F) features (`omr.grid.FEATURE_NAMES`)."""
    fill, ink, asymmetry = features[:, 0], features[:, 1], features[:, 2]
    stroke, peak = features[:, 4], features[:, 5]
    t = thresholds
    drawn = (stroke >= t.stroke_mark) & (peak >= t.peak_mark)
    crossed = features[:, 6] >= t.cross_mark
    marked = (ink >= t.ink_mark) | (fill >= t.fill_mark) | drawn | crossed
    faint_or_none = (stroke < t.stroke_blank) | (peak < t.peak_blank)
    blank = (ink < t.ink_blank) & (fill < t.fill_blank) & faint_or_none & ~crossed
    lopsided = (asymmetry >= t.half_asymmetry) & (fill < t.half_fill_max)
    states = np.full(fill.shape, AMBIGUOUS, dtype=np.int8)
    states[blank] = BLANK
    states[marked & ~lopsided] = MARKED
    return states


#: a marked box this far above the fill mark level is solidly filled, not crossed (on
#: synthetic cards at the default levels: fills' 1st percentile 0.48, crosses' 99th 0.41)
SOLID_FILL_MARGIN = 0.07


def doubt_lines_beside_fills(
    states: NDArray[np.int8], features: NDArray[np.float32], thresholds: MarkThresholds
) -> NDArray[np.int8]:
    """(Q, C) answer states where a box marked by its lines alone stands beside a filled
    one in the same question: that box becomes AMBIGUOUS.

    ``features`` is (Q, C, F).  A box whose only evidence is lines (stroke and peak;
    little fill, few clearly dark samples) beside a fill is far more often scanner
    dirt -- speckle, a roller band, ink bleed -- than a second answer in another style.
    Read as '*' it would be a wrong answer nobody is told to look at (measured on cards
    damaged by Augraphy's scanner effects: 63 of the 97 misreads not shown as '?' were
    such rows beside solid fills; taking any fill at the mark level, not only solid ones,
    turned 27 more of 180 such misreads into '?' for 8 '?' more on 60,000 synthetic
    questions); as '?' a person decides.  Two crosses, or two fills, stay a '*'.
    """
    fill, ink = features[..., 0], features[..., 1]
    marked = states == MARKED
    lines_only = marked & (fill < thresholds.fill_mark) & (ink < thresholds.ink_mark)
    beside_fill = (marked & (fill >= thresholds.fill_mark)).any(axis=1, keepdims=True)
    return np.where(lines_only & beside_fill, np.int8(AMBIGUOUS), states)


#: a box beside a solid fill is faint when even its darkest tenth is less than this
#: share of the fill's darkest tenth
FAINT_PEAK_SHARE = 0.5


def clear_faint_beside_fill(
    states: NDArray[np.int8],
    features: NDArray[np.float32],
    thresholds: MarkThresholds,
    doubtful: NDArray[np.bool_],
) -> NDArray[np.int8]:
    """(Q, C) answer states where a faint box beside the question's one solid fill is BLANK.

    ``features`` is (Q, C, F); ``doubtful`` (Q, C) marks boxes that must stay as they are
    (dirt around them).  A box is faint when it holds no clearly dark samples (``ink``
    below the blank level), little fill, and nothing as dark as a mark (``peak`` below
    the mark level): what is left is a light grey texture or residue, AMBIGUOUS only for
    its variation.  Beside a solidly filled box of the same question it is what spec §2
    calls an erased box (light residue: blank, the clear mark is the answer), or paper
    texture and toner noise of a scan; the candidate's own marks on the card are as dark
    as that fill, so a second answer drawn that faintly is not plausible.
    """
    t = thresholds
    fill, ink, peak = features[..., 0], features[..., 1], features[..., 5]
    solid = (states == MARKED) & (fill >= t.fill_mark + SOLID_FILL_MARGIN) & (ink >= t.ink_mark)
    one_solid = solid.sum(axis=1, keepdims=True) == 1
    solid_peak = np.where(solid, peak, 0.0).max(axis=1, keepdims=True)
    faint = (
        (states == AMBIGUOUS)
        & (ink < t.ink_blank)
        & (fill < t.fill_blank)
        & (peak < np.minimum(t.peak_mark, FAINT_PEAK_SHARE * solid_peak))
        & ~doubtful
    )
    return np.where(faint & one_solid, np.int8(BLANK), states)


def read_responses(states: NDArray[np.int8], options: str) -> str:
    """One response character per question from (Q, C) box states.

    >>> s = np.array([[0, 1, 0], [0, 0, 0], [1, 1, 0], [2, 1, 0]], dtype=np.int8)
    >>> read_responses(s, "ABC")
    'B-*?'
    """
    n_marked = (states == MARKED).sum(axis=1)
    n_ambiguous = (states == AMBIGUOUS).sum(axis=1)
    first_marked = np.argmax(states == MARKED, axis=1)
    letters = np.frombuffer(options.encode("ascii"), dtype=np.uint8)
    codes = letters[first_marked]
    codes = np.where(n_marked == 0, ord("-"), codes)
    codes = np.where(n_ambiguous > 0, ord("?"), codes)
    codes = np.where(n_marked >= 2, ord("*"), codes)
    return codes.astype(np.uint8).tobytes().decode("ascii")
