"""What the machine saw, drawn for an examiner: markers, registered grid, fills, reads, flags.

``draw_overlay`` is pure: it takes the page and a `CardReading` and returns a new
BGR image.  Colours: green = marked, orange = ambiguous (``?``), grey = blank;
each box is drawn where the registration put it, with its fill (mean darkness,
in percent) beside ambiguous and marked boxes, the response of each question
to its left, and the flags across the top.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from omr.detect import project_points
from omr.grid import Feature
from omr.layout import CardLayout
from omr.marks import AMBIGUOUS, MARKED
from omr.reader import CardReading

__all__ = ["draw_overlay"]

_COLOURS = {0: (150, 150, 150), MARKED: (40, 170, 40), AMBIGUOUS: (0, 140, 255)}


def draw_overlay(gray: NDArray[np.uint8], reading: CardReading, layout: CardLayout) -> NDArray[np.uint8]:
    """(H, W, 3) uint8 BGR picture of ``gray`` with what was read drawn on it."""
    canvas = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    h = reading.homography
    px_per_mm = float(np.sqrt(abs(np.linalg.det(h[:2, :2]))))
    thick = max(1, int(round(px_per_mm * 0.12)))
    font_scale = max(0.3, px_per_mm * 0.06)
    # markers
    corners = project_points(h, layout.markers.corners())
    for quad in corners:
        cv2.polylines(canvas, [np.round(quad).astype(np.int32)], True, (255, 0, 255), thick * 2)
    # boxes
    b = layout.bubble
    half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * np.array([b.width_mm, b.height_mm]) / 2
    centers = layout.box_centers()
    if reading.box_shifts_mm is not None:  # runs read on their own outlines: where they were read
        centers = centers + reading.box_shifts_mm
    quads = project_points(h, centers[:, None, :] + half[None, :, :])
    fills = reading.box_features[:, Feature.FILL]
    for k, quad in enumerate(np.round(quads).astype(np.int32)):
        state = int(reading.box_states[k])
        cv2.polylines(canvas, [quad], True, _COLOURS.get(state, (0, 0, 255)), thick)
        if state != 0:
            x, y = quad[1]
            cv2.putText(
                canvas,
                f"{fills[k] * 100:.0f}",
                (int(x) + thick, int(y)),
                cv2.FONT_HERSHEY_SIMPLEX,
                font_scale * 0.6,
                _COLOURS[state],
                thick,
            )
    # response per question, left of option A
    a = layout.answers
    first = a.centers()[:, 0, :] - np.array([b.width_mm * 1.3 + 3.0, -b.height_mm / 3])
    if reading.box_shifts_mm is not None:  # beside option A where it was read
        first = first + reading.box_shifts_mm[: a.questions * len(a.options) : len(a.options)]
    for q, (x, y) in enumerate(project_points(h, first)):
        char = reading.responses[q]
        colour = (0, 0, 255) if char in "?*" else (200, 60, 0)
        cv2.putText(canvas, char, (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, thick)
    # header: code number, version, flags
    lines = [
        f"code {reading.code_number or '?'} (barcode {reading.barcode or '-'}, grid {reading.grid})",
        f"version {reading.version or '?'}  turn {reading.rotation_deg}  "
        f"fit {reading.registration_residual_mm:.2f} mm  thresholds {reading.thresholds.source}",
        "flags: "
        + (";".join(reading.flags) or "none")
        + ("  -> REVIEW" if reading.needs_review else "  -> ok"),
    ]
    origin = project_points(h, np.array([[layout.barcode.box_mm[0], layout.barcode.box_mm[3] + 6.0]]))[0]
    for i, line in enumerate(lines):
        pos = (int(origin[0]), int(origin[1] + i * 30 * font_scale * 1.6))
        cv2.putText(canvas, line, pos, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), thick * 4)
        cv2.putText(canvas, line, pos, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 200), thick)
    return canvas
