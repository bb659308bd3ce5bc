"""The numbers that separate a blank box from a mark, with a grey zone between."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MarkThresholds"]


@dataclass(frozen=True, slots=True)
class MarkThresholds:
    """Decision levels on a box's darkness features (0 = paper white, 1 = marker black).

    A box is *marked* when it clears either mark level, *blank* when it stays under
    both blank levels, and *ambiguous* (``?``) otherwise.
    """

    fill_blank: float = 0.30
    fill_mark: float = 0.45
    ink_blank: float = 0.06
    ink_mark: float = 0.15
    source: str = "default"
