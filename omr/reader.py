"""Read one card image: register, sample every box, classify, decode the code number.

``read_card`` is the whole reader for one page; it is pure (array in, frozen result
out).  The data flow::

    gray page ─► marker_registrations ─► homography ─► sample_boxes (all boxes, one remap)
              (the first registration that puts the printed outlines where they are)
              ─► box_features ─► thresholds (given, or learned from this card)
              ─► classify_boxes ─► responses / grid digits / version
              ─► decode_barcode + resolve_code_number ─► flags, needs_review
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from calibration import MarkThresholds
from calibration.learn import adapt_to_light_marks, bitonal_thresholds_for_card, calibrate_card
from omr.decode import (
    CODE_REVIEW_FLAGS,
    PART_REVIEW_FLAGS,
    decode_barcode,
    read_grid_digits,
    read_part,
    read_version,
    resolve_code_number,
)
from omr.detect import DetectParams, Registration, check_image, make_work_image, marker_registrations
from omr.errors import PageNotFoundError
from omr.grid import (
    BoxSamples,
    SamplingGrid,
    box_features,
    build_sampling_grid,
    outline_at_shifts,
    outline_points_mm,
    paper_levels,
    remove_print,
    sample_boxes,
)
from omr.layout import CardLayout
from omr.marks import (
    AMBIGUOUS,
    BLANK,
    MARKED,
    classify_boxes,
    clear_faint_beside_fill,
    doubt_lines_beside_fills,
    read_responses,
)
from omr.stats import median

__all__ = ["CardMeasurement", "CardReading", "INFO_FLAGS", "measure_card", "read_card"]

#: the corner markers in layout order (flag ``marker_missing:<name>``)
MARKER_NAMES = ("top_left", "top_right", "bottom_right", "bottom_left")
#: outline evidence under which the page is not this card at all
MIN_OUTLINE_EVIDENCE = 0.15
#: a part of the card whose outlines are this much fainter than the best part is misplaced
MIN_PART_OUTLINE_RATIO = 0.6
#: likewise one question (measured: aligned >= 0.9, 2.5 mm off <= 0.25 of the card's median)
MIN_QUESTION_OUTLINE_RATIO = 0.4
#: darkness of the gaps around a box from which it counts as standing in dirt (measured on
#: 60 damaged synthetic scans, 65,000 boxes, pencil overshoot and specks included: 99.99th
#: percentile 0.043, max 0.068; under stains, stamps and roller bands: 0.1-1)
MAX_SURROUND_DARKNESS = 0.12
#: share of questions read '*' beyond which no '*' on the card is trusted (real cards: ~1%)
MAX_MULTIPLE_SHARE = 0.1
#: flags that explain but do not send a card to review
INFO_FLAGS = frozenset(
    {"barcode_unreadable", "barcode_off_box", "bitonal", "mirrored", "rotated", "part_row_unreadable"}
)


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
    states = classify_boxes(features, thresholds)
    # a box standing in dirt (a stain, a stamp, a scanner band crossing the row) may hold
    # that dirt rather than a mark: whatever is in it, a person must look
    dirty = measured.surround >= MAX_SURROUND_DARKNESS
    states = np.where(dirty & (states != BLANK), np.int8(AMBIGUOUS), states)

    n_options = len(layout.options)
    answer_states = states[slices["answers"]].reshape(layout.questions, n_options)
    answer_features = features[slices["answers"]].reshape(layout.questions, n_options, -1)
    # light texture or erasure residue beside the question's one solid fill is blank
    # (spec §2), not a '?' (dirt around a box keeps it '?')
    answer_dirty = dirty[slices["answers"]].reshape(layout.questions, n_options)
    answer_states = clear_faint_beside_fill(answer_states, answer_features, thresholds, answer_dirty)
    # a question whose printed outlines are missing where the registration put it is
    # misplaced (a fold, a crease): whatever its boxes say, a person must look
    outline = measured.outline[slices["answers"]].reshape(layout.questions, n_options).mean(axis=1)
    misplaced = outline < MIN_QUESTION_OUTLINE_RATIO * max(median(outline), 1e-6)
    answer_states = np.where(misplaced[:, None], np.int8(AMBIGUOUS), answer_states)
    # candidates mark two boxes on ~1% of questions; when far more rows read '*', the
    # box levels are fooled (speckle of a bad copy, a texture) and a blank row may as
    # well read as one letter: no mark on this card is trusted, a person reads it
    multiple = (answer_states == MARKED).sum(axis=1) >= 2
    implausible = bool(multiple.sum() > MAX_MULTIPLE_SHARE * layout.questions)
    if implausible:
        answer_states = np.where(answer_states == MARKED, np.int8(AMBIGUOUS), answer_states)
    # a box of lines alone beside a solid fill is more likely dirt than a second answer;
    # doubted only after the count above, which must still see it as a mark (on a
    # speckled copy such boxes are what makes the count implausible)
    answer_states = doubt_lines_beside_fills(answer_states, answer_features, thresholds)
    responses = read_responses(answer_states, layout.options)
    g = layout.code_grid
    grid_digits = read_grid_digits(states[slices["code"]].reshape(g.columns, g.rows), g.row_labels)
    version, version_flags = read_version(states[slices["version"]], layout.version.labels)

    barcode = decode_barcode(gray, registration.homography, layout, registration.px_per_mm)
    part = read_part(states[slices["part"]] if "part" in slices else None, barcode.data if barcode else None,
                     layout)
    code = resolve_code_number(part.barcode_code, grid_digits, g.digits)

    flags: list[str] = list(measured.flags)
    ambiguous = np.flatnonzero(
        (answer_states == AMBIGUOUS).any(axis=1) & (np.frombuffer(responses.encode(), np.uint8) == ord("?"))
    )
    if ambiguous.size:
        flags.append("ambiguous:" + ",".join(str(q + 1) for q in ambiguous))
    dirty_boxes = dirty[slices["answers"]] & (states[slices["answers"]] == AMBIGUOUS)
    dirty_questions = np.flatnonzero(dirty_boxes.reshape(-1, n_options).any(axis=1))
    if dirty_questions.size:
        flags.append("dirty:" + ",".join(str(q + 1) for q in dirty_questions))
    if implausible:
        flags.append("implausible_multiples")
    if misplaced.any():
        flags.append("misplaced:" + ",".join(str(q + 1) for q in np.flatnonzero(misplaced)))
    flags.extend(code.flags)
    if barcode is not None and barcode.where != "box":
        flags.append("barcode_off_box")
    flags.extend(version_flags)
    flags.extend(part.flags)
    if registration.rotation_deg:
        flags.append(f"rotated:{registration.rotation_deg}")
    if registration.mirrored:
        flags.append("mirrored")
    if bitonal:
        flags.append("bitonal")
    needs_review = (
        bool(ambiguous.size)
        or bool(version_flags)
        or bool(CODE_REVIEW_FLAGS & set(code.flags))
        or bool(PART_REVIEW_FLAGS & set(part.flags))
        or bool(measured.flags)
    )
    return CardReading(
        responses=responses,
        code_number=code.code_number,
        version=version,
        flags=tuple(flags),
        needs_review=needs_review,
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
    """

    features: NDArray[np.float32]
    registration: Registration
    outline: NDArray[np.float32]
    flags: tuple[str, ...]
    surround: NDArray[np.float32]
    box_shifts_mm: NDArray[np.float64] | None = None


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
        samples, moved, box_shifts_mm = _register_locally(
            gray, registration, grid, layout, paper, samples, np.concatenate(doubtful), target
        )
        outline = samples.outline
        part_levels = _part_levels(outline, members)
    flags = tuple(
        f"registration_doubtful:{name}"
        for name, level in zip(names, part_levels, strict=True)
        if level < MIN_PART_OUTLINE_RATIO * part_levels.max()
    )
    if moved:  # read on a local registration: right, but a person confirms
        flags = (*flags, "registration_local:" + ",".join(moved))
    if registration.missing_marker >= 0:  # registered on the other three: a person checks
        flags = (f"marker_missing:{MARKER_NAMES[registration.missing_marker]}", *flags)
    return CardMeasurement(
        features=box_features(remove_print(samples.darkness, grid), grid),
        registration=registration,
        outline=outline,
        flags=flags,
        surround=samples.surround,
        box_shifts_mm=box_shifts_mm if moved else None,
    )


