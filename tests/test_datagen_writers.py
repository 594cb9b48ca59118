"""datagen writers and CLI: HDF5/LMDB layout, determinism across workers,
resume, atomic shards, bad arguments."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import lmdb
import numpy as np
import pytest

from datagen import make_training_pair, simulate_pair
from datagen.pipeline import sample_rng
from datagen.writers import decode_datum, encode_datum, read_hdf5_shard

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "datagen", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def gen(out, *extra, count=24, size=64, seed=7, fmt="hdf5", workers=1, shard=8):
    r = run_cli("--preset", "quick", "--count", count, "--size", size, "--out", out, "--seed", seed,
                "--format", fmt, "--workers", workers, "--shard-size", shard, "--quiet", *extra)
    assert r.returncode == 0, r.stderr
    return Path(out)


def expected(i, seed=7, size=64):
    return make_training_pair(*simulate_pair("quick", size, sample_rng(seed, i)))


@pytest.fixture(scope="module")
def hdf5_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("h5")
    return gen(base / "w1", workers=1), gen(base / "w2", workers=2)


def test_hdf5_layout_and_content(hdf5_runs):
    out = hdf5_runs[0]
    listed = out.joinpath("list.txt").read_text().splitlines()
    assert listed == [str(out / f"shard-{k:05d}.h5") for k in range(3)]
    assert all(os.path.isabs(p) for p in listed)
    rows = []
    for p in listed:
        with h5py.File(p, "r") as f:
            assert set(f) == {"data", "label"}
            assert f["data"].dtype == np.float32 and f["data"].shape == (8, 1, 64, 64)
            rows.append((f["data"][...], f["label"][...]))
    data = np.concatenate([r[0] for r in rows])
    label = np.concatenate([r[1] for r in rows])
    for i in (0, 13, 23):
        x, y = expected(i)
        assert data[i, 0].tobytes() == x.tobytes() and label[i, 0].tobytes() == y.tobytes()
    m = json.loads(out.joinpath("manifest.json").read_text())
    assert (m["preset"], m["seed"], m["count"], m["size"], m["format"]) == ("quick", 7, 24, 64, "hdf5")


def test_hdf5_byte_identical_for_any_worker_count(hdf5_runs):
    a, b = hdf5_runs
    for k in range(3):
        name = f"shard-{k:05d}.h5"
        assert a.joinpath(name).read_bytes() == b.joinpath(name).read_bytes()


def test_lmdb_layout_content_and_workers(tmp_path):
    a = gen(tmp_path / "l1", fmt="lmdb", count=12, shard=5, workers=1)
    b = gen(tmp_path / "l2", fmt="lmdb", count=12, shard=5, workers=2)
    for db in ("input_lmdb", "target_lmdb"):
        assert a.joinpath(db, "data.mdb").read_bytes() == b.joinpath(db, "data.mdb").read_bytes()
    keys = {}
    for db in ("input_lmdb", "target_lmdb"):
        env = lmdb.open(str(a / db), readonly=True, lock=False)
        with env.begin() as txn:
            keys[db] = [(k, v) for k, v in txn.cursor()]
        env.close()
    assert [k for k, _ in keys["input_lmdb"]] == [b"%08d" % i for i in range(12)]
    assert [k for k, _ in keys["target_lmdb"]] == [k for k, _ in keys["input_lmdb"]]
    for i in (0, 7, 11):
        x, y = expected(i)
        assert decode_datum(keys["input_lmdb"][i][1])[0].tobytes() == x.tobytes()
        assert decode_datum(keys["target_lmdb"][i][1])[0].tobytes() == y.tobytes()


def test_datum_wire_format_parses_with_protobuf():
    """Parse our bytes with a Datum message built from caffe.proto's field numbers."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="d.proto", package="t", syntax="proto2")
    msg = fdp.message_type.add(name="Datum")
    F = descriptor_pb2.FieldDescriptorProto
    for name, num, typ, lab in (("channels", 1, F.TYPE_INT32, F.LABEL_OPTIONAL),
                                ("height", 2, F.TYPE_INT32, F.LABEL_OPTIONAL),
                                ("width", 3, F.TYPE_INT32, F.LABEL_OPTIONAL),
                                ("data", 4, F.TYPE_BYTES, F.LABEL_OPTIONAL),
                                ("label", 5, F.TYPE_INT32, F.LABEL_OPTIONAL),
                                ("float_data", 6, F.TYPE_FLOAT, F.LABEL_REPEATED),
                                ("encoded", 7, F.TYPE_BOOL, F.LABEL_OPTIONAL)):
        msg.field.add(name=name, number=num, type=typ, label=lab)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    Datum = message_factory.GetMessageClass(pool.FindMessageTypeByName("t.Datum"))
    a = np.random.default_rng(0).normal(size=(1, 50, 70)).astype(np.float32)
    d = Datum.FromString(encode_datum(a))
    assert (d.channels, d.height, d.width) == (1, 50, 70)
    assert np.array(d.float_data, dtype=np.float32).tobytes() == a.ravel().tobytes()
    assert d.SerializeToString() == encode_datum(a)  # same bytes as protobuf writes
    assert decode_datum(d.SerializeToString()).tobytes() == a.tobytes()


