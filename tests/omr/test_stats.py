import numpy as np
import pytest

from omr.stats import median, median_rows, percentile


@pytest.mark.parametrize("n", [1, 2, 3, 4, 15, 200, 1000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_is_numpys(n, dtype):
    values = np.random.default_rng(n).random(n).astype(dtype)
    assert median(values) == float(np.median(values))
    assert median(values.reshape(1, -1)) == float(np.median(values))


@pytest.mark.parametrize("shape", [(4, 8), (3, 5), (1, 2)])
def test_median_rows_is_numpys(shape):
    values = np.random.default_rng(0).random(shape)
    np.testing.assert_array_equal(median_rows(values), np.median(values, axis=1))


@pytest.mark.parametrize("n", [1, 2, 5, 199, 500, 1000])
@pytest.mark.parametrize("q", [0.2, 5, 10, 50, 90, 95, 99.5, 100])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_percentile_is_numpys(n, q, dtype):
    values = (np.random.default_rng(n).random(n) * 255).astype(dtype)
    assert percentile(values, q) == float(np.percentile(values, q))
