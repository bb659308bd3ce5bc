"""Synthetic scans of filled-in cards, with the ground truth a reader is judged against.

A card is made in two stages, both reproducible from one seed:

1. **What the candidate did** (`CardSpec`): per question a `MarkSpec` -- the boxes
   touched and how (`BoxMark`: a pencil ``fill``, a pen ``x``, a ``pencil_x``, a
   ``check``, a ``half`` fill, an ``erased`` box's residue, a ``faint`` stroke); the
   code-number grid (matching the barcode, empty, one digit different, or a column
   marked twice); the version bubble (one, none, two); damage to the barcode label
   (a pen ``stroke`` across, a graphite ``smudge``, ``covered`` by a sticker); stray
   pen lines outside the boxes and dirt specks.
2. **What the scanner did** (`ScanDamage`): the page is laid on a white or dark bed
   with an offset, skewed (and maybe turned 180 or 90/270 degrees), mildly
   perspective-warped, resampled to the target DPI (area averaging), blurred, given a
   brightness/contrast change, noise, a paper tint (colour scans), optionally
   thresholded to 1 bit, and finally JPEG-encoded.

Ground truth
------------
Each box mark has a set of states a *correct* reader may report for that box::

    fill, x, pencil_x, check      {marked}
    half                          {marked, ambiguous}    half a box is evidence either way
    erased                        {blank, ambiguous}     CEM: an erased box is blank, but a
                                                         heavy residue may fairly go to review
    faint                         {blank, ambiguous}     a short light stroke is not a mark
    (untouched)                   {blank}

A question's acceptable reads are every outcome of the spec §2 rule over all
combinations of those box states (any ambiguous box -> ``?``; else 0 marked -> ``-``,
1 -> its letter, 2+ -> ``*``).  So a clean fill of B gives ``"B"``, B filled + D erased
``"B?"``, a half fill of C ``"C?"``, residue only ``"-?"``, a faint stroke ``"-?"``, two
fills ``"*"``, two fills + a half ``"*?"``.  The same rule gives the code-grid columns
and the version row.

Truth record (one per page, JSON-ready)::

    source, page            file name (relative to the dataset folder) and 1-based page
    code_number             the digits printed in the barcode
    grid_code               what the grid holds: one char per column (a digit, or the
                            column's single acceptable char, else "?"); null when empty
    grid_acceptable         per column, its acceptable chars
    barcode_readable        whether a competent reader should decode the barcode:
                            False only for a ``covered`` label.  A belief: with heavy
                            scan damage zbar also misses some ``stroke``/``smudge``
                            labels (about 1 in 5 in a 40-card check), none undamaged
    version                 the marked version letter, null when none, "*" when two
    part                    the card's part (1-based) on a layout of several parts, else null
    acceptable              per question, a string of acceptable chars, e.g. "B?"
    expected_flags          flags the reader must raise (vocabulary of omr.decode:
                            code_mismatch, check_digit, barcode_unreadable,
                            code_unreadable, version_missing, version_multiple)
    box_centers_px          (N, 2) true pixel position of every box centre in the final
                            image, in ``layout.box_centers()`` order
    marker_centers_px       (4, 2) the markers' centres, TL, TR, BR, BL as printed
    mm_to_px                (3, 3) homography from page millimetres to final pixels
    dpi, image_size         resolution and ``[width, height]`` of the final image
    rotation_deg            how far the printed page is turned in the image (0/90/180/270
                            plus the skew), clockwise
    damage                  the `ScanDamage` fields
    spec                    a summary of the `CardSpec` (patterns, styles, grid mode ...)

Pixel positions follow `omr.render`: a point at x mm is at pixel ``x * dpi / 25.4 - 0.5``
before the scanner's geometry; ``mm_to_px`` includes that.  For PDF pages the pixel
positions refer to the embedded image at ``dpi``.

On a layout of several parts (``cem-100``) `write_dataset` writes candidates rather
than cards (`candidate_plan`: pages shuffled, some candidates with a part missing, a
part twice, or parts of different versions) and ``candidates.json`` beside
``truth.json``: one record per code number (`candidate_truth`).
"""

from __future__ import annotations

import io
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from omr.decode import is_valid_code, luhn_check_digit
from omr.layout import CardLayout, load_layout
from omr.render import MM_PER_INCH, barcode_payload, draw_barcode, page_size_px, render_blank

__all__ = [
    "BARCODE_DAMAGES",
    "BoxMark",
    "CardSpec",
    "DAMAGE_PRESETS",
    "DamageRanges",
    "GRID_MODES",
    "MARK_STYLES",
    "MarkSpec",
    "ScanDamage",
    "SpecMix",
    "SynthCard",
    "CANDIDATE_MIX",
    "CandidatePlan",
    "PlannedPage",
    "acceptable_reads",
    "candidate_plan",
    "candidate_truth",
    "random_card_spec",
    "random_code_number",
    "random_damage",
    "synth_card",
    "write_dataset",
    "write_pages",
]

MARK_STYLES = ("fill", "x", "pencil_x", "check", "half", "erased", "faint")
GRID_MODES = ("match", "empty", "mismatch", "ambiguous")
BARCODE_DAMAGES = ("none", "stroke", "smudge", "covered")
DAMAGE_PRESETS = ("none", "mild", "heavy", "all")
FORMATS = ("jpg", "png", "tiff", "pdf")

# box states a correct reader may report for each style: M marked, B blank, A ambiguous
_STATES = {
    "fill": "M", "x": "M", "pencil_x": "M", "check": "M",
    "half": "MA", "erased": "BA", "faint": "BA",
}  # fmt: skip


# -- what the candidate did -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoxMark:
    """One box touched by the candidate.

    option : index of the box in its row (answer option, grid digit row, version label)
    style : one of `MARK_STYLES`
    gray_u8 : the gray level the ink leaves on white paper where it is solid (0 black)
    size : extent relative to the box (1.0 = the box outline; < 1 leaves paper inside,
        > 1 overshoots the outline)
    """

    option: int
    style: str
    gray_u8: float
    size: float = 1.0

    def __post_init__(self) -> None:
        if self.style not in MARK_STYLES:
            raise ValueError(f"BoxMark.style: {self.style!r} is not one of {MARK_STYLES}")


@dataclass(frozen=True, slots=True)
class MarkSpec:
    """How one row (a question, a grid column, the version row) was marked.

    pattern : a name for the case (``one``, ``blank``, ``multiple``, ``correction``,
        ``half``, ``residue``, ``faint``, ``one_plus_faint``, ``multiple_half``)
    marks : the boxes touched, at most one `BoxMark` per box
    """

    pattern: str
    marks: tuple[BoxMark, ...] = ()

    def acceptable(self, labels: str) -> str:
        """Every read a correct reader may give for this row, e.g. ``"B?"``."""
        return acceptable_reads(self.marks, labels)


def acceptable_reads(marks: Sequence[BoxMark], labels: str) -> str:
    """The acceptable reads of a row holding ``marks`` (see the module docstring).

    Letters come first, then ``-``, ``*``, ``?``.

    >>> acceptable_reads([BoxMark(1, "fill", 60), BoxMark(3, "erased", 215)], "ABCDE")
    'B?'
    >>> acceptable_reads([BoxMark(2, "half", 70)], "ABCDE")
    'C?'
    """
    outcomes: set[str] = set()
    for states in itertools.product(*(_STATES[m.style] for m in marks)):
        if "A" in states:
            outcomes.add("?")
            continue
        marked = [m.option for m, st in zip(marks, states, strict=True) if st == "M"]
        outcomes.add("-" if not marked else labels[marked[0]] if len(marked) == 1 else "*")
    order = labels + "-*?"
    return "".join(sorted(outcomes, key=order.index))


@dataclass(frozen=True, slots=True)
class CardSpec:
    """Everything the candidate (and life) did to one printed card.

    code_number : the digits printed in the barcode
    answers : one `MarkSpec` per question
    code_grid : one `MarkSpec` per grid column (options are digit rows)
    grid_mode : one of `GRID_MODES` (a description; ``code_grid`` is what is drawn)
    version : the version row's `MarkSpec`
    barcode_damage : one of `BARCODE_DAMAGES`
    stray_lines, specks : how many pen lines outside the boxes / dirt specks
    part : which part (1-based) of a layout of several parts the card is (printed
        filled in the part row and after the code number in the barcode); None on a
        layout without parts
    """

    code_number: str
    answers: tuple[MarkSpec, ...]
    code_grid: tuple[MarkSpec, ...]
    version: MarkSpec
    grid_mode: str = "match"
    barcode_damage: str = "none"
    stray_lines: int = 0
    specks: int = 0
    part: int | None = None

    def __post_init__(self) -> None:
        if self.grid_mode not in GRID_MODES:
            raise ValueError(f"CardSpec.grid_mode: {self.grid_mode!r} is not one of {GRID_MODES}")
        if self.barcode_damage not in BARCODE_DAMAGES:
            raise ValueError(
                f"CardSpec.barcode_damage: {self.barcode_damage!r} is not one of {BARCODE_DAMAGES}"
            )


