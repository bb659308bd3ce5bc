"""Read one card image: register, sample every box, classify, decode the code number.

``read_card`` is the whole reader for one page; it is pure (array in, frozen result
out).  The data flow::

    gray page ─► marker_registrations ─► homography ─► sample_boxes (all boxes, one remap)
              (the first registration that puts the printed outlines where they are)
              (parts off it read run by run on their own outlines: omr.local_registration)
              ─► box_features ─► thresholds (given, or learned from this card)
              ─► classify_boxes ─► the marking policy (omr.policy: ordered named rules)
              ─► responses / grid digits / version
              ─► decode_barcode + resolve_code_number
              ─► flags (omr.flags) ─► decide_status ─► needs_review
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from calibration import MarkThresholds
from calibration.learn import adapt_to_light_marks, bitonal_thresholds_for_card, calibrate_card
from omr.decode import decode_barcode, read_grid_digits, read_part, read_version, resolve_code_number
from omr.detect import DetectParams, Registration, check_image, make_work_image, marker_registrations
from omr.errors import PageNotFoundError
from omr.flags import INFO_FLAGS, OK, Flag, decide_status, with_questions
from omr.grid import SamplingGrid, box_features, build_sampling_grid, paper_levels, remove_print, sample_boxes
from omr.layout import CardLayout
from omr.local_registration import register_locally
from omr.marks import AMBIGUOUS, classify_boxes, read_responses
from omr.policy import MarkEvidence, apply_policy
from omr.stats import median
from omr.strokes import diagonal_strokes

__all__ = ["CardMeasurement", "CardReading", "INFO_FLAGS", "measure_card", "read_card"]

#: the corner markers in layout order (flag ``marker_missing:<name>``)
MARKER_NAMES = ("top_left", "top_right", "bottom_right", "bottom_left")
#: outline evidence under which the page is not this card at all
MIN_OUTLINE_EVIDENCE = 0.15
#: a part of the card whose outlines are this much fainter than the best part is misplaced
MIN_PART_OUTLINE_RATIO = 0.6


@dataclass(frozen=True, slots=True)
class CardReading:
    """What the machine read on one card.

    responses : one character per question, ``A``..``E`` / ``-`` / ``*`` / ``?``
    code_number : the 9-digit code number, or "" when it could not be established
    version : the test version letter, or "" when none or several are marked
    flags : machine-readable reasons (``ambiguous:17,45``, ``code_mismatch``, ...)
    needs_review : True when any flag means a person must look (status ``review``)
    box_features : (N_boxes, F) float32, per box darkness features, rows in
        ``layout.box_centers()`` order, columns ``omr.grid.FEATURE_NAMES``
        (column 0 is the mean fill, 0 white .. 1 black)
    box_states : (N_boxes,) int8, 0 blank, 1 marked, 2 ambiguous
    homography : (3, 3) float64, layout millimetres -> image pixels
    rotation_deg : how the page was turned in the scan (0, 90, 180, 270)
    thresholds : the levels used to classify the boxes
    barcode : the barcode text as decoded ("" when none), grid : the grid digits read
    registration_residual_mm : RMS misfit of the markers (quality of the registration)
    box_shifts_mm : (N_boxes, 2) float64 layout shift under which each box was read on
        top of ``homography`` (zero but for runs read on their own outlines,
        ``registration_local``), or None when none was
    part : the card's part (``"1"``, ``"2"``) on a layout of several parts
        (`omr.decode.read_part`), "" when not established or not such a layout
    """

    responses: str
    code_number: str
    version: str
    flags: tuple[str, ...]
    needs_review: bool
    box_features: NDArray[np.float32]
    box_states: NDArray[np.int8]
    homography: NDArray[np.float64]
    rotation_deg: int
    thresholds: MarkThresholds
    barcode: str = ""
    grid: str = ""
    registration_residual_mm: float = 0.0
    box_shifts_mm: NDArray[np.float64] | None = None
    part: str = ""


def read_card(
    gray: NDArray[np.uint8],
    layout: CardLayout,
    *,
    thresholds: MarkThresholds | None = None,
    grid: SamplingGrid | None = None,
    detect_params: DetectParams = DetectParams(),
) -> CardReading:
    """Read a grayscale page.

    Parameters
    ----------
    gray : (H, W) uint8 ndarray
        The page at any resolution (150–600 DPI), any 90° turn.
    layout : CardLayout
    thresholds : MarkThresholds, optional
        Levels learned from a batch; by default they are learned from this card.
    grid : SamplingGrid, optional
        ``build_sampling_grid(layout)``, passed in to avoid rebuilding it per page.

    Returns
    -------
    CardReading

    Raises
    ------
    PageNotFoundError, MarkerNotFoundError
        The page is blank or is not this card (markers missing or inconsistent).
    BarcodeError
        The barcode library is unusable.
    """
    measured = measure_card(gray, layout, grid=grid, detect_params=detect_params)
    features, registration = measured.features, measured.registration
    slices = layout.box_slices()
    bitonal = is_bitonal(gray)
    if bitonal:  # batch levels learned on grey scans do not apply
        thresholds = bitonal_thresholds_for_card(features[slices["answers"]], len(layout.options))
    else:
        if thresholds is None:
            thresholds = calibrate_card(features[slices["answers"]])
        # batch levels too: one card may come out lighter than the batch (a faded copy)
        thresholds = adapt_to_light_marks(thresholds, features[slices["answers"]], len(layout.options))
    box_states = classify_boxes(features, thresholds)
    evidence = MarkEvidence(
        features=features,
        surround=measured.surround,
        outline=measured.outline,
        thresholds=thresholds,
        answers=slices["answers"],
        n_options=len(layout.options),
        columns=answer_columns(layout),
        blocks=answer_blocks(layout),
        unregistered=measured.unregistered,
        drawn_crosses=measure_drawn_crosses(gray, layout, measured, box_states) if bitonal else None,
    )
    policy = apply_policy(box_states, evidence)
    states = policy.states
    g = layout.code_grid
    responses = read_responses(evidence.per_question(states), layout.options)
    grid_digits = read_grid_digits(states[slices["code"]].reshape(g.columns, g.rows), g.row_labels)
    version, version_flags = read_version(states[slices["version"]], layout.version.labels)
    barcode = decode_barcode(gray, registration.homography, layout, registration.px_per_mm)
    part = read_part(states[slices["part"]] if "part" in slices else None, barcode.data if barcode else None,
                     layout)
    code = resolve_code_number(part.barcode_code, grid_digits, g.digits)

    ambiguous = np.flatnonzero(np.frombuffer(responses.encode(), np.uint8) == ord("?"))
    flags = [
        *measured.flags,
        *([with_questions(Flag.AMBIGUOUS, ambiguous)] if ambiguous.size else []),
        *policy.flags,
        *code.flags,
        *([Flag.BARCODE_OFF_BOX] if barcode is not None and barcode.where != "box" else []),
        *version_flags,
        *part.flags,
        *([f"{Flag.ROTATED}:{registration.rotation_deg}"] if registration.rotation_deg else []),
        *([Flag.MIRRORED] if registration.mirrored else []),
        *([Flag.BITONAL] if bitonal else []),
    ]
    flags = [str(f) for f in flags]
    return CardReading(
        responses=responses,
        code_number=code.code_number,
        version=version,
        flags=tuple(flags),
        needs_review=decide_status(flags) != OK,
        box_features=features,
        box_states=states,
        homography=registration.homography,
        rotation_deg=registration.rotation_deg,
        thresholds=thresholds,
        barcode=barcode.data if barcode else "",
        grid=grid_digits,
        registration_residual_mm=registration.residual_mm,
        box_shifts_mm=measured.box_shifts_mm,
        part=part.part,
    )


@dataclass(frozen=True, slots=True)
class CardMeasurement:
    """The threshold-free half of reading a card.

    features : (N_boxes, F) float32 box features (`omr.grid.FEATURE_NAMES`)
    registration : Registration
    outline : (N_boxes,) float32 darkness of each box's printed outline where the
        registration puts it (`omr.grid.outline_evidence`)
    surround : (N_boxes,) float32 darkness of the paper gaps above and below each box
        (`omr.grid.surround_darkness`): dirt, not marks, when it is high
    flags : registration doubts (``registration_doubtful:<part>``, ``marker_missing:<corner>``)
        and runs read on their own outlines (``registration_local:<runs>``)
    box_shifts_mm : (N_boxes, 2) layout shift of each box read on its run's own
        outlines, or None when no run was
    unregistered : (N_boxes,) bool, boxes of the parts flagged ``registration_doubtful``
        (their outlines are not where even the local registration puts them), or None
        when no part is
    """

    features: NDArray[np.float32]
    registration: Registration
    outline: NDArray[np.float32]
    flags: tuple[str, ...]
    surround: NDArray[np.float32]
    box_shifts_mm: NDArray[np.float64] | None = None
    unregistered: NDArray[np.bool_] | None = None


def measure_drawn_crosses(
    gray: NDArray[np.uint8], layout: CardLayout, measured: CardMeasurement, states: NDArray[np.int8]
) -> NDArray[np.float32]:
    """(N_boxes,) `omr.strokes.diagonal_strokes` of the AMBIGUOUS answer boxes, NaN elsewhere.

    Only the doubtful answer boxes of a 1-bit page are looked at again (a few dozen);
    each where it was read (its run's local shift included).
    """
    out = np.full(states.shape, np.nan, np.float32)
    answers = np.zeros(states.shape, bool)
    answers[layout.box_slices()["answers"]] = True
    doubtful = np.flatnonzero(answers & (states == AMBIGUOUS))
    if doubtful.size == 0:
        return out
    centers = layout.box_centers()[doubtful]
    if measured.box_shifts_mm is not None:
        centers = centers + measured.box_shifts_mm[doubtful]
    b = layout.bubble
    out[doubtful] = diagonal_strokes(
        gray, measured.registration.homography, centers, (b.inner_width_mm, b.inner_height_mm)
    )
    return out


def is_bitonal(gray: NDArray[np.uint8], max_grey_share: float = 0.02) -> bool:
    """True for a 1-bit scan (black and white only, perhaps lightly compressed)."""
    step = max(1, min(gray.shape) // 300)
    sample = np.ascontiguousarray(gray[::step, ::step])
    grey = cv2.countNonZero(cv2.inRange(sample, 41, 214))  # 40 < v < 215; ~3x np.mean of a mask
    return grey / sample.size < max_grey_share


def measure_card(
    gray: NDArray[np.uint8],
    layout: CardLayout,
    *,
    grid: SamplingGrid | None = None,
    detect_params: DetectParams = DetectParams(),
) -> CardMeasurement:
    """Register the page, sample every box, and check the registration on the outlines.

    This is the expensive half of `read_card`; calibration over a batch runs it
    once per page and classifies afterwards.

    Raises
    ------
    PageNotFoundError
        When the printed bubble outlines are not where the markers put them
        (another form with similar corner marks).
    """
    check_image(gray, "gray")
    grid = grid if grid is not None else build_sampling_grid(layout)
    work, factor = make_work_image(gray, detect_params.work_long_side_px)
    names, members = _card_parts(layout)
    # the outlines are the last check of a registration: when they are not where it
    # puts them (dirt bands or stains passed for two markers, with a fit as good as a
    # true one's), the marker search's next registration is tried
    rejected: PageNotFoundError | None = None
    for registration in marker_registrations(gray, layout, detect_params, work=(work, factor)):
        paper = paper_levels(work, factor, registration.homography, grid.centers_mm, registration.px_per_mm)
        samples = sample_boxes(gray, registration.homography, grid, paper, registration.ink_u8)
        outline = samples.outline
        part_levels = _part_levels(outline, members)
        if part_levels.max() >= MIN_OUTLINE_EVIDENCE:
            break
        rejected = rejected or PageNotFoundError(
            f"not a {layout.name} card, or a faded one: its bubble outlines are not where the "
            f"corner markers put them, or too faint to tell (outline darkness "
            f"{part_levels.max():.2f}, need >= {MIN_OUTLINE_EVIDENCE}); check that the right card "
            "layout is used (--layout), and rescan a faded or light copy darker"
        )
    else:
        assert rejected is not None  # marker_registrations raises when it finds nothing
        raise rejected
    target = MIN_PART_OUTLINE_RATIO * part_levels.max()
    moved: tuple[str, ...] = ()
    box_shifts_mm = None
    if (part_levels < target).any():
        # a fold or a curl moves parts of the page off the one homography: each run of
        # rows of a doubtful part is registered again on its own printed outlines
        doubtful = [index for index, level in zip(members, part_levels, strict=True) if level < target]
        samples, moved, box_shifts_mm = register_locally(
            gray, registration, grid, layout, paper, samples, np.concatenate(doubtful), target
        )
        outline = samples.outline
        part_levels = _part_levels(outline, members)
    doubtful_parts = part_levels < MIN_PART_OUTLINE_RATIO * part_levels.max()
    flags = tuple(
        f"{Flag.REGISTRATION_DOUBTFUL}:{name}" for name, doubtful in zip(names, doubtful_parts, strict=True) if doubtful
    )
    unregistered = None
    if doubtful_parts.any():
        unregistered = np.zeros(outline.shape[0], dtype=bool)
        unregistered[np.concatenate([index for index, d in zip(members, doubtful_parts, strict=True) if d])] = True
    if moved:  # read on a local registration: right, but a person confirms
        flags = (*flags, f"{Flag.REGISTRATION_LOCAL}:" + ",".join(moved))
    if registration.missing_marker >= 0:  # registered on the other three: a person checks
        flags = (f"{Flag.MARKER_MISSING}:{MARKER_NAMES[registration.missing_marker]}", *flags)
    return CardMeasurement(
        features=box_features(remove_print(samples.darkness, grid), grid),
        registration=registration,
        outline=outline,
        flags=flags,
        surround=samples.surround,
        box_shifts_mm=box_shifts_mm if moved else None,
        unregistered=unregistered,
    )


def _part_levels(outline: NDArray[np.float32], members: tuple[NDArray[np.intp], ...]) -> NDArray[np.float32]:
    """(P,) median outline evidence of each part of the card (`_card_parts`)."""
    return np.array([median(outline[index]) for index in members], dtype=np.float32)


def _part_names(layout: CardLayout) -> NDArray[np.str_]:
    """(N_boxes,) which part of the card each box belongs to: answer block, code, version."""
    blocks = np.repeat(answer_blocks(layout), len(layout.answers.options))
    slices = layout.box_slices()
    names = np.empty(layout.box_centers().shape[0], dtype=object)
    names[slices["answers"]] = [f"answers{b + 1}" for b in blocks]
    names[slices["code"]] = "code"
    names[slices["version"]] = "version"
    if "part" in slices:  # judged with the version row beside it (two boxes make no median)
        names[slices["part"]] = "version"
    return names.astype(str)


@functools.lru_cache(maxsize=4)
def _card_parts(layout: CardLayout) -> tuple[tuple[str, ...], tuple[NDArray[np.intp], ...]]:
    """The part names, sorted, and the box indices of each (built once per layout)."""
    parts = _part_names(layout)
    names = tuple(sorted(set(parts.tolist())))
    return names, tuple(np.flatnonzero(parts == name) for name in names)


@functools.lru_cache(maxsize=4)
def answer_columns(layout: CardLayout) -> NDArray[np.int64]:
    """(Q, C) page column of each answer box: boxes whose centres share an x (to 0.5 mm)
    stand one under the other, where a scanner streak down the page would cross them.

    >>> from omr.layout import load_layout
    >>> columns = answer_columns(load_layout())
    >>> columns.shape, int(columns.max()) + 1
    ((200, 5), 25)
    """
    centres = layout.box_centers()[layout.box_slices()["answers"]]
    _, columns = np.unique(np.round(centres[:, 0] * 2.0), return_inverse=True)
    out = columns.reshape(-1, len(layout.options)).astype(np.int64)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=4)
def answer_blocks(layout: CardLayout) -> NDArray[np.int64]:
    """(Q,) answer block of each question (``answers<k>`` is block k - 1): the runs of
    ``rows_per_block`` questions printed one under the other, registered as one part.

    >>> from omr.layout import load_layout
    >>> blocks = answer_blocks(load_layout())
    >>> blocks.shape, int(blocks[39]), int(blocks[40]), int(blocks.max()) + 1
    ((200,), 0, 1, 5)
    """
    a = layout.answers
    out = (np.arange(a.questions) // a.rows_per_block).astype(np.int64)
    out.setflags(write=False)
    return out
