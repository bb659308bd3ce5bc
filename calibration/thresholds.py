"""The numbers that separate a blank box from a mark, with a grey zone between."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from omr.errors import OutputError, ThresholdsError

__all__ = ["MarkThresholds", "bitonal_thresholds", "load_thresholds", "save_thresholds"]


@dataclass(frozen=True, slots=True)
class MarkThresholds:
    """Decision levels on a box's darkness features (0 = paper white, 1 = marker ink).

    A box is *marked* when it clears either mark level, *blank* when it stays under
    both blank levels, and *ambiguous* (``?``) otherwise; see `omr.marks`.

    All features are measured after the printed letter is taken out
    (`omr.grid.remove_print`).

    fill_blank, fill_mark : levels on the mean darkness of the inner area
        (a light erasure residue stays under fill_blank, a heavy one between)
    ink_blank, ink_mark : levels on the share of clearly dark samples
    stroke_blank, stroke_mark : levels on the share of samples drawn as lines
        (darker than the box's own base); a cross clears stroke_mark.  Between the
        two, dark lines (peak at least peak_blank) are a '?': a thin tick dimmed by the
        scan falls there (0.14 on Augraphy's low-ink scans), and read blank it is a
        mark lost without a word (spec §2: a faint stroke is reported '?')
    peak_blank, peak_mark : levels on how dark the darkest tenth of the box is; lines
        count as a mark only when dark enough (a faint stroke is not a mark)
    strong_stroke_mark, strong_stroke_peak : lines over this share of the box count as
        a mark from this darkest-tenth level on, under ``peak_mark``: a cross blurred by
        a poor scan keeps its many lines but loses its darkest tenth (heavily damaged
        synthetic crosses read '?' for it: stroke 0.29-0.49, peak 0.43-0.50), while a
        faint stroke has few lines (stroke at most 0.17, peak at most 0.44)
    stroke_spread_mark : least spread of the lines (mm, their standard deviation along
        their longest direction, `omr.grid.Feature.SPREAD`) for them to count as a mark:
        a speck of dirt is as dark as a pen line but compact.  Measured on synthetic
        ticks and crosses marked by their lines alone: 1st percentile 0.64 mm, minimum
        0.59; dark specks on Augraphy's scanner sets: see bench/RESULTS.md
    cross_mark : level on the cross-shape evidence (`omr.grid.box_features`); used
        on 1-bit scans only (2.0 = off), where it is the one sign of a cross left
    drawn_cross_mark : level on a doubtful box's drawn-cross evidence measured on the
        page's pixels (`omr.strokes.diagonal_strokes`, `omr.policy.mark_drawn_crosses`)
        from which it is marked; 1-bit scans only (2.0 = off).  Erased residue
        measured at most 0.23, crosses left '?' by the features 0.5-0.84 (96 %)
    half_asymmetry, half_fill_max : a box whose strokes lie on one half
        (asymmetry at least ``half_asymmetry``) and whose fill is under
        ``half_fill_max`` is half-filled, hence ambiguous
    max_surround_darkness : darkness of the paper gaps above and below a box from
        which it stands in dirt (a stain, a stamp, a roller band): whatever is in it
        is '?' (measured on 60 damaged synthetic scans, 65,000 boxes, pencil overshoot
        and specks included: 99.99th percentile 0.043, max 0.068; under stains,
        stamps and roller bands: 0.1-1)
    dirty_card_questions : questions with dirt around a mark from which a card counts
        as dirty, and its '*' as '?' (`omr.policy.doubt_multiples_on_dirty_cards`)
    max_multiple_share : share of questions read '*' beyond which no mark on the card
        is trusted (real cards: ~1%)
    streak_column_share : share of a column's boxes (one option down a block of
        questions, where a scanner streak runs) marked by lines alone from which
        those marks are a streak, not answers (`omr.policy.doubt_column_streaks`);
        a candidate answering one letter on half of 40 questions in a row is not
        plausible, a streak marks nearly all of them
    min_question_outline_ratio : a question whose printed outlines are fainter than
        this share of the card's median is misplaced (measured: aligned >= 0.9,
        2.5 mm off <= 0.25); ``min_box_outline_ratio`` the same for any one of its boxes
    solid_fill_margin : a marked box this far above ``fill_mark`` is solidly filled,
        not crossed (synthetic cards at the default levels: fills' 1st percentile
        0.48, crosses' 99th 0.41)
    faint_peak_share : a box beside a solid fill is faint when even its darkest tenth
        is under this share of the fill's darkest tenth
    standout_peak, standout_ratio : a box read blank whose darkest tenth reaches
        ``standout_peak`` and ``standout_ratio`` times its question's median is '?'
        (`omr.policy.doubt_standout_blanks`: a mark the scan washed out; 0.3 put
        residue and faint strokes on grey scans over the 0.5 % `?` budget)
    standout_line_peak, standout_line_spread, standout_faint_ratio : lighter than
        ``standout_peak``, a blank box is '?' from ``standout_line_peak`` when its dark
        samples spread ``standout_line_spread`` mm or more and its peak is
        ``standout_faint_ratio`` times its question's median (Augraphy's washed ticks:
        peak 0.27-0.30, spread 0.66-0.87 mm, paper beside at 0.03-0.05)
    standout_clipped_peak, standout_clipped_ratio : lighter again, a blank box is '?'
        from ``standout_clipped_peak`` beside paper ``standout_clipped_ratio`` times
        lighter (a scan that clipped its paper to white: what is left is ink; a
        synthetic faint stroke or residue stands at most ~13 times above its question)
    doubtful_card_share, weak_mark_peak_share, weak_mark_fill_share, doubtful_standout_peak :
        on a card whose questions are '?' in ``doubtful_card_share`` of them or more,
        a mark whose darkest tenth is under ``weak_mark_peak_share`` of the card's
        marks' median, or whose fill is under ``weak_mark_fill_share`` of its filled
        boxes' median, is '?', and so is '*' and a blank box whose darkest tenth
        reaches ``doubtful_standout_peak`` and ``standout_ratio`` times its question's
        (`omr.policy.doubt_weak_marks_on_doubtful_cards`)
    doubtful_block_share : an answer block flagged ``registration_doubtful`` with '?'
        on this share of its questions or more is '?' whole
        (`omr.policy.doubt_unregistered_blocks`)
    source : where the levels come from (``default``, ``card``, ``batch:<n> cards``)

    The mark levels are learned per card or per batch (`calibration.learn`); the
    rest (from ``max_surround_darkness`` on) are the marking policy's (`omr.policy`),
    carried along so that one object holds every number the reader decides by.
    """

    fill_blank: float = 0.27
    fill_mark: float = 0.38
    ink_blank: float = 0.06
    ink_mark: float = 0.30
    stroke_blank: float = 0.13
    stroke_mark: float = 0.15
    peak_blank: float = 0.33
    peak_mark: float = 0.50
    stroke_spread_mark: float = 0.5
    strong_stroke_mark: float = 0.2
    strong_stroke_peak: float = 0.42
    cross_mark: float = 2.0
    drawn_cross_mark: float = 2.0
    half_asymmetry: float = 0.45
    half_fill_max: float = 0.50
    max_surround_darkness: float = 0.12
    max_multiple_share: float = 0.1
    dirty_card_questions: int = 2
    streak_column_share: float = 0.5
    min_question_outline_ratio: float = 0.4
    min_box_outline_ratio: float = 0.06
    solid_fill_margin: float = 0.07
    faint_peak_share: float = 0.5
    standout_peak: float = 0.35
    standout_ratio: float = 3.0
    standout_line_peak: float = 0.25
    standout_line_spread: float = 0.6
    standout_faint_ratio: float = 5.0
    standout_clipped_peak: float = 0.1
    standout_clipped_ratio: float = 20.0
    doubtful_card_share: float = 0.1
    weak_mark_peak_share: float = 0.7
    weak_mark_fill_share: float = 0.5
    doubtful_standout_peak: float = 0.3
    doubtful_block_share: float = 0.3
    source: str = "default"


def bitonal_thresholds() -> MarkThresholds:
    """Levels for a 1-bit scan, where only the share of black pixels is evidence.

    Thresholding destroys what tells a faint stroke or an erasure residue from a pen
    line (their darkness): a faint pencil line comes out as black as a pen line, a
    residue as black speckles or, when heavy, a blot covering up to ~65% of the box
    (measured on synth 1-bit scans; fills cover >= 80%).  So only a box three-quarters
    black, or with ink in all four corners and none at the middles of its sides (a
    cross), is marked, only a clean one blank, and everything between goes to review.
    """
    return MarkThresholds(
        fill_blank=0.04,
        fill_mark=0.75,
        ink_blank=0.04,
        ink_mark=0.75,
        stroke_blank=2.0,  # never blocks "blank": no stroke evidence on a 1-bit scan
        stroke_mark=2.0,  # never marks by strokes alone
        peak_blank=2.0,
        peak_mark=2.0,
        strong_stroke_mark=2.0,
        # every corner holds >= 2 of its 12 samples of ink and no side middle any:
        # specks of a thresholded residue do that about once in a thousand boxes
        cross_mark=0.16,
        drawn_cross_mark=0.6,
        standout_peak=2.0,  # a 1-bit box's darkest tenth is black or white: no such evidence
        standout_line_peak=2.0,
        standout_clipped_peak=2.0,
        doubtful_card_share=2.0,  # its darkest tenths are all black: no "weaker than the card's marks"
        min_box_outline_ratio=0.0,  # thresholding breaks thin outlines box by box
        source="bitonal",
    )


def save_thresholds(thresholds: MarkThresholds, path: str | Path) -> None:
    """Write thresholds as JSON (what `omr calibrate --out` produces)."""
    try:
        Path(path).write_text(json.dumps(asdict(thresholds), indent=2) + "\n", encoding="utf-8")
    except OSError as err:
        raise OutputError(f"cannot write thresholds {path}: {err.strerror}; check that its folder exists "
                          "and is writable, and that the disk has room") from err


def load_thresholds(path: str | Path) -> MarkThresholds:
    """Read thresholds written by `save_thresholds`; raise ThresholdsError naming the field."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # unreadable, not UTF-8, not JSON
        raise ThresholdsError(f"cannot read thresholds {path}: {err}; rerun 'omr calibrate --out'") from err
    if not isinstance(data, dict):
        raise ThresholdsError(f"thresholds {path}: expected a JSON object; rerun 'omr calibrate --out'")
    known = {f.name for f in fields(MarkThresholds)}
    unknown = set(data) - known
    if unknown:
        raise ThresholdsError(f"thresholds {path}: unknown fields {sorted(unknown)}")
    for name, value in data.items():
        if name != "source" and not isinstance(value, int | float):
            raise ThresholdsError(f"thresholds {path}: {name} must be a number, got {value!r}")
    try:
        return MarkThresholds(**data)
    except TypeError as err:  # a field missing
        raise ThresholdsError(f"thresholds {path}: {err}; rerun 'omr calibrate --out'") from err
