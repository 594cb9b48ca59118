"""Row alignment before the net (restoration.prealign, restore.py --align-rows), with the real model."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from helpers import PYTHON, RESTORE_PY

import restoration
from restoration.prealign import RowAligned, align_option
from stem_restore.rowalign import (DEFAULT_ALIGN, OUTPUT_ALIGN, OUTPUT_MIN_INPUT_JITTER, align_rows, parse_align,
                                   shift_rows)


@pytest.fixture(scope="module")
def nets(caffe):
    """The shipped model without and with row alignment first."""
    return restoration.load_model(), restoration.load_model(align_rows=True)


def jittered(seed: int = 11, shape=(96, 100), amplitude: int = 2):
    """A frame whose rows all carry the same random texture along x (counts, Poisson noise), and
    the same frame with each row moved by a random whole number of px up to ``amplitude``: a
    structure whose row shifts cross-correlation determines (a lattice's low-contrast rows
    between atom rows can lock one period off: BENCHMARKS.md "the net after row alignment")."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    profile = ndimage.gaussian_filter1d(rng.normal(size=shape[1]), 2.0)
    expected = 200 + 800 * (profile - profile.min()) / np.ptp(profile)
    clean = rng.poisson(np.broadcast_to(expected, shape)).astype(np.float64)
    shifts = rng.integers(-amplitude, amplitude + 1, shape[0]).astype(float)
    return clean, shift_rows(clean, shifts)


def test_option_text():
    assert align_option(None) is None and align_option(False) is None and align_option("") is None
    assert align_option(True) == DEFAULT_ALIGN
    merged = align_option(" smooth=2 , half_window=3")  # given keys override the defaults
    assert parse_align(merged) == {**parse_align(DEFAULT_ALIGN), "smooth": 2, "half_window": 3}
    assert parse_align("smooth=1.5,reference=previous,detrend=9") == {
        "smooth": 1.5, "reference": "previous", "detrend": 9}
    with pytest.raises(ValueError, match=r"row alignment option 'sigma=2'"):
        align_option("sigma=2")
    with pytest.raises(ValueError, match=r"row alignment option 'local'"):
        align_option("local")
    with pytest.raises(ValueError, match=r"align_rows must be True, False, None"):
        align_option(3)


def test_aligned_model_is_alignment_then_the_net_then_alignment(nets):
    """Bit for bit: the option is row alignment with the default parameters, the same net, and
    row alignment of its output with OUTPUT_ALIGN (float32, as the net's result)."""
    plain, aligned = nets
    _, frame = jittered()
    net_out = plain.restore(align_rows(frame, **parse_align(DEFAULT_ALIGN)), progress=False)
    expected = align_rows(net_out, **parse_align(OUTPUT_ALIGN)).astype(np.float32)
    np.testing.assert_array_equal(aligned.restore(frame, progress=False), expected)
    assert aligned.provenance()["parameters"]["align_rows"] == DEFAULT_ALIGN
    assert aligned.provenance()["parameters"]["align_output"] == OUTPUT_ALIGN
    assert aligned.provenance()["parameters"]["align_output_min_input_jitter_px"] == OUTPUT_MIN_INPUT_JITTER
    assert plain.provenance()["parameters"]["align_rows"] is None
    assert plain.provenance()["parameters"]["align_output"] is None
    assert aligned.engine == plain.engine


def test_output_alignment_takes_out_offsets_that_wander_over_many_rows(nets):
    """Rows moved by a wave of 32 rows' period (2 px) on top of line jitter (whole px up to 2):
    the first alignment, which compares a row with 4 rows either side, takes out the jitter and
    leaves most of the wave (a row's neighbours sit about where it does); the alignment of the
    net's output, row to row, takes most of the rest out."""
    plain, aligned = nets
    clean, _ = jittered(amplitude=0)
    y = np.arange(clean.shape[0])
    wave = 2.0 * np.sin(2 * np.pi * y / 32)
    frame = shift_rows(clean, wave + np.random.default_rng(5).integers(-2, 3, y.size))
    target = plain.restore(clean, progress=False)
    before_only = RowAligned(plain.restorer, DEFAULT_ALIGN, output=None)
    inner = np.s_[8:-8, 8:-8]

    def err(out):
        return np.sqrt(np.mean((out - target)[inner] ** 2))

    e_wave = err(plain.restore(shift_rows(clean, wave), progress=False))
    e_before = err(before_only.restore(frame).restored)
    e_both = err(aligned.restore(frame, progress=False))
    assert aligned.restorer.prepare(frame)[1] >= OUTPUT_MIN_INPUT_JITTER
    assert e_before > 0.6 * e_wave and e_both < 0.5 * e_before, (e_wave, e_before, e_both)


