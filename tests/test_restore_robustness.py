"""Issue 16, classes 3-6 and 8: values beyond float32, headers claiming gigantic frames,
interrupted output sets (a real SIGKILL between two writes), tall/narrow figures, Ctrl-C /
SIGTERM, --gpu on a CPU build, -o on a file, FIFOs, symbolic-link loops, a file given twice."""
from __future__ import annotations

import os
import struct
import subprocess
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import PYTHON, REPO, RESTORE_PY, RSCIIO_DATA, micrograph, write_tiff
from restoration import cli
from restoration.io import InputError, read_image
from restoration.outputs import (FIGURE_MAX_PX, STALE_TEMP_AGE_S, StaleTemps, _binned, figure_layout,
                                 host_tag, is_temp_output, read_set_id, remove_stale_temps,
                                 set_status, start_token, temp_suffix, write_figure)

OUT_KINDS = ("restored.tif", "difference.tif", "figure.png")


def run_restore(args, cwd=None, env=None, wrapper: str | None = None):
    """restore.py in a child process; ``wrapper`` is Python run before restoration.cli.main."""
    if wrapper is None:
        cmd = [str(PYTHON), str(RESTORE_PY), *map(str, args)]
    else:
        code = (f"import sys; sys.path.insert(0, {str(REPO)!r})\n{textwrap.dedent(wrapper)}\n"
                f"from restoration.cli import main\nsys.exit(main({[str(a) for a in args]!r}))\n")
        cmd = [str(PYTHON), "-c", code]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd,
                          env=dict(os.environ, **(env or {})))


def outputs(folder, stem="img"):
    return {k: folder / f"{stem}_{k}" for k in OUT_KINDS}


def leftovers(folder):
    return sorted(p.name for p in folder.rglob(".*") if p.is_file())


# ------------------------------------------------------------------ class 3: float32 range
def test_float64_beyond_float32_is_refused(tmp_path):
    a = micrograph((40, 40), dtype=np.float64) * 1e300
    np.save(tmp_path / "huge.npy", a)
    with pytest.raises(InputError, match=r"values up to 1.*e\+30\d do not fit float32"):
        read_image(tmp_path / "huge.npy")


def test_float64_below_float32_tiny_is_refused(tmp_path):
    np.save(tmp_path / "tiny.npy", micrograph((40, 40), dtype=np.float64) * 1e-300)
    with pytest.raises(InputError, match="below float32's smallest normal"):
        read_image(tmp_path / "tiny.npy")


def test_float64_in_range_still_reads(tmp_path):
    np.save(tmp_path / "ok.npy", micrograph((40, 40), dtype=np.float64) * 1e30)
    assert read_image(tmp_path / "ok.npy").signals[0].data.dtype == np.float64


def test_restore_never_writes_nan(tmp_path):
    """float64 beyond float32, and float32 close to its limit: an error or finite output."""
    np.save(tmp_path / "huge.npy", micrograph((50, 50), dtype=np.float64) * 1e300)
    np.save(tmp_path / "edge.npy", (micrograph((50, 50), dtype=np.float64) * 2.5e35).astype(np.float32))
    out = tmp_path / "out"
    r = run_restore([tmp_path / "huge.npy", tmp_path / "edge.npy", "-o", out])
    assert "huge.npy: values up to" in r.stderr
    assert r.returncode == 1, r.stderr
    assert "1 restored, 0 skipped, 1 failed" in r.stderr, r.stderr  # edge.npy: restored, finite
    assert sorted(p.name for p in out.iterdir()) == ["edge_difference.tif", "edge_restored.tif"]
    import tifffile
    for p in out.glob("*.tif"):
        assert np.isfinite(tifffile.imread(p)).all(), p


class ConstantRestorer:
    """Stands in for the network: every restored pixel is ``value``."""

    def __init__(self, value: float):
        self.value = value

    def restore(self, frame, out):
        out[...] = self.value
        return SimpleNamespace(stats=SimpleNamespace(offset=0.0, scale=1.0), tile=0, n_tiles=1)


@pytest.mark.parametrize("raw, value, message", [
    (1000.0, np.nan, r"restoration gave 2500 NaN or infinite value\(s\)"),
    # raw - restored = 6e38: overflows float32 although both images are finite
    (3e38, -3e38, r"the difference raw - restored has 2500 infinite or NaN value\(s\)")])
def test_nan_or_inf_output_is_never_written(tmp_path, raw, value, message):
    np.save(tmp_path / "img.npy", np.full((50, 50), raw, np.float32))
    out = tmp_path / "out"
    job, summary, notes = cli.Job(tmp_path / "img.npy", Path("."), "img"), cli.Summary(), []
    args = SimpleNamespace(figure=True, overwrite=False)
    with pytest.raises(InputError, match=message):
        cli.restore_file(job, ConstantRestorer(value), out, args, {}, summary, notes.append)
    assert not out.exists() or list(out.rglob("*")) == []
    cli.restore_file(job, ConstantRestorer(raw / 2), out, args, {}, summary, notes.append)
    assert sorted(p.name for p in out.iterdir()) == ["img_difference.tif", "img_figure.png",
                                                      "img_restored.tif"]
    from restoration.outputs import read_info
    assert "output_set_files" not in read_info(out / "img_restored.tif")  # written, never read


