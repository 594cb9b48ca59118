"""restoration's Python API (issue 14): arrays, stacks, HyperSpy signals, bad input,
bit-for-bit equality with restore.py, the installed package and the docs example."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import REPO
from helpers import PYTHON, RESTORE_PY, micrograph

import restoration
from restoration import InputError, ModelError, api

STEM_RESTORE = REPO / ".venv" / "bin" / "stem-restore"


@pytest.fixture(scope="module")
def model(caffe):
    """The shipped model, loaded once for this module."""
    return restoration.load_model()


def run_outside(tmp_path, code: str, *args, timeout: float = 600) -> subprocess.CompletedProcess:
    """``code`` run by the venv's Python in ``tmp_path`` (outside the repository), no PYTHONPATH."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(PYTHON), str(script), *map(str, args)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------ from outside the repo
def test_frame_stack_and_signal_from_outside_the_repo(tmp_path):
    """The installed package, from another folder: 2-D -> 2-D float32 in the input's units,
    a stack frame by frame, a calibrated Signal2D with axes, metadata and provenance."""
    frame = micrograph((60, 70), seed=1, dtype=np.uint16)
    stack = np.stack([micrograph((52, 50), seed=s, counts=500 * (s + 1)) for s in range(3)])
    np.save(tmp_path / "frame.npy", frame)
    np.save(tmp_path / "stack.npy", stack)
    r = run_outside(tmp_path, """
        import json, sys
        from pathlib import Path
        import numpy as np
        import hyperspy.api as hs
        import restoration

        assert Path.cwd() != Path(restoration.__file__).parents[1]
        frame, stack = np.load("frame.npy"), np.load("stack.npy")
        out = restoration.restore(frame)
        np.save("frame_out.npy", out)
        np.save("stack_out.npy", restoration.restore(stack))
        np.save("stack_frames_out.npy", np.stack([restoration.restore(f) for f in stack]))

        s = hs.signals.Signal2D(stack)
        s.metadata.General.title = "HAADF series"
        s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 300.0)
        nav, (ax, ay) = s.axes_manager[0], s.axes_manager.signal_axes
        nav.name, nav.units, nav.scale = "time", "s", 0.5
        for a, name, scale, offset in [(ax, "x", 0.021, 1.5), (ay, "y", 0.019, -2.0)]:
            a.name, a.units, a.scale, a.offset = name, "nm", scale, offset
        before = s.deepcopy()
        r = restoration.restore(s)
        np.save("signal_out.npy", r.data)
        axes = lambda sig: [(a.name, a.units, a.scale, a.offset, a.size, a.navigate)
                            for a in sig.axes_manager._axes]
        json.dump({
            "file": restoration.__file__,
            "class": type(r).__name__,
            "axes_in": axes(s), "axes_out": axes(r), "axes_before": axes(before),
            "input_unchanged": bool(np.array_equal(s.data, before.data)) and s.data.dtype == before.data.dtype,
            "input_has_provenance": "stem_restore" in s.metadata,
            "title": r.metadata.General.title,
            "beam_energy": r.metadata.Acquisition_instrument.TEM.beam_energy,
            "provenance": r.metadata.stem_restore.as_dictionary(),
        }, open("signal.json", "w"))
    """)
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "signal.json").read_text())
    assert info["file"] == str(REPO / "restoration" / "__init__.py")

    out = np.load(tmp_path / "frame_out.npy")
    assert out.shape == frame.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert abs(float(out.mean()) / float(frame.mean()) - 1) < 0.5  # the input's units, not normalised

    stack_out = np.load(tmp_path / "stack_out.npy")
    assert stack_out.shape == stack.shape and stack_out.dtype == np.float32
    np.testing.assert_array_equal(stack_out, np.load(tmp_path / "stack_frames_out.npy"))
    np.testing.assert_array_equal(np.load(tmp_path / "signal_out.npy"), stack_out)

    assert info["class"] == "Signal2D"
    assert info["axes_out"] == info["axes_in"] == info["axes_before"]
    assert ["x", "nm", 0.021, 1.5, 50, False] in info["axes_out"]
    assert info["input_unchanged"] and not info["input_has_provenance"]
    assert info["title"] == "HAADF series" and info["beam_energy"] == 300.0
    prov = info["provenance"]
    assert prov["weights"] == str(REPO / "models" / "stem_restore.caffemodel")
    assert len(prov["weights_sha256"]) == 64 and prov["date"].endswith("+00:00")
    assert prov["parameters"]["engine"] == "layers" and prov["parameters"]["conv_engine"]
    assert len(prov["norm_offset"]) == 3 and prov["source_dtype"] == "float32"