def test_output_alignment_only_where_the_input_shows_jitter(nets):
    """The same wave alone: the first alignment measures a line jitter under
    OUTPUT_MIN_INPUT_JITTER, so the output is left as the net gave it (on a well-restored lattice
    the output's row-to-row shifts follow the lattice, not the scan)."""
    plain, aligned = nets
    clean, _ = jittered(amplitude=0)
    y = np.arange(clean.shape[0])
    frame = shift_rows(clean, 0.4 * np.sin(2 * np.pi * y / 32))
    _, jitter = aligned.restorer.prepare(frame)
    assert 0 < jitter < OUTPUT_MIN_INPUT_JITTER
    before_only = RowAligned(plain.restorer, DEFAULT_ALIGN, output=None)
    np.testing.assert_array_equal(aligned.restore(frame, progress=False), before_only.restore(frame).restored)
    eager = RowAligned(plain.restorer, DEFAULT_ALIGN, min_input_jitter=0.0)
    assert not np.array_equal(eager.restore(frame).restored, before_only.restore(frame).restored)


def test_alignment_undoes_row_shifts_the_net_cannot(nets):
    """Whole-px row shifts of up to 2 px: aligned first, the restored frames are much closer to
    the restored unshifted frames than the net's own results (which keep much of the shifts)."""
    plain, aligned = nets
    inner = np.s_[8:-8, 8:-8]  # away from the edge values that shifting brings in
    err = {"plain": [], "aligned": []}
    for seed in (11, 12, 13):
        clean, frame = jittered(seed)
        target = plain.restore(clean, progress=False)
        for name, net in (("plain", plain), ("aligned", aligned)):
            err[name].append(np.sqrt(np.mean((net.restore(frame, progress=False) - target)[inner] ** 2)))
    assert np.mean(err["aligned"]) < 0.65 * np.mean(err["plain"]), err


def test_stacks_and_small_frames(nets):
    """Each frame of a stack is aligned on its own; frames under 3 rows or 4 columns pass as they are."""
    plain, aligned = nets
    frames = np.stack([jittered(seed=s)[1] for s in (12, 13)])
    out = aligned.restore(frames, progress=False)
    for k in range(2):
        np.testing.assert_array_equal(out[k], aligned.restore(frames[k], progress=False))
    small = np.random.default_rng(14).poisson(500.0, (2, 60)).astype(np.float32)
    np.testing.assert_array_equal(aligned.restore(small, progress=False), plain.restore(small, progress=False))


def test_restore_function_and_cache(caffe):
    _, frame = jittered(seed=15)
    a = restoration.restore(frame, align_rows=True, progress=False)
    b = restoration.restore(frame, progress=False)
    assert not np.array_equal(a, b)  # a different model in the cache, not the plain one again
    np.testing.assert_array_equal(restoration.restore(frame, align_rows=DEFAULT_ALIGN, progress=False), a)


