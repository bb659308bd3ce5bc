"""Small card builders for the reader's tests: a rendered card with solid fills / crosses.

(The realistic, damaged cards with ground truth come from `omr.synth`; these are the
minimal, fully controlled ones for unit tests.)
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from omr.layout import CardLayout
from omr.render import render_card


def to_px(points_mm: NDArray[np.float64], dpi: float) -> NDArray[np.float64]:
    """The renderer's convention: x mm -> x * dpi / 25.4 - 0.5 px."""
    return np.asarray(points_mm) * dpi / 25.4 - 0.5


def fill_box(img: NDArray[np.uint8], center_mm, dpi: float, value: int = 50, style: str = "fill") -> None:
    """Draw a mark on the box centred at ``center_mm``: a solid fill or a pen cross."""
    s = dpi / 25.4
    x, y = center_mm

    def p(dx: float, dy: float) -> tuple[int, int]:
        return int(round((x + dx) * s - 0.5)), int(round((y + dy) * s - 0.5))

    if style == "fill":
        cv2.rectangle(img, p(-1.7, -1.2), p(1.7, 1.2), value, -1)
    elif style == "x":
        width = max(1, int(round(0.35 * s)))
        cv2.line(img, p(-1.5, -1.0), p(1.5, 1.0), value, width)
        cv2.line(img, p(-1.5, 1.0), p(1.5, -1.0), value, width)
    elif style == "residue":
        cv2.rectangle(img, p(-1.6, -1.1), p(1.6, 1.1), value, -1)
    elif style == "half":
        cv2.rectangle(img, p(-1.7, -1.2), p(0.0, 1.2), value, -1)
    else:
        raise ValueError(style)


def marked_card(
    layout: CardLayout,
    answers: str,
    *,
    code: str = "123456782",
    grid_code: str | None = "same",
    version: str | None = "A",
    dpi: float = 200,
    style: str = "fill",
) -> NDArray[np.uint8]:
    """A rendered card with ``answers`` ('-' blank, letters marked) filled in."""
    img = render_card(layout, code, dpi=dpi)
    centers = layout.answers.centers()
    for q, ch in enumerate(answers):
        if ch in layout.options:
            fill_box(img, centers[q, layout.options.index(ch)], dpi, style=style)
    grid_code = code if grid_code == "same" else grid_code
    if grid_code:
        g = layout.code_grid.centers()
        for j, d in enumerate(grid_code):
            fill_box(img, g[j, int(d)], dpi)
    if version:
        fill_box(img, layout.version.centers()[layout.version.labels.index(version)], dpi)
    return img


def random_answers(layout: CardLayout, seed: int) -> str:
    rng = np.random.default_rng(seed)
    letters = np.array(list(layout.options + "-"))
    p = np.full(len(letters), 0.96 / len(layout.options))
    p[-1] = 0.04
    return "".join(rng.choice(letters, size=layout.questions, p=p))


def rotate(img: NDArray[np.uint8], angle_deg: float, border: int = 255) -> NDArray[np.uint8]:
    """Rotate about the centre onto a canvas large enough to hold the whole page."""
    h, w = img.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos) + 40, int(h * cos + w * sin) + 40
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(img, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=border)
