"""Row alignment's frame gate (min_jitter): frames without measurable line jitter are left alone."""
import numpy as np

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
