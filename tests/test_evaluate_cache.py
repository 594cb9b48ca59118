"""evaluate.cache: slow baselines' outputs kept between evaluations, and `--cache` on the CLI."""
import csv
import re
import warnings

import numpy as np
import pytest

from evaluate import baselines as bl
from evaluate.__main__ import main
from evaluate.cache import CachedMethod, code_tag
from helpers import lattice


class Counting:
    """A real baseline (Gaussian filter) that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, image, **params):
        self.calls += 1
        return bl.gaussian(image, **params)


def test_a_second_call_reads_the_output_back(tmp_path):
    image = lattice(48, angle=0.2)
    method = Counting()
    cached = CachedMethod("gaussian", method, tmp_path / "cache")
    first = cached(image, sigma=1.0)
    spent = cached.compute_seconds
    again = CachedMethod("gaussian", method, tmp_path / "cache")(image, sigma=1.0)  # a new process
    np.testing.assert_array_equal(first, bl.gaussian(image, sigma=1.0))
    np.testing.assert_array_equal(again, first)
    assert method.calls == 1
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    assert not list((tmp_path / "cache").glob(".*"))  # no temporary file left behind
    reader = CachedMethod("gaussian", method, tmp_path / "cache")
    reader(image, sigma=1.0)
    assert (reader.hits, reader.misses) == (1, 0)
    assert reader.compute_seconds == pytest.approx(spent)  # the stored computing time, not the read's


def test_any_change_of_input_parameters_method_or_code_computes_afresh(tmp_path):
    image = lattice(48, angle=0.2)
    method = Counting()
    cached = CachedMethod("gaussian", method, tmp_path)
    cached(image, sigma=1.0)
    cached(image, sigma=2.0)                           # parameters
    cached(image.astype(np.float32), sigma=1.0)        # dtype, same values
    cached(image.T.copy(), sigma=1.0)                  # shape/content
    bumped = image.copy()
    bumped[3, 5] += 1e-9
    cached(bumped, sigma=1.0)                          # one pixel
    CachedMethod("other", method, tmp_path)(image, sigma=1.0)                    # method name
    CachedMethod("gaussian", method, tmp_path, tag=code_tag() + "x")(image, sigma=1.0)  # code/packages
    assert method.calls == 7
    cached(image, sigma=1.0)
    assert method.calls == 7


def test_code_tag_names_the_baselines_source_and_package_versions():
    tag = code_tag()
    assert "numpy=" + np.__version__ in tag
    assert "scipy=" in tag and "bm3d=" in tag


def test_a_baselines_code_tag_follows_the_code_it_runs_and_not_the_rest():
    """A baseline's tag holds the source of the functions it calls, in evaluate and stem_restore,
    so editing a grid or another method keeps its cached outputs, and editing its code does not."""
    from evaluate import baselines
    from evaluate.cache import _source_closure

    bm3d = _source_closure(baselines.bm3d_denoise)
    for name in ("def bm3d_denoise", "def anscombe(", "def inverse_anscombe", "def estimate_noise_sigma"):
        assert name in bm3d
    assert "def gaussian" not in bm3d and "BASELINES" not in bm3d
    aligned = _source_closure(baselines.align_gaussian)
    assert "def estimate_row_offsets" in aligned and "def shift_rows" in aligned  # stem_restore.rowalign's
    assert "def subpixel_peak" in aligned            # called only inside a comprehension of pair_shifts
    assert "DEFAULT_MAX_SHIFT=6" in aligned          # a constant, read by a default argument
    assert "_OFFSETS_MAX=" in aligned and "_OFFSETS=" not in aligned   # constants, not the memo's contents
    assert code_tag(baselines.bm3d_denoise) != code_tag(baselines.align_gaussian) != code_tag()
    assert code_tag(baselines.bm3d_denoise) == code_tag(baselines.bm3d_denoise)


def test_an_unreadable_entry_is_recomputed_and_replaced(tmp_path):
    image = lattice(48, angle=0.2)
    method = Counting()
    cached = CachedMethod("gaussian", method, tmp_path)
    expected = cached(image, sigma=1.0)
    (entry,) = tmp_path.glob("*.npz")
    entry.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match=f"{entry.name}: unreadable cache entry"):
        out = cached(image, sigma=1.0)
    np.testing.assert_array_equal(out, expected)
    assert method.calls == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached(image, sigma=1.0)  # the entry was rewritten whole
    assert method.calls == 2


def _bm3d_rows(path):
    with open(path, newline="") as fh:
        return {(r["condition"], r["method"]): r for r in csv.DictReader(fh) if r["method"] == "bm3d"}


def test_cli_cache_gives_the_same_table_and_skips_bm3d(tmp_path):
    """Two evaluations with --cache: the second reads every BM3D output back (results.md says
    so), and its BM3D rows - PSNR and the seconds per image - equal the first's."""
    cache = tmp_path / "cache"
    argv = ["--preset", "quick", "--size", "64", "--count", "2", "--val-count", "1", "--seed", "1000",
            "--doses", "300", "--families", "shot_noise", "--no-family-noise", "--baselines", "gaussian,bm3d",
            "--bm3d", "all", "--examples", "0", "--cache", str(cache)]
    assert main(argv + ["--out", str(tmp_path / "a")]) == 0
    entries = len(list(cache.glob("*.npz")))
    # 2 conditions (shot_noise, full mix) x one tuning call per grid value on 1 validation image,
    # + the 2 test images at every grid value on the full mix (its bound; the pick's among them),
    # + the 2 test images at the pick on shot_noise
    from evaluate.baselines import BASELINES
    assert entries == 2 * len(BASELINES["bm3d"].grid) + 2 * len(BASELINES["bm3d"].grid) + 2
    assert main(argv + ["--out", str(tmp_path / "b")]) == 0
    assert len(list(cache.glob("*.npz"))) == entries
    first, second = _bm3d_rows(tmp_path / "a" / "results.csv"), _bm3d_rows(tmp_path / "b" / "results.csv")
    assert len(first) == 2 and first.keys() == second.keys()
    for key in first:
        assert second[key]["psnr_mean"] == first[key]["psnr_mean"]
        assert second[key]["params"] == first[key]["params"]
        assert float(second[key]["seconds_per_image"]) == pytest.approx(float(first[key]["seconds_per_image"]))
    # the full mix's bound reads outputs it has made before back (the pick's, the bound's own)
    first_hits = int(re.search(rf"\((\d+) read back, {entries} computed",
                               (tmp_path / "a" / "results.md").read_text()).group(1))
    assert first_hits in (2, 4)
    assert "- bm3d: outputs cached" in (tmp_path / "b" / "results.md").read_text()
    assert f"({entries + first_hits} read back, 0 computed" in (tmp_path / "b" / "results.md").read_text()