def _part_levels(outline: NDArray[np.float32], members: tuple[NDArray[np.intp], ...]) -> NDArray[np.float32]:
    """(P,) median outline evidence of each part of the card (`_card_parts`)."""
    return np.array([median(outline[index]) for index in members], dtype=np.float32)


#: answer rows registered together when their part of the card is doubtful
LOCAL_ROWS = 10
#: how far the search for a run's shift looks, and its coarse step (under half the pitch
#: of answer rows and options, 5 mm)
LOCAL_SEARCH_MM = 2.25
LOCAL_STEP_MM = 0.25
#: farthest a run is moved: the outlines repeat every pitch (5 mm; the code grid's rows
#: 4.2 mm), so a run displaced by 3 mm fits as well 2 mm the other way, onto its
#: neighbour's rows (measured on an Augraphy fold: runs found at -1.3 and then +2.2 mm).
#: A run whose best fit is farther than this stays doubtful, for a person, unless a
#: moved neighbour's shift is within MAX_LOCAL_STEP_MM of it.
MAX_LOCAL_SHIFT_MM = 1.25
MAX_LOCAL_STEP_MM = 0.75
#: least gain in outline evidence (median over the run's boxes) for a run to be moved
MIN_LOCAL_GAIN = 0.05


def _register_locally(
    gray: NDArray[np.uint8],
    registration: Registration,
    grid: SamplingGrid,
    layout: CardLayout,
    paper: NDArray[np.float32],
    samples: BoxSamples,
    boxes: NDArray[np.intp],
    target: float,
) -> tuple[BoxSamples, tuple[str, ...], NDArray[np.float64]]:
    """Samples with each run of ``boxes`` read under its own shift of the homography.

    Each run (`_local_runs`: `LOCAL_ROWS` answer rows, the code grid, the version row)
    that holds a box of ``boxes`` gets the layout shift that puts its printed outlines
    best under the samples (searched within `LOCAL_SEARCH_MM`): a coarse search on the
    mean of the four edges, then a fine one on the weakest edge.  A run is moved when
    its outline evidence then reaches ``target`` and gains at least `MIN_LOCAL_GAIN`,
    and its shift is within `MAX_LOCAL_SHIFT_MM` -- or within `MAX_LOCAL_STEP_MM` of a
    moved neighbour's (a fold displaces the page smoothly, so a run may follow its
    neighbours farther; a run that jumps is on the wrong rows).  Returns the samples,
    the names of the runs moved and the (N_boxes, 2) layout shift of every box.
    """
    outline_mm = outline_points_mm(layout)
    steps = np.arange(-LOCAL_SEARCH_MM, LOCAL_SEARCH_MM + 1e-9, LOCAL_STEP_MM)
    coarse = np.stack(np.meshgrid(steps, steps), -1).reshape(-1, 2)
    fine_steps = np.arange(-LOCAL_STEP_MM, LOCAL_STEP_MM + 1e-9, 0.05)
    fine = np.stack(np.meshgrid(fine_steps, fine_steps), -1).reshape(-1, 2)
    wanted = np.zeros(len(paper), bool)
    wanted[boxes] = True
    names, runs, neighbours = _local_runs(layout)
    found: dict[int, NDArray[np.float64]] = {}  # run -> its shift, for runs that fit
    for k, run in enumerate(runs):
        if not wanted[run].any():
            continue
        args = (gray, registration.homography, outline_mm[run], paper[run], registration.ink_u8)
        _, mean = outline_at_shifts(*args, coarse)
        best = coarse[int(np.argmax(np.median(mean, axis=1)))]
        weakest, _ = outline_at_shifts(*args, best + fine)
        levels = np.median(weakest, axis=1)
        level = float(levels.max())
        if level >= target and level >= float(np.median(samples.outline[run])) + MIN_LOCAL_GAIN:
            found[k] = best + fine[int(np.argmax(levels))]
    accepted = {k: shift for k, shift in found.items() if np.abs(shift).max() <= MAX_LOCAL_SHIFT_MM}
    growing = True
    while growing:  # farther shifts, each next to a moved run with a close one
        growing = False
        for k, shift in found.items():
            if k not in accepted and any(
                j in accepted and np.abs(shift - accepted[j]).max() <= MAX_LOCAL_STEP_MM for j in neighbours[k]
            ):
                accepted[k] = shift
                growing = True
    darkness, outline, surround = samples.darkness.copy(), samples.outline.copy(), samples.surround.copy()
    shifts = np.zeros((len(paper), 2))
    for k, shift in sorted(accepted.items()):
        shifted = registration.homography @ np.array([[1.0, 0, shift[0]], [0, 1.0, shift[1]], [0, 0, 1.0]])
        local = sample_boxes(gray, shifted, grid, paper, registration.ink_u8)
        run = runs[k]
        darkness[run], outline[run], surround[run] = local.darkness[run], local.outline[run], local.surround[run]
        shifts[run] = shift
    moved = tuple(names[k] for k in sorted(accepted))
    return BoxSamples(darkness=darkness, outline=outline, surround=surround), moved, shifts