# ------------------------------------------------------------------ class 4: claimed sizes
def giant_tiff(path, w=100_000, h=100_000, compression=1):
    """A ~1.2 kB TIFF whose header claims an h x w float32 image."""
    entries = [(256, 4, w), (257, 4, h), (258, 3, 32), (259, 3, compression), (262, 3, 1),
               (273, 4, 200), (277, 3, 1), (278, 4, h), (279, 4, 1000), (339, 3, 3)]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, value in entries:
        ifd += struct.pack("<HHII", tag, typ, 1, value) if typ == 4 else \
            struct.pack("<HHIHH", tag, typ, 1, value, 0)
    data = b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    path.write_bytes(data + b"\0" * (200 - len(data)) + b"\x01" * 1000)
    return path


def giant_npy(path):
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)})
        fh.write(b"\0" * 16)
    return path


def test_giant_tiff_header_refused_before_allocating(tmp_path):
    p = giant_tiff(tmp_path / "g.tif")
    with pytest.raises(InputError, match=r"cannot read as TIFF .*header claims a 100000 x 100000 "
                                         r"float32 image \(40 GB\) but the file holds only 1.2 kB"):
        read_image(p)


def test_giant_compressed_tiff_hits_memory_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("STEM_RESTORE_MAX_IMAGE_BYTES", str(1 << 30))
    with pytest.raises(InputError, match=r"more than the memory limit of 1.07 GB "
                                         r"\(set STEM_RESTORE_MAX_IMAGE_BYTES"):
        read_image(giant_tiff(tmp_path / "g.tif", compression=8))


def test_giant_npy_header_refused(tmp_path):
    with pytest.raises(InputError, match=r"cannot read as NPY .*header claims a 100000 x 100000 "
                                         r"float32 image \(40 GB\) but the file holds only 16 B"):
        read_image(giant_npy(tmp_path / "g.npy"))


def test_giant_mrc_header_refused(tmp_path):
    import mrcfile

    with mrcfile.new(tmp_path / "m.mrc") as m:
        m.set_data(np.zeros((2, 30, 30), np.float32))
    raw = bytearray((tmp_path / "m.mrc").read_bytes())
    raw[0:8] = struct.pack("<ii", 100_000, 100_000)
    (tmp_path / "g.mrc").write_bytes(raw)
    with pytest.raises(InputError, match=r"header claims a 2 x 100000 x 100000 float32"):
        read_image(tmp_path / "g.mrc")


def test_memory_limit_applies_to_real_files(tmp_path, monkeypatch):
    write_tiff(tmp_path / "a.tif", micrograph((64, 64)))
    np.save(tmp_path / "a.npy", micrograph((64, 64)))
    read_image(tmp_path / "a.tif"), read_image(tmp_path / "a.npy")
    monkeypatch.setenv("STEM_RESTORE_MAX_IMAGE_BYTES", "10000")
    for name in ("a.tif", "a.npy"):
        with pytest.raises(InputError, match="more than the memory limit of 10 kB"):
            read_image(tmp_path / name)


def giant_emd(path, compression=None):
    """A small Berkeley EMD whose image dataset claims 100000 x 100000 float32 (40 GB):
    chunked, no chunk ever written (reads as fill values), dimension vectors compressed."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["version_major"] = 0
        f.attrs["version_minor"] = 2
        g = f.create_group("data/haadf")
        g.attrs["emd_group_type"] = 1
        g.create_dataset("data", shape=(100_000, 100_000), dtype="f4", chunks=(1000, 1000),
                         compression=compression)
        for k, name in enumerate("xy", start=1):
            d = g.create_dataset(f"dim{k}", data=np.arange(100_000) * 0.05, compression="gzip")
            d.attrs["name"], d.attrs["units"] = name, "[n_m]"
    assert path.stat().st_size < 1_000_000
    return path


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_giant_emd_dataset_refused_before_reading(tmp_path, compression):
    p = giant_emd(tmp_path / "g.emd", compression)
    with pytest.raises(InputError, match=r"cannot read as EMD .*dataset /data/haadf/data claims "
                                         r"100000 x 100000 float32 \(40 GB\) but only 0 of its "
                                         r"10000 chunks are stored"):
        read_image(p)


def giant_dm3(path):
    """The shipped 68 x 68 DM3 (96 kB) with its image's Dimensions tags set to 100000."""
    raw = bytearray((RSCIIO_DATA / "digitalmicrograph" / "2D" / "test_STEM_image.dm3").read_bytes())
    i = raw.find(b"Dimensions", raw.find(b"Dimensions") + 1)  # the image after the thumbnail
    for _ in range(2):
        i = raw.find(struct.pack("<I", 68), i)
        raw[i:i + 4] = struct.pack("<I", 100_000)
    path.write_bytes(raw)
    return path


