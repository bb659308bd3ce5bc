"""Mark thresholds learned from the fill distribution of a card or a batch."""

from calibration.thresholds import MarkThresholds

__all__ = ["MarkThresholds"]