def test_resume_keeps_finished_shards_and_refuses_other_settings(tmp_path):
    out = gen(tmp_path / "r", count=24)
    ref = {p.name: p.read_bytes() for p in out.glob("shard-*.h5")}
    mtime0 = out.joinpath("shard-00000.h5").stat().st_mtime_ns
    out.joinpath("shard-00001.h5").unlink()
    out.joinpath("shard-00002.h5").write_bytes(b"garbage")  # corrupt: rewritten
    time.sleep(0.01)
    gen(out, count=24)
    assert {p.name: p.read_bytes() for p in out.glob("shard-*.h5")} == ref
    assert out.joinpath("shard-00000.h5").stat().st_mtime_ns == mtime0  # kept, not rewritten
    r = run_cli("--preset", "quick", "--count", 30, "--size", 64, "--out", out, "--seed", 7,
                "--shard-size", 8, "--quiet")
    assert r.returncode == 2 and "refusing to resume" in r.stderr and "count" in r.stderr


def test_first_writes_a_later_stretch_of_the_same_stream(hdf5_runs, tmp_path):
    """--first 16 --count 8 (a fresh draw of a data set of 8) holds exactly rows 16..23 of
    the 24-pair run with the same seed, any worker count; its manifest records first, and
    a resume with another first is refused (a draw never mixes with another one)."""
    full = hdf5_runs[0]
    draw = gen(tmp_path / "d2", "--first", 16, count=8, workers=2)
    assert draw.joinpath("shard-00000.h5").read_bytes() == full.joinpath("shard-00002.h5").read_bytes()
    assert json.loads(draw.joinpath("manifest.json").read_text())["first"] == 16
    assert "first" not in json.loads(full.joinpath("manifest.json").read_text())  # old manifests still match
    r = run_cli("--preset", "quick", "--count", 8, "--size", 64, "--out", draw, "--seed", 7,
                "--shard-size", 8, "--first", 8, "--quiet")
    assert r.returncode == 2 and "refusing to resume" in r.stderr and "first" in r.stderr
    r = run_cli("--preset", "quick", "--count", 8, "--size", 64, "--out", tmp_path / "neg", "--first", -1, "--quiet")
    assert r.returncode == 2 and "--first" in r.stderr and "Traceback" not in r.stderr


def test_killed_run_leaves_no_corrupt_shard_and_resumes_identically(tmp_path):
    ref = gen(tmp_path / "ref", count=120, shard=10)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "datagen", "--preset", "quick", "--count", "120", "--size", "64",
           "--out", str(out), "--seed", "7", "--shard-size", "10", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    deadline = time.time() + 120
    while not (out / "shard-00002.h5").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    shards = sorted(out.glob("shard-*.h5"))
    assert 0 < len(shards) < 12 and not (out / "list.txt").exists()
    for p in shards:  # every visible shard is complete and valid
        data, label = read_hdf5_shard(p)
        assert data.shape == (10, 1, 64, 64)
    gen(out, count=120, shard=10)
    assert not list(out.glob(".*.tmp"))
    for p in ref.glob("shard-*.h5"):
        assert p.read_bytes() == (out / p.name).read_bytes()