def test_giant_dm3_header_refused(tmp_path):
    with pytest.raises(InputError, match=r"cannot read as DM3/DM4 .*header claims a 100000 x 100000 "
                                         r"uint32 image \(40 GB\) but the file holds only 96.4 kB"):
        read_image(giant_dm3(tmp_path / "g.dm3"))


@pytest.mark.parametrize("name, fmt", [("digitalmicrograph/2D/test_STEM_image.dm3", "DM3/DM4"),
                                       ("digitalmicrograph/2D/test-8.dm4", "DM3/DM4"),  # RGBA
                                       ("tia/old/64x64_TEM_images_acquire_1.ser", "SER"),
                                       ("emd/example_image.emd", "EMD")])
def test_memory_limit_applies_to_dm_ser_emd(name, fmt, monkeypatch):
    read_image(RSCIIO_DATA / name)
    monkeypatch.setenv("STEM_RESTORE_MAX_IMAGE_BYTES", "10")
    with pytest.raises(InputError, match=rf"{fmt} header claims .*more than the memory limit of 10 B"):
        read_image(RSCIIO_DATA / name)


def test_restore_reports_giant_header(tmp_path):
    giant_tiff(tmp_path / "g.tif")
    r = run_restore([tmp_path / "g.tif", "-o", tmp_path / "out"])
    assert r.returncode == 1 and "header claims a 100000 x 100000 float32 image" in r.stderr, r.stderr
    assert "not enough memory" not in r.stderr


# ------------------------------------------------------------------ class 5: output sets
def test_temp_names_recognised():
    assert is_temp_output(".img_restored.tif.ab_12x.rs4242.node-7.123b9f8e7d6c.tmp.tif")
    assert is_temp_output(".img_restored.tif.ab_12x" + temp_suffix(Path("img_restored.tif")))
    assert is_temp_output(".img_figure.png.k9.rs1.tmp.png")  # earlier versions: pid only
    assert is_temp_output(".img_difference.tif.abc123.tmp.tif")  # ... and no pid
    assert not is_temp_output("img_restored.tif")
    assert not is_temp_output(".img.tif.ab.tmp.tif")  # not one of our output names
    assert not is_temp_output(".hidden_restored.tif")


def _temp(folder, kind, pid, host=None, token=None, age_s=0.0):
    """A temporary output file named as restore.py names them, ``age_s`` old."""
    tail = f".rs{pid}" + (f".{host}.{token}" if host else "") if pid is not None else ""
    path = folder / f".img_{kind}.x{abs(hash((pid, host, token, age_s))) % 10**6}{tail}.tmp.{kind[-3:]}"
    path.write_bytes(b"x")
    mtime = time.time() - age_s
    os.utime(path, (mtime, mtime))
    return path


def test_stale_temps_removed_live_ones_kept(tmp_path):
    child = subprocess.Popen(["true"])
    child.wait()  # its pid now belongs to no process
    host, day = host_tag(), STALE_TEMP_AGE_S + 60
    removed = {
        "dead pid": _temp(tmp_path, "restored.tif", child.pid, host, "1b0"),
        # restore.py is pid 1 in every Docker run: our pid, another start token -> dead
        "pid reused": _temp(tmp_path, "difference.tif", os.getpid(), host, "1b0"),
        "other host, old": _temp(tmp_path, "figure.png", os.getppid(), "other-node", "5b1", day),
        "pid only, old": _temp(tmp_path, "restored.tif", os.getppid(), age_s=day),
        "no pid, old": _temp(tmp_path, "difference.tif", None, age_s=day),
    }
    kept = {
        "live parent": _temp(tmp_path, "restored.tif", os.getppid(), host, start_token(os.getppid())),
        "this process": _temp(tmp_path, "figure.png", os.getpid(), host, start_token(os.getpid())),
        # a shared folder: another host's writer may be alive; the pid says nothing here
        "other host, recent": _temp(tmp_path, "difference.tif", child.pid, "other-node", "5b1"),
        "pid only, recent": _temp(tmp_path, "figure.png", child.pid),
        "no pid, recent": _temp(tmp_path, "restored.tif", None),
        "not ours": tmp_path / ".notes.txt",
    }
    kept["not ours"].write_bytes(b"x")
    got = remove_stale_temps(tmp_path)
    assert sorted(got) == sorted(removed.values())
    assert all(p.exists() for p in kept.values())
    assert remove_stale_temps(tmp_path, {"img_other.tif"}) == []


def test_stale_temp_that_cannot_be_removed_warns(tmp_path, monkeypatch):
    """An unlink refused (read-only share, another owner) is a warning, never a failed job."""
    stale = _temp(tmp_path, "restored.tif", None, age_s=STALE_TEMP_AGE_S + 60)
    real_unlink = Path.unlink

    def refuse(self, *a, **k):
        if self == stale:
            raise PermissionError(13, "Permission denied")
        return real_unlink(self, *a, **k)

    monkeypatch.setattr(Path, "unlink", refuse)
    warnings = []
    assert remove_stale_temps(tmp_path, warn=warnings.append) == []
    assert len(warnings) == 1 and str(stale) in warnings[0] and "Permission denied" in warnings[0]


