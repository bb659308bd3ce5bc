import numpy as np
import pytest

from calibration import MarkThresholds
from omr.marks import (
    AMBIGUOUS,
    BLANK,
    MARKED,
    classify_boxes,
    clear_faint_beside_fill,
    doubt_lines_beside_fills,
    read_responses,
)

T = MarkThresholds()


def features(fill=0.0, ink=0.0, asym=0.0, core=0.0, stroke=0.0, peak=None, cross=0.0):
    peak = max(fill, 0.05) + 0.4 * stroke if peak is None else peak
    return np.array([[fill, ink, asym, core, stroke, peak, cross]], dtype=np.float32)


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


def test_lines_beside_a_fill_are_doubted_not_counted_as_a_second_answer():
    fill = features(fill=0.7, ink=0.8, core=0.7)[0]
    light_fill = features(fill=0.40, ink=0.02, core=0.4)[0]  # at the mark level, not solid
    lines = features(fill=0.12, ink=0.08, stroke=0.2, peak=0.7)[0]  # a cross, or dirt
    blank = features()[0]
    rows = np.stack(
        [
            [fill, lines, blank],  # fill + lines: '?', a person decides
            [fill, fill, blank],  # two fills: a real multiple answer, '*'
            [lines, lines, blank],  # two crosses, no fill: '*'
            [blank, lines, blank],  # one cross alone: the answer
            [light_fill, lines, blank],  # a light fill + lines: '?' too
            [light_fill, fill, blank],  # two fills, one light: '*'
        ]
    )
    states = classify_boxes(rows.reshape(-1, rows.shape[-1]), T).reshape(6, 3)
    assert (states[[0, 1, 2, 4, 5], :2] == MARKED).all() and states[3, 1] == MARKED
    doubted = doubt_lines_beside_fills(states, rows, T)
    assert read_responses(doubted, "ABC") == "?**B?*"


def test_faint_texture_beside_a_solid_fill_is_blank_unless_dirty_or_darker():
    fill = features(fill=0.75, ink=0.92, core=0.8, peak=0.94)[0]
    texture = features(fill=0.18, ink=0.0, stroke=0.22, peak=0.42)[0]  # scan texture, residue
    light_cross = features(fill=0.12, ink=0.03, stroke=0.21, peak=0.48)[0]  # over half the fill's peak
    grey_fill = features(fill=0.46, ink=0.2, core=0.46, peak=0.67)[0]  # marked, but not solid
    blank = features()[0]
    rows = np.stack(
        [
            [fill, texture, blank],  # residue beside the answer: the answer
            [fill, texture, blank],  # the same with dirt around the residue: '?'
            [blank, texture, blank],  # no fill to compare with: '?'
            [fill, fill, texture],  # two fills: still '*'
            [grey_fill, texture, blank],  # the mark is not solid: '?'
        ]
    )
    states = classify_boxes(rows.reshape(-1, rows.shape[-1]), T).reshape(5, 3)
    assert states[0, 1] == AMBIGUOUS and states[4, 0] == MARKED
    doubtful = np.zeros(states.shape, bool)
    doubtful[1, 1] = True
    cleared = clear_faint_beside_fill(states, rows, T, doubtful)
    assert read_responses(cleared, "ABC") == "A??*?"
    # a faint box more than half as dark as the fill beside it may be a light second mark
    dark_fill = features(fill=0.6, ink=0.87, core=0.6, peak=0.76)[0]
    rows = np.stack([[dark_fill, light_cross, blank]])
    states = classify_boxes(rows.reshape(-1, rows.shape[-1]), T).reshape(1, 3)
    assert states[0, 1] == AMBIGUOUS
    assert read_responses(clear_faint_beside_fill(states, rows, T, np.zeros((1, 3), bool)), "ABC") == "?"
