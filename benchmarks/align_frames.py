"""Training pairs row-aligned on the whole scan line, then cropped: does a net trained on them
restore row-aligned frames better?

``restore.py --align-rows`` cross-correlates whole scan lines before the net (+0.3 dB on the
full mix with a net never trained on aligned frames); aligning 96² training patches themselves
failed (session 20: on 96 px a good row locks one lattice period off).  Here each pair is
simulated as a frame ``--rows`` x ``--cols`` (e.g. 96 x 256: the lines as long as the
evaluation's frames), its distorted frame aligned with
:func:`stem_restore.rowalign.align_rows` (``--align``, default ``DEFAULT_ALIGN``: what
``--align-rows`` does, frame gate included), and the first ``--crop`` columns of both frames
(where the scan line starts, as in a frame of ``--crop`` columns) become the training pair.

Two folders from the same frames: ``OUT/aligned`` and ``OUT/plain`` (the same crops without
alignment: the control arm).  Pairs are normalised as datagen's (``make_training_pair``), with
per-pair loss weights (``datagen.weights``, of the input as written) when ``--floor-db`` is
given.  Sample i draws from ``sample_rng(seed, first + i)``, so the data are reproducible; each
shard is written atomically, ``list.txt`` last, and a rerun redoes only missing shards.

    python benchmarks/align_frames.py runs/alignf/train --preset runs/long96d/datagen.toml \\
        --seed 61 --count 16384 --floor-db 35 --scale 0.00673555
    python benchmarks/align_frames.py runs/alignf/test --preset runs/long96d/datagen.toml \\
        --seed 62 --count 64 --rows 256 --cols 256 --crop 256 --shard-size 32
"""
from __future__ import annotations

import argparse
import concurrent.futures
import pathlib
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stem_restore.atomic import atomic_write_text  # noqa: E402
from stem_restore.rowalign import DEFAULT_ALIGN, align_rows, parse_align  # noqa: E402

KINDS = ("aligned", "plain")


def pair_crops(preset: dict, index: int, seed: int, shape: tuple[int, int], crop: int,
               params: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{kind: normalised (input, target)} of sample ``index``: its first ``crop`` columns, the
    input row-aligned on the whole frame ("aligned") or not ("plain")."""
    from datagen.pipeline import make_training_pair, sample_rng, simulate_pair

    distorted, clean = simulate_pair(preset, shape, sample_rng(seed, index))
    aligned = align_rows(distorted.astype(np.float64), **params)
    return {kind: make_training_pair(frame[:, :crop].astype(np.float32), clean[:, :crop])
            for kind, frame in (("aligned", aligned), ("plain", distorted))}


def write_shard(out: pathlib.Path, number: int, preset: dict, indices: range, seed: int,
                shape: tuple[int, int], crop: int, params: dict, weights: tuple[float, float] | None) -> None:
    """Shard ``number`` of both folders (samples ``indices``)."""
    from datagen.weights import loss_weights
    from datagen.writers.hdf5 import write_hdf5_shard

    pairs = [pair_crops(preset, i, seed, shape, crop, params) for i in indices]
    for kind in KINDS:
        data = np.stack([p[kind][0] for p in pairs])[:, None]
        label = np.stack([p[kind][1] for p in pairs])[:, None]
        weight = None if weights is None else loss_weights(data, label, *weights)
        write_hdf5_shard(out / kind / f"shard_{number:04d}.h5", data, label, weight=weight)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=pathlib.Path, help="folder for aligned/ and plain/")
    p.add_argument("--preset", required=True, help="datagen preset (name or TOML)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--first", type=int, default=0, help="first sample index")
    p.add_argument("--count", type=int, required=True, help="pairs (a multiple of --shard-size)")
    p.add_argument("--rows", type=int, default=96, help="simulated frame height, px")
    p.add_argument("--cols", type=int, default=256, help="simulated frame width (scan-line length), px")
    p.add_argument("--crop", type=int, default=96, help="columns kept, from the line's start")
    p.add_argument("--shard-size", type=int, default=1024)
    p.add_argument("--align", default=DEFAULT_ALIGN, help=f"align_rows parameters (default {DEFAULT_ALIGN})")
    p.add_argument("--floor-db", type=float, help="add per-pair loss weights (python -m datagen weight)")
    p.add_argument("--scale", type=float, default=1.0, help="the weights' scale (with --floor-db)")
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    if a.count % a.shard_size or not 0 < a.crop <= a.cols:
        p.error("--count must be a multiple of --shard-size, and 0 < --crop <= --cols")
    from datagen.pipeline import resolve_preset

    preset, params = resolve_preset(a.preset), parse_align(a.align)
    out = a.out.resolve()
    for kind in KINDS:
        (out / kind).mkdir(parents=True, exist_ok=True)
    settings = out / "settings.txt"
    wanted = (f"preset {a.preset}\nseed {a.seed}\nfirst {a.first}\nframe {a.rows}x{a.cols}\ncrop {a.crop}\n"
              f"align {a.align}\nweights {a.floor_db} {a.scale}\nshard size {a.shard_size}\n")
    if settings.exists() and settings.read_text() != wanted:
        sys.exit(f"{settings}: {out} holds pairs made with other settings; use another folder")
    atomic_write_text(settings, wanted)
    weights = None if a.floor_db is None else (a.floor_db, a.scale)
    shards = a.count // a.shard_size
    todo = [n for n in range(shards)
            if not all((out / k / f"shard_{n:04d}.h5").exists() for k in KINDS)]
    t0 = time.time()
    with concurrent.futures.ProcessPoolExecutor(a.jobs) as pool:
        jobs = {pool.submit(write_shard, out, n, preset,
                            range(a.first + n * a.shard_size, a.first + (n + 1) * a.shard_size),
                            a.seed, (a.rows, a.cols), a.crop, params, weights): n for n in todo}
        for job in concurrent.futures.as_completed(jobs):
            job.result()
            print(f"shard {jobs[job]} ({time.time() - t0:.0f} s)", flush=True)
    for kind in KINDS:
        atomic_write_text(out / kind / "list.txt",
                          "".join(f"{out / kind / f'shard_{n:04d}.h5'}\n" for n in range(shards)))


if __name__ == "__main__":
    main()
