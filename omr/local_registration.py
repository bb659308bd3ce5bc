"""Local re-registration: runs of boxes read on their own printed outlines.

A fold or a curl moves parts of the page off the one homography the corner markers
give.  When a part of the card is doubtful (its printed outlines are not where the
markers put them, `omr.reader.measure_card`), each run of boxes in it -- ten answer
rows, the code grid, the version row -- is registered again: moved by the layout
shift that puts its own printed outlines best under the samples, within limits that
keep it off its neighbour's rows (the rows repeat every 5 mm).  The card is then
flagged ``registration_local:<runs>`` (a person confirms).

Pure: arrays in, arrays out; one `omr.grid.sample_boxes` per moved run.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray

from omr.detect import Registration
from omr.grid import BoxSamples, SamplingGrid, outline_at_shifts, outline_points_mm, sample_boxes
from omr.layout import CardLayout

__all__ = ["LOCAL_ROWS", "MAX_LOCAL_SHIFT_MM", "MAX_LOCAL_STEP_MM", "local_runs", "register_locally"]

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


def register_locally(
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

    Each run (`local_runs`: `LOCAL_ROWS` answer rows, the code grid, the version row)
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
    names, runs, neighbours = local_runs(layout)
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
def local_runs(
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
