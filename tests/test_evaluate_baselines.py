"""Each classical baseline improves the case it is designed for; tuning uses validation."""
import numpy as np
import pytest

from evaluate import baselines as bl
from evaluate.metrics import psnr, scan_shift_spread
from helpers import lattice


def test_align_rows_removes_pure_integer_row_shift():
    clean = lattice(96, period=16.0)
    shifted = clean.copy()
    shifted[32] = np.roll(shifted[32], 3)  # two scan lines through a column row, displaced by 3 px
    shifted[33] = np.roll(shifted[33], 3)
    out = bl.align_rows(shifted, smooth=0.0, detrend=9)
    interior = (slice(None), slice(8, -8))  # edge samples are lost by the shift
    assert np.abs(shifted - clean)[interior].max() > 10
    # the parabolic sub-pixel peak is biased by < 0.01 px here: near-exact, not bit-exact
    assert np.abs(out - clean)[interior].max() < 0.01 * np.ptp(clean)
    assert psnr(out[interior], clean[interior]) > psnr(shifted[interior], clean[interior]) + 25
    offsets = bl.estimate_row_offsets(shifted, smooth=0.0, detrend=9)
    assert offsets[32:34] == pytest.approx([3.0, 3.0], abs=0.01)
    assert np.abs(np.delete(offsets, [32, 33])).max() < 1e-9


def test_align_rows_reduces_random_row_jitter():
    clean = lattice(96, angle=0.3)
    xi = np.random.default_rng(4).normal(0, 1.0, 96)
    d = bl.shift_rows(clean, xi)
    out = bl.align_rows(d)
    assert psnr(out, clean) > psnr(d, clean) + 5
    assert scan_shift_spread(out) < 0.3 * scan_shift_spread(d)


def test_align_rows_keeps_a_tilted_lattice():
    clean = lattice(96, angle=0.3)
    assert psnr(bl.align_rows(clean), clean) > 40


@pytest.fixture
def poisson_pair():
    clean = lattice(64, peak=50.0, background=5.0)
    return np.random.default_rng(5).poisson(clean).astype(float), clean


@pytest.fixture
def gaussian_pair():
    clean = lattice(64)
    return clean + np.random.default_rng(6).normal(0, 10.0, clean.shape), clean


@pytest.mark.parametrize("method,params", [
    (bl.gaussian, {"sigma": 1.0}), (bl.median, {"size": 3}), (bl.anscombe_wiener, {"size": 3, "noise_factor": 2.0})])
def test_denoisers_improve_poisson_noise(poisson_pair, method, params):
    noisy, clean = poisson_pair
    assert psnr(method(noisy, **params), clean) > psnr(noisy, clean) + 2


@pytest.mark.parametrize("method,params", [(bl.gaussian, {"sigma": 1.0}), (bl.median, {"size": 3})])
def test_denoisers_improve_gaussian_noise(gaussian_pair, method, params):
    noisy, clean = gaussian_pair
    assert psnr(method(noisy, **params), clean) > psnr(noisy, clean) + 2


def test_median_removes_salt_and_pepper():
    clean = lattice(64)
    rng = np.random.default_rng(7)
    noisy = clean.copy()
    idx = rng.random(clean.shape)
    noisy[idx < 0.03] = 0.0
    noisy[idx > 0.97] = 1000.0
    out = bl.median(noisy, size=3)
    assert psnr(out, clean) > psnr(noisy, clean) + 15
    assert np.abs(out - clean).max() < 0.5 * clean.max()


def test_noise_estimator_and_anscombe():
    rng = np.random.default_rng(8)
    flat = np.full((128, 128), 20.0)
    assert bl.estimate_noise_sigma(flat + rng.normal(0, 4, flat.shape)) == pytest.approx(4, rel=0.05)
    assert bl.estimate_noise_sigma(bl.anscombe(rng.poisson(flat))) == pytest.approx(1, rel=0.1)
    for lam in (5.0, 50.0):  # the inverse is unbiased: mean of the transformed counts maps back to lambda
        mean_t = bl.anscombe(rng.poisson(lam, 200_000)).mean()
        assert bl.inverse_anscombe(mean_t) == pytest.approx(lam, rel=0.01)


def test_bm3d_improves_gaussian_noise_on_small_image():
    clean = lattice(64, peak=50.0, background=5.0)
    noisy = np.random.default_rng(9).poisson(clean).astype(float)
    out = bl.bm3d_denoise(noisy)
    assert psnr(out, clean) > psnr(noisy, clean) + 3


def test_tune_picks_best_parameter_on_validation(poisson_pair):
    noisy, clean = poisson_pair
    grid = bl.grid(sigma=(0.3, 1.0, 6.0))
    best, scores = bl.tune(bl.gaussian, grid, [(noisy, clean)])
    assert best == {"sigma": 1.0}
    assert scores[1] == max(scores)
    direct = [psnr(bl.gaussian(noisy, **g), clean) for g in grid]
    assert np.allclose(scores, direct)


