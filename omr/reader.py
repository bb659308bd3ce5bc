"""Read one card image: register, sample every box, classify, decode the code number.

(Placeholder being replaced by the real reader; the interface below is the contract.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from calibration import MarkThresholds
from omr.layout import CardLayout

__all__ = ["CardReading", "read_card"]


@dataclass(frozen=True, slots=True)
class CardReading:
    """What the machine read on one card.

    responses : one character per question, ``A``..``E`` / ``-`` / ``*`` / ``?``
    code_number : the 9-digit code number, or "" when it could not be established
    version : the test version letter, or "" when none or several are marked
    flags : machine-readable reasons (``ambiguous:17,45``, ``code_mismatch``, ...)
    needs_review : True when any flag means a person must look (status ``review``)
    box_features : (N_boxes, F) float32, per box darkness features, rows in
        ``layout.box_centers()`` order; column 0 is the mean fill (0 white .. 1 black)
    box_states : (N_boxes,) int8, 0 blank, 1 marked, 2 ambiguous
    homography : (3, 3) float64, layout millimetres -> image pixels
    rotation_deg : how the page was turned in the scan (0, 90, 180, 270)
    thresholds : the levels used to classify the boxes
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


def read_card(
    gray: NDArray[np.uint8], layout: CardLayout, *, thresholds: MarkThresholds | None = None
) -> CardReading:
    """Read a grayscale page.  Raises PageNotFoundError / MarkerNotFoundError for non-cards."""
    n_boxes = layout.box_centers().shape[0]
    return CardReading(
        responses="-" * layout.questions,
        code_number="",
        version="",
        flags=("code_unreadable", "reader_placeholder"),
        needs_review=True,
        box_features=np.zeros((n_boxes, 1), np.float32),
        box_states=np.zeros(n_boxes, np.int8),
        homography=np.eye(3),
        rotation_deg=0,
        thresholds=thresholds or MarkThresholds(),
    )