def test_output_folder_listed_once(tmp_path, monkeypatch):
    """The output folder is listed once per run, not once per input file (N^2)."""
    import restoration.outputs as outputs_module

    olds = [_temp(tmp_path, "restored.tif", None, age_s=STALE_TEMP_AGE_S + 60) for _ in range(1)]
    calls = []
    real = os.scandir
    monkeypatch.setattr(outputs_module.os, "scandir", lambda p: calls.append(p) or real(p))
    sweeper = StaleTemps()
    for k in range(50):
        sweeper.remove(tmp_path, {f"f{k}_restored.tif"})
    assert sweeper.remove(tmp_path, {"img_restored.tif"}) == olds
    assert len(calls) == 1


def test_set_status(tmp_path):
    paths = [tmp_path / "a_restored.tif", tmp_path / "a_difference.tif"]
    assert set_status(paths)[0] == "absent"
    from restoration.outputs import write_tiff as wt

    ours = {"software": "stem-restore restore.py"}
    wt(paths[0], np.zeros((1, 4, 4)), (), None, dict(ours, output_set="A"))
    assert set_status(paths) == ("incomplete", "a_difference.tif is missing")
    wt(paths[1], np.zeros((1, 4, 4)), (), None, dict(ours, output_set="B"))
    assert set_status(paths)[0] == "incomplete"
    wt(paths[1], np.zeros((1, 4, 4)), (), None, dict(ours, output_set="A"))
    assert set_status(paths) == ("complete", "")
    wt(paths[1], np.zeros((1, 4, 4)), (), None, dict(ours))  # written before set ids: legacy
    assert set_status(paths)[0] == "incomplete"
    wt(paths[0], np.zeros((1, 4, 4)), (), None, dict(ours))
    assert set_status(paths)[0] == "complete"
    paths[1].write_bytes(b"the user's own file")  # never replaced without --overwrite
    assert set_status(paths)[0] == "foreign"


def _matplotlib_png(path):
    """A PNG as matplotlib writes it (Software "Matplotlib version..."), without a set id."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1))
    fig.subplots().imshow(np.zeros((4, 4)))
    fig.savefig(path, format="png")
    return path


def test_set_status_figure_of_earlier_version(tmp_path):
    """Figures of earlier versions carry no set id; matplotlib writes "Matplotlib version".
    They are ours only with restore.py's TIFFs beside them."""
    from restoration.outputs import write_tiff as wt

    paths = [tmp_path / "a_restored.tif", tmp_path / "a_difference.tif", tmp_path / "a_figure.png"]
    _matplotlib_png(paths[2])
    assert read_set_id(paths[2]) == (None, None)
    assert set_status(paths)[0] == "foreign"  # a figure alone: not provably ours
    ours = {"software": "stem-restore restore.py"}
    for p in paths[:2]:  # an older complete set: TIFFs without set ids
        wt(p, np.zeros((1, 4, 4)), (), None, dict(ours))
    assert set_status(paths) == ("complete", "")
    for p in paths[:2]:  # a killed --overwrite run renamed the new TIFFs, not the figure
        wt(p, np.zeros((1, 4, 4)), (), None, dict(ours, output_set="NEW"))
    assert set_status(paths)[0] == "incomplete"
    paths[0].write_bytes(b"the user's own file")
    assert set_status(paths)[0] == "foreign"


SIGNAL_AFTER_RENAMES = """
import os, signal
_real, _n = os.replace, [0]
def _replace(src, dst):
    if str(dst).endswith(("_restored.tif", "_difference.tif", "_figure.png")):
        if _n[0] == {k}:  # k outputs renamed so far: signal before the next rename
            os.kill(os.getpid(), signal.{sig})
        _n[0] += 1
    _real(src, dst)
os.replace = _replace
"""


def signal_after_renames(k: int, sig: str = "SIGKILL") -> str:
    return SIGNAL_AFTER_RENAMES.replace("{k}", str(k)).replace("{sig}", sig)


@pytest.mark.parametrize("k", [0, 1, 2])
def test_kill_between_two_writes_then_rerun_completes(tmp_path, k):
    """A real SIGKILL after all outputs were written and k of them renamed into place."""
    write_tiff(tmp_path / "img.tif", micrograph((64, 70)))
    out = tmp_path / "out"
    args = [tmp_path / "img.tif", "-o", out, "--figure"]
    r = run_restore(args, wrapper=signal_after_renames(k))
    assert r.returncode == -9, r.stderr
    present = [p for p in outputs(out).values() if p.exists()]
    assert len(present) == k  # an incomplete set (or none) ...
    assert len(leftovers(out)) == 3 - k  # ... and temporary files a SIGKILL cannot clean up

    r = run_restore(args)
    assert r.returncode == 0, r.stderr
    assert "skipped" not in r.stderr.replace("0 skipped", "")
    assert ("incomplete outputs of an interrupted run" in r.stderr) == (k > 0), r.stderr
    assert r.stderr.count("removed a temporary file of an interrupted run") == 3 - k, r.stderr
    marks = {read_set_id(p) for p in outputs(out).values()}
    assert len(marks) == 1 and None not in next(iter(marks))
    assert leftovers(out) == []
    r = run_restore(args)  # now complete: skipped
    assert r.returncode == 0 and "1 skipped" in r.stderr, r.stderr


