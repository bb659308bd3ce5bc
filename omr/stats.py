"""Order statistics of the short arrays the reader takes per card, without NumPy's overhead.

``np.median`` costs ~15-40 µs a call in argument handling alone (NaN checks, axis
bookkeeping), more than the partition it does, and ``np.percentile`` ~150-300 µs; a
card took about ten medians and five percentiles.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["median", "median_rows", "percentile"]


def median(values: NDArray[np.floating]) -> float:
    """``np.median`` of an array (flattened), the same value: the middle one, or the mean of the
    two middle ones computed in the array's own precision."""
    values = np.asarray(values).ravel()
    mid = values.size // 2
    if values.size % 2:
        return float(np.partition(values, mid)[mid])
    ordered = np.partition(values, (mid - 1, mid))
    return float((ordered[mid - 1] + ordered[mid]) / values.dtype.type(2))


def median_rows(values: NDArray[np.floating]) -> NDArray[np.floating]:
    """``np.median(values, axis=1)`` of a small 2-D array, the same values."""
    ordered = np.sort(values, axis=1)
    mid = ordered.shape[1] // 2
    if ordered.shape[1] % 2:
        return ordered[:, mid]
    return (ordered[:, mid - 1] + ordered[:, mid]) / ordered.dtype.type(2)


def percentile(values: NDArray[np.floating], q: float) -> float:
    """``np.percentile(values, q)`` (the default linear method) of an array, flattened:
    the same value, computed as NumPy does in the array's own precision."""
    values = np.asarray(values).ravel()
    n = values.size
    virtual = (n - 1) * np.true_divide(q, 100.0)
    below = min(max(int(np.floor(virtual)), 0), n - 1)
    above = min(below + 1, n - 1)
    gamma = float(virtual - below)
    ordered = np.partition(values, (below, above) if above != below else below)
    low, high = ordered[below], ordered[above]
    step = high - low
    # NumPy's _lerp: from the nearer end, so that gamma 0 and 1 give the ends exactly
    return float(high - step * (1 - gamma) if gamma >= 0.5 else low + step * gamma)