def test_tune_depends_on_validation_data():
    clean = lattice(64)
    rng = np.random.default_rng(10)
    weak = [(clean + rng.normal(0, 0.5, clean.shape), clean)]
    strong = [(clean + rng.normal(0, 30.0, clean.shape), clean)]
    grid = bl.grid(sigma=(0.3, 0.6, 1.0, 1.5, 2.0))
    assert bl.tune(bl.gaussian, grid, weak)[0]["sigma"] < bl.tune(bl.gaussian, grid, strong)[0]["sigma"]


def test_tune_rejects_empty_inputs():
    with pytest.raises(ValueError):
        bl.tune(bl.gaussian, bl.grid(sigma=(1.0,)), [])


def test_the_remembered_row_offsets_are_those_of_the_image_and_parameters_given():
    """align+gaussian's grid search re-aligns one image once per sigma: the offsets are kept,
    keyed by the image's bytes and the parameters, and a caller cannot spoil the kept copy."""
    from stem_restore.rowalign import align_rows as plain

    clean = lattice(96, angle=0.3)
    d = bl.shift_rows(clean, np.random.default_rng(5).normal(0, 1.0, 96))
    params = dict(reference="local", smooth=1.0, half_window=4)
    first = bl.align_rows(d, **params)
    np.testing.assert_array_equal(first, plain(d, **params))
    np.testing.assert_array_equal(bl.align_rows(d, **params), first)           # read back
    assert not np.array_equal(bl.align_rows(d, **dict(params, half_window=2)), first)  # other parameters
    other = d.copy()
    other[40, 40] += 50.0
    np.testing.assert_array_equal(bl.align_rows(other, **params), plain(other, **params))  # other bytes
    kept = bl._offsets(d, params)
    kept[:] = 99.0
    np.testing.assert_array_equal(bl.align_rows(d, **params), first)
    np.testing.assert_array_equal(bl.align_gaussian(d, sigma=0.75, **params), bl.gaussian(first, 0.75))


def test_a_grid_search_over_sigma_aligns_each_image_once_until_told_to_forget(monkeypatch):
    calls = []
    real = bl.estimate_row_offsets
    monkeypatch.setattr(bl, "estimate_row_offsets", lambda image, **p: calls.append(p) or real(image, **p))
    bl.forget_offsets()
    clean = lattice(64, angle=0.3)
    pairs = [(bl.shift_rows(clean, np.random.default_rng(k).normal(0, 1.0, 64)), clean) for k in range(2)]
    grid = bl.grid(reference=("local",), smooth=(1.0,), half_window=(2, 4), sigma=(0.5, 1.0, 1.5))
    bl.tune(bl.align_gaussian, grid, pairs)
    assert len(calls) == 2 * 2                      # 2 images x 2 alignments, not x 3 sigmas
    bl.align_gaussian(pairs[0][0], sigma=0.5, reference="local", smooth=1.0, half_window=2)
    assert len(calls) == 4
    bl.forget_offsets()                             # a timed run pays for its alignment again
    bl.align_gaussian(pairs[0][0], sigma=0.5, reference="local", smooth=1.0, half_window=2)
    assert len(calls) == 5


def test_a_pick_at_the_end_of_its_grid_is_flagged_unless_the_axis_ends_there():
    wiener = bl.BASELINES["anscombe_wiener"]
    top = max(g["noise_factor"] for g in wiener.grid)
    assert bl.edge_axes(wiener, dict(size=5, noise_factor=top)) == ["noise_factor"]
    assert bl.edge_axes(wiener, dict(size=7, noise_factor=2.0)) == ["size"]
    assert bl.edge_axes(wiener, dict(size=3, noise_factor=2.0)) == []        # 3 px: the smallest window
    assert bl.edge_axes(bl.BASELINES["median"], dict(size=3)) == []
    rows = bl.BASELINES["align_rows"]                                       # a union of two sub-grids
    assert bl.edge_axes(rows, dict(reference="previous", smooth=0.0, detrend=0)) == []   # whole frame
    assert bl.edge_axes(rows, dict(reference="previous", smooth=2.0, detrend=9)) == ["smooth"]
    assert bl.edge_axes(rows, dict(reference="local", smooth=3.0, half_window=4)) == ["smooth"]
    assert bl.edge_axes(rows, dict(reference="local", smooth=0.0, half_window=1)) == []  # ends of the axes
    assert bl.edge_axes(rows, dict(reference="local", smooth=1.0, half_window=12)) == ["half_window"]
    assert bl.edge_axes(bl.BASELINES["gaussian"], dict(sigma=1.0)) == []
    switch = bl.Baseline("x", bl.gaussian, bl.grid(flag=(False, True), mode=("a", None), sigma=(0.5, 1.0, 2.0)))
    assert bl.edge_axes(switch, dict(flag=True, mode=None, sigma=2.0)) == ["sigma"]   # a switch has no beyond