@dataclass(frozen=True, slots=True)
class SpecMix:
    """Proportions for `random_card_spec` (probabilities per question / per card).

    The per-question patterns not listed take the remainder: exactly one mark.  The
    defaults resemble a real exam: ~4% blank, ~1% multiple, a few corrections per card,
    rare half fills and faint strokes.  A half-filled box is the one pattern spec §2
    requires to be read ``?``, so its rate is the floor of a correct reader's ``?``
    rate: at 0.3% + 0.1% of questions it stays under the 0.5% review budget.
    """

    blank: float = 0.04
    multiple: float = 0.01
    correction: float = 0.025
    half: float = 0.003
    residue: float = 0.005
    faint: float = 0.005
    one_plus_faint: float = 0.008
    multiple_half: float = 0.001
    x_candidates: float = 0.12
    check_marks: float = 0.01
    grid_empty: float = 0.06
    grid_mismatch: float = 0.04
    grid_ambiguous: float = 0.03
    barcode_stroke: float = 0.05
    barcode_smudge: float = 0.04
    barcode_covered: float = 0.04
    version_none: float = 0.03
    version_two: float = 0.01
    bad_check_digit: float = 0.0
    max_stray_lines: int = 3
    max_specks: int = 10


def random_code_number(rng: np.random.Generator, digits: int = 9) -> str:
    """``digits - 1`` random digits and their Luhn check digit."""
    body = "".join(map(str, rng.integers(0, 10, digits - 1)))
    return body + luhn_check_digit(body)


def _pick(rng: np.random.Generator, probs: dict[str, float], rest: str) -> str:
    """A key of ``probs`` by its probability, ``rest`` for the remaining mass."""
    keys = list(probs) + [rest]
    p = np.array(list(probs.values()) + [max(0.0, 1.0 - sum(probs.values()))])
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def random_card_spec(
    layout: CardLayout,
    rng: np.random.Generator,
    *,
    answers: str | None = None,
    code_number: str | None = None,
    version: str | None = None,
    part: int | None = None,
    **mix: Any,
) -> CardSpec:
    """A random but plausible `CardSpec`.

    Parameters
    ----------
    layout : CardLayout
    rng : numpy Generator
    answers : str, optional
        The letters the candidate means to give (one per question; ``-`` = skip);
        random when None.
    code_number : str, optional
        Printed code number; random valid Luhn code when None.
    version : str, optional
        Version letter to mark (the card may still get none or two, per ``mix``).
    part : int, optional
        The card's part on a layout of several parts (default 1 there; refused on a
        layout without parts).  Draws nothing from ``rng``.
    **mix
        Overrides of `SpecMix` fields, e.g. ``blank=0.5``.

    Raises
    ------
    ValueError
        for an unknown ``mix`` key or ``answers`` of the wrong length.
    """
    names = {f.name for f in fields(SpecMix)}
    unknown = sorted(set(mix) - names)
    if unknown:
        raise ValueError(f"random_card_spec: unknown mix {unknown}; known: {sorted(names)}")
    m = SpecMix(**mix)
    if layout.parts is None and part is not None:
        raise ValueError(f"part: layout {layout.name} has no parts, got {part}")
    if layout.parts is not None:
        part = 1 if part is None else part
        if not 1 <= part <= layout.parts.count:
            raise ValueError(f"part: layout {layout.name} has parts 1..{layout.parts.count}, got {part}")
    options = layout.answers.options
    n_opt = len(options)
    q = layout.answers.questions
    if answers is not None and len(answers) != q:
        raise ValueError(f"answers: need {q} letters, got {len(answers)}")

    # the candidate's habits: pencil darkness, neatness, fill or cross
    base_gray = rng.uniform(40, 110)
    neat = rng.uniform(0.8, 1.0)
    main_style = "fill"
    if rng.random() < m.x_candidates:
        main_style = "x" if rng.random() < 0.6 else "pencil_x"

    def main_mark(k: int) -> BoxMark:
        style = "check" if rng.random() < m.check_marks else main_style
        gray = base_gray + rng.normal(0, 10)
        if style == "x":
            gray = rng.uniform(15, 70)
        if rng.random() < 0.9:
            size = rng.uniform(neat - 0.12, neat + 0.12)
        else:  # sloppy: a small blob or an overshoot
            size = rng.uniform(0.72, 1.2)
        return BoxMark(k, style, float(np.clip(gray, 30, 125)), float(size))

    def other(k: int, count: int = 1) -> list[int]:
        pool = [j for j in range(n_opt) if j != k]
        return [int(j) for j in rng.choice(pool, size=min(count, len(pool)), replace=False)]

    probs = {
        "blank": m.blank, "multiple": m.multiple, "correction": m.correction, "half": m.half,
        "residue": m.residue, "faint": m.faint, "one_plus_faint": m.one_plus_faint,
        "multiple_half": m.multiple_half,
    }  # fmt: skip
    specs = []
    for i in range(q):
        intended = answers[i] if answers is not None else options[int(rng.integers(n_opt))]
        k = options.index(intended) if intended in options else int(rng.integers(n_opt))
        pattern = "blank" if intended == "-" else _pick(rng, probs, "one")
        marks: list[BoxMark]
        if pattern == "one":
            marks = [main_mark(k)]
        elif pattern == "blank":
            marks = []
        elif pattern == "multiple":
            marks = [main_mark(j) for j in [k, *other(k, 1 + int(rng.random() < 0.15))]]
        elif pattern == "correction":
            (j,) = other(k)
            marks = [main_mark(k), BoxMark(j, "erased", float(rng.uniform(205, 235)),
                                           float(rng.uniform(0.85, 1.15)))]
        elif pattern == "half":
            marks = [BoxMark(k, "half", float(np.clip(base_gray + rng.normal(0, 10), 35, 125)))]
        elif pattern == "residue":
            marks = [BoxMark(k, "erased", float(rng.uniform(190, 212)), float(rng.uniform(0.9, 1.2)))]
        elif pattern == "faint":
            marks = [BoxMark(k, "faint", float(rng.uniform(150, 200)))]
        elif pattern == "one_plus_faint":
            (j,) = other(k)
            marks = [main_mark(k), BoxMark(j, "faint", float(rng.uniform(150, 200)))]
        else:  # multiple_half
            j, h = other(k, 2)
            marks = [main_mark(k), main_mark(j), BoxMark(h, "half", float(base_gray))]
        specs.append(MarkSpec(pattern, tuple(sorted(marks, key=lambda b: b.option))))

    # code number and grid
    g = layout.code_grid
    if code_number is None:
        code_number = random_code_number(rng, g.digits)
        if rng.random() < m.bad_check_digit:
            wrong = (int(code_number[-1]) + 1 + int(rng.integers(9))) % 10
            code_number = code_number[:-1] + str(wrong)
    grid_mode = _pick(rng, {"empty": m.grid_empty, "mismatch": m.grid_mismatch,
                            "ambiguous": m.grid_ambiguous}, "match")
    grid_digits = list(code_number)
    if grid_mode == "mismatch":
        j = int(rng.integers(g.columns))
        grid_digits[j] = str((int(grid_digits[j]) + 1 + int(rng.integers(9))) % 10)

    def grid_mark(d: str) -> BoxMark:
        return BoxMark(g.row_labels.index(d), "fill",
                       float(np.clip(base_gray + rng.normal(0, 8), 30, 120)),
                       float(rng.uniform(neat - 0.1, neat + 0.1)))

    columns = []
    odd = int(rng.integers(g.columns))
    for j, d in enumerate(grid_digits):
        if grid_mode == "empty":
            columns.append(MarkSpec("blank"))
        elif grid_mode == "ambiguous" and j == odd:
            row = g.row_labels.index(d)
            alt = g.row_labels[(row + 1 + int(rng.integers(g.rows - 1))) % g.rows]
            second = grid_mark(alt) if rng.random() < 0.5 else BoxMark(
                g.row_labels.index(alt), "half", float(base_gray))
            columns.append(MarkSpec("multiple", tuple(sorted([grid_mark(d), second],
                                                             key=lambda b: b.option))))
        else:
            columns.append(MarkSpec("one", (grid_mark(d),)))

    labels = layout.version.labels
    v = labels.index(version) if version and version in labels else int(rng.integers(len(labels)))
    vmode = _pick(rng, {"none": m.version_none, "two": m.version_two}, "one")
    vgray = float(np.clip(base_gray + rng.normal(0, 8), 30, 120))
    if vmode == "none":
        vspec = MarkSpec("blank")
    elif vmode == "two":
        (w,) = [int(x) for x in rng.choice([j for j in range(len(labels)) if j != v], 1)]
        vspec = MarkSpec("multiple", tuple(BoxMark(j, "fill", vgray) for j in sorted((v, w))))
    else:
        vspec = MarkSpec("one", (BoxMark(v, "fill", vgray),))

    return CardSpec(
        code_number=code_number,
        answers=tuple(specs),
        code_grid=tuple(columns),
        version=vspec,
        grid_mode=grid_mode,
        barcode_damage=_pick(rng, {"stroke": m.barcode_stroke, "smudge": m.barcode_smudge,
                                   "covered": m.barcode_covered}, "none"),
        stray_lines=int(rng.integers(0, m.max_stray_lines + 1)),
        specks=int(rng.integers(0, m.max_specks + 1)),
        part=part,
    )


