"""Write a data set of normalised training pairs, resumably and in parallel.

Sample i always comes from ``SeedSequence([seed, i])`` and is written at a
fixed place (shard j // shard_size, row j % shard_size, j = i - first), so the
output is byte-identical for any number of workers.  ``first`` > 0 writes a later
stretch of the same seed's endless stream of samples: a fresh draw of a data set
(run_training.sh's DRAW_PASSES).  Workers only simulate; the main
process writes each shard atomically as soon as it is complete.  A rerun with
the same settings keeps finished shards and writes the rest; a rerun with
different settings is refused (``manifest.json``).
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import multiprocessing as mp
import os
import pathlib
import signal
import sys
import tempfile
import threading

import numpy as np

from stem_restore.atomic import atomic_write_text

from ..pipeline import MIN_SIZE, make_training_pair, resolve_preset, sample_rng, simulate_pair
from .hdf5 import HDF5_MAX_ELEMENTS, read_hdf5_shard, write_hdf5_shard

FORMATS = ("hdf5", "lmdb")
#: Default shard size aims at this many bytes of float32 data+label per shard.
TARGET_SHARD_BYTES = 64 << 20
MANIFEST = "manifest.json"
LIST_FILE = "list.txt"


class DatagenError(ValueError):
    """Bad arguments or an output folder that cannot be used (CLI exit 2)."""


def default_shard_size(size: int) -> int:
    """Samples per shard: ~64 MB of data+label, 16..4096, under INT_MAX elements."""
    n = TARGET_SHARD_BYTES // (2 * 4 * size * size)
    return int(max(16, min(4096, n, HDF5_MAX_ELEMENTS // (size * size))))


def preset_digest(preset: dict) -> str:
    """SHA-256 of the preset's canonical JSON (detects edited presets)."""
    text = json.dumps(preset, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_args(count, size, fmt, workers, shard_size):
    if not isinstance(count, int) or count < 1:
        raise DatagenError(f"--count must be a positive integer, got {count}")
    if not isinstance(size, int) or size < MIN_SIZE:
        raise DatagenError(f"--size must be >= {MIN_SIZE} (the network's receptive field), got {size}")
    if size * size > HDF5_MAX_ELEMENTS:
        raise DatagenError(f"--size {size} is too large: one {size} x {size} image has {size * size:,} "
                           f"pixels, more than the 2^31-1 elements Caffe's HDF5 layer reads "
                           f"(largest --size: {math.isqrt(HDF5_MAX_ELEMENTS)})")
    if fmt not in FORMATS:
        raise DatagenError(f"--format must be one of {FORMATS}, got {fmt!r}")
    if not isinstance(workers, int) or workers < 1:
        raise DatagenError(f"--workers must be >= 1, got {workers}")
    if shard_size < 1 or shard_size * size * size > HDF5_MAX_ELEMENTS:
        raise DatagenError(f"--shard-size {shard_size} must be >= 1 and keep N*H*W <= 2^31-1")
    if fmt == "lmdb" and count >= 10**8:
        raise DatagenError("--count must be < 10^8 for LMDB keys %08d")


def _prepare_folder(out: pathlib.Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DatagenError(f"output folder {out} is not writable: {exc}") from None
    for stale in out.glob(".*.tmp"):  # left by a killed run
        stale.unlink()


def _check_manifest(out: pathlib.Path, manifest: dict) -> None:
    path = out / MANIFEST
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DatagenError(f"{path}: unreadable manifest ({exc}); use a new --out") from None
        diff = {k: (old.get(k), v) for k, v in manifest.items() if old.get(k) != v}
        if diff:
            items = ", ".join(f"{k}: existing {a!r} vs requested {b!r}" for k, (a, b) in diff.items())
            raise DatagenError(f"{out} holds a data set made with other settings ({items}); "
                               "refusing to resume - use a new --out or the same settings")
    else:
        existing = [p.name for p in out.iterdir() if not p.name.startswith(".")]
        if existing:
            raise DatagenError(f"{out} is not empty and has no {MANIFEST} ({existing[:3]}...); "
                               "refusing to write into it")
        atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


# --- worker side -------------------------------------------------------------
_WORK: dict = {}


def _init_worker(preset: dict, size: int, seed: int, first: int = 0, pool_worker: bool = False) -> None:
    """Set the worker's parameters.  A pool worker ignores SIGINT: Ctrl-C reaches the whole
    process group, and only the main process handles it (it terminates the pool), so no
    worker prints a KeyboardInterrupt traceback."""
    if pool_worker:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORK.update(preset=preset, size=size, seed=seed, first=first)


def _make_sample(index: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Row ``index`` of the data set: sample ``first + index`` of the seed's stream."""
    rng = sample_rng(_WORK["seed"], _WORK["first"] + index)
    distorted, clean = simulate_pair(_WORK["preset"], _WORK["size"], rng)
    x, y = make_training_pair(distorted, clean)
    return index, x, y


def _shard_name(k: int) -> str:
    return f"shard-{k:05d}.h5"


class _Hdf5Sink:
    """HDF5 shards ``out/shard-%05d.h5`` (``data``/``label``, N x 1 x H x W) + ``list.txt``."""

    def __init__(self, out: pathlib.Path, size: int):
        self.out = out
        self.size = size

    def done(self, k: int, a: int, b: int) -> bool:
        """Whether shard ``k`` (samples a..b-1) exists, reads back, and has the right shape."""
        path = self.out / _shard_name(k)
        if not path.exists():
            return False
        try:
            data, _ = read_hdf5_shard(path)
            return data.shape == (b - a, 1, self.size, self.size)
        except ValueError as exc:
            print(f"datagen: rewriting bad shard: {exc}", file=sys.stderr)
            return False

    def write(self, k: int, a: int, data: np.ndarray, label: np.ndarray) -> None:
        """Write shard ``k`` atomically."""
        write_hdf5_shard(self.out / _shard_name(k), data, label)

    def finish(self, bounds: list[tuple[int, int, int]]) -> None:
        """Write ``list.txt``: the absolute path of every shard, for Caffe's HDF5Data layer."""
        lines = "".join(f"{self.out / _shard_name(k)}\n" for k, _, _ in bounds)
        atomic_write_text(self.out / LIST_FILE, lines)

    def close(self) -> None:
        """Nothing stays open between shards."""


class _LmdbSink:
    """``out/input_lmdb`` + ``out/target_lmdb``, one transaction per shard and database."""

    def __init__(self, out: pathlib.Path, count: int, size: int):
        from .lmdb_writer import LmdbPair
        self.pair = LmdbPair(out, count, (size, size))

    def done(self, k: int, a: int, b: int) -> bool:
        """Whether both databases hold every sample a..b-1."""
        return self.pair.has_all(range(a, b))

    def write(self, k: int, a: int, data: np.ndarray, label: np.ndarray) -> None:
        """Write samples a.. of ``data``/``label`` (N x 1 x H x W)."""
        self.pair.write_shard(a, data, label)

    def finish(self, bounds: list[tuple[int, int, int]]) -> None:
        """Nothing to add: the keys are the sample indices."""

    def close(self) -> None:
        """Close both databases."""
        self.pair.close()


def _resolve_shard_size(size, shard_size: int | None) -> int:
    """``shard_size``, or the default for ``size``.  The default never exceeds the HDF5
    limit, so a too-large ``size`` is the one blamed by :func:`_check_args`."""
    if shard_size is not None:
        return shard_size
    if not (isinstance(size, int) and size > 0):
        return 1
    return max(1, min(default_shard_size(size), HDF5_MAX_ELEMENTS // (size * size)))


def _manifest(preset, preset_dict: dict, seed: int, count: int, size: int, fmt: str,
              shard_size: int, first: int = 0) -> dict:
    """The settings a resumed run must repeat exactly (``manifest.json``); ``first`` only
    when it is not 0, so the manifests written before it existed still match."""
    manifest = {"datagen_manifest": 1, "preset": preset_dict.get("name", str(preset)),
                "preset_sha256": preset_digest(preset_dict), "seed": int(seed), "count": count,
                "size": size, "format": fmt, "shard_size": shard_size}
    if first:
        manifest["first"] = first
    return manifest


def _shard_bounds(count: int, shard_size: int) -> list[tuple[int, int, int]]:
    """``(k, first, end)`` of every shard: samples first..end-1 go to shard k."""
    return [(k, k * shard_size, min(count, (k + 1) * shard_size))
            for k in range(math.ceil(count / shard_size))]


def _progress_bar(count: int, remaining: int, name: str, progress: bool):
    """tqdm bar on stderr over all ``count`` pairs, starting at the finished ones."""
    from tqdm import tqdm
    return tqdm(total=count, initial=count - remaining, unit="pair", disable=not progress,
                desc=f"datagen {name}", file=sys.stderr)


@contextlib.contextmanager
def _sigint_deferred():
    """Ctrl-C (SIGINT) during the block is raised as KeyboardInterrupt when the block ends,
    not inside it (in the main thread; elsewhere Python delivers no signals anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _samples(indices: list[int], preset_dict: dict, size: int, seed: int, first: int, workers: int):
    """``(index, x, y)`` for the rows ``indices``, in order; simulated by a pool of ``workers``
    processes (terminated on exit) when there is more than one and more than one sample."""
    if workers > 1 and len(indices) > 1:
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        pool = None
        try:
            with _sigint_deferred():  # a pool half built when Ctrl-C came would leave its workers
                pool = ctx.Pool(workers, initializer=_init_worker, initargs=(preset_dict, size, seed, first, True))
            yield pool.imap(_make_sample, indices, chunksize=max(1, min(16, len(indices) // (4 * workers))))
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    else:
        _init_worker(preset_dict, size, seed, first)
        yield map(_make_sample, indices)


def _write_shards(samples, todo: list[tuple[int, int, int]], sink, bar) -> None:
    """Stack the in-order ``samples`` into the shards ``todo`` and write each one as
    soon as it is complete (a killed run keeps every finished shard)."""
    samples = iter(samples)
    for k, a, b in todo:
        xs, ys = [], []
        for i, x, y in itertools.islice(samples, b - a):
            assert i == a + len(xs)
            xs.append(x)
            ys.append(y)
            bar.update(1)
        sink.write(k, a, np.stack(xs)[:, None], np.stack(ys)[:, None])


def generate(preset, count: int, size: int, out, fmt: str = "hdf5", workers: int = 1,
             seed: int = 0, shard_size: int | None = None, progress: bool = True,
             first: int = 0) -> pathlib.Path:
    """Write ``count`` normalised pairs of ``size``^2 to ``out``; return ``out``.

    Row j holds sample ``first + j`` of ``seed`` (:func:`datagen.pipeline.sample_rng`):
    ``first = d * count`` is draw d of a data set that is drawn afresh every few epochs.

    HDF5: ``out/shard-%05d.h5`` + ``out/list.txt`` (absolute paths).
    LMDB: ``out/input_lmdb`` + ``out/target_lmdb``.  Both: ``out/manifest.json``,
    and ``out/COMPLETE`` once every shard is written.
    """
    shard_size = _resolve_shard_size(size, shard_size)
    _check_args(count, size, fmt, workers, shard_size)
    if not isinstance(first, int) or first < 0:
        raise DatagenError(f"--first must be a non-negative integer, got {first}")
    preset_dict = resolve_preset(preset)
    out = pathlib.Path(out).resolve()
    _prepare_folder(out)
    _check_manifest(out, _manifest(preset, preset_dict, seed, count, size, fmt, shard_size, first))

    bounds = _shard_bounds(count, shard_size)
    sink = _Hdf5Sink(out, size) if fmt == "hdf5" else _LmdbSink(out, count, size)
    try:
        todo = [(k, a, b) for k, a, b in bounds if not sink.done(k, a, b)]
        indices = [i for _, a, b in todo for i in range(a, b)]
        with _progress_bar(count, len(indices), out.name, progress) as bar, \
                _samples(indices, preset_dict, size, seed, first, workers) as samples:
            _write_shards(samples, todo, sink, bar)
    finally:
        sink.close()
    sink.finish(bounds)
    atomic_write_text(out / "COMPLETE", f"{count} pairs\n")
    return out