@functools.lru_cache(maxsize=4)
def _local_runs(
    layout: CardLayout,
) -> tuple[tuple[str, ...], tuple[NDArray[np.intp], ...], tuple[tuple[int, ...], ...]]:
    """The runs of boxes registered together locally: their names (questions ``41-50``,
    ``code``, ``version``), box indices, and neighbours (the runs above and below in
    the same answer block, and beside it in the next blocks; none for code and version)."""
    a, slices = layout.answers, layout.box_slices()
    n_options = len(a.options)
    per_block = -(-a.rows_per_block // LOCAL_ROWS)
    names, runs, neighbours = [], [], []
    for first in range(0, a.questions, LOCAL_ROWS):
        last = min(first + LOCAL_ROWS, a.questions)
        names.append(f"{first + 1}-{last}")
        runs.append(np.arange(first * n_options, last * n_options))
    n_answer_runs = len(runs)
    for k in range(n_answer_runs):
        place = k % per_block
        near = [k + d for d in (-1, 1) if 0 <= place + d < per_block] + [k + d * per_block for d in (-1, 1)]
        neighbours.append(tuple(j for j in near if 0 <= j < n_answer_runs))
    for part in ("code", "version"):
        names.append(part)
        # the part row (a card of several parts) sits beside the version row and moves with it
        stop = slices["part"].stop if part == "version" and "part" in slices else slices[part].stop
        runs.append(np.arange(slices[part].start, stop))
        neighbours.append(())
    return tuple(names), tuple(runs), tuple(neighbours)


def _part_names(layout: CardLayout) -> NDArray[np.str_]:
    """(N_boxes,) which part of the card each box belongs to: answer block, code, version."""
    a = layout.answers
    blocks = np.repeat(np.arange(a.questions) // a.rows_per_block, len(a.options))
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
