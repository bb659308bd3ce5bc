import numpy as np
import pytest

from calibration import MarkThresholds
from omr.marks import (
    AMBIGUOUS,
    BLANK,
    MARKED,
    classify_boxes,
    read_responses,
)

T = MarkThresholds()


def features(fill=0.0, ink=0.0, asym=0.0, core=0.0, stroke=0.0, peak=None, cross=0.0, spread=0.8):
    peak = max(fill, 0.05) + 0.4 * stroke if peak is None else peak
    return np.array([[fill, ink, asym, core, stroke, peak, cross, spread]], dtype=np.float32)


@pytest.mark.parametrize(
    ("row", "state"),
    [
        (features(), BLANK),
        (features(fill=0.72, ink=1.0, core=0.7), MARKED),  # dark fill
        (features(fill=0.40, ink=0.02, core=0.4), MARKED),  # light pencil fill
        (features(fill=0.18, stroke=0.35, core=0.25, peak=0.7), MARKED),  # cross
        (features(fill=0.15, stroke=0.20, ink=0.1, peak=0.5), MARKED),  # tick
        (features(fill=0.15), BLANK),  # erasure residue
        (features(fill=0.32, core=0.3), AMBIGUOUS),  # heavy residue
        (features(fill=0.33, ink=0.47, asym=0.95, stroke=0.5), AMBIGUOUS),  # half filled
        (features(fill=0.05, stroke=0.12, peak=0.3), BLANK),  # faint short stroke
        (features(fill=0.08, ink=0.05, stroke=0.14, peak=0.5), AMBIGUOUS),  # thin tick, dimmed: not blank
        (features(fill=0.08, stroke=0.25, peak=0.36), AMBIGUOUS),  # longer, still light stroke
        (features(fill=0.15, stroke=0.20, ink=0.1, peak=0.7, spread=0.35), AMBIGUOUS),  # a dark speck
        (features(fill=0.17, ink=0.02, stroke=0.36, peak=0.47), MARKED),  # a cross blurred by the scan
        (features(fill=0.06, ink=0.0, stroke=0.17, peak=0.44), AMBIGUOUS),  # a faint stroke, at its darkest
        (features(fill=0.15, stroke=0.20, ink=0.1, peak=0.7, spread=0.6), MARKED),  # a short tick
    ],
)
def test_classify_boxes_regions(row, state):
    assert classify_boxes(row, T)[0] == state


def test_read_responses_rules():
    states = np.array(
        [
            [BLANK, MARKED, BLANK],  # one mark
            [BLANK, BLANK, BLANK],  # blank
            [MARKED, MARKED, BLANK],  # multiple
            [AMBIGUOUS, MARKED, BLANK],  # doubt
            [MARKED, MARKED, AMBIGUOUS],  # multiple whatever the doubtful box
            [AMBIGUOUS, BLANK, BLANK],
        ],
        dtype=np.int8,
    )
    assert read_responses(states, "XYZ") == "Y-*?*?"


def test_read_responses_uses_layout_letters():
    states = np.zeros((3, 4), np.int8)
    states[np.arange(3), [3, 0, 2]] = MARKED
    assert read_responses(states, "ABCD") == "DAC"


def test_cross_shape_counts_only_on_bitonal_levels():
    from calibration import bitonal_thresholds

    cross = features(fill=0.3, ink=0.3, stroke=0.4, peak=1.0, cross=0.25)
    specks = features(fill=0.15, ink=0.15, stroke=0.2, peak=1.0, cross=0.0)
    assert classify_boxes(cross, bitonal_thresholds())[0] == MARKED
    assert classify_boxes(specks, bitonal_thresholds())[0] == AMBIGUOUS
    assert classify_boxes(features(fill=0.9, ink=0.9), bitonal_thresholds())[0] == MARKED
    assert classify_boxes(features(), bitonal_thresholds())[0] == BLANK
