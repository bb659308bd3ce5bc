"""Learn mark thresholds from the features of one card or of a whole batch.

The defaults (`MarkThresholds`) are levels in normalised darkness with the print
removed, so they hold for any scanner brightness.  What varies from batch to batch
is the *noise floor* of blank boxes (JPEG grain, dirt, a scanner's streaks) and the
*pencil*: a batch written with hard light pencils fills boxes less darkly.  So the
calibration only moves levels where the evidence says so:

    fill ─┬────────── blank ──────────┬──── grey zone ────┬──── marked ────►
          0          noise floor + margin = fill_blank    fill_mark = between the
                     (never below the default)            grey zone and the pencil

A lone card has ~800 blank boxes, enough for the noise floor; the pencil level
needs marks and falls back to the default when they are few.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from calibration.thresholds import MarkThresholds, bitonal_thresholds
from omr.grid import Feature
from omr.stats import median, percentile

__all__ = ["adapt_to_light_marks", "bitonal_thresholds_for_card", "calibrate", "calibrate_card"]

#: fewest boxes on which a level is learned; fewer leaves the default
_MIN_BOXES = 50


def calibrate(
    answer_features: NDArray[np.float32], *, base: MarkThresholds = MarkThresholds(), source: str = "batch"
) -> MarkThresholds:
    """Thresholds learned from (M, F) answer-box features of one or many cards.

    Parameters
    ----------
    answer_features : (M, F) float32 ndarray
        Rows are answer boxes (any number of cards stacked), columns
        ``omr.grid.FEATURE_NAMES``.
    base : MarkThresholds
        The starting levels (defaults); blank levels only ever rise from them.
    source : str
        Recorded in the result's ``source``.
    """
    f = np.asarray(answer_features, dtype=np.float32)
    if f.ndim != 2 or f.shape[0] < _MIN_BOXES:
        return replace(base, source="default")
    fill, stroke, ink = f[:, Feature.FILL], f[:, Feature.STROKE], f[:, Feature.INK]
    floor_fill, floor_stroke, floor_ink = (_noise_floor(v, fill) for v in (fill, stroke, ink))
    fill_blank = float(
        np.clip(max(base.fill_blank, floor_fill + 0.04), base.fill_blank, base.fill_mark - 0.08)
    )
    stroke_blank = float(max(base.stroke_blank, min(floor_stroke + 0.03, base.stroke_mark)))
    ink_blank = float(np.clip(max(base.ink_blank, floor_ink + 0.03), base.ink_blank, base.ink_mark - 0.1))
    # the pencil: solid marks (little stroke texture, clearly above the grey zone)
    solid = (fill >= base.fill_mark) & (stroke < base.stroke_mark)
    fill_mark = base.fill_mark
    if solid.sum() >= _MIN_BOXES:
        pencil = percentile(fill[solid], 10)
        # a light-pencil batch: put the mark level a third of the way from blank to pencil
        fill_mark = float(np.clip(fill_blank + (pencil - fill_blank) / 3, fill_blank + 0.08, base.fill_mark))
    return replace(
        base,
        fill_blank=round(fill_blank, 4),
        fill_mark=round(fill_mark, 4),
        stroke_blank=round(stroke_blank, 4),
        ink_blank=round(ink_blank, 4),
        source=source,
    )


def _noise_floor(values: NDArray[np.float32], fill: NDArray[np.float32]) -> float:
    """99.5th percentile of ``values`` over the lower half of boxes by ``fill``.

    That half is blank on any real card (at most one box in five is marked), so this is
    what blank boxes reach through noise, dirt and leftover print.
    """
    return percentile(values[fill <= median(fill)], 99.5)


def calibrate_card(answer_features: NDArray[np.float32]) -> MarkThresholds:
    """Thresholds for a lone card from its own (N_answer_boxes, F) features."""
    return calibrate(answer_features, source="card")


#: fewest clearly answered questions (of one kind) on which a card's own mark level is trusted
_MIN_MARKS = 25
#: where the fill levels go between the card's blank level (0) and its typical solid mark (1)
_REL_FILL_BLANK, _REL_FILL_MARK = 0.35, 0.55
#: likewise the peak levels, as shares of the card's typical cross or tick peak (the
#: defaults 0.33 / 0.5 against crosses that peak at ~0.85)
_REL_PEAK_BLANK, _REL_PEAK_MARK = 0.4, 0.6
#: stroke share under which a box of a light-handed card may be blank (measured: blank
#: boxes stay under 0.03, light ticks reach 0.14)
_LIGHT_STROKE_BLANK = 0.08
#: a blank box standing out of its question from this share of the card's typical mark
#: peak is '?' (`omr.policy.doubt_standout_blanks`; the default 0.35 against marks at ~1)
_REL_STANDOUT_PEAK = 0.3


def adapt_to_light_marks(
    thresholds: MarkThresholds, answer_features: NDArray[np.float32], n_options: int
) -> MarkThresholds:
    """Lower the fill levels for a card whose marks came out lighter than the levels expect.

    The default levels assume a pencil fill scans at >= ~0.4 darkness (of the marker
    ink), and the marking policy's standout level (``standout_peak``) marks at ~1.
    A scanner with another tone curve (gamma), a faded copy or a hard pencil can
    bring every fill of a card down to 0.2-0.3, where the default levels call them
    blank: a silent error.  Each question of a card is its own control: its darkest
    box is usually the mark, the others are blank.  The typical darkest box over the
    clearly answered questions with a solid (untextured) mark is this card's mark
    level; the levels are put between its blank level and that, never above the
    given levels and never into the blank boxes' noise.  An erasure residue of the
    same pencil scales down with it, so it stays under the lowered blank level.

    Parameters
    ----------
    thresholds : MarkThresholds
        The levels in force (defaults, per-card or per-batch calibration).
    answer_features : (Q * n_options, F) float32 ndarray
        One card's answer-box features, questions in order.
    n_options : int

    Returns
    -------
    MarkThresholds
        ``thresholds`` unchanged unless the card's marks are light.
    """
    f = np.asarray(answer_features, dtype=np.float32)
    if f.ndim != 2 or f.shape[0] % n_options or f.shape[0] < _MIN_BOXES:
        return thresholds
    fill = f[:, Feature.FILL].reshape(-1, n_options)
    order = np.argsort(-fill, axis=1)

    def top_two(column: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        values = np.take_along_axis(f[:, column].reshape(-1, n_options), order[:, :2], axis=1)
        return values[:, 0], values[:, 1]

    top, second = top_two(Feature.FILL)
    top_stroke, _ = top_two(Feature.STROKE)
    top_peak, _ = top_two(Feature.PEAK)
    blank_level = median(fill)
    # one box stands well out of its row: this card's marks
    lift = top - blank_level
    answered = (lift >= 0.1) & (top - second >= 0.6 * lift)
    solid = answered & (top_stroke < thresholds.stroke_mark)  # even fills, not crosses
    drawn = answered & (top_stroke >= thresholds.stroke_mark)  # crosses and ticks
    light_solid = solid.sum() >= _MIN_MARKS and percentile(top[solid], 10) < thresholds.fill_mark
    light_drawn = drawn.sum() >= _MIN_MARKS and percentile(top_peak[drawn], 10) < thresholds.peak_mark
    if not (light_solid or light_drawn):
        return thresholds  # the usual case: the marks clear the levels in force
    changes: dict[str, float] = {}
    peak_floor = _noise_floor(f[:, Feature.PEAK], f[:, Feature.FILL])
    if light_solid:
        mark_level = float(np.median(top[solid]))
        span = mark_level - blank_level
        floor = _noise_floor(fill.ravel(), fill.ravel())
        fill_blank = max(blank_level + _REL_FILL_BLANK * span, floor + 0.03)
        changes["fill_blank"] = min(fill_blank, thresholds.fill_blank)
        fill_mark = max(blank_level + _REL_FILL_MARK * span, fill_blank + 0.05)
        changes["fill_mark"] = min(fill_mark, thresholds.fill_mark)
        # a tick by the same light hand peaks about as dark as its fills: not blank
        # below that, but not marked on that alone either (a faint touch peaks there too)
        solid_peak = float(np.median(top_peak[solid]))
        peak_blank = max(_REL_PEAK_BLANK * solid_peak, peak_floor + 0.05)
        changes["peak_blank"] = min(peak_blank, thresholds.peak_blank)
    if light_drawn:
        mark_peak = float(np.median(top_peak[drawn]))
        peak_blank = max(_REL_PEAK_BLANK * mark_peak, peak_floor + 0.05)
        changes["peak_blank"] = min(peak_blank, changes.get("peak_blank", thresholds.peak_blank))
        changes["peak_mark"] = min(max(_REL_PEAK_MARK * mark_peak, peak_blank + 0.08), thresholds.peak_mark)
    # a tick or a cross drawn with this light hand is as faint as a stray touch on a
    # normal card: lines that are there at all keep the box out of "blank"
    changes["stroke_blank"] = min(thresholds.stroke_blank, _LIGHT_STROKE_BLANK)
    # one mark the scan washed out further than this hand's others (a light tick at
    # peak 0.17-0.25 among marks at 0.42-0.48, paper at 0.02-0.04: read blank on an ok
    # card of Augraphy's seed-61 set) still stands out of its question: from 0.3 of
    # this hand's mark peak (a normal card's 0.35 is of marks at ~1), never into the
    # blank boxes' noise; the blank levels alone cannot tell it from paper here
    card_peak = float(np.median(top_peak[answered]))
    standout_peak = max(_REL_STANDOUT_PEAK * card_peak, peak_floor + 0.05)
    changes["standout_peak"] = min(standout_peak, thresholds.standout_peak)
    return replace(
        thresholds,
        **{k: round(float(v), 4) for k, v in changes.items()},
        source=f"{thresholds.source}+light_marks",
    )


def bitonal_thresholds_for_card(answer_features: NDArray[np.float32], n_options: int) -> MarkThresholds:
    """1-bit levels adapted to how black this candidate's marks came out.

    Thresholding a light pencil fill leaves it partly black (50-70%); an erasure of the
    same pencil is lighter still, so it leaves less.  The card's own marks -- the
    blackest box of each answered question -- set the level: a box needs 80% of
    their typical coverage, never less than half the box nor more than the default.
    """
    base = bitonal_thresholds()
    fill = np.asarray(answer_features, dtype=np.float32)[:, Feature.FILL].reshape(-1, n_options)
    best = fill.max(axis=1)
    answered = best[best >= 0.3]
    if answered.size < _MIN_BOXES // 2:
        return base
    level = float(np.clip(0.8 * np.median(answered), 0.5, base.fill_mark))
    # blank: the noise floor of the quiet half (letters and outlines thresholded
    # unevenly leave a few black samples after the print template)
    blank = float(np.clip(_noise_floor(fill.ravel(), fill.ravel()) + 0.03, base.fill_blank, 0.2))
    return replace(
        base,
        fill_mark=round(level, 4),
        ink_mark=round(level, 4),
        fill_blank=round(blank, 4),
        ink_blank=round(blank, 4),
        source="bitonal:card",
    )
