"""Where the boxes of a stored page are in its image, and upright crops of its questions.

Pure functions over the stored homography (layout millimetres -> image pixels) and the
local shifts of runs read on their own outlines; nothing here reads a file::

    layout box centres (mm) + local shift ──homography──► image px  (the grid drawn)
    crop pixel ──scale──► layout mm ──homography──► image px        (cv2.warpPerspective)

Crops are rectified: whatever turn or skew the scan had, a question's row comes out
upright at `CROP_PX_PER_MM`, with the rows above and below it for context.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from omr.detect import project_points
from omr.layout import CardLayout

__all__ = ["CROP_PX_PER_MM", "CropWindow", "box_quads_px", "code_window", "crop_question", "question_window"]

#: resolution of question crops (a 5 mm row is 40 px)
CROP_PX_PER_MM = 8.0
#: margin around the question's boxes in a crop: left (room for the printed number), right
CROP_LEFT_MM = 9.0
CROP_RIGHT_MM = 3.5


def box_quads_px(
    layout: CardLayout, homography: NDArray[np.float64], shifts_mm: NDArray[np.float64] | None
) -> NDArray[np.float64]:
    """(N_boxes, 4, 2) image-pixel corners of every box, in ``layout.box_centers()`` order.

    Examples
    --------
    >>> from omr.layout import load_layout
    >>> layout = load_layout()
    >>> box_quads_px(layout, np.eye(3), None).shape[1:]
    (4, 2)
    """
    b = layout.bubble
    half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * np.array([b.width_mm, b.height_mm]) / 2
    centers = layout.box_centers()
    if shifts_mm is not None:
        centers = centers + shifts_mm
    return project_points(homography, centers[:, None, :] + half[None, :, :])


@dataclass(frozen=True, slots=True)
class CropWindow:
    """A rectangle of the layout (mm) around one question and its neighbours.

    origin_mm : (x, y) top-left corner in layout mm (before the run's shift)
    size_mm : (width, height)
    shift_mm : (dx, dy) the local shift the question's run was read under
    """

    origin_mm: tuple[float, float]
    size_mm: tuple[float, float]
    shift_mm: tuple[float, float]


def question_window(
    layout: CardLayout, question: int, shifts_mm: NDArray[np.float64] | None, neighbours: int = 1
) -> CropWindow:
    """The window of ``question`` (1-based) with ``neighbours`` rows above and below."""
    a, b = layout.answers, layout.bubble
    centers = a.centers()[question - 1]
    x0 = float(centers[0, 0]) - b.width_mm / 2 - CROP_LEFT_MM
    x1 = float(centers[-1, 0]) + b.width_mm / 2 + CROP_RIGHT_MM
    y0 = float(centers[0, 1]) - neighbours * a.row_pitch_mm - a.row_pitch_mm / 2
    height = (2 * neighbours + 1) * a.row_pitch_mm
    shift = (0.0, 0.0)
    if shifts_mm is not None:
        k = (question - 1) * len(a.options)
        shift = (float(shifts_mm[k, 0]), float(shifts_mm[k, 1]))
    return CropWindow(origin_mm=(x0, y0), size_mm=(x1 - x0, height), shift_mm=shift)


def code_window(layout: CardLayout, shifts_mm: NDArray[np.float64] | None) -> CropWindow:
    """The window of the card's header: the code-number grid, the version row and the barcode."""
    g, v, b = layout.code_grid, layout.version, layout.barcode
    centers = np.concatenate([g.centers().reshape(-1, 2), v.centers()])
    x0 = min(float(centers[:, 0].min()), b.box_mm[0]) - 6.0
    y0 = min(float(centers[:, 1].min()), b.box_mm[1]) - 5.0
    x1 = max(float(centers[:, 0].max()), b.box_mm[2]) + 3.0
    y1 = max(float(centers[:, 1].max()), b.box_mm[3]) + 3.0
    shift = (0.0, 0.0)
    if shifts_mm is not None:
        k = layout.box_slices()["code"].start
        shift = (float(shifts_mm[k, 0]), float(shifts_mm[k, 1]))
    return CropWindow(origin_mm=(x0, y0), size_mm=(x1 - x0, y1 - y0), shift_mm=shift)


def crop_question(
    gray: NDArray[np.uint8],
    homography: NDArray[np.float64],
    window: CropWindow,
    px_per_mm: float = CROP_PX_PER_MM,
) -> NDArray[np.uint8]:
    """The window cut out of the page, upright, at ``px_per_mm``.

    Returns
    -------
    (round(h * px_per_mm), round(w * px_per_mm)) uint8 ndarray
    """
    (x0, y0), (w, h), (dx, dy) = window.origin_mm, window.size_mm, window.shift_mm
    crop_to_mm = np.array([[1 / px_per_mm, 0, x0 + dx], [0, 1 / px_per_mm, y0 + dy], [0, 0, 1.0]])
    size = (int(round(w * px_per_mm)), int(round(h * px_per_mm)))
    return cv2.warpPerspective(
        gray, homography @ crop_to_mm, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=255
    )