# ------------------------------------------------------------------ restore.py == API
def test_api_equals_restore_py_output_bit_for_bit(tmp_path, model):
    """restore.py's <name>_restored.tif and the stem-restore command's hold exactly the
    API's result (a uint16 frame, a float32 stack, a frame below the 49 px receptive field)."""
    import tifffile

    from restoration.outputs import read_info

    inputs = {"frame": micrograph((64, 72), seed=3, dtype=np.uint16),
              "stack": np.stack([micrograph((50, 56), seed=s) for s in (4, 5)]),
              "small": micrograph((30, 41), seed=6)}
    src = tmp_path / "in"
    src.mkdir()
    for name, a in inputs.items():
        tifffile.imwrite(src / f"{name}.tif", a)
    runs = {"restore.py": [str(PYTHON), str(RESTORE_PY)], "stem-restore": [str(STEM_RESTORE)]}
    for label, cmd in runs.items():
        out = tmp_path / label
        r = subprocess.run(cmd + [str(src), "-o", str(out)], capture_output=True, text=True,
                           timeout=600, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        for name, a in inputs.items():
            written = tifffile.imread(out / f"{name}_restored.tif")
            api_result = model.restore(a, progress=False)
            assert written.dtype == api_result.dtype == np.float32
            assert written.shape == a.shape
            assert np.array_equal(written, api_result), f"{label} {name}"
        assert read_info(out / "frame_restored.tif")["weights_sha256"] == model.weights_sha256


# ------------------------------------------------------------------ bad input
BAD_INPUTS = [
    ("1-D", np.ones(100, np.float32), r"2-D frame \(H, W\) or a stack \(N, H, W\), got 1-D"),
    ("4-D", np.ones((2, 2, 50, 50), np.float32), r"got 4-D data of shape \(2, 2, 50, 50\)"),
    ("0-D", np.float32(3.0), r"got 0-D"),
    ("complex", np.ones((50, 50), np.complex64), r"complex-valued data"),
    ("bool", np.ones((50, 50), bool), r"boolean data is a mask"),
    ("string", np.full((50, 50), "a"), r"unsupported data type <U1"),
    ("object", np.empty((50, 50), object), r"unsupported data type object"),
    ("ragged list", [[1.0, 2.0], [3.0]], r"not an image array"),
    ("nan", np.where(np.eye(50, dtype=bool), np.nan, 1.0), r"contains 50 NaN value"),
    ("inf", np.where(np.eye(50, dtype=bool), -np.inf, 1.0).astype(np.float32), r"50 infinite"),
    ("nan in 2nd frame", np.stack([np.ones((50, 50)), np.full((50, 50), np.nan)]),
     r"first in frame 2 of 2"),
    ("empty 2-D", np.ones((0, 0), np.float32), r"empty image"),
    ("empty stack", np.ones((0, 50, 50), np.float32), r"empty image"),
    ("1 px", np.ones((1, 1), np.float32), r"1 x 1 px is too small"),
    ("1 row", np.ones((1, 80), np.uint8), r"1 x 80 px is too small"),
    ("beyond float32", np.full((50, 50), 1e39), r"do not fit float32"),
]


@pytest.mark.parametrize("image, pattern", [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_a_clear_error(image, pattern, model):
    """Before the model is loaded (restore) and with a loaded model (Model.restore)."""
    with pytest.raises(InputError, match=pattern):
        restoration.restore(image)
    with pytest.raises(InputError, match=pattern):
        model.restore(image)


def test_bad_signals_are_clear_errors(model):
    import hyperspy.api as hs

    with pytest.raises(InputError, match=r"Signal2D\) is needed, got Signal1D with 1"):
        model.restore(hs.signals.Signal1D(np.ones((4, 50), np.float32)))
    with pytest.raises(InputError, match=r"contains 1 NaN"):
        data = np.ones((50, 50), np.float32)
        data[3, 4] = np.nan
        model.restore(hs.signals.Signal2D(data))
    with pytest.raises(InputError, match=r"complex-valued"):
        model.restore(hs.signals.ComplexSignal2D(np.ones((50, 50), np.complex64)))


def test_a_path_is_not_an_array():
    """A file name passed to restore() says how to read it (before any model is loaded)."""
    for bad in ("frame.tif", REPO / "frame.tif", None):
        with pytest.raises(InputError, match=r"expected an image array or a HyperSpy Signal2D.*read it first"):
            restoration.restore(bad)


def test_rgb_arrays_and_signals_are_restored_as_luminance(model):
    """(H, W, 3) is a colour picture, not 40 frames 3 px wide; HyperSpy's rgb8 (an RGB DM file's
    signal) the same: both restored as their luminance, with a warning, like restore.py's files."""
    import hyperspy.api as hs

    grey = micrograph((40, 44), seed=3)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    with pytest.warns(UserWarning, match="luminance"):
        out = model.restore(rgb, progress=False)
    np.testing.assert_allclose(out, model.restore(grey, progress=False), rtol=1e-5, atol=1e-3)
    signal = hs.signals.Signal1D(np.clip(rgb, 0, 255).astype(np.uint8))
    signal.change_dtype("rgb8")
    with pytest.warns(UserWarning, match="luminance"):
        restored = model.restore(signal, progress=False)
    assert restored.data.shape == (40, 44) and restored.data.dtype == np.float32
    assert "stem_restore" in restored.metadata
    # a signal names its image axes: a stack of 8 x 3 px images stays one (no colour guessed)
    thin = hs.signals.Signal2D(np.ones((6, 8, 3), np.float32))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model.restore(thin, progress=False).data.shape == (6, 8, 3)


def test_channel_axis_and_masked_arrays(model):
    """(H, W, 1) from an image library is one frame, not 40 frames 1 px wide; a masked array's
    mask cannot be honoured by a convolution: said, not dropped in silence."""
    grey = micrograph((40, 44), seed=3)
    expected = model.restore(grey, progress=False)
    np.testing.assert_array_equal(model.restore(grey[..., None], progress=False), expected)
    masked = np.ma.masked_greater(grey, np.percentile(grey, 99))
    with pytest.warns(UserWarning, match=r"masked array: the mask \(\d+ pixels\) is ignored"):
        np.testing.assert_array_equal(model.restore(masked, progress=False), expected)


def test_bad_options_are_clear_errors(tmp_path, model):
    with pytest.raises(ValueError, match=r"--tile must be 0 or larger than 48 px \(got 10\)"):
        restoration.load_model(tile=10)
    with pytest.raises(ValueError, match=r"engine must be one of auto, layers, net \(got 'fast'\)"):
        restoration.load_model(engine="fast")
    with pytest.raises(ModelError, match=r"weights .*none\.caffemodel: no such file"):
        restoration.restore(np.ones((50, 50)), weights=tmp_path / "none.caffemodel")
    (tmp_path / "bad.caffemodel").write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"bad\.caffemodel"):
        restoration.load_model(weights=tmp_path / "bad.caffemodel")
    with pytest.raises(RuntimeError, match=r"gpu must be a GPU number"):
        restoration.load_model(gpu=-1)
    with pytest.raises(ValueError, match=r"not with a loaded Model"):
        restoration.restore(np.ones((50, 50)), model=model, tile=0)


# ------------------------------------------------------------------ model reuse, progress
def test_restore_caches_the_default_model(caffe):
    frame = micrograph((50, 50), seed=7)
    first = restoration.restore(frame, progress=False)
    cached = api.cached_model()
    second = restoration.restore(frame, progress=False)
    assert api.cached_model() is cached and list(api._CACHE.values()) == [cached]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(restoration.restore(frame, model=cached), first)


def test_tile_does_not_change_the_result(model):
    frame = micrograph((120, 130), seed=8)
    windowed = restoration.load_model(tile=60, engine="net").restore(frame, progress=False)
    np.testing.assert_allclose(windowed, model.restore(frame, progress=False), rtol=1e-4, atol=1e-3)


def test_progress_bar(model, capsys):
    stack = np.stack([micrograph((50, 50), seed=s) for s in range(2)])
    model.restore(stack, progress=True)
    assert "2/2" in capsys.readouterr().err
    model.restore(stack)  # default: off when stderr is not a terminal (as under pytest)
    model.restore(stack, progress=False)
    assert capsys.readouterr().err == ""


def test_show_progress_rules(monkeypatch):
    monkeypatch.setattr(api, "interactive", lambda: True)
    assert api.show_progress(None, 2, 100) and api.show_progress(None, 1, api.LONG_FRAME_PX)
    assert not api.show_progress(None, 1, 100) and not api.show_progress(False, 5, 100)
    monkeypatch.setattr(api, "interactive", lambda: False)
    assert not api.show_progress(None, 5, 10**7) and api.show_progress(True, 1, 1)


# ------------------------------------------------------------------ package, docs
def test_console_script_and_package_names(tmp_path):
    r = subprocess.run([str(STEM_RESTORE), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("usage: stem-restore"), r.stderr
    r = run_outside(tmp_path, """
        import importlib.util, sys
        import datagen, restoration
        print(importlib.util.find_spec("evaluate") is None, importlib.util.find_spec("tests") is None)
    """)
    assert r.returncode == 0 and r.stdout.split() == ["True", "True"], r.stderr


def test_docs_example_runs(tmp_path):
    """docs/example_hyperspy.py: writes a calibrated .hspy, loads, restores, saves, plots."""
    import hyperspy.api as hs

    r = subprocess.run([str(PYTHON), str(REPO / "docs" / "example_hyperspy.py"), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "example_hyperspy.png").stat().st_size > 10_000
    restored = hs.load(tmp_path / "out" / "example_restored.hspy")
    assert restored.axes_manager.signal_axes[0].scale == pytest.approx(0.02)
    assert restored.axes_manager.signal_axes[0].units == "nm"
    assert "weights_sha256" in restored.metadata.stem_restore
    assert restored.data.dtype == np.float32 and restored.data.shape == (256, 256)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_gpu_engine_info_names_the_engine_and_its_math(monkeypatch, tmp_path):
    """On a GPU the provenance line names the engine (cuDNN where the build loaded it, unless
    CAFFE_CUDNN=0; else Caffe's own im2col + cuBLAS) and the math the GPU build uses
    (CAFFE_CUDA_MATH, default tf32), as the CPU's names the oneDNN engine's."""
    from restoration import engine

    monkeypatch.delenv("CAFFE_CUDA_MATH", raising=False)
    monkeypatch.delenv("CAFFE_CUDNN", raising=False)
    assert not engine.cudnn_loaded()  # this machine's build is the CPU one
    assert engine.conv_engine_info(0) == "gpu:0 cublas tf32"
    monkeypatch.setenv("CAFFE_CUDA_MATH", "fp32")
    assert engine.conv_engine_info(1) == "gpu:1 cublas fp32"
    # A process that has cuDNN mapped (as /proc/self/maps lists it in a cuDNN build):
    maps = tmp_path / "maps"
    maps.write_text("7f0000000000-7f0000100000 r-xp 00000000 08:01 42 /opt/torch/lib/libcudnn.so.9\n")
    assert engine.cudnn_loaded(maps)
    monkeypatch.setattr(engine, "cudnn_loaded", lambda: True)
    assert engine.conv_engine_info(0) == "gpu:0 cudnn fp32"
    monkeypatch.setenv("CAFFE_CUDNN", "0")
    assert engine.conv_engine_info(0) == "gpu:0 cublas fp32"