def test_network_tag_follows_the_weights_and_the_engine(caffe, weights, tmp_path, monkeypatch):
    from evaluate.cache import network_tag
    from helpers import DEPLOY, make_weights

    other = make_weights(caffe, tmp_path / "other.caffemodel", seed=12)
    copy = tmp_path / weights.name
    copy.write_bytes(weights.read_bytes())
    assert network_tag(DEPLOY, copy) == network_tag(DEPLOY, weights)  # bytes, not the path
    assert network_tag(DEPLOY, other) != network_tag(DEPLOY, weights)
    monkeypatch.setenv("CAFFE_DNNL_MATH", "fp32")
    fp32 = network_tag(DEPLOY, weights)
    monkeypatch.setenv("CAFFE_DNNL_MATH", "off")  # Caffe's own convolution: other rounding
    assert network_tag(DEPLOY, weights) != fp32 and "math=off" in network_tag(DEPLOY, weights)
    # the libraries actually loaded: Caffe's module and library, and oneDNN where the build has it
    from evaluate.cache import engine_libraries
    names = [p.name for p in engine_libraries()]
    assert any(n.startswith("_caffe") for n in names) and any(n.startswith("libcaffe") for n in names)
    # a GPU's outputs are not a CPU's (the engine, the card), with or without a card here
    monkeypatch.setenv("CAFFE_CUDA_MATH", "tf32")
    on_gpu = network_tag(DEPLOY, weights, gpu=0)
    assert on_gpu != network_tag(DEPLOY, weights) and "engine=gpu:0 " in on_gpu and ";gpu=" in on_gpu
    monkeypatch.setenv("CAFFE_CUDA_MATH", "fp32")
    assert network_tag(DEPLOY, weights, gpu=0) != on_gpu


def test_cli_cache_reads_a_compared_network_back(tmp_path, caffe, weights):
    """--compare with --cache: the second evaluation reads the compared network's outputs back
    (results.md says so) and scores them exactly as the first computed them; the evaluated
    network itself is always run."""
    from helpers import DEPLOY, make_weights

    other = make_weights(caffe, tmp_path / "other.caffemodel", seed=12)
    argv = ["--model", str(DEPLOY), "--weights", str(weights), "--compare", f"old={other}",
            "--preset", "quick", "--size", "64", "--count", "2", "--val-count", "1", "--seed", "1000",
            "--doses", "300", "--families", "shot_noise", "--no-family-noise", "--baselines", "gaussian",
            "--bm3d", "off", "--examples", "0", "--cache", str(tmp_path / "cache")]
    assert main(argv + ["--out", str(tmp_path / "a")]) == 0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 4  # 2 conditions x 2 test images
    assert main(argv + ["--out", str(tmp_path / "b")]) == 0
    rows = []
    for run_dir in ("a", "b"):
        with open(tmp_path / run_dir / "results.csv") as f:
            rows.append({(r["condition"], r["method"]): r["psnr_mean"] for r in csv.DictReader(f)})
    assert rows[0] == rows[1] and ("full mix @ 300", "cnn_old") in rows[0]
    assert "- cnn_old: outputs cached" in (tmp_path / "b" / "results.md").read_text()
    assert "(4 read back, 0 computed" in (tmp_path / "b" / "results.md").read_text()
