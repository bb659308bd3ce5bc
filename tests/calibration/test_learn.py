"""Per-card adaptation of the mark levels (calibration.learn)."""

import numpy as np

from calibration import MarkThresholds
from calibration.learn import adapt_to_light_marks

N_OPTIONS = 5


def card_features(mark_fill: float, mark_stroke: float = 0.0, mark_peak: float = 0.9, seed: int = 0):
    """(200 * 5, 7) features: one mark per question at ``mark_fill``, blanks near 0."""
    rng = np.random.default_rng(seed)
    f = np.zeros((200, N_OPTIONS, 7), np.float32)
    f[..., 0] = rng.uniform(0.0, 0.02, (200, N_OPTIONS))
    f[..., 5] = rng.uniform(0.02, 0.1, (200, N_OPTIONS))
    marked = rng.integers(0, N_OPTIONS, 200)
    rows = np.arange(200)
    f[rows, marked, 0] = mark_fill + rng.normal(0, 0.02, 200)
    f[rows, marked, 4] = mark_stroke
    f[rows, marked, 5] = mark_peak
    return f.reshape(-1, 7)


def test_dark_marks_keep_the_levels():
    base = MarkThresholds()
    assert adapt_to_light_marks(base, card_features(0.7), N_OPTIONS) == base


def test_light_fills_lower_the_fill_levels_under_them():
    t = adapt_to_light_marks(MarkThresholds(), card_features(0.24, mark_peak=0.35), N_OPTIONS)
    assert t.source == "default+light_marks"
    assert 0.03 < t.fill_blank < t.fill_mark < 0.2  # every mark (0.24 +- 0.06) clears fill_mark
    assert t.peak_blank < 0.33 and t.peak_mark == MarkThresholds().peak_mark


def test_light_crosses_lower_the_peak_levels():
    t = adapt_to_light_marks(MarkThresholds(), card_features(0.2, mark_stroke=0.3, mark_peak=0.4), N_OPTIONS)
    assert t.peak_blank < t.peak_mark < 0.4
    assert t.fill_mark == MarkThresholds().fill_mark  # no solid fills: fill levels stay


def test_too_few_marks_change_nothing():
    f = card_features(0.24).reshape(200, N_OPTIONS, 7)
    f[20:, :, 0] = 0.01  # only 20 questions answered
    base = MarkThresholds()
    assert adapt_to_light_marks(base, f.reshape(-1, 7), N_OPTIONS) == base


def test_light_marks_lower_the_standout_level_with_them():
    """A mark washed out further than this light hand's others (Augraphy seed 61: a
    tick at peak 0.18 among marks at 0.42) stands out from 0.3 of their peak."""
    t = adapt_to_light_marks(MarkThresholds(), card_features(0.24, mark_peak=0.42), N_OPTIONS)
    # 0.3 * 0.42, or just over the blank boxes' own peaks (here up to 0.1): not into their noise
    assert 0.3 * 0.42 <= t.standout_peak < 0.16
    dark = adapt_to_light_marks(MarkThresholds(), card_features(0.24, mark_peak=1.0), N_OPTIONS)
    assert dark.standout_peak == 0.3  # light fills that peak dark: 0.3 of 1
    lower = MarkThresholds(standout_peak=0.2)
    assert adapt_to_light_marks(lower, card_features(0.24, mark_peak=1.0), N_OPTIONS).standout_peak == 0.2