# -- what the scanner did ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScanDamage:
    """Every scanner effect, applied in this order (defaults: a perfect 300 DPI scan).

    dpi : final resolution
    bed : ``"white"`` or ``"dark"`` -- the scanner lid seen around the page
    offset_mm : (x, y) bed visible left of / above the page's bounding box
    margin_mm : (x, y) bed visible right of / below it
    rotation_deg : skew, clockwise, about the page centre (about +-10)
    upside_down : page fed the wrong way (180 degrees)
    quarter_turn : 0, 90 or 270 -- page laid sideways (clockwise)
    perspective : corner displacement as a fraction of the page's short side
    blur_sigma_mm : Gaussian blur of the optics
    brightness, contrast : ``out = (v - 128) * contrast + 128 + brightness``
    gamma : the scanner's tone curve, ``out = 255 * (v / 255) ** gamma`` (> 1 darkens
        the greys, < 1 lightens them: light pencil comes out lighter still)
    noise_sigma : Gaussian sensor noise, gray levels
    color : a BGR scan, paper tinted by ``tint_bgr`` (per-channel gains)
    bitonal : threshold to black/white at ``bitonal_threshold`` (a 1-bit scan)
    jpeg_quality : JPEG quality of the scanner's file, None for lossless
    """

    dpi: float = 300.0
    bed: str = "white"
    offset_mm: tuple[float, float] = (0.0, 0.0)
    margin_mm: tuple[float, float] = (0.0, 0.0)
    rotation_deg: float = 0.0
    upside_down: bool = False
    quarter_turn: int = 0
    perspective: float = 0.0
    blur_sigma_mm: float = 0.0
    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0
    noise_sigma: float = 0.0
    color: bool = False
    tint_bgr: tuple[float, float, float] = (0.94, 0.98, 1.0)
    bitonal: bool = False
    bitonal_threshold: int = 150
    jpeg_quality: int | None = None

    def __post_init__(self) -> None:
        if not 50 <= self.dpi <= 1200:
            raise ValueError(f"ScanDamage.dpi: {self.dpi} outside 50..1200")
        if self.bed not in ("white", "dark"):
            raise ValueError(f"ScanDamage.bed: {self.bed!r}; use 'white' or 'dark'")
        if self.quarter_turn not in (0, 90, 270):
            raise ValueError(f"ScanDamage.quarter_turn: {self.quarter_turn}; use 0, 90 or 270")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"ScanDamage.jpeg_quality: {self.jpeg_quality} outside 1..100")

    @property
    def turn_deg(self) -> int:
        """The whole-page turn: 0, 90, 180 or 270 degrees clockwise."""
        return (self.quarter_turn + (180 if self.upside_down else 0)) % 360


@dataclass(frozen=True, slots=True)
class DamageRanges:
    """Ranges `random_damage` draws from: ``(low, high)`` uniform, ``p_*`` probabilities."""

    dpi: tuple[float, ...] = (300.0,)
    rotation_deg: tuple[float, float] = (0.0, 0.0)
    p_upside_down: float = 0.0
    p_quarter_turn: float = 0.0
    p_dark_bed: float = 0.0
    offset_mm: tuple[float, float] = (0.0, 0.0)
    perspective: tuple[float, float] = (0.0, 0.0)
    blur_sigma_mm: tuple[float, float] = (0.0, 0.0)
    brightness: tuple[float, float] = (0.0, 0.0)
    contrast: tuple[float, float] = (1.0, 1.0)
    gamma: tuple[float, float] = (1.0, 1.0)
    noise_sigma: tuple[float, float] = (0.0, 0.0)
    p_color: float = 0.0
    p_bitonal: float = 0.0
    jpeg_quality: tuple[int, int] | None = None

    @classmethod
    def preset(cls, name: str) -> DamageRanges:
        """``none`` (a perfect scan), ``mild`` (an office scanner) or ``heavy``."""
        if name == "none":
            return cls()
        if name == "mild":
            return cls(
                dpi=(200.0, 300.0), rotation_deg=(-2.0, 2.0), p_upside_down=0.05,
                p_dark_bed=0.2, offset_mm=(0.0, 6.0), perspective=(0.0, 0.002),
                blur_sigma_mm=(0.02, 0.06), brightness=(-12.0, 5.0), contrast=(0.85, 1.0),
                noise_sigma=(1.0, 4.0), p_color=0.15, jpeg_quality=(70, 95),
            )  # fmt: skip
        if name == "heavy":
            return cls(
                dpi=(150.0, 200.0, 300.0, 400.0, 600.0), rotation_deg=(-10.0, 10.0),
                p_upside_down=0.25, p_quarter_turn=0.1, p_dark_bed=0.5, offset_mm=(0.0, 15.0),
                perspective=(0.0, 0.01), blur_sigma_mm=(0.04, 0.12), brightness=(-30.0, 10.0),
                contrast=(0.7, 1.05), noise_sigma=(3.0, 9.0), p_color=0.4, p_bitonal=0.1,
                jpeg_quality=(40, 75),
            )  # fmt: skip
        raise ValueError(f"damage preset {name!r}: use one of none, mild, heavy")


def random_damage(rng: np.random.Generator, preset: str = "mild", **ranges: Any) -> ScanDamage:
    """A random `ScanDamage` from a preset's `DamageRanges`, with field overrides.

    Parameters
    ----------
    rng : numpy Generator
    preset : ``none``, ``mild``, ``heavy`` or ``all`` (each card picks one of the three,
        20/50/30 %)
    **ranges
        `DamageRanges` fields to override, e.g. ``dpi=(150.0,)`` or ``p_upside_down=1.0``.

    Example
    -------
    >>> random_damage(np.random.default_rng(0), "none").dpi
    300.0
    """
    if preset == "all":
        preset = ("none", "mild", "heavy")[int(rng.choice(3, p=[0.2, 0.5, 0.3]))]
    r = replace(DamageRanges.preset(preset), **ranges)

    def uni(lo_hi: tuple[float, float]) -> float:
        return float(rng.uniform(*lo_hi)) if lo_hi[1] > lo_hi[0] else float(lo_hi[0])

    upside = bool(rng.random() < r.p_upside_down)
    quarter = int(rng.choice([90, 270])) if rng.random() < r.p_quarter_turn else 0
    bitonal = bool(rng.random() < r.p_bitonal)
    color = bool(rng.random() < r.p_color) and not bitonal
    quality = None
    if r.jpeg_quality is not None and not bitonal:
        quality = int(rng.integers(r.jpeg_quality[0], r.jpeg_quality[1] + 1))
    dark = bool(rng.random() < r.p_dark_bed)
    return ScanDamage(
        dpi=float(rng.choice(r.dpi)),
        bed="dark" if dark else "white",
        offset_mm=(uni(r.offset_mm), uni(r.offset_mm)),
        margin_mm=(uni(r.offset_mm) / 2, uni(r.offset_mm) / 2),
        rotation_deg=uni(r.rotation_deg),
        upside_down=upside,
        quarter_turn=quarter,
        perspective=uni(r.perspective),
        blur_sigma_mm=uni(r.blur_sigma_mm),
        brightness=uni(r.brightness),
        contrast=uni(r.contrast),
        # drawn only when a range is given, so the presets' random streams stay as they were
        gamma=uni(r.gamma),
        noise_sigma=uni(r.noise_sigma),
        color=color,
        tint_bgr=(float(rng.uniform(0.88, 0.97)), float(rng.uniform(0.95, 1.0)), 1.0),
        bitonal=bitonal,
        bitonal_threshold=int(rng.integers(130, 175)),
        jpeg_quality=quality,
    )


