"""restore.py end to end: folder mirroring, outputs and their metadata, stacks,
--figure, --overwrite, atomic writes, untouched inputs."""
from __future__ import annotations

import hashlib
import shutil
import subprocess

import numpy as np
import pytest
import tifffile

from helpers import PYTHON, RESTORE_PY, RSCIIO_DATA, micrograph, write_mrc, write_png, write_tiff
from restoration.cli import default_model, main
from restoration.engine import Restorer
from restoration.io import read_image
from restoration.outputs import read_info


def sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def tree_hashes(root):
    return {p.relative_to(root): sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def session(tmp_path):
    """A microscopist's folder: several formats, sub-folders, a stack, a non-image file."""
    d = tmp_path / "session"
    (d / "sub" / "deeper").mkdir(parents=True)
    write_tiff(d / "a.tif", micrograph((64, 70), dtype=np.uint16))
    write_png(d / "e.png", micrograph((50, 60), dtype=np.uint8))
    write_mrc(d / "f.mrc", micrograph((52, 52)), voxel_size=(1.5, 1.5, 1.5))
    (d / "notes.txt").write_text("not an image")
    np.save(d / "sub" / "b.npy", np.stack([micrograph((40, 44), seed=k) for k in range(2)]))
    shutil.copy(RSCIIO_DATA / "digitalmicrograph" / "2D" / "test_STEM_image.dm3", d / "sub" / "deeper" / "c.dm3")
    for f in ("64x64_TEM_images_acquire_1.ser", "64x64_TEM_images_acquire.emi"):
        shutil.copy(RSCIIO_DATA / "tia" / "old" / f, d / "sub" / f)
    shutil.copy(RSCIIO_DATA / "emd" / "fei_example_tem_stack.emd", d / "sub" / "velox.emd")
    return d


def run(*args):
    return main([str(a) for a in args])


def test_recursive_folder_mirrors_structure_with_metadata(session, tmp_path, weights, capsys):
    before = tree_hashes(session)
    out = tmp_path / "out"
    assert run(session, "-o", out, "--recursive", "--figure", "--weights", weights) == 0
    assert tree_hashes(session) == before  # inputs never modified
    expected = ["a", "e", "f", "sub/b", "sub/deeper/c", "sub/64x64_TEM_images_acquire_1", "sub/velox"]
    for stem in expected:
        for kind in ("restored.tif", "difference.tif", "figure.png"):
            assert (out / f"{stem}_{kind}").is_file(), f"{stem}_{kind} missing"
    assert not [p for p in out.rglob(".*")], "temporary files left behind"
    assert not list(out.rglob("notes*"))

    # restored == the engine's result; difference == raw - restored; float32 TIFFs
    raw = read_image(session / "a.tif").signals[0].data
    restored = tifffile.imread(out / "a_restored.tif")
    diff = tifffile.imread(out / "a_difference.tif")
    assert restored.dtype == np.float32 and restored.shape == raw.shape
    np.testing.assert_array_equal(restored, Restorer.from_files(default_model(), weights).restore(raw).restored)
    np.testing.assert_allclose(diff, raw.astype(np.float32) - restored, rtol=0, atol=1e-3)

    info = read_info(out / "a_restored.tif")
    assert info["source"] == str((session / "a.tif").resolve())
    assert info["weights_sha256"] == sha(weights)
    assert info["model"] == str(default_model().resolve())  # no --model given
    assert info["parameters"]["tile"] == "auto" and info["parameters"]["engine"] == "layers"
    assert info["norm_stats"][0]["tile"] == list(raw.shape)  # one window: the whole image
    assert info["kind"] == "restored"
    assert read_info(out / "a_difference.tif")["kind"].startswith("difference")

    # pixel size kept (DM3: 0.2485 nm; MRC 1.5 Å = 0.15 nm; Velox pm -> nm)
    ps = read_image(out / "sub/deeper/c_restored.tif").signals[0].pixel_size
    assert ps.unit == "nm" and ps.x == pytest.approx(0.248538, rel=1e-5)
    assert read_info(out / "sub/deeper/c_restored.tif")["pixel_size"]["x"] == pytest.approx(0.248538, rel=1e-6)
    assert read_image(out / "f_restored.tif").signals[0].pixel_size.x == pytest.approx(0.15, rel=1e-5)

    # stacks stay stacks
    s = read_image(out / "sub/b_restored.tif").signals[0]
    assert s.data.shape == (2, 40, 44)
    v = read_image(out / "sub/velox_restored.tif").signals[0]
    assert v.data.shape == (2, 3, 3) and v.pixel_size.x == pytest.approx(8.1729e-3, rel=1e-4)

    from PIL import Image
    with Image.open(out / "a_figure.png") as im:
        assert im.format == "PNG" and im.size[0] >= 600
    assert "7 restored, 0 skipped, 0 failed" in capsys.readouterr().err


def test_non_recursive_takes_top_level_only(session, tmp_path, weights):
    out = tmp_path / "out"
    assert run(session, "-o", out, "--weights", weights) == 0
    names = sorted(p.name for p in out.rglob("*_restored.tif"))
    assert names == ["a_restored.tif", "e_restored.tif", "f_restored.tif"]


def test_existing_outputs_skipped_unless_overwrite(tmp_path, weights, capsys):
    src = write_tiff(tmp_path / "x.tif", micrograph((50, 50), dtype=np.uint16))
    out = tmp_path / "out"
    assert run(src, "-o", out, "--weights", weights) == 0
    target = out / "x_restored.tif"
    target.write_bytes(b"sentinel")
    capsys.readouterr()
    assert run(src, "-o", out, "--weights", weights) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "0 restored, 1 skipped" in err
    assert target.read_bytes() == b"sentinel"
    assert run(src, "-o", out, "--weights", weights, "--overwrite") == 0
    assert tifffile.imread(target).shape == (50, 50)


def test_failed_write_leaves_no_partial_file(tmp_path, weights, capsys):
    src = write_tiff(tmp_path / "y.tif", micrograph((50, 50), dtype=np.uint16))
    out = tmp_path / "out"
    (out / "y_restored.tif").mkdir(parents=True)  # os.replace onto a folder fails
    assert run(src, "-o", out, "--weights", weights, "--overwrite") == 1
    assert "error: " in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["y_restored.tif"]


def test_same_stem_different_formats_keep_suffix(tmp_path, weights):
    d = tmp_path / "in"
    d.mkdir()
    write_tiff(d / "img.tif", micrograph((50, 50), dtype=np.uint16))
    write_png(d / "img.png", micrograph((50, 50), dtype=np.uint8))
    out = tmp_path / "out"
    assert run(d, "-o", out, "--weights", weights) == 0
    assert (out / "img_tif_restored.tif").exists() and (out / "img_png_restored.tif").exists()


def test_missing_weights_is_a_clear_error(tmp_path):
    src = write_tiff(tmp_path / "z.tif", micrograph((50, 50)))
    r = subprocess.run([str(PYTHON), str(RESTORE_PY), str(src), "-o", str(tmp_path / "o"),
                        "--weights", str(tmp_path / "none.caffemodel")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "--weights" in r.stderr and "run_training.sh" in r.stderr
    assert not (tmp_path / "o").exists()


def test_weights_given_as_a_folder_says_so(tmp_path):
    src = write_tiff(tmp_path / "z.tif", micrograph((50, 50)))
    r = subprocess.run([str(PYTHON), str(RESTORE_PY), str(src), "-o", str(tmp_path / "o"),
                        "--weights", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "a folder, not a file" in r.stderr and "ship_model.sh" in r.stderr


def test_align_rows_without_a_value_does_not_eat_an_input():
    """``--align-rows a.tif``: argparse gives the option the file name; it is an input."""
    from restoration.cli import build_parser, parse_args

    def parse(*argv):
        return parse_args(build_parser(), list(argv))

    a = parse("-o", "out", "--align-rows", "a.tif", "b.tif")
    assert a.inputs == ["a.tif", "b.tif"] and a.align_rows is True
    a = parse("a.tif", "--align-rows", "b.tif", "-o", "out")
    assert a.inputs == ["a.tif", "b.tif"] and a.align_rows is True
    a = parse("--align-rows", "smooth=2", "a.tif", "-o", "out")
    assert a.inputs == ["a.tif"] and a.align_rows == "smooth=2"
    assert parse("a.tif", "-o", "out").align_rows is None
    with pytest.raises(SystemExit):
        parse("-o", "out", "--align-rows")  # no input at all


def test_entry_point_tiles_and_help(tmp_path, weights):
    h = subprocess.run([str(PYTHON), str(RESTORE_PY), "--help"], capture_output=True, text=True)
    assert h.returncode == 0 and "--recursive" in h.stdout and "--tile" in h.stdout
    src = write_tiff(tmp_path / "big.tif", micrograph((130, 150), dtype=np.uint16))
    runs = {"0": ["--tile", "0"], "80": ["--tile", "80"], "net": ["--engine", "net", "--tile", "80"]}
    for name, extra in runs.items():
        r = subprocess.run([str(PYTHON), str(RESTORE_PY), str(src), "-o", str(tmp_path / f"o{name}"),
                            "--weights", str(weights), *extra], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    a = tifffile.imread(tmp_path / "o0" / "big_restored.tif")
    for name in ("80", "net"):  # windows, and the whole-net engine: the same image
        b = tifffile.imread(tmp_path / f"o{name}" / "big_restored.tif")
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max(), name
    assert read_info(tmp_path / "onet" / "big_restored.tif")["parameters"]["engine"] == "net"


def test_figure_of_a_large_frame_is_block_averaged(tmp_path):
    """A frame larger than FIGURE_MAX_PX is drawn from block averages (memory independent of the
    frame size); the averages are exact and the PNG keeps its fixed width."""
    from PIL import Image

    from restoration.outputs import FIGURE_MAX_PX, _binned, write_figure

    a = np.arange(7 * 9, dtype=np.uint16).reshape(7, 9)
    b = _binned(a, 3)
    assert b.shape == (2, 3) and b.dtype == np.float32
    assert b[1, 2] == pytest.approx(a[3:6, 6:9].mean())
    raw = np.random.default_rng(3).poisson(100.0, (FIGURE_MAX_PX * 2 + 5, FIGURE_MAX_PX + 100)).astype(np.float32)
    write_figure(tmp_path / "f.png", raw, raw * 0.5, "big")
    with Image.open(tmp_path / "f.png") as im:
        assert im.size[0] == 1200