def test_restore_py_option(tmp_path, nets):
    """--align-rows[=PARAMS]: the API's result, the parameters in the TIFF's provenance; a bad
    parameter stops the run before anything is written, naming it."""
    import tifffile

    from restoration.outputs import read_info

    _, frame = jittered(seed=16)
    tifffile.imwrite(tmp_path / "f.tif", frame.astype(np.float32))
    out = tmp_path / "out"
    r = subprocess.run([str(PYTHON), str(RESTORE_PY), str(tmp_path / "f.tif"), "-o", str(out),
                        "--align-rows=smooth=2,half_window=3"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    expected = restoration.load_model(align_rows="smooth=2,half_window=3").restore(
        frame.astype(np.float32), progress=False)
    np.testing.assert_array_equal(tifffile.imread(out / "f_restored.tif"), expected)
    assert read_info(out / "f_restored.tif")["parameters"]["align_rows"] == align_option("smooth=2,half_window=3")

    bad = tmp_path / "bad"
    r = subprocess.run([str(PYTHON), str(RESTORE_PY), str(tmp_path / "f.tif"), "-o", str(bad),
                        "--align-rows=width=3"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "row alignment option 'width=3'" in r.stderr, r.stderr
    assert not bad.exists()


def test_evaluate_runs_every_cnn_with_row_alignment(nets):
    """evaluate --align-rows: its CNN is restore.py --align-rows's (both alignments), and cached
    outputs of a compared net are kept apart from those without alignment."""
    from evaluate.__main__ import build_parser, load_cnn
    from evaluate.cache import network_tag
    from restoration.api import model_files

    _, aligned = nets
    model, weights = model_files(None, None)
    _, x = jittered(seed=17)
    np.testing.assert_array_equal(load_cnn(str(model), str(weights), None, align_rows=True)[1](x),
                                  aligned.restore(x, progress=False))
    assert network_tag(model, weights, align_rows=True) != network_tag(model, weights)
    assert network_tag(model, weights, True, True) != network_tag(model, weights, True)
    assert build_parser().parse_args(["--out", "o", "--align-rows"]).align_rows


def test_error_budget_oracle_puts_jittered_rows_back_onto_the_truth():
    """benchmarks/error_budget.py's oracle: each row moved onto the same row of the clean frame
    by its offset measured against the truth (sub-pixel: the parabola through the correlation
    peak is not exactly at the integer shift, so rows come back to within a fraction of a count),
    away from the row ends (which shift_rows fills with edge values)."""
    import sys

    sys.path.insert(0, str(RESTORE_PY.parent / "benchmarks"))
    import error_budget

    clean, moved = jittered()
    before = np.sqrt(np.mean((moved - clean)[:, 3:-3] ** 2))
    back = error_budget.oracle_rows(moved, clean)
    after = np.sqrt(np.mean((back - clean)[:, 3:-3] ** 2))
    assert before > 50 and after < before / 100


def test_error_budget_band_oracle_undoes_only_the_fast_part_of_the_offsets():
    """error_budget.oracle_band: rows moved by a slow wave (one period over the frame) plus a
    fast one (period 4 rows).  Undoing offsets faster than 9 rows takes out the fast wave and
    leaves the slow one; with the fast wave alone it puts the rows back."""
    import sys

    sys.path.insert(0, str(RESTORE_PY.parent / "benchmarks"))
    import error_budget

    clean, _ = jittered(amplitude=0)
    y = np.arange(clean.shape[0])
    slow = 2.0 * np.sin(2 * np.pi * y / clean.shape[0])
    fast = np.where(y % 4 < 2, 1.0, -1.0)

    def rms(image, shifts):
        return np.sqrt(np.mean((image - shift_rows(clean, shifts))[:, 5:-5] ** 2))

    moved = shift_rows(clean, slow + fast)
    nine = error_budget.oracle_band(moved, clean, 9)
    assert rms(nine, slow) < rms(nine, np.zeros_like(y)) / 3   # what is left is the slow wave
    assert rms(moved, slow) > 3 * rms(nine, slow)               # and the fast one is gone
    alone = error_budget.oracle_band(shift_rows(clean, fast), clean, 9)
    assert rms(alone, np.zeros_like(y)) < rms(nine, slow)

def test_whole_line_aligned_training_pairs(tmp_path):
    """benchmarks/align_frames.py: both folders hold the first ``crop`` columns of the same
    simulated frames (same targets), the aligned one's inputs row-aligned on the whole line
    before cropping; weights as datagen.weights computes them; a rerun with other settings into
    the same folder is refused (no mixed shards)."""
    import h5py

    from datagen.pipeline import make_training_pair, resolve_preset, sample_rng, simulate_pair
    from datagen.weights import loss_weights

    out = tmp_path / "pairs"
    args = [str(PYTHON), str(RESTORE_PY.parent / "benchmarks/align_frames.py"), str(out),
            "--preset", "quick", "--seed", "5", "--count", "4", "--shard-size", "2",
            "--rows", "64", "--cols", "128", "--crop", "64", "--floor-db", "35", "--jobs", "1"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    read = {}
    for kind in ("aligned", "plain"):
        shards = (out / kind / "list.txt").read_text().split()
        assert len(shards) == 2
        with h5py.File(shards[1], "r") as f:
            read[kind] = f["data"][...], f["label"][...], f["weight"][...]
    distorted, clean = simulate_pair(resolve_preset("quick"), (64, 128), sample_rng(5, 2))
    x, y = make_training_pair(distorted[:, :64], clean[:, :64])
    aligned = align_rows(distorted.astype(np.float64), **parse_align(DEFAULT_ALIGN))[:, :64]
    xa, ya = make_training_pair(aligned.astype(np.float32), clean[:, :64])
    assert not np.allclose(xa, x)  # this frame's rows moved
    np.testing.assert_array_equal(read["plain"][0][0, 0], x)
    np.testing.assert_array_equal(read["plain"][1][0, 0], y)
    np.testing.assert_array_equal(read["aligned"][0][0, 0], xa)
    np.testing.assert_array_equal(read["aligned"][1][0, 0], ya)
    for kind in ("aligned", "plain"):
        data, label, weight = read[kind]
        np.testing.assert_allclose(weight, loss_weights(data, label, 35.0), rtol=1e-6)
    r = subprocess.run(args[:-4] + ["--floor-db", "30", "--jobs", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "other settings" in r.stderr