# -- drawing the candidate's marks ------------------------------------------------------


def _interp_matrix(n: int, cells: int) -> NDArray[np.float32]:
    """(n, cells) linear interpolation weights from ``cells`` nodes to ``n`` samples."""
    t = np.linspace(0.0, cells - 1.0, n)
    i0 = np.minimum(np.floor(t).astype(int), cells - 2)
    f = t - i0
    w = np.zeros((n, cells), np.float32)
    w[np.arange(n), i0] = 1.0 - f
    w[np.arange(n), i0 + 1] = f
    return w


def _smooth_field(rng: np.random.Generator, n: int, ph: int, pw: int, cells: int) -> NDArray:
    """(n, ph, pw) smooth random fields, about unit amplitude, ``cells`` nodes a side."""
    coarse = rng.standard_normal((n, cells, cells), dtype=np.float32)
    return (_interp_matrix(ph, cells) @ coarse) @ _interp_matrix(pw, cells).T


def _box_sdf(u: NDArray, v: NDArray, a: NDArray, b: NDArray, r: NDArray) -> NDArray:
    """Signed distance (mm, < 0 inside) to rounded rectangles of half sizes (a, b)."""
    qx = np.abs(u) - (a - r)
    qy = np.abs(v) - (b - r)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0) - r


def _segment_dist(u: NDArray, v: NDArray, p0: NDArray, p1: NDArray) -> NDArray:
    """Distance (mm) from (u, v) to segments p0->p1; p0, p1 are (n, 2)."""
    x0, y0 = p0[:, 0, None, None], p0[:, 1, None, None]
    dx, dy = (p1[:, 0] - p0[:, 0])[:, None, None], (p1[:, 1] - p0[:, 1])[:, None, None]
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / np.maximum(dx * dx + dy * dy, 1e-9), 0, 1)
    return np.hypot(u - x0 - t * dx, v - y0 - t * dy)


@dataclass(frozen=True, slots=True)
class _Patches:
    """Per-mark sampling grids: pixel origins and mark-frame coordinates (mm)."""

    rows0: NDArray[np.int64]
    cols0: NDArray[np.int64]
    u: NDArray[np.float32]  # (n, ph, pw)
    v: NDArray[np.float32]


def _patches(centres_mm: NDArray, s: float, ph: int, pw: int, angle: NDArray) -> _Patches:
    """Sampling grids of size (ph, pw) px around each centre, rotated by ``angle`` rad."""
    cols0 = np.floor(centres_mm[:, 0] * s - pw / 2).astype(np.int64)
    rows0 = np.floor(centres_mm[:, 1] * s - ph / 2).astype(np.int64)
    xs = ((cols0[:, None] + np.arange(pw) + 0.5) / s - centres_mm[:, :1]).astype(np.float32)
    ys = ((rows0[:, None] + np.arange(ph) + 0.5) / s - centres_mm[:, 1:]).astype(np.float32)
    c = np.cos(angle).astype(np.float32)[:, None, None]
    sn = np.sin(angle).astype(np.float32)[:, None, None]
    u = xs[:, None, :] * c + ys[:, :, None] * sn
    v = ys[:, :, None] * c - xs[:, None, :] * sn
    return _Patches(rows0, cols0, u, v)


def _alpha(sd: NDArray, s: float) -> NDArray:
    """Antialiased coverage of the region ``sd < 0`` (one-pixel ramp)."""
    return np.clip(0.5 - sd * s, 0.0, 1.0)


def _pencil_texture(
    rng: np.random.Generator, u: NDArray, v: NDArray, s: float, strength: NDArray
) -> NDArray:
    """Multiplicative graphite texture: back-and-forth stroke lines plus grain, mean ~1."""
    n, ph, pw = u.shape
    theta = rng.uniform(-1.2, 1.2, n).astype(np.float32)[:, None, None]
    spacing = rng.uniform(0.22, 0.45, n).astype(np.float32)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)[:, None, None]
    # stroke lines finer than ~2.5 px alias at this DPI; fade them out there
    visible = np.clip((spacing * s - 2.5) / 2.5, 0.0, 1.0)
    # hand strokes are neither straight nor evenly spaced: wobble the phase
    wobble = 2.0 * _smooth_field(rng, n, ph, pw, 5)
    streak = 0.5 + 0.5 * np.cos((u * np.cos(theta) + v * np.sin(theta)) * (2 * np.pi) / spacing
                                + phase + wobble)
    grain = rng.standard_normal((n, ph, pw), dtype=np.float32)
    if s > 16:  # graphite grain is ~0.06 mm: blur the noise at high DPI
        grain = cv2.GaussianBlur(grain.reshape(n * ph, pw), (0, 0), 0.03 * s).reshape(n, ph, pw)
        grain /= max(float(grain.std()), 1e-3)
    low = _smooth_field(rng, n, ph, pw, 4)
    st = strength[:, None, None]
    return (1.0 - st * visible * (streak - 0.5) * 1.2) * (1.0 + 0.22 * st * grain) * (
        1.0 + 0.12 * low
    )


def _mark_ink(
    rng: np.random.Generator,
    marks: Sequence[BoxMark],
    p: _Patches,
    bw: float,
    bh: float,
    s: float,
) -> NDArray[np.float32]:
    """(n, ph, pw) darkness (0 none .. 1 black) of each mark in its patch."""
    ink = np.zeros(p.u.shape, np.float32)
    styles = np.array([m.style for m in marks])
    gray = np.array([m.gray_u8 for m in marks], np.float32)
    size = np.array([m.size for m in marks], np.float32)
    base = 1.0 - gray / 255.0

    def sel(*names: str) -> NDArray[np.int64]:
        return np.flatnonzero(np.isin(styles, names))

    # areas: fill, half, erased
    idx = sel("fill", "half", "erased")
    if idx.size:
        k = idx.size
        u, v = p.u[idx], p.v[idx]
        sz = size[idx]
        a = (bw / 2 * sz * rng.uniform(0.93, 1.07, k)).astype(np.float32)[:, None, None]
        b = (bh / 2 * sz * rng.uniform(0.93, 1.07, k)).astype(np.float32)[:, None, None]
        r = np.minimum(rng.uniform(0.3, 1.0, k).astype(np.float32)[:, None, None],
                       np.minimum(a, b))
        erased = styles[idx] == "erased"
        edge_amp = np.where(erased, 0.25, rng.uniform(0.05, 0.18, k)).astype(np.float32)
        sd = _box_sdf(u, v, a, b, r) + edge_amp[:, None, None] * _smooth_field(
            rng, k, u.shape[1], u.shape[2], 6)
        half = styles[idx] == "half"
        if half.any():
            ang = rng.choice([0.0, 0.5, 1.0, 1.5, 0.25, 0.75, 1.25, 1.75], k) * np.pi
            nx = np.cos(ang).astype(np.float32)[:, None, None]
            ny = np.sin(ang).astype(np.float32)[:, None, None]
            cut = (rng.uniform(-0.12, 0.12, k) * bw / 2).astype(np.float32)[:, None, None]
            sd = np.where(half[:, None, None], np.maximum(sd, u * nx + v * ny - cut), sd)
        # light pencil shows more paper between strokes; erasure leaves faint streaks
        strength = np.where(erased, 0.25, np.clip(1.3 - base[idx] * 1.1, 0.25, 1.0))
        density = base[idx, None, None] * _pencil_texture(rng, u, v, s, strength.astype(np.float32))
        ink[idx] = _alpha(sd, s) * np.clip(density, 0.0, 0.97)

    # strokes: x, pencil_x, check, faint
    idx = sel("x", "pencil_x", "check", "faint")
    if idx.size:
        k = idx.size
        u, v = p.u[idx], p.v[idx]
        st = styles[idx]
        a = (bw / 2 * size[idx] * rng.uniform(0.75, 1.05, k))[:, None]
        b = (bh / 2 * size[idx] * rng.uniform(0.75, 1.1, k))[:, None]
        j = rng.normal(0, 0.12, (k, 4, 2))
        # X: two diagonals; check: short down-stroke then long up-stroke; faint: one short line
        corners = np.stack([np.concatenate([-a, -b], 1), np.concatenate([a, b], 1),
                            np.concatenate([-a, b], 1), np.concatenate([a, -b], 1)], 1) + j
        check = np.stack([np.concatenate([-a * 0.7, -b * 0.1], 1),
                          np.concatenate([-a * 0.15, b * 0.85], 1),
                          np.concatenate([-a * 0.15, b * 0.85], 1),
                          np.concatenate([a * 1.0, -b * 1.0], 1)], 1) + j
        ang = rng.uniform(0, np.pi, k)
        half_len = rng.uniform(0.5, 1.2, k)
        mid = rng.normal(0, 0.5, (k, 2)) * [bw / 4, bh / 4]
        d = np.stack([np.cos(ang), np.sin(ang)], 1) * half_len[:, None]
        faint = np.stack([mid - d, mid + d, mid - d, mid + d], 1)
        pts = np.where((st == "check")[:, None, None], check, corners)
        pts = np.where((st == "faint")[:, None, None], faint, pts).astype(np.float32)
        width = np.select(
            [st == "x", st == "pencil_x", st == "check"],
            [rng.uniform(0.2, 0.5, k), rng.uniform(0.3, 0.6, k), rng.uniform(0.25, 0.5, k)],
            rng.uniform(0.25, 0.45, k),
        ).astype(np.float32)[:, None, None]
        dist = np.minimum(_segment_dist(u, v, pts[:, 0], pts[:, 1]),
                          _segment_dist(u, v, pts[:, 2], pts[:, 3]))
        alpha = _alpha(dist - width / 2, s)
        pen = st == "x"
        strength = np.where(pen, 0.0, 0.8).astype(np.float32)
        tex = np.where(pen[:, None, None], 1.0 + 0.05 * _smooth_field(rng, k, *u.shape[1:], 4),
                       _pencil_texture(rng, u, v, s, strength))
        ink[idx] = alpha * np.clip(base[idx, None, None] * tex, 0.0, 0.97)
    return ink


