"""Metric correctness: PSNR of known noise, SSIM identity, the scan measure."""
import numpy as np
import pytest

from evaluate.baselines import shift_rows
from evaluate.metrics import clean_range, line_shifts, psnr, scan_shift_spread, ssim
from helpers import lattice


def test_psnr_of_known_gaussian_noise():
    clean = lattice(256)
    sigma = 3.0
    noisy = clean + np.random.default_rng(1).normal(0, sigma, clean.shape)
    expected = 10 * np.log10(clean_range(clean) ** 2 / sigma**2)
    assert psnr(noisy, clean) == pytest.approx(expected, abs=0.05)


def test_psnr_uses_clean_range_not_restored_range():
    clean = lattice(64)
    bad = clean.copy()
    bad[0, 0] += 1e4  # a zinger in the restored image must not raise its own range
    assert psnr(bad, clean) < psnr(clean + 1.0, clean)


def test_ssim_identity_and_degradation():
    clean = lattice(64)
    assert ssim(clean, clean) == pytest.approx(1.0, abs=1e-12)
    noisy = clean + np.random.default_rng(2).normal(0, 10, clean.shape)
    assert ssim(noisy, clean) < 0.9


def test_metrics_reject_shape_mismatch():
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))


def test_line_shifts_recover_known_subpixel_shift():
    clean = lattice(64, angle=0.0)
    shifts = np.zeros(64)
    shifts[32:] = 1.4  # content of lower half moved by -1.4 px
    d = line_shifts(shift_rows(clean, shifts))
    assert d[31] == pytest.approx(-1.4, abs=0.25)
    assert np.abs(np.delete(d, 31)).max() < 0.05


@pytest.mark.parametrize("angle", [0.0, 0.3])
def test_scan_spread_near_zero_without_distortion(angle):
    assert scan_shift_spread(lattice(96, angle=angle)) < 0.08


def test_scan_spread_grows_with_row_shifts():
    clean = lattice(96, angle=0.3)
    rng = np.random.default_rng(3)
    xi = rng.normal(size=96)
    spreads = [scan_shift_spread(shift_rows(clean, a * xi)) for a in (0.0, 0.5, 1.0, 2.0)]
    assert spreads[0] < 0.08
    assert all(b > a for a, b in zip(spreads, spreads[1:]))
    assert spreads[2] > 0.8  # std of differences of N(0,1) shifts is sqrt(2)


def _columns(n=96, period=8.0, sigma=1.2, dy=0.0, dx=0.0):
    """Gaussian atomic columns on a square grid, displaced by (dy, dx) px."""
    y, x = np.mgrid[0:n, 0:n].astype(float)
    img = np.full((n, n), 5.0)
    for cy in np.arange(4.0, n, period):
        for cx in np.arange(4.0, n, period):
            img += 100.0 * np.exp(-((y - cy - dy) ** 2 + (x - cx - dx) ** 2) / (2 * sigma**2))
    return img


def test_column_peaks_find_every_inner_column():
    from evaluate.metrics import PEAK_RADIUS, column_peaks

    peaks = column_peaks(_columns())
    inner = [c for c in np.arange(4.0, 96, 8.0) if PEAK_RADIUS + 1 <= c < 96 - PEAK_RADIUS - 1]
    assert len(peaks) == len(inner) ** 2
    assert np.all(np.isin(peaks, inner))


@pytest.mark.parametrize("dy,dx", [(0.0, 0.0), (0.3, 0.0), (0.0, -0.25), (0.4, 0.3), (1.2, -0.7)])
def test_column_position_error_measures_a_known_shift(dy, dx):
    from evaluate.metrics import column_position_error

    err = column_position_error(_columns(dy=dy, dx=dx), _columns())
    assert err == pytest.approx(np.hypot(dy, dx), abs=0.06)


def test_a_column_moved_beyond_the_window_is_clipped_and_a_wider_window_measures_it():
    """3 px is beyond evaluate's 2 px window (found on its rim, refined by at most half a sample)
    but within a window of
    0.45 x the 8 px spacing; the windows of the columns 4 px from the edge are cut there."""
    from evaluate.metrics import PEAK_RADIUS, column_displacements, column_position_error, column_spacing

    moved, clean = _columns(dx=3.0), _columns()
    assert PEAK_RADIUS <= column_position_error(moved, clean) <= PEAK_RADIUS + 0.5 + 1e-9
    assert np.allclose(column_spacing(np.array([[0, 0], [0, 8], [6, 8]])), [8, 6, 6])
    wide = column_displacements(moved, clean, lambda peaks: np.floor(0.45 * column_spacing(peaks)).astype(int))
    assert wide.size == 144 and np.allclose(wide, 3.0, atol=0.06)  # every column, edges too
    assert column_displacements(clean, np.full_like(clean, 3.0)).size == 0


def test_column_position_error_grows_with_noise_and_is_nan_without_columns():
    from evaluate.metrics import column_position_error

    clean = _columns()
    rng = np.random.default_rng(0)
    errs = [column_position_error(clean + rng.normal(0, s, clean.shape), clean) for s in (2.0, 10.0, 30.0)]
    assert 0 < errs[0] < errs[1] < errs[2]
    assert np.isnan(column_position_error(clean, np.full_like(clean, 3.0)))


def test_ridges_are_not_columns():
    """A lattice whose columns merge into lines (stripes) has maxima with no position along the
    line: column_peaks leaves them out (the column error is NaN), while isolated columns of the
    same height beside the stripes are kept."""
    from evaluate.metrics import column_peaks, column_position_error

    y, x = np.mgrid[0:96, 0:96].astype(float)
    stripes = 5.0 + 100.0 * np.exp(-(((x + y) % 12.0) - 6.0) ** 2 / (2 * 1.5**2))
    stripes += 0.5 * np.sin(0.7 * (x - y))  # weak bumps along each line: local maxima of peak_local_max
    assert len(column_peaks(stripes)) == 0
    noisy = stripes + np.random.default_rng(1).normal(0, 5.0, stripes.shape)
    assert np.isnan(column_position_error(noisy, stripes))
    mixed = np.where(x < 48, stripes, _columns())
    peaks = column_peaks(mixed)
    assert len(peaks) > 0 and np.all(peaks[:, 1] >= 48)


def test_paired_interval_of_known_differences():
    """Student's t on the per-image differences: d = 1, 2, 3 -> mean 2, sd 1, t(0.975, 2) = 4.303."""
    from evaluate.run import paired_interval

    mean, half = paired_interval([11.0, 22.0, 33.0], [10.0, 20.0, 30.0])
    assert mean == pytest.approx(2.0) and half == pytest.approx(4.3027 / np.sqrt(3), rel=1e-4)
    # A shared spread between images cancels: the same offset on very different images is certain.
    mean, half = paired_interval([10.5, 30.5, 50.5, 70.5], [10.0, 30.0, 50.0, 70.0])
    assert mean == pytest.approx(0.5) and half == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(paired_interval([1.0], [0.0])[1])
