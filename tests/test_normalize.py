"""stem_restore.normalize: the one normalisation of datagen, training and restore.py."""
from __future__ import annotations

import numpy as np
import pytest

from stem_restore.normalize import denormalize, norm_stats, normalize


def test_stats_are_first_percentile_and_std():
    x = np.random.default_rng(0).normal(100.0, 7.0, (300, 200)).astype(np.float32)
    s = norm_stats(x)
    assert s.offset == pytest.approx(np.percentile(x.astype(np.float64), 1.0), rel=1e-6)
    assert s.scale == pytest.approx(x.astype(np.float64).std(), rel=1e-9)


def test_round_trip_and_target_with_input_stats():
    rng = np.random.default_rng(1)
    clean = rng.random((64, 64)) * 1000 + 50
    noisy = clean + rng.normal(0, 20, clean.shape)
    xn, stats = normalize(noisy)
    tn, same = normalize(clean, stats)
    assert same is stats and xn.dtype == np.float32 == tn.dtype
    assert np.percentile(xn, 1.0) == pytest.approx(0.0, abs=1e-5)
    assert xn.std() == pytest.approx(1.0, rel=1e-5)
    assert (tn < 0).mean() < 0.01  # the target stays >= 0 almost everywhere: a final ReLU reaches it
    np.testing.assert_allclose(denormalize(tn, stats), clean, rtol=1e-5)


def test_affine_invariance_and_integer_input():
    x = np.random.default_rng(2).integers(0, 4096, (50, 70)).astype(np.uint16)
    a, _ = normalize(x)
    b, _ = normalize(3.0 * x.astype(np.float64) + 17.0)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_flat_image_has_unit_scale_and_bad_input_is_refused():
    assert norm_stats(np.full((10, 10), 5.0)).scale == 1.0
    with pytest.raises(ValueError, match="NaN"):
        norm_stats(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="empty"):
        norm_stats(np.zeros((0, 4)))


def test_input_is_not_modified():
    x = np.arange(100, dtype=np.float32).reshape(10, 10)
    before = x.copy()
    normalize(x)
    np.testing.assert_array_equal(x, before)