def _composite(page: NDArray[np.uint8], p: _Patches, ink: NDArray[np.float32]) -> None:
    """Darken ``page`` in place: ``page *= 1 - ink`` over each patch (clipped to the page)."""
    h, w = page.shape
    _, ph, pw = ink.shape
    for r0, c0, dark in zip(p.rows0, p.cols0, ink, strict=True):
        r_lo, c_lo = max(int(r0), 0), max(int(c0), 0)
        r_hi, c_hi = min(int(r0) + ph, h), min(int(c0) + pw, w)
        if r_hi <= r_lo or c_hi <= c_lo:
            continue
        region = page[r_lo:r_hi, c_lo:c_hi]
        t = 1.0 - dark[r_lo - r0:r_hi - r0, c_lo - c0:c_hi - c0]
        region[...] = np.rint(region * t).astype(np.uint8)


def _draw_box_marks(
    page: NDArray[np.uint8],
    layout: CardLayout,
    items: Sequence[tuple[int, BoxMark]],
    s: float,
    rng: np.random.Generator,
) -> None:
    """Draw every (box index, mark) pair onto ``page``, all marks of a style at once."""
    if not items:
        return
    b = layout.bubble
    centres = layout.box_centers()[[i for i, _ in items]]
    centres = centres + np.clip(rng.normal(0, 0.12, centres.shape), -0.3, 0.3)
    margin = 1.6
    ph = math.ceil((b.height_mm + 2 * margin) * s)
    pw = math.ceil((b.width_mm + 2 * margin) * s)
    angle = np.deg2rad(np.clip(rng.normal(0, 3.0, len(items)), -8, 8))
    p = _patches(centres, s, ph, pw, angle)
    ink = _mark_ink(rng, [m for _, m in items], p, b.width_mm, b.height_mm, s)
    _composite(page, p, ink)


def _box_rects(layout: CardLayout) -> NDArray[np.float64]:
    """(N, 4) every bubble as [x0, y0, x1, y1] mm."""
    c = layout.box_centers()
    half = np.array([layout.bubble.width_mm / 2, layout.bubble.height_mm / 2])
    return np.concatenate([c - half, c + half], axis=1)


def _keep_out(layout: CardLayout) -> NDArray[np.float64]:
    """(K, 4) rectangles no stray ink may touch: boxes, barcode box, marker quiet zones."""
    m = layout.markers
    qz = m.side_mm / 2 + m.quiet_zone_mm
    markers = np.concatenate([m.centers() - qz, m.centers() + qz], axis=1)
    return np.concatenate([_box_rects(layout), [layout.barcode.box_mm], markers])


def _clearance(points: NDArray, rects: NDArray) -> float:
    """Smallest distance (mm) from any of (P, 2) points to any (K, 4) rectangle."""
    dx = np.maximum(np.maximum(rects[None, :, 0] - points[:, None, 0],
                               points[:, None, 0] - rects[None, :, 2]), 0)
    dy = np.maximum(np.maximum(rects[None, :, 1] - points[:, None, 1],
                               points[:, None, 1] - rects[None, :, 3]), 0)
    return float(np.hypot(dx, dy).min())


def _draw_strays(
    page: NDArray[np.uint8], layout: CardLayout, spec: CardSpec, s: float, rng: np.random.Generator
) -> None:
    """Pen lines near boxes (never touching one) and dirt specks off the boxes."""
    rects = _keep_out(layout)
    centres = layout.box_centers()
    b = layout.bubble
    shift = 6
    drawn = 0
    for _ in range(spec.stray_lines * 30):
        if drawn >= spec.stray_lines:
            break
        width = rng.uniform(0.25, 0.5)
        c = centres[int(rng.integers(len(centres)))]
        # in the gap under a row, or left of a box (over the printed question number)
        if rng.random() < 0.6:
            start = c + [rng.uniform(-3, 3), b.height_mm / 2 + rng.uniform(0.5, 1.5)]
            ang = rng.normal(0, 0.03)
        else:
            start = c + [-b.width_mm / 2 - rng.uniform(1.0, 4.0), rng.uniform(-3, 3)]
            ang = rng.uniform(0, np.pi)
        length = rng.uniform(2.0, 14.0)
        t = np.linspace(0, 1, 12)[:, None]
        bend = rng.normal(0, 0.15) * np.sin(np.pi * t)
        pts = start + t * length * np.array([np.cos(ang), np.sin(ang)]) + bend * [
            -np.sin(ang), np.cos(ang)]
        if _clearance(pts, rects) < width / 2 + 0.35:
            continue
        pix = np.rint((pts * s - 0.5) * (1 << shift)).astype(np.int32)
        cv2.polylines(page, [pix], False, (int(rng.uniform(20, 90)),),
                      max(1, round(width * s)), cv2.LINE_AA, shift)
        drawn += 1
    height, width_mm = layout.page_height_mm, layout.page_width_mm
    for _ in range(spec.specks):
        for _try in range(20):
            xy = rng.uniform([0, 0], [width_mm, height])
            radius = rng.uniform(0.05, 0.25)
            if _clearance(xy[None], rects) > radius + 0.4:
                centre = np.rint((xy * s - 0.5) * (1 << shift)).astype(int)
                cv2.circle(page, (int(centre[0]), int(centre[1])),
                           max(1, round(radius * s * (1 << shift))),
                           (int(rng.uniform(40, 150)),), -1, cv2.LINE_AA, shift)
                break


def _damage_barcode(
    page: NDArray[np.uint8], layout: CardLayout, kind: str, s: float, rng: np.random.Generator
) -> None:
    """A pen stroke across the bars, a graphite smudge, or a sticker over part of them."""
    if kind == "none":
        return
    x0, y0, x1, y1 = layout.barcode.box_mm
    bars_w = x1 - x0
    if kind == "stroke":
        t = np.linspace(0, 1, 16)[:, None]
        xa = x0 + bars_w * rng.uniform(0.05, 0.4)
        xb = xa + bars_w * rng.uniform(0.3, 0.6)
        ya = y0 + (y1 - y0) * rng.uniform(0.2, 0.6)
        yb = ya + rng.uniform(-2.0, 2.0)
        wave = 0.6 * np.sin(t * np.pi * rng.uniform(1, 4))
        pts = np.concatenate([xa + t * (xb - xa), ya + t * (yb - ya) + wave], axis=1)
        pix = np.rint((pts * s - 0.5) * 64).astype(np.int32)
        cv2.polylines(page, [pix], False, (int(rng.uniform(20, 80)),),
                      max(1, round(rng.uniform(0.3, 0.7) * s)), cv2.LINE_AA, 6)
    elif kind == "smudge":
        c0, r0 = int(x0 * s), int(y0 * s)
        region = page[r0:int(y1 * s), c0:int(x1 * s)]
        mask = np.zeros(region.shape, np.float32)
        cx = rng.uniform(0.2, 0.8) * region.shape[1]
        cy = rng.uniform(0.3, 0.7) * region.shape[0]
        axes = (int(rng.uniform(8, 20) * s), int(rng.uniform(3, 6) * s))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, rng.uniform(-20, 20), 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 1.5 * s) * rng.uniform(0.15, 0.35)
        region[...] = np.rint(region * (1.0 - mask)).astype(np.uint8)
    else:  # covered: a label stuck over 30-55 % of the bars, with a faint shadow edge
        cw = bars_w * rng.uniform(0.3, 0.55)
        cx0 = x0 + rng.uniform(0.1, 0.9) * (bars_w - cw)
        rect = np.array([[cx0, y0 - 1.0], [cx0 + cw, y0 - 1.0], [cx0 + cw, y1 - 2.5],
                         [cx0, y1 - 2.5]])
        pix = np.rint((rect * s - 0.5) * 64).astype(np.int32)
        cv2.fillPoly(page, [pix], (int(rng.uniform(236, 250)),), cv2.LINE_AA, 6)
        cv2.polylines(page, [pix], True, (int(rng.uniform(170, 210)),), 1, cv2.LINE_AA, 6)