@pytest.mark.parametrize("args, message", [
    (["--count", "-5"], "--count"),
    (["--preset", "no_such_preset"], "unknown preset"),
    (["--size", "48"], "49"),
    (["--workers", "0"], "--workers"),
])
def test_bad_arguments_exit_2_with_clear_message(tmp_path, args, message):
    base = {"--preset": "quick", "--count": "4", "--size": "64", "--out": str(tmp_path / "o")}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    r = run_cli(*[x for kv in base.items() for x in kv], "--quiet")
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_unwritable_output_exits_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_cli("--preset", "quick", "--count", 4, "--out", blocker / "sub", "--quiet")
    assert r.returncode == 2 and "not writable" in r.stderr and str(blocker) in r.stderr
    r = run_cli("--preset", "quick", "--count", 4, "--out", "/proc/datagen_out", "--quiet")
    assert r.returncode == 2 and "not writable" in r.stderr


def test_refuses_nonempty_folder_without_manifest(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "precious.txt").write_text("keep")
    r = run_cli("--preset", "quick", "--count", 4, "--out", tmp_path / "o", "--quiet")
    assert r.returncode == 2 and "not empty" in r.stderr


def _preview_panel_crops(png: Path) -> list[np.ndarray]:
    """The image panels of a one-row preview PNG, left to right, as grey arrays: the columns that
    are mostly not white within the rows that are mostly not white (titles are thin text)."""
    from PIL import Image

    grey = np.asarray(Image.open(png).convert("L")).astype(np.float64)
    dark = grey < 250
    rows = np.flatnonzero(dark.mean(axis=1) > 0.4)
    cols = dark[rows].mean(axis=0) > 0.5
    edges = np.flatnonzero(np.diff(np.r_[0, cols.astype(int), 0]))
    return [grey[rows.min() + 2: rows.max() - 1, c0 + 2: c1 - 2] for c0, c1 in zip(edges[::2], edges[1::2])]


def _shown_vs(panel: np.ndarray, image: np.ndarray, lo: float, hi: float) -> float:
    """Correlation of a panel (sampled at the image's pixel centres) with ``image`` in the grey scale lo..hi."""
    h, w = panel.shape
    ys = ((np.arange(image.shape[0]) + 0.5) * h / image.shape[0]).astype(int)
    xs = ((np.arange(image.shape[1]) + 0.5) * w / image.shape[1]).astype(int)
    expected = np.clip((image - lo) / (hi - lo), 0.0, 1.0)
    return float(np.corrcoef(panel[np.ix_(ys, xs)].ravel(), expected.ravel())[0, 1])


def test_preview_png(tmp_path):
    """The preview PNG decodes, has the figure's size, and shows clean target, every family and
    all families, in that order, each panel the simulated image of its title."""
    from PIL import Image

    from datagen import FAMILIES
    from datagen.preview import preview_panels

    out = tmp_path / "preview.png"
    r = run_cli("preview", "--preset", "paper", "--out", out, "--seed", 3, "--size", 64, "--samples", 1)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ncol = len(FAMILIES) + 2
    with Image.open(out) as im:
        im.load()  # decodes the whole image
        assert im.format == "PNG"
        assert im.size == (int(1.6 * ncol * 110), int(1.75 * 1 * 110))  # figsize x dpi 110
    panels = preview_panels("paper", 64, 3, 0)
    assert [t for t, _ in panels] == ["clean target", *FAMILIES, "all families"]
    crops = _preview_panel_crops(out)
    assert len(crops) == ncol
    assert all(abs(c.shape[0] - crops[0].shape[0]) <= 1 and abs(c.shape[1] - crops[0].shape[1]) <= 1 for c in crops)
    lo, hi = np.percentile(panels[0][1], [0.5, 99.5])  # one grey scale per row: the clean image's
    for crop, (title, image) in zip(crops, panels):
        assert crop.std() > 10, f"panel {title!r} is blank"
        assert _shown_vs(crop, image, lo, hi) > 0.9, f"panel {title!r} does not show its image"
    # The panels differ: the all-families panel shows its distorted image, not the clean target.
    clean, everything = panels[0][1], panels[-1][1]
    assert np.abs(crops[-1] - crops[0]).mean() > 5
    assert _shown_vs(crops[-1], everything, lo, hi) > _shown_vs(crops[-1], clean, lo, hi) + 0.03
    r = run_cli("preview", "--preset", "nope", "--out", out)
    assert r.returncode == 2 and "unknown preset" in r.stderr