def test_stale_temps_never_read_as_inputs(tmp_path):
    (tmp_path / "in").mkdir()
    write_tiff(tmp_path / "in" / "img.tif", micrograph((40, 40)))
    write_tiff(tmp_path / "in" / ".img_restored.tif.ab1.rs999999.tmp.tif", micrograph((40, 40)))
    write_tiff(tmp_path / "in" / ".old_figure.png.ab1.tmp.png", micrograph((40, 40)))
    summary = cli.Summary()
    jobs = cli.collect_jobs([str(tmp_path / "in")], tmp_path / "out", False, summary)
    assert [j.path.name for j in jobs] == ["img.tif"] and not summary.failed
    summary = cli.Summary()
    temp = tmp_path / "in" / ".img_restored.tif.ab1.rs999999.tmp.tif"
    assert cli.collect_jobs([str(temp)], tmp_path / "out", False, summary) == []
    assert "temporary file of an interrupted restore.py run" in summary.failed[0][1]


def test_failing_figure_leaves_no_partial_set(tmp_path, caffe):
    """The figure fails after both TIFFs were computed: nothing of the set appears."""
    write_tiff(tmp_path / "img.tif", micrograph((50, 50)))
    out = tmp_path / "out"
    wrapper = """
import restoration.cli as c
def boom(*a, **k):
    raise OSError(28, "No space left on device")
c.write_figure = boom
"""
    r = run_restore([tmp_path / "img.tif", "-o", out, "--figure"], wrapper=wrapper)
    assert r.returncode == 1 and "No space left on device" in r.stderr, r.stderr
    assert list(out.iterdir()) == []
    r = run_restore([tmp_path / "img.tif", "-o", out, "--figure"])
    assert r.returncode == 0 and all(p.exists() for p in outputs(out).values()), r.stderr


def test_figure_added_to_earlier_set_redoes_it(tmp_path):
    write_tiff(tmp_path / "img.tif", micrograph((50, 50)))
    out = tmp_path / "out"
    assert run_restore([tmp_path / "img.tif", "-o", out]).returncode == 0
    r = run_restore([tmp_path / "img.tif", "-o", out, "--figure"])
    assert r.returncode == 0, r.stderr
    assert len({read_set_id(p) for p in outputs(out).values()}) == 1
    assert "incomplete outputs" in r.stderr


# ------------------------------------------------------------------ class 6: figure
@pytest.mark.parametrize("shape", [(100_000, 2), (2, 100_000), (5000, 3), (2, 2)])
def test_figure_tall_narrow_frames(tmp_path, shape):
    from PIL import Image

    a = np.random.default_rng(0).random(shape, dtype=np.float32)
    write_figure(tmp_path / "f.png", a, 0.5 * a, "tall \udcff name $x$.tif")
    with Image.open(tmp_path / "f.png") as im:
        assert im.width == 1200 and 200 <= im.height <= 1400
    fy, fx, height, _ = figure_layout(shape)
    assert _binned(a, fy, fx).size > 0 and max(_binned(a, fy, fx).shape) <= FIGURE_MAX_PX


def test_binned_never_empty():
    a = np.ones((3, 100_000), np.float32)
    assert _binned(a, 98).shape == (1, 1020)  # the old single factor emptied the rows


def test_non_utf8_file_name_figure(tmp_path):
    name = os.fsdecode(b"caf\xe9_\xff.tif")
    write_tiff(tmp_path / name, micrograph((50, 50)))
    r = run_restore([tmp_path / name, "-o", tmp_path / "out", "--figure"])
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "out").glob("*_figure.png"))) == 1


# ------------------------------------------------------------------ class 8: messages
INTERRUPT_IN_WRITE = """
import os, signal, tifffile
_real = tifffile.imwrite
def _imwrite(*a, **k):
    _real(*a, **k)
    os.kill(os.getpid(), signal.{sig})
tifffile.imwrite = _imwrite
"""