# -- scanning ---------------------------------------------------------------------------


def _page_to_bed(
    layout: CardLayout, damage: ScanDamage, rng: np.random.Generator
) -> tuple[NDArray[np.float64], tuple[float, float]]:
    """Homography page mm -> bed mm, and the bed size (w, h) mm."""
    w, h = layout.page_width_mm, layout.page_height_mm
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    theta = np.deg2rad(damage.turn_deg + damage.rotation_deg)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    centre = np.array([w / 2, h / 2])
    moved = (corners - centre) @ rot.T
    if damage.perspective > 0:
        moved = moved + rng.uniform(-1, 1, (4, 2)) * damage.perspective * min(w, h)
    lo = moved.min(axis=0)
    moved = moved - lo + np.asarray(damage.offset_mm)
    size = moved.max(axis=0) + np.asarray(damage.margin_mm)
    homography = cv2.getPerspectiveTransform(corners.astype(np.float32), moved.astype(np.float32))
    return homography.astype(np.float64), (float(size[0]), float(size[1]))


def _apply(h: NDArray[np.float64], pts: NDArray[np.float64]) -> NDArray[np.float64]:
    """Apply a 3x3 homography to (N, 2) points."""
    q = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ h.T
    return q[:, :2] / q[:, 2:]


@dataclass(frozen=True, slots=True)
class _Scan:
    image: NDArray[np.uint8]
    mm_to_px: NDArray[np.float64]


def _scan(
    page: NDArray[np.uint8],
    layout: CardLayout,
    damage: ScanDamage,
    work_dpi: float,
    rng: np.random.Generator,
) -> _Scan:
    """Lay the page on the bed, warp, resample to ``damage.dpi``, blur, light, noise, tint."""
    k = round(work_dpi / damage.dpi)
    s_work = work_dpi / MM_PER_INCH
    s_final = damage.dpi / MM_PER_INCH
    h_mm, (bed_w, bed_h) = _page_to_bed(layout, damage, rng)
    out_w, out_h = round(bed_w * s_final), round(bed_h * s_final)
    to_px = np.array([[s_work, 0, -0.5], [0, s_work, -0.5], [0, 0, 1.0]])
    h_work = to_px @ h_mm @ np.linalg.inv(to_px)
    bed_u8 = int(rng.uniform(22, 48)) if damage.bed == "dark" else int(rng.uniform(232, 248))
    if np.allclose(h_work, np.eye(3)) and (out_w * k, out_h * k) == page.shape[::-1]:
        img = page
    else:
        img = cv2.warpPerspective(page, h_work, (out_w * k, out_h * k), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(bed_u8,))
        if damage.bed == "white":
            # the page edge casts a thin shadow on a white lid
            edge = _apply(h_work, np.array([[-0.5, -0.5], [page.shape[1] - 0.5, -0.5],
                                            [page.shape[1] - 0.5, page.shape[0] - 0.5],
                                            [-0.5, page.shape[0] - 0.5]]))
            cv2.polylines(img, [np.rint(edge * 16).astype(np.int32)], True,
                          (int(rng.uniform(150, 200)),), max(1, round(0.15 * s_work)),
                          cv2.LINE_AA, 4)
    if k > 1:
        img = cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_AREA)
    if damage.blur_sigma_mm > 0:
        img = cv2.GaussianBlur(img, (0, 0), damage.blur_sigma_mm * s_final)
    lut = np.clip((np.arange(256) - 128.0) * damage.contrast + 128.0 + damage.brightness, 0, 255)
    lut = 255.0 * (lut / 255.0) ** damage.gamma
    img = cv2.LUT(img, np.rint(lut).astype(np.uint8))
    if damage.color:
        img = cv2.merge([cv2.LUT(img, np.rint(np.arange(256) * g).astype(np.uint8))
                         for g in damage.tint_bgr])
    if damage.noise_sigma > 0:
        img = _add_noise(img, damage.noise_sigma, rng)
    if damage.bitonal:
        gray = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        img = np.where(gray > damage.bitonal_threshold, 255, 0).astype(np.uint8)
    final = np.array([[s_final, 0, -0.5], [0, s_final, -0.5], [0, 0, 1.0]])
    return _Scan(img, final @ h_mm)


def _add_noise(img: NDArray[np.uint8], sigma: float, rng: np.random.Generator) -> NDArray:
    """Add Gaussian noise of ``sigma`` gray levels, independently per channel.

    The noise comes from one random 1021 x 1019 tile read at a random offset per
    channel -- the repeat period (~9 cm at 300 DPI) is invisible to a reader, and it is
    ten times faster than drawing a value per pixel.
    """
    th, tw = 1021, 1019
    tile = np.rint(rng.standard_normal((th, tw), dtype=np.float32) * sigma).astype(np.int16)
    h, w = img.shape[:2]
    reps = (h // th + 2, w // tw + 2)
    big = np.tile(tile, reps)
    channels = [img] if img.ndim == 2 else list(cv2.split(img))
    out = []
    for ch in channels:
        oy, ox = int(rng.integers(th)), int(rng.integers(tw))
        out.append(cv2.add(ch, big[oy:oy + h, ox:ox + w], dtype=cv2.CV_8U))
    return out[0] if img.ndim == 2 else cv2.merge(out)


def _encode_jpeg(img: NDArray[np.uint8], quality: int, dpi: float) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    rgb = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality,
                                                    dpi=(round(dpi), round(dpi)))
    return buf.getvalue()


# -- one card ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SynthCard:
    """A synthetic scan and its truth.

    image : (H, W) uint8 gray or (H, W, 3) uint8 BGR -- what a reader decoding the
        scanner's file gets (after the JPEG round trip when ``jpeg_quality`` is set)
    truth : the JSON-ready truth record (see the module docstring); ``source`` and
        ``page`` are filled in by the writers
    encoded : the scanner's JPEG file, or None for a lossless scan
    scan : the image before JPEG encoding (what a PDF writer re-encodes)
    """

    image: NDArray[np.uint8]
    truth: dict[str, Any]
    encoded: bytes | None = None
    scan: NDArray[np.uint8] | None = field(default=None, repr=False)


def _truth_char(acceptable: str) -> str:
    return acceptable if len(acceptable) == 1 else "?"


def _expected_flags(spec: CardSpec, layout: CardLayout, grid: list[str]) -> list[str]:
    """Flags a correct reader must raise for this card (omr.decode's vocabulary)."""
    digits = layout.code_grid.digits
    flags = []
    readable = spec.barcode_damage != "covered"
    grid_code = "".join(_truth_char(a) for a in grid)
    grid_complete = grid_code.isdigit()
    if readable:
        if not is_valid_code(spec.code_number, digits):
            flags.append("check_digit")
        if any(c.isdigit() and c != b for c, b in zip(grid_code, spec.code_number, strict=True)):
            flags.append("code_mismatch")
    else:
        flags.append("barcode_unreadable")
        if grid_complete and not is_valid_code(grid_code, digits):
            flags.append("check_digit")
        if not grid_complete:
            flags.append("code_unreadable")
    version = spec.version.acceptable(layout.version.labels)
    if version == "-":
        flags.append("version_missing")
    elif version == "*":
        flags.append("version_multiple")
    return flags


