"""Row alignment: the frame gate (min_jitter: frames without measurable line jitter are left
alone) and the slow trend that ``reference=previous`` removes (a tilted lattice's ramp)."""
import numpy as np
import pytest

from helpers import lattice
from stem_restore.rowalign import DEFAULT_ALIGN, align_rows, estimate_row_offsets, parse_align, shift_rows


def test_min_jitter_leaves_a_frame_without_jitter_untouched():
    clean = lattice(96, angle=0.3)
    noisy = clean + np.random.default_rng(3).normal(0, 0.02 * np.ptp(clean), clean.shape)
    assert np.abs(estimate_row_offsets(noisy, reference="local")).max() > 0  # sub-pixel moves: interpolation
    np.testing.assert_array_equal(align_rows(noisy, reference="local", min_jitter=0.15), noisy)


def test_min_jitter_does_not_stop_real_jitter():
    clean = lattice(96, angle=0.3)
    jittered = shift_rows(clean, np.random.default_rng(4).normal(0, 1.0, 96))
    kw = parse_align(DEFAULT_ALIGN)
    assert kw["min_jitter"] > 0
    out = align_rows(jittered, **kw)
    np.testing.assert_array_equal(out, align_rows(jittered, **{**kw, "min_jitter": 0.0}))
    assert np.abs(out - jittered).max() > 0.1 * np.ptp(clean)


def test_parse_align_knows_the_gate():
    assert parse_align("min_jitter=0.15,smooth=1") == {"min_jitter": 0.15, "smooth": 1}


def tilted_fringes(offsets: np.ndarray, width: int = 128, period: float = 16.0, tilt: float = 0.35) -> np.ndarray:
    """Fringes whose rows climb ``tilt`` px per row (a tilted lattice plane), each row then moved
    by ``offsets`` px along x (what the net's output of a jittered frame can keep)."""
    y, x = np.mgrid[0:offsets.size, 0:width].astype(float)
    return 100.0 + 50.0 * np.cos(2 * np.pi * (x - tilt * y - offsets[:, None]) / period)


def test_linear_trend_follows_tilt_and_keeps_the_wander():
    """Integrated row offsets of a tilted lattice climb a ramp.  A running median keeps a ramp
    with a wave on top as it is (the sum still climbs), so nothing is left to undo; the local
    straight line follows the ramp, ends included, and leaves the wave out of the trend."""
    from stem_restore.rowalign import slow_trend

    y = np.arange(200, dtype=float)
    wave = 0.8 * np.sin(2 * np.pi * y / 20)
    ramp = 0.5 * y + 3.0
    np.testing.assert_allclose(slow_trend(ramp, 41, "linear"), ramp, atol=1e-9)
    left = (ramp + wave) - slow_trend(ramp + wave, 41, "linear")
    assert np.corrcoef(left, wave)[0, 1] > 0.95 and np.std(left - wave) < 0.15
    assert np.abs((ramp + wave) - slow_trend(ramp + wave, 41, "median")).max() < 1e-9
    # A frame of fewer rows than the window: one straight line for the whole frame.
    np.testing.assert_allclose(slow_trend(ramp[:7], 41, "linear"), ramp[:7], atol=1e-9)
    np.testing.assert_allclose(slow_trend(ramp[:2], 41, "linear"), ramp[:2], atol=1e-9)
    with pytest.raises(ValueError, match="trend must be 'median' or 'linear'"):
        slow_trend(ramp, 41, "mean")


def test_output_alignment_finds_a_wave_of_offsets_on_a_tilted_lattice():
    """The net's output alignment (OUTPUT_ALIGN, trend=linear) recovers a 20-row wave of offsets
    (0.8 px) on tilted fringes; the same with a running-median trend finds almost nothing."""
    from stem_restore.rowalign import OUTPUT_ALIGN

    y = np.arange(160, dtype=float)
    wave = 0.8 * np.sin(2 * np.pi * y / 20)
    frame = tilted_fringes(wave)
    kw = parse_align(OUTPUT_ALIGN)
    assert kw["trend"] == "linear"
    found = estimate_row_offsets(frame, **kw)
    assert np.std(found - wave) < 0.2 * np.std(wave), np.std(found - wave)
    median = estimate_row_offsets(frame, **{**kw, "trend": "median"})
    assert np.std(median - wave) > 0.6 * np.std(wave)
    clean = tilted_fringes(np.zeros_like(wave))
    inner = np.s_[:, 8:-8]
    assert np.abs(align_rows(frame, **kw) - clean)[inner].mean() < 0.25 * np.abs(frame - clean)[inner].mean()


def test_parse_align_knows_the_trend():
    assert parse_align("trend=linear,detrend=41") == {"trend": "linear", "detrend": 41}


def test_flat_lines_carry_no_shift():
    """A constant line (vacuum clipped to one value, a blanked or saturated line) correlates 0 at
    every lag: its shift is unknown (NaN), not the edge of the search (-max_shift), and neither the
    alignment nor the scan measure reads it as a 6-px jump."""
    from evaluate.metrics import scan_shift_spread
    from stem_restore.rowalign import line_shifts, row_shift

    img = lattice(96, period=11.0, angle=0.3)
    blanked = img.copy()
    blanked[40:50] = 0.0
    d = line_shifts(blanked)
    assert np.isnan(d[39:50]).all() and np.isfinite(np.delete(d, range(39, 50))).all()
    assert np.isnan(row_shift(np.zeros(64), img[0, :64]))
    assert scan_shift_spread(blanked) == pytest.approx(scan_shift_spread(img), abs=0.05)
    assert np.isnan(scan_shift_spread(np.ones((32, 32))))
    for params in ("reference=previous,detrend=15", DEFAULT_ALIGN):
        offsets = estimate_row_offsets(blanked, **parse_align(params))
        assert np.abs(offsets).max() < 0.5, (params, offsets)