@pytest.mark.parametrize("sig, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_interrupt_exits_cleanly(tmp_path, sig, status):
    """Ctrl-C / SIGTERM after the first temporary output was written: no traceback, no files."""
    write_tiff(tmp_path / "img.tif", micrograph((50, 50)))
    out = tmp_path / "out"
    r = run_restore([tmp_path / "img.tif", "-o", out, "--figure"],
                    wrapper=INTERRUPT_IN_WRITE.replace("{sig}", sig))
    assert r.returncode == status, r.stderr
    assert "Traceback" not in r.stderr and "interrupted" in r.stderr
    assert "img.tif) left no outputs" in r.stderr, r.stderr
    assert list(out.rglob("*")) == []


@pytest.mark.parametrize("k", [1, 2])
def test_ctrl_c_between_renames_says_what_it_left(tmp_path, k):
    """Ctrl-C between two renames of a set: the message counts what is in place (not "no
    outputs"), and the rerun redoes the incomplete set."""
    write_tiff(tmp_path / "img.tif", micrograph((50, 50)))
    out = tmp_path / "out"
    args = [tmp_path / "img.tif", "-o", out, "--figure"]
    r = run_restore(args, wrapper=signal_after_renames(k, "SIGINT"))
    assert r.returncode == 130 and "Traceback" not in r.stderr, r.stderr
    assert f"img.tif) left {k} of its 3 outputs, an incomplete set that the rerun redoes" in r.stderr
    assert "left no outputs" not in r.stderr
    assert len([p for p in outputs(out).values() if p.exists()]) == k and leftovers(out) == []
    r = run_restore(args)
    assert r.returncode == 0 and "incomplete outputs of an interrupted run" in r.stderr, r.stderr
    assert len({read_set_id(p) for p in outputs(out).values()}) == 1


def test_interrupt_note_between_files():
    assert cli.interrupt_note(cli.Summary()) == "no file was in progress"


def test_glog_reason_skips_stack_trace():
    stderr = ("WARNING: Logging before InitGoogleLogging() is written to STDERR\n"
              "F1201 20:10:11.123456  4242 common.cpp:66] Cannot use GPU in CPU-only Caffe: check mode.\n"
              "*** Check failure stack trace: ***\n    @     0x7f0 (unknown)\n")
    assert cli.glog_reason(stderr) == "Cannot use GPU in CPU-only Caffe: check mode."


def caffe_built_with_cuda(caffe) -> bool:
    """Whether pycaffe's libraries link the CUDA runtime (a GPU build), from ldd."""
    lib = Path(caffe._caffe.__file__)
    r = subprocess.run(["ldd", str(lib)], capture_output=True, text=True, check=True)
    return "libcudart" in r.stdout


def test_gpu_clear_message(tmp_path, caffe):
    """--gpu 0: on a CPU-only build exit 2 saying so; on a CUDA build either it runs, or
    exit 2 with Caffe's reason -- never a glog stack trace."""
    write_tiff(tmp_path / "img.tif", micrograph((40, 40)))
    r = run_restore([tmp_path / "img.tif", "-o", tmp_path / "out", "--gpu", "0"])
    assert "stack trace" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    if not caffe_built_with_cuda(caffe):
        assert r.returncode == 2, r.stderr
        assert "cannot use GPU 0: this Caffe build is CPU-only" in r.stderr, r.stderr
    elif r.returncode == 0:
        assert (tmp_path / "out" / "img_restored.tif").exists()
    else:
        assert r.returncode == 2 and "error: cannot use GPU 0: " in r.stderr, r.stderr
        assert "CPU-only" not in r.stderr


def test_outdir_is_a_file(tmp_path):
    write_tiff(tmp_path / "img.tif", micrograph((40, 40)))
    (tmp_path / "out.txt").write_text("x")
    wrapper = """
import restoration.cli as c
def never(*a, **k):
    raise AssertionError("model loaded before -o was checked")
c.Restorer.from_files = never
c.validate_model = never
"""
    r = run_restore([tmp_path / "img.tif", "-o", tmp_path / "out.txt"], wrapper=wrapper)
    assert r.returncode == 2 and "out.txt: is a file, not a folder" in r.stderr, r.stderr
    r = run_restore([tmp_path / "img.tif", "-o", tmp_path / "out.txt" / "sub"], wrapper=wrapper)
    assert r.returncode == 2 and "is a file, not a folder" in r.stderr, r.stderr


def test_fifo_and_link_messages(tmp_path):
    os.mkfifo(tmp_path / "pipe.tif")
    (tmp_path / "loop1.tif").symlink_to(tmp_path / "loop2.tif")
    (tmp_path / "loop2.tif").symlink_to(tmp_path / "loop1.tif")
    (tmp_path / "broken.tif").symlink_to(tmp_path / "gone.tif")
    expected = {"pipe.tif": "is a FIFO (named pipe), not a regular file",
                "loop1.tif": "symbolic link loop",
                "broken.tif": "broken symbolic link",
                "missing.tif": "no such file or folder"}
    for name, reason in expected.items():
        summary = cli.Summary()
        cli.collect_jobs([str(tmp_path / name)], tmp_path / "out", False, summary)
        assert reason in summary.failed[0][1], (name, summary.failed)
        if name != "missing.tif":
            with pytest.raises(InputError, match=reason.split(" (")[0]):
                read_image(tmp_path / name)
    summary = cli.Summary()  # inside a folder they are named too, not silently skipped
    cli.collect_jobs([str(tmp_path)], tmp_path / "out", False, summary)
    reasons = {p.name: r for p, r in summary.failed}
    assert "FIFO" in reasons["pipe.tif"] and "loop" in reasons["loop1.tif"]


def test_same_file_twice_keeps_its_name(tmp_path):
    write_tiff(tmp_path / "img.tif", micrograph((40, 40)))
    summary = cli.Summary()
    jobs = cli.collect_jobs([str(tmp_path / "img.tif"), str(tmp_path / "img.tif"), str(tmp_path)],
                            tmp_path / "out", False, summary)
    assert [(j.path.name, j.stem) for j in jobs] == [("img.tif", "img")] and not summary.failed


# ------------------------------------------------------------------ inputs from several folders (session 36)
def test_same_name_in_two_folders_goes_under_each_folder_name(tmp_path):
    """``restore.py run1/HAADF.tif run2`` (run2 holding HAADF.tif too): both restored, each under
    the name of its folder; a.tif and a.dm4 in one folder keep their suffixes."""
    for run in ("run1", "run2"):
        (tmp_path / run).mkdir()
        write_tiff(tmp_path / run / "HAADF.tif", micrograph((40, 40)))
    write_tiff(tmp_path / "run2" / "solo.tif", micrograph((40, 40)))
    summary = cli.Summary()
    jobs = cli.collect_jobs([str(tmp_path / "run1" / "HAADF.tif"), str(tmp_path / "run2")],
                            tmp_path / "out", False, summary)
    assert not summary.failed
    assert sorted((str(j.rel_dir), j.stem) for j in jobs) == [(".", "solo"), ("run1", "HAADF"),
                                                               ("run2", "HAADF")]
    # --recursive: day1/a/x.tif and day2/a/x.tif go to day1/a/ and day2/a/
    for day in ("day1", "day2"):
        (tmp_path / day / "a").mkdir(parents=True)
        write_tiff(tmp_path / day / "a" / "x.tif", micrograph((40, 40)))
    summary = cli.Summary()
    jobs = cli.collect_jobs([str(tmp_path / "day1"), str(tmp_path / "day2")], tmp_path / "out", True, summary)
    assert sorted(str(j.rel_dir) for j in jobs) == ["day1/a", "day2/a"] and not summary.failed
    # the same folder name twice (a/x/f.tif, b/x/f.tif) cannot be told apart that way: refused, named
    for top in ("a", "b"):
        (tmp_path / top / "x").mkdir(parents=True)
        write_tiff(tmp_path / top / "x" / "f.tif", micrograph((40, 40)))
    summary = cli.Summary()
    jobs = cli.collect_jobs([str(tmp_path / "a" / "x" / "f.tif"), str(tmp_path / "b" / "x" / "f.tif")],
                            tmp_path / "out", False, summary)
    assert len(jobs) == 1 and len(summary.failed) == 1
    assert "already used by" in summary.failed[0][1] and summary.failed[0][0].parts[-3] == "b"


def test_an_unlistable_sub_folder_is_named_and_the_rest_goes_on(tmp_path, monkeypatch):
    (tmp_path / "top" / "sub").mkdir(parents=True)
    write_tiff(tmp_path / "top" / "b.tif", micrograph((40, 40)))
    write_tiff(tmp_path / "top" / "sub" / "a.tif", micrograph((40, 40)))
    real = os.scandir

    def scandir(path="."):
        if Path(path).name == "sub":  # as a folder without read permission (root ignores chmod)
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    summary = cli.Summary()
    jobs = cli.collect_jobs([str(tmp_path / "top")], tmp_path / "out", True, summary)
    assert [j.path.name for j in jobs] == ["b.tif"]
    assert [(p.name, r) for p, r in summary.failed] == [("sub", "cannot list the folder: Permission denied")]


def test_output_folder_may_be_the_input_folder(tmp_path):
    """-o the input folder: the micrographs are inputs, the outputs of an earlier run are not."""
    write_tiff(tmp_path / "img.tif", micrograph((40, 40)))
    for kind in OUT_KINDS:
        write_tiff(tmp_path / f"old_{kind}", micrograph((40, 40)))
    summary = cli.Summary()
    jobs = cli.collect_jobs([str(tmp_path)], tmp_path, False, summary)
    assert [j.path.name for j in jobs] == ["img.tif"] and not summary.failed


def test_an_output_name_of_another_input_is_refused_not_skipped(tmp_path):
    """A two-series scan.tif has outputs scan_0_*; a file scan_0.tif in the same run would have
    the same ones: the second is refused with both names, neither skipped nor overwritten."""
    import tifffile

    with tifffile.TiffWriter(tmp_path / "scan.tif") as w:
        w.write(micrograph((40, 40)), metadata=None)
        w.write(micrograph((48, 48)), metadata=None)
    write_tiff(tmp_path / "scan_0.tif", micrograph((40, 40)))
    summary = cli.Summary()
    jobs = cli.collect_jobs([str(tmp_path)], tmp_path / "out", False, summary)
    plans = {j.path.name: cli.plan_outputs(j, read_image(j.path), False) for j in jobs}
    assert len(plans["scan.tif"]) == 2
    cli.claim_outputs(jobs[0], plans[jobs[0].path.name], summary)
    with pytest.raises(InputError, match=r"scan_0_restored.tif is also an output of .*scan.tif"):
        cli.claim_outputs(jobs[1], plans[jobs[1].path.name], summary)


def test_a_tiff_whose_page_list_breaks_off_is_refused(tmp_path):
    """A 3-page TIFF cut at page 3: tifffile reads 2 pages and only logs the break; restoring
    the 2 would lose a frame in silence."""
    import tifffile

    with tifffile.TiffWriter(tmp_path / "full.tif") as w:
        for i in range(3):
            w.write(micrograph((40, 40), seed=i), metadata=None)
    with tifffile.TiffFile(tmp_path / "full.tif") as tif:
        third = tif.pages[2].offset
    (tmp_path / "cut.tif").write_bytes((tmp_path / "full.tif").read_bytes()[:third])
    assert read_image(tmp_path / "full.tif").signals[0].n_frames == 3
    with pytest.raises(InputError, match="page list breaks off after page 2|pages breaks off after page 2"):
        read_image(tmp_path / "cut.tif")


def test_a_long_file_name_gets_a_legal_temporary_name(tmp_path):
    """A 200-character stem: its outputs' names are legal (< 255 bytes), and so must their
    temporary names be; a stale one is still recognised and swept."""
    from stem_restore.atomic import atomic_path, temp_stem

    final = tmp_path / ("µ" * 100 + "x" * 20 + "_difference.tif")  # 235 bytes
    with atomic_path(final, suffix=temp_suffix(final)) as tmp:
        assert len(os.fsencode(tmp.name)) <= 255 and is_temp_output(tmp)
        tmp.write_bytes(b"x")
    assert final.read_bytes() == b"x" and leftovers(tmp_path) == []
    assert temp_stem(final.name).endswith("_difference.tif") and temp_stem("short.tif") == "short.tif"
    stale = tmp_path / f".{temp_stem(final.name)}.ab1.rs999999.tmp.tif"  # old style: no host, old
    stale.write_bytes(b"")
    os.utime(stale, (time.time() - STALE_TEMP_AGE_S - 5,) * 2)
    assert StaleTemps().remove(tmp_path, {final.name}) == [stale]


@pytest.mark.parametrize("channels", [1, 2])
def test_a_grey_array_with_a_channel_axis_is_one_frame(tmp_path, channels):
    a = np.stack([micrograph((40, 44))] * channels, axis=-1)
    np.save(tmp_path / "img.npy", a)
    img = read_image(tmp_path / "img.npy")
    assert [s.data.shape for s in img.signals] == [(40, 44)]
    assert ("alpha channel dropped" in img.warnings) == (channels == 2)


def test_a_linked_file_keeps_the_folder_it_was_named_in(tmp_path):
    """run1/a.dm4 -> ../raw/a.dm4 beside run1/a.tif: one folder as the user sees it (a_tif_*,
    a_dm4_*), not the link target's folder."""
    (tmp_path / "run1").mkdir()
    (tmp_path / "raw").mkdir()
    write_tiff(tmp_path / "run1" / "a.tif", micrograph((40, 40)))
    (tmp_path / "raw" / "a.dm4").write_bytes(b"not read here")
    (tmp_path / "run1" / "a.dm4").symlink_to(tmp_path / "raw" / "a.dm4")
    for inputs in ([tmp_path / "run1"], [tmp_path / "run1" / "a.tif", tmp_path / "run1" / "a.dm4"]):
        summary = cli.Summary()
        jobs = cli.collect_jobs([str(p) for p in inputs], tmp_path / "out", False, summary)
        assert sorted((str(j.rel_dir), j.stem) for j in jobs) == [(".", "a_dm4"), (".", "a_tif")]


def test_outputs_of_an_earlier_run_elsewhere_in_the_tree_are_not_inputs(tmp_path, caffe):
    """restore.py data --recursive -o data/out1, then -o data/out2: out1's outputs are not restored again
    (they carry restore.py's mark); a user's file that merely ends in _restored.tif is."""
    (tmp_path / "data").mkdir()
    write_tiff(tmp_path / "data" / "img.tif", micrograph((40, 40)))
    r = run_restore([tmp_path / "data", "--recursive", "-o", tmp_path / "data" / "out1", "--figure"])
    assert r.returncode == 0, r.stderr
    write_tiff(tmp_path / "data" / "mine_restored.tif", micrograph((40, 40)))
    summary = cli.Summary()
    jobs = cli.collect_jobs([str(tmp_path / "data")], tmp_path / "data" / "out2", True, summary)
    assert sorted(j.path.name for j in jobs) == ["img.tif", "mine_restored.tif"] and not summary.failed