def synth_card(
    layout: CardLayout,
    card_spec: CardSpec,
    damage: ScanDamage | None = None,
    *,
    seed: int | np.random.SeedSequence,
    blank: NDArray[np.uint8] | None = None,
) -> SynthCard:
    """Draw a filled, damaged scan of one card, with its truth.

    Parameters
    ----------
    layout : CardLayout
    card_spec : CardSpec
        What the candidate did (`random_card_spec`).
    damage : ScanDamage, optional
        What the scanner did (`random_damage`); a perfect 300 DPI scan when None.
    seed : int or SeedSequence
        Seeds stroke shapes, textures, noise: same inputs, same image.
    blank : (H, W) uint8 ndarray, optional
        ``render_blank(layout, dpi=work_dpi, part=card_spec.part)`` to reuse across
        cards, where ``work_dpi`` is ``damage.dpi`` (or twice it below 250 DPI).

    Returns
    -------
    SynthCard

    Raises
    ------
    ValueError
        when ``card_spec`` does not fit ``layout`` or ``blank`` has the wrong size.

    Example
    -------
    >>> lay = load_layout()
    >>> spec = random_card_spec(lay, np.random.default_rng(1))
    >>> card = synth_card(lay, spec, ScanDamage(dpi=100), seed=1)
    >>> card.image.shape, len(card.truth["acceptable"])
    ((1169, 827), 200)
    """
    damage = damage or ScanDamage()
    q, cols = layout.answers.questions, layout.code_grid.columns
    if len(card_spec.answers) != q or len(card_spec.code_grid) != cols:
        raise ValueError(
            f"card_spec has {len(card_spec.answers)} questions and {len(card_spec.code_grid)} "
            f"grid columns; layout {layout.name} needs {q} and {cols}"
        )
    rng = np.random.default_rng(seed)
    work_dpi = damage.dpi * (1 if damage.dpi >= 250 else 2)
    s = work_dpi / MM_PER_INCH
    page = render_blank(layout, dpi=work_dpi, part=card_spec.part) if blank is None else blank.copy()
    if page.shape != page_size_px(layout, work_dpi)[::-1]:
        raise ValueError(f"blank: shape {page.shape} is not the page at {work_dpi} DPI")
    draw_barcode(page, layout, barcode_payload(layout, card_spec.code_number, card_spec.part), dpi=work_dpi)

    slices = layout.box_slices()
    n_opt = len(layout.answers.options)
    rows = layout.code_grid.rows
    items: list[tuple[int, BoxMark]] = []
    for i, ms in enumerate(card_spec.answers):
        items += [(slices["answers"].start + i * n_opt + m.option, m) for m in ms.marks]
    for j, ms in enumerate(card_spec.code_grid):
        items += [(slices["code"].start + j * rows + m.option, m) for m in ms.marks]
    items += [(slices["version"].start + m.option, m) for m in card_spec.version.marks]
    _draw_box_marks(page, layout, items, s, rng)
    _damage_barcode(page, layout, card_spec.barcode_damage, s, rng)
    _draw_strays(page, layout, card_spec, s, rng)

    scan = _scan(page, layout, damage, work_dpi, rng)
    image, encoded = scan.image, None
    if damage.jpeg_quality is not None:
        encoded = _encode_jpeg(image, damage.jpeg_quality, damage.dpi)
        flag = cv2.IMREAD_GRAYSCALE if image.ndim == 2 else cv2.IMREAD_COLOR
        image = cv2.imdecode(np.frombuffer(encoded, np.uint8), flag)

    grid = [ms.acceptable(layout.code_grid.row_labels) for ms in card_spec.code_grid]
    grid_chars = [_truth_char(a) for a in grid]
    version = card_spec.version.acceptable(layout.version.labels)
    skew = damage.rotation_deg
    truth: dict[str, Any] = {
        "source": None,
        "page": None,
        "code_number": card_spec.code_number,
        "grid_code": None if all(a == "-" for a in grid) else "".join(grid_chars),
        "grid_acceptable": grid,
        "barcode_readable": card_spec.barcode_damage != "covered",
        "version": None if version == "-" else _truth_char(version),
        "part": card_spec.part,
        "acceptable": [ms.acceptable(layout.answers.options) for ms in card_spec.answers],
        "expected_flags": _expected_flags(card_spec, layout, grid),
        "box_centers_px": np.round(_apply(scan.mm_to_px, layout.box_centers()), 3).tolist(),
        "marker_centers_px": np.round(_apply(scan.mm_to_px, layout.markers.centers()), 3).tolist(),
        "mm_to_px": np.round(scan.mm_to_px, 9).tolist(),
        "dpi": damage.dpi,
        "image_size": [int(image.shape[1]), int(image.shape[0])],
        "rotation_deg": round((damage.turn_deg + skew) % 360, 4),
        "damage": _jsonable(asdict(damage)),
        "spec": {
            "grid_mode": card_spec.grid_mode,
            "barcode_damage": card_spec.barcode_damage,
            "patterns": [ms.pattern for ms in card_spec.answers],
            "styles": ["+".join(m.style for m in ms.marks) for ms in card_spec.answers],
            "stray_lines": card_spec.stray_lines,
            "specks": card_spec.specks,
        },
    }
    return SynthCard(image=image, truth=truth, encoded=encoded, scan=scan.image)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


# -- files ------------------------------------------------------------------------------


def _pil(img: NDArray[np.uint8], bitonal: bool) -> Any:
    from PIL import Image

    rgb = img if img.ndim == 2 else img[..., ::-1]
    im = Image.fromarray(np.ascontiguousarray(rgb))
    return im.convert("1", dither=Image.Dither.NONE) if bitonal else im


