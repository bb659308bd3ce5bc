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

__all__ = ["bitonal_thresholds_for_card", "calibrate", "calibrate_card"]

_FILL, _INK, _ASYM, _CORE, _STROKE = range(5)
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
    fill, stroke, ink = f[:, _FILL], f[:, _STROKE], f[:, _INK]
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
        pencil = float(np.percentile(fill[solid], 10))
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
    return float(np.percentile(values[fill <= np.median(fill)], 99.5))


def calibrate_card(answer_features: NDArray[np.float32]) -> MarkThresholds:
    """Thresholds for a lone card from its own (N_answer_boxes, F) features."""
    return calibrate(answer_features, source="card")


def bitonal_thresholds_for_card(answer_features: NDArray[np.float32], n_options: int) -> MarkThresholds:
    """1-bit levels adapted to how black this candidate's marks came out.

    Thresholding a light pencil fill leaves it partly black (50-70%); an erasure of the
    same pencil is lighter still, so it leaves less.  The card's own marks -- the
    blackest box of each answered question -- set the level: a box needs 80% of
    their typical coverage, never less than half the box nor more than the default.
    """
    base = bitonal_thresholds()
    fill = np.asarray(answer_features, dtype=np.float32)[:, _FILL].reshape(-1, n_options)
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
