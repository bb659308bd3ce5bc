"""Mark thresholds learned from the fill distribution of a card or a batch."""

from calibration.thresholds import MarkThresholds, bitonal_thresholds, load_thresholds, save_thresholds

__all__ = ["MarkThresholds", "bitonal_thresholds", "load_thresholds", "save_thresholds"]