def write_pages(path: str | Path, cards: Sequence[SynthCard]) -> Path:
    """Write one card (``.jpg``/``.png``) or several pages (``.tif``/``.tiff``/``.pdf``).

    JPEG files hold the scanner's own bytes (no second compression); PNG and TIFF store
    the decoded image losslessly (1-bit for bitonal scans); PDF pages are embedded as
    JPEG at each page's ``jpeg_quality`` (so they decode to `SynthCard.image`) or as
    CCITT G4 for bitonal pages, with the page size set from the DPI.

    Raises
    ------
    ValueError
        for an unknown suffix, several cards in a single-image format, or pages of a
        PDF/TIFF that differ in DPI (or, in a PDF, in JPEG quality).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not cards:
        raise ValueError(f"{path}: no cards to write")
    dpis = {c.truth["dpi"] for c in cards}
    if len(dpis) > 1:
        raise ValueError(f"{path}: pages at several DPIs {sorted(dpis)}; one file, one DPI")
    dpi = float(dpis.pop())
    bitonal = [bool(c.truth["damage"]["bitonal"]) for c in cards]
    if suffix in (".jpg", ".jpeg", ".png"):
        if len(cards) != 1:
            raise ValueError(f"{path}: a {suffix} file holds one page, got {len(cards)}")
        card = cards[0]
        if suffix == ".png":
            _pil(card.image, bitonal[0]).save(path, format="PNG", dpi=(dpi, dpi))
        else:
            data = card.encoded or _encode_jpeg(card.image, 95, dpi)
            path.write_bytes(data)
        return path
    if suffix in (".tif", ".tiff"):
        pages = [_pil(c.image, b) for c, b in zip(cards, bitonal, strict=True)]
        pages[0].save(path, format="TIFF", save_all=True, append_images=pages[1:],
                      compression="tiff_deflate", dpi=(dpi, dpi))
        return path
    if suffix == ".pdf":
        qualities = {c.truth["damage"]["jpeg_quality"] for c, b in zip(cards, bitonal,
                                                                          strict=True) if not b}
        if len(qualities) > 1 or None in qualities:
            raise ValueError(
                f"{path}: PDF pages need one JPEG quality, got {sorted(map(str, qualities))}; "
                "set the same ScanDamage.jpeg_quality on every non-bitonal page"
            )
        quality = qualities.pop() if qualities else 90
        pages = [_pil(c.scan if c.scan is not None else c.image, b)
                 for c, b in zip(cards, bitonal, strict=True)]
        # no creation/modification dates: same cards, same bytes
        pages[0].save(path, format="PDF", save_all=True, append_images=pages[1:],
                      resolution=dpi, quality=quality, creationDate=None, modDate=None)
        return path
    raise ValueError(f"{path}: unknown image format {suffix!r}; use .jpg, .png, .tiff or .pdf")


def write_dataset(
    out_dir: str | Path,
    n: int,
    *,
    seed: int,
    layout: CardLayout | None = None,
    formats: Sequence[str] = ("jpg",),
    damage: str | DamageRanges | ScanDamage = "mild",
    dpi: float | None = None,
    pages_per_file: int = 3,
    prefix: str = "card",
    candidate_mix: dict[str, float] | None = None,
    **mix: Any,
) -> list[Path]:
    """Write ``n`` synthetic cards and ``truth.json`` into ``out_dir``.

    Files take ``formats`` in turn (``jpg``, ``png``: one card; ``tiff``, ``pdf``: up to
    ``pages_per_file`` cards sharing one DPI).  ``truth.json`` is a list of the cards'
    truth records with ``source`` (file name) and ``page`` (1-based) filled in.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing.
    n : int
        Number of cards (pages).
    seed : int
        Everything follows from it: same seed, same files.
    layout : CardLayout, optional
        Default: the shipped lek-ldek-v1.
    formats : sequence of str
        Any of ``jpg``, ``png``, ``tiff``, ``pdf``.
    damage : str, DamageRanges or ScanDamage
        A preset name (``none``, ``mild``, ``heavy``, ``all``), ranges to draw from, or
        one fixed damage for every card.
    dpi : float, optional
        Fix the resolution of every card (overrides the preset's).
    pages_per_file : int
        Pages in each TIFF/PDF file.
    prefix : str
        File names are ``{prefix}-{i:04d}.{ext}``.
    candidate_mix : dict, optional
        On a layout of several parts: how candidates go astray (`CANDIDATE_MIX`
        by default; `candidate_plan`).
    **mix
        `SpecMix` overrides passed to `random_card_spec`.

    Returns
    -------
    list of Path
        The image files written, in order (``truth.json`` is not included).

    Raises
    ------
    ValueError
        for an unknown format or preset, or ``n < 1``.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats: {unknown or 'none given'}; use some of {FORMATS}")
    if n < 1:
        raise ValueError(f"n: need at least one card, got {n}")
    if isinstance(damage, str) and damage not in DAMAGE_PRESETS:
        raise ValueError(f"damage: unknown preset {damage!r}; use one of {DAMAGE_PRESETS}")
    layout = layout or load_layout()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = np.random.SeedSequence(seed).spawn(n)
    plan = candidate_plan(layout, n, seed, candidate_mix) if layout.parts is not None else None
    blanks: dict[tuple[float, int | None], NDArray[np.uint8]] = {}
    written: list[Path] = []
    truths: list[dict[str, Any]] = []
    i = 0
    file_no = 0
    while i < n:
        fmt = formats[file_no % len(formats)]
        count = min(pages_per_file, n - i) if fmt in ("tiff", "pdf") else 1
        cards = []
        shared: ScanDamage | None = None
        for page_index, seq in enumerate(seeds[i:i + count], start=i):
            rng = np.random.default_rng(seq)
            planned = plan.pages[page_index] if plan is not None else None
            if planned is None:
                spec = random_card_spec(layout, rng, **mix)
            else:
                spec = random_card_spec(layout, rng, code_number=planned.code_number, version=planned.version,
                                        part=planned.part, **mix)
            if isinstance(damage, ScanDamage):
                dmg = damage
            elif isinstance(damage, DamageRanges):
                dmg = random_damage(rng, "none", **asdict(damage))
            else:
                dmg = random_damage(rng, damage)
            if dpi is not None:
                dmg = replace(dmg, dpi=float(dpi))
            if shared is not None:  # one DPI per file; one JPEG quality per PDF
                dmg = replace(dmg, dpi=shared.dpi)
                if fmt == "pdf" and not dmg.bitonal:
                    dmg = replace(dmg, jpeg_quality=shared.jpeg_quality)
            if fmt in ("jpg", "pdf") and not dmg.bitonal and dmg.jpeg_quality is None:
                dmg = replace(dmg, jpeg_quality=90)
            if shared is None or (shared.bitonal and not dmg.bitonal):
                shared = dmg
            work = dmg.dpi * (1 if dmg.dpi >= 250 else 2)
            if (work, spec.part) not in blanks:
                if len(blanks) >= layout.part_count:
                    blanks.clear()  # keep one blank per part: they are 9-35 MB each
                blanks[work, spec.part] = render_blank(layout, dpi=work, part=spec.part)
            cards.append(synth_card(layout, spec, dmg, seed=seq, blank=blanks[work, spec.part]))
        ext = {"jpg": "jpg", "png": "png", "tiff": "tif", "pdf": "pdf"}[fmt]
        path = write_pages(out / f"{prefix}-{file_no + 1:04d}.{ext}", cards)
        for page_no, card in enumerate(cards, start=1):
            truths.append({**card.truth, "source": path.name, "page": page_no})
        written.append(path)
        i += count
        file_no += 1
    # one page record per line: greppable and diffable, without a line per coordinate
    lines = ",\n".join(json.dumps(t, separators=(",", ":")) for t in truths)
    (out / "truth.json").write_text(f"[\n{lines}\n]\n", encoding="utf-8")
    if plan is not None:
        records = candidate_truth(layout, truths)
        lines = ",\n".join(json.dumps(t, separators=(",", ":")) for t in records)
        (out / "candidates.json").write_text(f"[\n{lines}\n]\n", encoding="utf-8")
    return written


# -- candidates of several cards -----------------------------------------------------------

#: how a candidate's cards go astray in `candidate_plan` (the rest hand in every part once)
CANDIDATE_MIX = {"missing": 0.1, "duplicate": 0.06, "versions": 0.06}


@dataclass(frozen=True, slots=True)
class PlannedPage:
    """One page of `candidate_plan`: whose card, which part, the version to mark."""

    candidate: int
    code_number: str
    part: int
    version: str
    kind: str


@dataclass(frozen=True, slots=True)
class CandidatePlan:
    """The pages of a batch of cards of several parts, in scanning order."""

    pages: tuple[PlannedPage, ...]


def candidate_plan(layout: CardLayout, n: int, seed: int, mix: dict[str, float] | None = None) -> CandidatePlan:
    """``n`` pages of candidates who each hand in the layout's parts, shuffled.

    Most candidates hand in each part once; per `CANDIDATE_MIX` one part is
    ``missing``, one part is handed in twice (``duplicate``: a second card of the same
    code number and part, filled again), or the parts are marked with different
    versions (``versions``).  Pages are shuffled (a stack is never in candidate order)
    and cut at ``n``, which may leave the last candidates short of a part: the truth
    (`candidate_truth`) is made from the pages actually written.

    >>> plan = candidate_plan(load_layout("cem-100"), 7, seed=1)
    >>> len(plan.pages), sorted({p.part for p in plan.pages})
    (7, [1, 2])
    """
    if layout.parts is None:
        raise ValueError(f"layout {layout.name} has no parts: every card is a candidate")
    rng = np.random.default_rng([seed, 0x9A27])
    mix = CANDIDATE_MIX if mix is None else mix
    labels = layout.version.labels
    count = layout.parts.count
    pages: list[PlannedPage] = []
    candidate = 0
    while len(pages) < n:
        code = random_code_number(rng, layout.code_grid.digits)
        version = labels[int(rng.integers(len(labels)))]
        kind = _pick(rng, mix, "complete")
        parts = list(range(1, count + 1))
        versions = [version] * count
        if kind == "missing":
            parts.pop(int(rng.integers(count)))
            versions.pop()
        elif kind == "duplicate":
            parts.append(int(rng.integers(1, count + 1)))
            versions.append(version)
        elif kind == "versions":
            versions[-1] = labels[(labels.index(version) + 1 + int(rng.integers(len(labels) - 1))) % len(labels)]
        pages += [PlannedPage(candidate, code, p, v, kind) for p, v in zip(parts, versions, strict=True)]
        candidate += 1
    order = rng.permutation(len(pages))[:n]
    return CandidatePlan(tuple(pages[k] for k in order))


def candidate_truth(layout: CardLayout, truths: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per candidate (code number) from the pages' truth records.

    Fields: ``code_number``; ``pages`` as ``[source, page, part]`` in part order;
    ``expected_flags`` the joining must raise (``part_missing:<parts>``,
    ``part_duplicate:<parts>``, ``version_mismatch``); ``version`` (the one version
    when the cards agree, else null); ``acceptable`` the joined per-question
    acceptable reads in whole-test order when each part is there once, else null.
    """
    assert layout.parts is not None
    by_code: dict[str, list[dict[str, Any]]] = {}
    for t in truths:
        by_code.setdefault(t["code_number"], []).append(t)
    records = []
    for code, cards in sorted(by_code.items()):
        cards = sorted(cards, key=lambda t: (t["part"], t["source"], t["page"]))
        present = [t["part"] for t in cards]
        flags = []
        missing = [p for p in range(1, layout.parts.count + 1) if p not in present]
        twice = sorted({p for p in present if present.count(p) > 1})
        if missing:
            flags.append("part_missing:" + ",".join(map(str, missing)))
        if twice:
            flags.append("part_duplicate:" + ",".join(map(str, twice)))
        versions = {t["version"] for t in cards if t["version"] not in (None, "*", "?")}
        if len(versions) > 1:
            flags.append("version_mismatch")
        whole = not missing and not twice
        records.append({
            "code_number": code,
            "pages": [[t["source"], t["page"], t["part"]] for t in cards],
            "expected_flags": flags,
            "version": versions.pop() if len(versions) == 1 else None,
            "acceptable": [a for t in cards for a in t["acceptable"]] if whole else None,
        })
    return records
