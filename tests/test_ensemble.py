"""The slow-scan mirror self-ensemble (restoration.ensemble, restore.py --self-ensemble), with the real model."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from helpers import PYTHON, RESTORE_PY

import restoration
from restoration.ensemble import mirror_mean
from stem_restore.rowalign import (DEFAULT_ALIGN, OUTPUT_ALIGN, OUTPUT_MIN_INPUT_JITTER, align_rows, parse_align,
                                   shift_rows)


@pytest.fixture(scope="module")
def nets(caffe):
    """The shipped model, and the same model as the mirror self-ensemble."""
    return restoration.load_model(), restoration.load_model(self_ensemble=True)


def frame(seed: int = 3, shape=(70, 90)) -> np.ndarray:
    """Poisson counts on a smooth random field: not symmetric under the mirror."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), 3.0)
    return rng.poisson(300 + 2000 * (field - field.min())).astype(np.float32)


def test_the_mean_of_the_net_and_its_mirror(nets):
    """Bit for bit the mean of the two passes; differs from one pass; mirroring the input mirrors
    the output exactly (the two passes swap, and float addition commutes)."""
    plain, ens = nets
    x = frame()
    out = ens.restore(x, progress=False)
    np.testing.assert_array_equal(out, mirror_mean(lambda f: plain.restore(f, progress=False), x))
    assert out.dtype == np.float32 and out.shape == x.shape
    assert np.abs(out - plain.restore(x, progress=False)).max() > 1.0
    np.testing.assert_array_equal(ens.restore(np.flipud(x), progress=False), np.flipud(out))
    assert ens.provenance()["parameters"]["self_ensemble"] == "slow-scan mirror mean"
    assert plain.provenance()["parameters"]["self_ensemble"] is None


def test_stacks_and_alignment_first(nets, caffe):
    """A stack is its frames one by one; with --align-rows the frame is aligned, ensembled, and the
    ensemble's output aligned."""
    _, ens = nets
    frames = np.stack([frame(4), frame(5)])
    out = ens.restore(frames, progress=False)
    for k in range(2):
        np.testing.assert_array_equal(out[k], ens.restore(frames[k], progress=False))
    both = restoration.load_model(align_rows=True, self_ensemble=True)
    shaken = shift_rows(frames[0], np.random.default_rng(6).integers(-2, 3, frames.shape[1]))  # line jitter
    assert both.restorer.prepare(shaken)[1] >= OUTPUT_MIN_INPUT_JITTER  # so the output is aligned too
    aligned = align_rows(shaken, **parse_align(DEFAULT_ALIGN))
    expected = align_rows(ens.restore(aligned, progress=False), **parse_align(OUTPUT_ALIGN)).astype(np.float32)
    np.testing.assert_array_equal(both.restore(shaken, progress=False), expected)


def test_restore_function_caches_by_option(nets):
    plain, ens = nets
    x = frame(6)
    np.testing.assert_array_equal(restoration.restore(x, self_ensemble=True, progress=False),
                                  ens.restore(x, progress=False))
    np.testing.assert_array_equal(restoration.restore(x, progress=False), plain.restore(x, progress=False))
    with pytest.raises(ValueError, match="self_ensemble"):
        restoration.restore(x, model=plain, self_ensemble=True)
    np.testing.assert_array_equal(restoration.restore(x, model=plain, self_ensemble=None, progress=False),
                                  plain.restore(x, progress=False))
    with pytest.raises(ValueError, match="self_ensemble must be True, False or None"):
        restoration.load_model(self_ensemble="false")


def test_closer_to_the_truth_on_noisy_frames(nets):
    """What the option is for: on simulated shot-noise frames (the evaluation's family, 128²) the
    ensemble's mean PSNR beats one pass (BENCHMARKS.md: +0.26 dB at 256², dose 300)."""
    import datagen
    from evaluate import run
    from evaluate.metrics import psnr

    plain, ens = nets
    preset = run.condition_preset(datagen.load_preset("training"), run.Condition("shot_noise", 300.0))
    pairs = datagen.simulate_pairs(preset, 4, 128, 1000)
    gain = [psnr(ens.restore(d, progress=False), c) - psnr(plain.restore(d, progress=False), c) for d, c in pairs]
    assert np.mean(gain) > 0.05, gain


def test_restore_py_option(tmp_path, nets):
    """--self-ensemble: the API's result, recorded in the TIFF's provenance."""
    import tifffile

    from restoration.outputs import read_info

    _, ens = nets
    x = frame(7)
    tifffile.imwrite(tmp_path / "f.tif", x)
    out = tmp_path / "out"
    r = subprocess.run([str(PYTHON), str(RESTORE_PY), str(tmp_path / "f.tif"), "-o", str(out), "--self-ensemble"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(tifffile.imread(out / "f_restored.tif"), ens.restore(x, progress=False))
    assert read_info(out / "f_restored.tif")["parameters"]["self_ensemble"] == "slow-scan mirror mean"


def test_evaluate_runs_every_cnn_as_the_ensemble(nets):
    """evaluate --self-ensemble: its CNN is restore.py --self-ensemble's, and cached outputs of a
    compared net are kept apart from those of the single pass."""
    from evaluate.__main__ import build_parser, load_cnn
    from evaluate.cache import network_tag
    from restoration.api import model_files

    _, ens = nets
    model, weights = model_files(None, None)
    x = frame(8)
    np.testing.assert_array_equal(load_cnn(str(model), str(weights), None, True)[1](x), ens.restore(x, progress=False))
    assert network_tag(model, weights, True) != network_tag(model, weights)
    assert build_parser().parse_args(["--out", "o", "--self-ensemble"]).self_ensemble


def test_evaluate_self_ensemble_scores_the_ensemble(tmp_path, nets):
    """End to end: `python -m evaluate --self-ensemble` scores restore.py --self-ensemble's output
    as its CNN (the same mean PSNR from the same test images) and says so in results.md."""
    import csv

    import datagen
    from evaluate import run
    from evaluate.__main__ import main
    from restoration.api import model_files

    _, ens = nets
    model, weights = model_files(None, None)
    out = tmp_path / "eval"
    assert main(["--model", str(model), "--weights", str(weights), "--preset", "quick", "--size", "64",
                 "--count", "2", "--val-count", "1", "--seed", "1000", "--doses", "300", "--families", "shot_noise",
                 "--no-family-noise", "--baselines", "gaussian", "--bm3d", "off", "--examples", "0",
                 "--self-ensemble", "--out", str(out)]) == 0
    with open(out / "results.csv") as f:
        cnn = next(float(r["psnr_mean"]) for r in csv.DictReader(f)
                   if r["condition"] == "shot_noise @ 300" and r["method"] == "cnn")
    preset = run.condition_preset(datagen.load_preset("quick"), run.Condition("shot_noise", 300.0))
    pairs = datagen.simulate_pairs(preset, 2, 64, 1000)
    expected = run.score_images([ens.restore(d, progress=False) for d, _ in pairs], [c for _, c in pairs])
    assert cnn == pytest.approx(expected["psnr_mean"], rel=1e-5)
    assert "--self-ensemble" in (out / "results.md").read_text()
