"""Bad input: each case gets a clear one-line reason; in a run, the file is named,
the other files are still restored, and the exit status is non-zero."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from helpers import PYTHON, RESTORE_PY, RSCIIO_DATA, micrograph, write_mrc, write_png, write_tiff
from restoration.io import InputError, read_image


def _truncate(src, dst, keep=0.5):
    raw = src.read_bytes()
    dst.write_bytes(raw[: int(len(raw) * keep)])
    return dst


def _good_tiff(p):
    return write_tiff(p, micrograph((40, 50), dtype=np.uint16))


# Each maker writes one bad file into a folder and returns (path, expected reason regex).
def bad_missing(d):
    return d / "missing.tif", "no such file"


def bad_empty_file(d):
    p = d / "empty.tif"
    p.write_bytes(b"")
    return p, "empty file"


def bad_truncated_tiff(d):
    return _truncate(_good_tiff(d / "src.tif"), d / "trunc.tif", 0.3), "cannot read as TIFF"


def bad_garbage_tiff(d):
    p = d / "garbage.tif"
    p.write_bytes(b"this is not a TIFF file at all" * 10)
    return p, "cannot read as TIFF"


def bad_unsupported_suffix(d):
    p = d / "notes.txt"
    p.write_text("hello")
    return p, "unsupported file type '.txt'"


def bad_nan_npy(d):
    a = micrograph((30, 30), dtype=np.float32)
    a[3, 4] = np.nan
    np.save(d / "nan.npy", a)
    return d / "nan.npy", "1 NaN"


def bad_inf_tiff(d):
    a = micrograph((30, 30), dtype=np.float32)
    a[0, :2] = np.inf
    return write_tiff(d / "inf.tif", a), "2 infinite"


def bad_nan_in_stack_frame(d):
    a = np.stack([micrograph((30, 30), seed=k) for k in range(3)])
    a[2, 5, 5] = np.nan
    return write_tiff(d / "nanstack.tif", a, photometric="minisblack"), "1 NaN value.* frame 3 of 3"


def bad_1d_npy(d):
    np.save(d / "line.npy", np.arange(100.0))
    return d / "line.npy", "1-D data"


def bad_empty_array_npy(d):
    np.save(d / "zero.npy", np.zeros((0, 10), np.float32))
    return d / "zero.npy", "empty image"


def bad_single_row_image(d):
    np.save(d / "row.npy", np.ones((1, 64), np.float32))
    return d / "row.npy", "too small"


def bad_complex_npy(d):
    np.save(d / "fft.npy", np.ones((16, 16), np.complex64))
    return d / "fft.npy", "complex"


def bad_object_npy(d):
    np.save(d / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return d / "obj.npy", "pickle"


def bad_bool_npy(d):
    np.save(d / "mask.npy", np.ones((16, 16), bool))
    return d / "mask.npy", "boolean"


def bad_string_npy(d):
    np.save(d / "str.npy", np.array([["a", "b"], ["c", "d"]]))
    return d / "str.npy", "unsupported data type"


def bad_truncated_npy(d):
    np.save(d / "full.npy", micrograph((40, 40)))
    return _truncate(d / "full.npy", d / "cut.npy", 0.5), "cannot read as NPY"


def bad_truncated_png(d):
    write_png(d / "full.png", micrograph((60, 60), dtype=np.uint8))
    return _truncate(d / "full.png", d / "cut.png", 0.5), "cannot read as PNG/JPEG"


def bad_truncated_jpeg(d):
    from PIL import Image

    Image.fromarray(micrograph((64, 64), dtype=np.uint8)).save(d / "full.jpg")
    return _truncate(d / "full.jpg", d / "cut.jpg", 0.4), "cannot read as PNG/JPEG"


def bad_mrc_header(d):
    write_mrc(d / "full.mrc", micrograph((30, 30)))
    raw = bytearray((d / "full.mrc").read_bytes())
    raw[208:212] = b"XXXX"  # the MAP identifier
    (d / "badmap.mrc").write_bytes(bytes(raw))
    return d / "badmap.mrc", "cannot read as MRC"


def bad_truncated_mrc(d):
    write_mrc(d / "full2.mrc", micrograph((40, 40)))
    return _truncate(d / "full2.mrc", d / "cut.mrc", 0.6), "cannot read as MRC"


def bad_emd_not_hdf5(d):
    p = d / "fake.emd"
    p.write_bytes(b"\x00\x01not hdf5" * 20)
    return p, "not an HDF5 file"


def bad_emd_without_image(d):
    import h5py

    with h5py.File(d / "noimage.emd", "w") as f:
        f.attrs["version_major"] = 0
        f.attrs["version_minor"] = 2
        g = f.create_group("data/spectrum")
        g.attrs["emd_group_type"] = 1
        g.create_dataset("data", data=np.arange(50.0))
        dim = g.create_dataset("dim1", data=np.arange(50.0))
        dim.attrs["name"], dim.attrs["units"] = "E", "[e_V]"
    return d / "noimage.emd", "no 2-D image"


def bad_truncated_dm3(d):
    src = RSCIIO_DATA / "digitalmicrograph" / "2D" / "test_STEM_image.dm3"
    return _truncate(src, d / "cut.dm3", 0.5), "cannot read as DM3/DM4"


def bad_complex_dm4(d):
    src = RSCIIO_DATA / "digitalmicrograph" / "2D" / "test-3.dm4"
    shutil.copy(src, d / "complex.dm4")
    return d / "complex.dm4", "complex"


def bad_truncated_ser(d):
    src = RSCIIO_DATA / "tia" / "old" / "64x64_TEM_images_acquire_1.ser"
    return _truncate(src, d / "cut_1.ser", 0.5), "cannot read as TIA SER"


def bad_directory_named_like_image(d):
    (d / "folder.tif").mkdir()
    return d / "folder.tif", "is a directory"


BAD_CASES = [v for k, v in sorted(globals().items()) if k.startswith("bad_")]


def test_at_least_fifteen_cases():
    assert len(BAD_CASES) >= 15


@pytest.mark.parametrize("maker", BAD_CASES, ids=[m.__name__[4:] for m in BAD_CASES])
def test_reader_gives_one_line_reason(tmp_path, maker):
    path, reason = maker(tmp_path)
    with pytest.raises(InputError, match=reason) as exc:
        read_image(path)
    msg = str(exc.value)
    assert "\n" not in msg and 0 < len(msg) < 300


def test_run_goes_on_names_each_bad_file_and_fails(tmp_path, weights):
    """One run over all bad files plus two good ones: the good ones are restored,
    every bad one is reported by name, the exit status is 1, with a summary."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    bad = []
    for maker in BAD_CASES:
        sub = tmp_path / maker.__name__
        sub.mkdir()
        path, _ = maker(sub)
        bad.append(path)
    good = [_good_tiff(inputs / "good1.tif"), write_png(inputs / "good2.png", micrograph((50, 40), dtype=np.uint8))]
    out = tmp_path / "out"
    r = subprocess.run([str(PYTHON), str(RESTORE_PY), *map(str, good + bad), "-o", str(out),
                        "--weights", str(weights)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stderr
    for g in good:
        assert (out / f"{g.stem}_restored.tif").exists()
        assert (out / f"{g.stem}_difference.tif").exists()
    err_lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    for b in bad:
        assert any(str(b) in ln for ln in err_lines), f"{b} not reported:\n{r.stderr}"
    assert f"2 restored, 0 skipped, {len(bad)} failed" in r.stderr
