"""The marking policy: what the reader does with box states before it reads the answers.

`omr.marks.classify_boxes` gives every box a state from its own darkness features.
The policy then looks at evidence a single box's levels do not hold -- the dirt
around a box, the printed outlines, the other boxes of its question, the whole card
-- in an ordered tuple of named pure rules (`MARKING_POLICY`).  Each rule takes the
(N_boxes,) states and the card's `MarkEvidence` and returns new states and what it
flagged; `apply_policy` runs them in order and collects the flags.

The order is part of the policy (each rule's docstring says why it stands where it
does):

1. `mark_drawn_crosses`        -- a doubtful box with a cross drawn in it is marked
   (1-bit scans: `omr.strokes`)
2. `doubt_standout_blanks`     -- a "blank" box far darker than the rest of its
   question is '?' (a mark the scan washed out)
3. `doubt_dirty_boxes`         -- anything in a box standing in dirt is '?'  (``dirty:``)
4. `clear_faint_beside_fill`   -- erasure residue beside one solid fill is blank
5. `doubt_misplaced_questions` -- a question off its printed outlines is '?' (``misplaced:``)
6. `doubt_implausible_multiples` -- far too many '*': every mark is '?'
   (``implausible_multiples``)
7. `doubt_multiples_on_dirty_cards` -- on a card dirty in several places, '*' is '?'
   (``dirty_multiples``)
8. `doubt_column_streaks`      -- lines alone down much of one column are a streak: '?'
   (``streak:``)
9. `doubt_lines_beside_fills`  -- lines alone beside a fill are '?', not a second answer
10. `doubt_weak_marks_on_doubtful_cards` -- on a card '?' on a tenth of its questions,
    marks weaker than the card's own, '*' and standout blanks are '?' too
    (``doubtful_card``)
11. `doubt_unregistered_blocks` -- a block off its outlines and mostly '?' is '?' whole

Every rule is pure and vectorised over the card's boxes; every number it decides by
is a field of `calibration.MarkThresholds`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from calibration import MarkThresholds
from omr.flags import Flag, with_questions
from omr.grid import Feature
from omr.marks import AMBIGUOUS, BLANK, MARKED, doubtful_questions
from omr.stats import median

__all__ = [
    "MARKING_POLICY",
    "MarkEvidence",
    "PolicyOutcome",
    "Rule",
    "apply_policy",
    "clear_faint_beside_fill",
    "doubt_column_streaks",
    "doubt_dirty_boxes",
    "doubt_implausible_multiples",
    "doubt_lines_beside_fills",
    "doubt_misplaced_questions",
    "doubt_multiples_on_dirty_cards",
    "doubt_standout_blanks",
    "doubt_unregistered_blocks",
    "doubt_weak_marks_on_doubtful_cards",
    "mark_drawn_crosses",
]


@dataclass(frozen=True, slots=True)
class MarkEvidence:
    """What the rules may look at on one card.

    features : (N_boxes, F) float32 box features (columns `omr.grid.Feature`)
    surround : (N_boxes,) float32 darkness of the paper gaps above and below each box
    outline : (N_boxes,) float32 darkness of each box's printed outline where the
        registration puts it
    thresholds : the levels (and the policy's own numbers)
    answers : the answer boxes' slice of the box order, questions in order
    n_options : boxes per question
    columns : (Q, C) int, which page column each answer box stands in (boxes one
        under the other: one option down a block of questions), or None when not
        known (no rule then looks at columns)
    drawn_crosses : (N_boxes,) float32, the cross drawn in each box measured on the
        page's pixels (`omr.strokes.diagonal_strokes`), NaN where not measured; None
        when no box was (grey scans: their darkness reads crosses)
    blocks : (Q,) int, the answer block (a part of the card registered as one) of
        each question, or None when not known
    unregistered : (N_boxes,) bool, boxes of the parts whose outlines are not where
        even the local registration puts them (``registration_doubtful``), or None
        when there are none
    """

    features: NDArray[np.float32]
    surround: NDArray[np.float32]
    outline: NDArray[np.float32]
    thresholds: MarkThresholds
    answers: slice
    n_options: int
    columns: NDArray[np.int64] | None = None
    drawn_crosses: NDArray[np.float32] | None = None
    blocks: NDArray[np.int64] | None = None
    unregistered: NDArray[np.bool_] | None = None

    def per_question(self, values: NDArray) -> NDArray:
        """(Q, C, ...) view of a per-box array's answer part."""
        return values[self.answers].reshape(-1, self.n_options, *values.shape[1:])

    @property
    def dirty(self) -> NDArray[np.bool_]:
        """(N_boxes,) boxes standing in dirt."""
        return self.surround >= self.thresholds.max_surround_darkness


@functools.lru_cache(maxsize=8)
def _others_index(n: int) -> NDArray[np.intp]:
    """(n, n - 1) for each of n boxes the indices of the other boxes of its question."""
    return np.array([[j for j in range(n) if j != k] for k in range(n)], dtype=np.intp).reshape(n, n - 1)


def _others_level(values: NDArray[np.float32]) -> NDArray[np.float32]:
    """(Q, C) median of each box's value over the other boxes of its question."""
    return np.median(values[:, _others_index(values.shape[1])], axis=2)


def _with_answers(states: NDArray[np.int8], evidence: MarkEvidence, answers: NDArray[np.int8]) -> NDArray[np.int8]:
    """``states`` with its answer part replaced by the (Q, C) ``answers``."""
    out = states.copy()
    out[evidence.answers] = answers.reshape(-1)
    return out


#: what a rule returns: the new states, and what it flagged -- (Q,) bool questions,
#: a bool for the whole card, or None when the rule flags nothing
Flagged = NDArray[np.bool_] | bool | None


def mark_drawn_crosses(states: NDArray[np.int8], evidence: MarkEvidence) -> tuple[NDArray[np.int8], Flagged]:
    """An AMBIGUOUS box with a cross drawn in it is MARKED.

    Evidence: `MarkEvidence.drawn_crosses`, two straight strokes, one in each
    diagonal direction, each darker all along than the paper on both its sides
    (``drawn_cross_mark``).  Measured only where darkness is gone: on a 1-bit scan a
    cross with thick arms covers 25-60 % of the box, as an erasure residue does, and
    its features leave it '?' (measured in `tests/omr/test_strokes.py`: hand-drawn
    crosses at 150-600 DPI reach the level 69-91 % of the time, random speckle of
    1-2 px grains at any density at most 0.51; `bench/accuracy.py` on heavy damage:
    '?' on clear questions halved, no wrong read).  First: every rule after it may
    still doubt the box (dirt, a misplaced row, lines beside a fill).
    """
    if evidence.drawn_crosses is None:
        return states, None
    crossed = (states == AMBIGUOUS) & (evidence.drawn_crosses >= evidence.thresholds.drawn_cross_mark)
    return np.where(crossed, np.int8(MARKED), states), None


def doubt_standout_blanks(states: NDArray[np.int8], evidence: MarkEvidence) -> tuple[NDArray[np.int8], Flagged]:
    """A BLANK answer box whose darkest tenth stands far above its question's is AMBIGUOUS.

    Evidence: the box's ``peak`` (darkest tenth) against ``standout_peak`` and against
    ``standout_ratio`` times the median peak of the other boxes of its question.  The
    blank levels let a light box through when it has no clearly dark samples or no
    lines (a faint stroke, a residue); a scan that washes out ink (a tone curve, low
    toner, a simulator's faded copy) leaves a real fill or tick just there, at
    0.35-0.5 of peak while the paper beside it is at 0.02-0.05.  Lighter still (from
    ``standout_line_peak``) it is '?' only against paper ``standout_faint_ratio``
    times lighter, and when its dark samples spread over the box
    (``standout_line_spread`` mm: a washed tick or cross; a speck is compact).
    A washed fill, grey all over, is not told this way from an erasure residue
    (tried: residue alone 3 -> 43 % '?'), and stays blank.  Lighter again, from
    ``standout_clipped_peak`` (0.1), it is '?' beside paper ``standout_clipped_ratio``
    (20) times lighter: a scan whose tone curve clips the paper to white (the rest of
    the question at darkness 0.001-0.01) keeps of a light tick or fill only its
    darkest part (held-out Augraphy set, seed 51: 7 of its 13 wrong reads not '?'
    were such marks read blank, at peak 0.15-0.32); a synthetic faint stroke or
    residue, on paper with a scanner's noise, stands at most 13 times above its
    question (1,100 such boxes, `bench/accuracy.py` seed 21).  On a card whose marks
    all came out light, ``standout_peak`` comes down with them, to 0.3 of their peak
    (`calibration.learn.adapt_to_light_marks`: Augraphy's seed-61 set, a tick at
    peak 0.18 among marks at 0.42 was read blank on an ``ok`` card).
    Measured on the three saved Augraphy scanner sets (seeds 11/31/23), wrong reads
    not '?': 31 -> 23 at peak 0.4, 2 fewer at 0.35, 3 fewer again with the lighter
    test; `bench/accuracy.py` seeds 21/22, '?' on grey scans: 0.405 -> 0.429 % at
    0.35 (0.55 % at 0.3), 0.474 / 0.478 % with the lighter test, all of it faint
    strokes (whose truth allows '?').  Only against a clean row: on a dirty card
    every box is that dark and nothing stands out.  Before `clear_faint_beside_fill`,
    which may still clear such a box beside a solid fill (an erasure residue, spec §2:
    blank).
    """
    t = evidence.thresholds
    answers = evidence.per_question(states)
    features = evidence.per_question(evidence.features)
    peak, spread = features[..., Feature.PEAK], features[..., Feature.SPREAD]
    others_level = _others_level(peak)  # (Q, C): the rest of the question, without the box
    dark = peak >= t.standout_peak
    # lighter still when its dark samples spread over the box (a washed tick or
    # cross), against paper clean enough that this is no dirt
    washed_line = (
        (peak >= t.standout_line_peak)
        & (spread >= t.standout_line_spread)
        & (peak >= t.standout_faint_ratio * others_level)
    )
    # lighter again beside paper the scan clipped to white: what survived the clip is ink
    clipped = (peak >= t.standout_clipped_peak) & (peak >= t.standout_clipped_ratio * others_level)
    standout = (answers == BLANK) & (peak >= t.standout_ratio * others_level) & (dark | washed_line | clipped)
    return _with_answers(states, evidence, np.where(standout, np.int8(AMBIGUOUS), answers)), None


def doubt_dirty_boxes(states: NDArray[np.int8], evidence: MarkEvidence) -> tuple[NDArray[np.int8], Flagged]:
    """A box that is not blank and stands in dirt is AMBIGUOUS (every box: answers, code, version).

    Evidence: the darkness of the paper gaps above and below the box
    (``surround >= max_surround_darkness``).  A stain, a stamp or a scanner band
    crossing the row darkens the box as it darkens the gaps; what looks marked there
    may be that dirt, so a person must look.  Flags the questions it doubted
    (``dirty:``).  First: the rules after it must see these boxes as doubtful (the
    next one leaves dirty boxes alone).
    """
    doubted = evidence.dirty & (states != BLANK)
    return np.where(doubted, np.int8(AMBIGUOUS), states), evidence.per_question(doubted).any(axis=1)


def clear_faint_beside_fill(
    states: NDArray[np.int8], evidence: MarkEvidence
) -> tuple[NDArray[np.int8], Flagged]:
    """A faint AMBIGUOUS box beside the question's one solid fill is BLANK.

    Evidence: the box's fill, clearly dark share (``ink``) and darkest tenth
    (``peak``) against the solid fill's beside it, and the dirt around it.  A box is
    faint when it holds no clearly dark samples (``ink`` below the blank level),
    little fill, and nothing as dark as a mark (``peak`` under the mark level and
    under ``faint_peak_share`` of the fill's): a light grey texture or residue,
    AMBIGUOUS only for its variation.  Beside a solidly filled box of the same
    question it is what spec §2 calls an erased box (light residue: blank, the clear
    mark is the answer), or paper texture and toner noise of a scan; the candidate's
    own marks on the card are as dark as that fill, so a second answer drawn that
    faintly is not plausible.  Boxes standing in dirt stay as they are (after
    `doubt_dirty_boxes`: it must not clear what that rule doubted).
    """
    t = evidence.thresholds
    answers = evidence.per_question(states)
    features = evidence.per_question(evidence.features)
    fill, ink, peak = features[..., Feature.FILL], features[..., Feature.INK], features[..., Feature.PEAK]
    solid = (answers == MARKED) & (fill >= t.fill_mark + t.solid_fill_margin) & (ink >= t.ink_mark)
    one_solid = solid.sum(axis=1, keepdims=True) == 1
    solid_peak = np.where(solid, peak, 0.0).max(axis=1, keepdims=True)
    faint = (
        (answers == AMBIGUOUS)
        & (ink < t.ink_blank)
        & (fill < t.fill_blank)
        & (peak < np.minimum(t.peak_mark, t.faint_peak_share * solid_peak))
        & ~evidence.per_question(evidence.dirty)
    )
    return _with_answers(states, evidence, np.where(faint & one_solid, np.int8(BLANK), answers)), None


def doubt_misplaced_questions(
    states: NDArray[np.int8], evidence: MarkEvidence
) -> tuple[NDArray[np.int8], Flagged]:
    """Every box of a question whose printed outlines are missing where the registration
    put it is AMBIGUOUS.

    Evidence: the question's mean outline darkness against the card's median
    (``min_question_outline_ratio``), and each of its boxes' (``min_box_outline_ratio``):
    a fold or a crease moved that row, or a part of it (Augraphy's folds shear the
    last two columns half a row down: the other three boxes keep the mean up, the
    moved ones have no outline at all).  Whatever its boxes say, a person must look.
    Flags those questions (``misplaced:``).  After `clear_faint_beside_fill`, so that
    nothing on a misplaced row is cleared.
    """
    t = evidence.thresholds
    boxes = evidence.per_question(evidence.outline)
    outline = boxes.mean(axis=1)
    card_level = max(median(outline), 1e-6)
    # a box and the one above or below it, both without outline: a moved region, not
    # a box whose outline a dithered or noisy scan happened to break
    pairs = (boxes[1:] + boxes[:-1]) / 2  # (Q-1, C): each box with the next question's
    pair_min = np.full(boxes.shape, np.inf, dtype=np.float64)
    pair_min[:-1] = pairs
    pair_min[1:] = np.minimum(pair_min[1:], pairs)
    misplaced = (outline < t.min_question_outline_ratio * card_level) | (
        pair_min.min(axis=1) < t.min_box_outline_ratio * card_level
    )
    answers = evidence.per_question(states)
    return _with_answers(states, evidence, np.where(misplaced[:, None], np.int8(AMBIGUOUS), answers)), misplaced


def doubt_implausible_multiples(
    states: NDArray[np.int8], evidence: MarkEvidence
) -> tuple[NDArray[np.int8], Flagged]:
    """When more than ``max_multiple_share`` of the questions have two marked boxes,
    every marked answer box is AMBIGUOUS.

    Evidence: the count of '*' rows on the whole card.  Candidates mark two boxes on
    ~1% of questions; far more means the box levels were fooled (speckle of a bad
    copy, a texture) and a blank row may as well read as one letter: no mark on this
    card is trusted, a person reads it.  Flags the card (``implausible_multiples``).
    Before `doubt_lines_beside_fills`, which must not hide the marks it counts (on a
    speckled copy, lines beside fills are what makes the count implausible).
    """
    answers = evidence.per_question(states)
    multiple = (answers == MARKED).sum(axis=1) >= 2
    implausible = bool(multiple.sum() > evidence.thresholds.max_multiple_share * len(answers))
    if not implausible:
        return states, False
    return _with_answers(states, evidence, np.where(answers == MARKED, np.int8(AMBIGUOUS), answers)), True


def doubt_lines_beside_fills(
    states: NDArray[np.int8], evidence: MarkEvidence
) -> tuple[NDArray[np.int8], Flagged]:
    """A box marked by its lines alone beside a filled box of the same question is AMBIGUOUS.

    Evidence: the box's fill and clearly dark share (both under their mark levels:
    only stroke and peak marked it) and a box at the fill mark level in its row.
    Such a box beside a fill is far more often scanner dirt -- speckle, a roller
    band, ink bleed -- than a second answer in another style.  Read as '*' it would
    be a wrong answer nobody is told to look at (measured on cards damaged by
    Augraphy's scanner effects: 63 of the 97 misreads not shown as '?' were such rows
    beside solid fills; taking any fill at the mark level, not only solid ones,
    turned 27 more of 180 such misreads into '?' for 8 '?' more on 60,000 synthetic
    questions); as '?' a person decides.  Two crosses, or two fills, stay a '*'.
    Last: after `doubt_implausible_multiples` (see there).
    """
    t = evidence.thresholds
    answers = evidence.per_question(states)
    features = evidence.per_question(evidence.features)
    fill, ink = features[..., Feature.FILL], features[..., Feature.INK]
    marked = answers == MARKED
    lines_only = marked & (fill < t.fill_mark) & (ink < t.ink_mark)
    beside_fill = (marked & (fill >= t.fill_mark)).any(axis=1, keepdims=True)
    return _with_answers(states, evidence, np.where(lines_only & beside_fill, np.int8(AMBIGUOUS), answers)), None


def doubt_column_streaks(
    states: NDArray[np.int8], evidence: MarkEvidence
) -> tuple[NDArray[np.int8], Flagged]:
    """Boxes marked by lines alone in a page column where such marks stand in
    ``streak_column_share`` of its boxes or more, or in a question all of whose boxes
    they touch, are AMBIGUOUS.

    Evidence: the page column of each answer box (`MarkEvidence.columns`: one option
    down a block of questions) and which boxes are not blank by their lines alone
    (fill and clearly dark share under the mark levels; marked or doubtful).  A dirty scanner lamp or roller
    draws a thin line down the page, through the same option of every question of a
    block: each box it crosses looks like a light tick, as spread as one (measured on
    Augraphy's scanner set, seed 31: one card read '*' or a letter on 17 questions
    from a line through every B box, 0.1 fill, spread 0.5-0.6 mm).  A candidate
    crossing the same letter on half the questions of a block is not plausible; as
    '?' a person decides, fills stay marks.  The same across a row: every box of one
    question touched by lines alone is a line across the page (a low-ink line, a
    crease; seed 31: a blank row read '*' from lines in all five boxes), not five
    answers.  Flags the questions it doubted (``streak:``).  Before
    `doubt_lines_beside_fills`, which would turn only some of these rows to '?' and
    hide how many the streak marked.
    """
    t = evidence.thresholds
    answers = evidence.per_question(states)
    features = evidence.per_question(evidence.features)
    light = (features[..., Feature.FILL] < t.fill_mark) & (features[..., Feature.INK] < t.ink_mark)
    lines_only = (answers == MARKED) & light
    touched = (answers != BLANK) & light  # a streak leaves some boxes only doubtful
    streak = np.broadcast_to(touched.all(axis=1, keepdims=True), touched.shape)  # across a whole row
    if evidence.columns is not None:
        columns = evidence.columns.ravel()
        per_column = np.bincount(columns, weights=touched.ravel().astype(np.float64))
        boxes = np.bincount(columns)
        streak_columns = per_column >= t.streak_column_share * np.maximum(boxes, 1)
        streak = streak | streak_columns[evidence.columns]
    doubted = lines_only & streak
    if not doubted.any():
        return states, None
    return _with_answers(states, evidence, np.where(doubted, np.int8(AMBIGUOUS), answers)), doubted.any(axis=1)


def doubt_multiples_on_dirty_cards(
    states: NDArray[np.int8], evidence: MarkEvidence
) -> tuple[NDArray[np.int8], Flagged]:
    """On a card with dirt around the marks of ``dirty_card_questions`` questions or
    more (2), the marked boxes of every question with two of them are AMBIGUOUS.

    Evidence: how many questions hold a non-blank box standing in dirt (what
    `doubt_dirty_boxes` flagged), and the rows with two marked boxes.  A card dirty
    in several places (a dirty drum or roller, photocopy speckle) has dirt the
    surround test does not see too: clusters of specks inside a blank box, as dark
    and as spread as a pencil fill, beside the candidate's answer.  Candidates mark
    two boxes on ~1% of questions, so on such a card a '*' is far more often a
    speck cluster than a second answer (measured on Augraphy's scanner set, seed 11:
    15 of the 20 wrong reads not shown as '?' were such '*' on cards flagged
    ``dirty``; with three questions as the level, seed 31 went from 44 to 38, with
    two to 32); as '?' a person decides.  Flags the card (``dirty_multiples``).
    After `doubt_implausible_multiples`, which sees the count of '*' first.
    """
    dirty_questions = evidence.per_question(evidence.dirty & (states != BLANK)).any(axis=1)
    if dirty_questions.sum() < evidence.thresholds.dirty_card_questions:
        return states, False
    answers = evidence.per_question(states)
    multiple = (answers == MARKED).sum(axis=1, keepdims=True) >= 2
    if not multiple.any():
        return states, False
    return _with_answers(states, evidence, np.where(multiple & (answers == MARKED), np.int8(AMBIGUOUS), answers)), True


def doubt_weak_marks_on_doubtful_cards(
    states: NDArray[np.int8], evidence: MarkEvidence
) -> tuple[NDArray[np.int8], Flagged]:
    """On a card '?' on ``doubtful_card_share`` of its questions or more (a tenth), the
    marks weaker than the card's own, every '*' and a blank box standing out of its
    question are AMBIGUOUS.

    Evidence: the share of questions the rules before it left '?', and against the
    card's own marks: a marked box's darkest tenth (``peak``) under
    ``weak_mark_peak_share`` of the median over the card's marked boxes, or its fill
    under ``weak_mark_fill_share`` of the median over its filled ones; the rows with
    two marked boxes; a blank box whose ``peak`` reaches ``standout_ratio`` times its
    question's median and ``doubtful_standout_peak``, or ``standout_line_peak`` with
    its dark samples spread over the box (`doubt_standout_blanks` from lighter levels,
    without its test of the paper).  A scan that leaves a tenth of the card to a
    person is damaged all over (dithered, washed out, streaked, stained); the same damage then makes what the box levels pass as a mark
    or a blank: a dithered erasure residue as spread and as dark as a pencil tick, a
    speckled letter as a second mark beside a cross, a fill washed to an even grey
    just under the blank level, a tick blurred to peak 0.26 (measured on Augraphy's
    scanner sets: on the three saved ones, seeds 11/31/23, 8 of their 9 wrong reads
    not shown as '?' stood on such cards; with `doubt_unregistered_blocks` 9 -> 0 for
    1 % more '?'; held out, seed 71: 8 -> 1).  Such a card goes to review anyway, and
    a person looks at it whole (``doubtful_card``); a '?' more costs a glance, a
    wrong read left there costs a candidate's result.  Grey scans whose damage the
    box levels handle stay under the share (synthetic cards, `bench/accuracy.py`
    seeds 21/22: no card of 600 reaches it on a grey scan); 1-bit scans, whose darkest
    tenths are all black, are left out (``doubtful_card_share`` 2 in their levels).
    After every other rule: it counts the '?' they decided.
    """
    t = evidence.thresholds
    answers = evidence.per_question(states)
    if doubtful_questions(answers).mean() < t.doubtful_card_share:
        return states, False
    features = evidence.per_question(evidence.features)
    peak, fill = features[..., Feature.PEAK], features[..., Feature.FILL]
    marked = answers == MARKED
    filled = marked & (fill >= t.fill_mark)
    card_peak = median(peak[marked]) if marked.any() else 0.0
    card_fill = median(fill[filled]) if filled.any() else 0.0
    weak = marked & ((peak < t.weak_mark_peak_share * card_peak) | (fill < t.weak_mark_fill_share * card_fill))
    multiple = marked & (marked.sum(axis=1, keepdims=True) >= 2)
    # a washed tick spread over the box needs no paper five times lighter here
    washed_line = (peak >= t.standout_line_peak) & (features[..., Feature.SPREAD] >= t.standout_line_spread)
    standout = (
        (answers == BLANK)
        & (peak >= t.standout_ratio * _others_level(peak))
        & ((peak >= t.doubtful_standout_peak) | washed_line)
    )
    doubted = weak | multiple | standout
    return _with_answers(states, evidence, np.where(doubted, np.int8(AMBIGUOUS), answers)), True


def doubt_unregistered_blocks(
    states: NDArray[np.int8], evidence: MarkEvidence
) -> tuple[NDArray[np.int8], Flagged]:
    """Every box of an answer block off its printed outlines, and '?' on
    ``doubtful_block_share`` of its questions or more, is AMBIGUOUS.

    Evidence: `MarkEvidence.unregistered` (the block's outlines are not where even
    its local registration puts them: ``registration_doubtful:answers<k>``) and the
    share of its questions already '?'.  A fold or a curl that moved most of a block
    off the sampling grid moved the rest too: the rows that still read a letter or a
    blank read it from beside the boxes (measured on Augraphy's scanner set, seed
    11: three folded blocks '?' on 97 of 120 questions read a filled row blank;
    held-out seed 41: two folded blocks '?' on 13 and 14 of 40 read three).  A
    block flagged but read on nearly all its rows (a faint outline, not a fold: 5-8 %
    '?' on the flagged blocks of those sets) keeps its reads.  The flag the
    registration raised already says why.  Last: it counts the '?' every rule before
    it decided.
    """
    if evidence.unregistered is None or evidence.blocks is None:
        return states, None
    answers = evidence.per_question(states)
    blocks = evidence.blocks
    unregistered = evidence.per_question(evidence.unregistered).any(axis=1)
    share = np.bincount(blocks, weights=doubtful_questions(answers)) / np.maximum(np.bincount(blocks), 1)
    whole = unregistered & (share[blocks] >= evidence.thresholds.doubtful_block_share)
    if not whole.any():
        return states, None
    return _with_answers(states, evidence, np.where(whole[:, None], np.int8(AMBIGUOUS), answers)), None


@dataclass(frozen=True, slots=True)
class Rule:
    """One named step of the policy, and the flag it raises (None: it raises none)."""

    name: str
    apply: Callable[[NDArray[np.int8], MarkEvidence], tuple[NDArray[np.int8], Flagged]]
    flag: Flag | None = None


#: the policy, in the order it runs (see the module docstring)
MARKING_POLICY: tuple[Rule, ...] = (
    Rule("mark_drawn_crosses", mark_drawn_crosses),
    Rule("doubt_standout_blanks", doubt_standout_blanks),
    Rule("doubt_dirty_boxes", doubt_dirty_boxes, Flag.DIRTY),
    Rule("clear_faint_beside_fill", clear_faint_beside_fill),
    Rule("doubt_misplaced_questions", doubt_misplaced_questions, Flag.MISPLACED),
    Rule("doubt_implausible_multiples", doubt_implausible_multiples, Flag.IMPLAUSIBLE_MULTIPLES),
    Rule("doubt_multiples_on_dirty_cards", doubt_multiples_on_dirty_cards, Flag.DIRTY_MULTIPLES),
    Rule("doubt_column_streaks", doubt_column_streaks, Flag.STREAK),
    Rule("doubt_lines_beside_fills", doubt_lines_beside_fills),
    Rule("doubt_weak_marks_on_doubtful_cards", doubt_weak_marks_on_doubtful_cards, Flag.DOUBTFUL_CARD),
    Rule("doubt_unregistered_blocks", doubt_unregistered_blocks),
)


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    """The states after every rule, and the flags raised (in `Flag` order)."""

    states: NDArray[np.int8]
    flags: tuple[str, ...]


_FLAG_ORDER = {f: k for k, f in enumerate(Flag)}


def apply_policy(
    states: NDArray[np.int8], evidence: MarkEvidence, policy: tuple[Rule, ...] = MARKING_POLICY
) -> PolicyOutcome:
    """Run the rules of ``policy`` in order on the (N_boxes,) states."""
    raised: list[tuple[Flag, str]] = []
    for rule in policy:
        states, flagged = rule.apply(states, evidence)
        if rule.flag is None or flagged is None or flagged is False:
            continue
        if flagged is True:
            raised.append((rule.flag, str(rule.flag)))
        elif flagged.any():
            raised.append((rule.flag, with_questions(rule.flag, np.flatnonzero(flagged))))
    raised.sort(key=lambda item: _FLAG_ORDER[item[0]])
    return PolicyOutcome(states=states, flags=tuple(text for _, text in raised))
