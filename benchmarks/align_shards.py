"""Copy a folder of HDF5 training shards with every input row-aligned: data for training the net
on what it would see after row alignment (``benchmarks/pre_align.py`` measures the net on such
inputs).

Each input patch (``data``) goes through :func:`stem_restore.rowalign.align_rows` with fixed
parameters; targets (``label``) and loss weights (``weight``, if any: they keep describing the
raw input, as ``datagen.weights`` made them) are copied unchanged.  Shards are written under a
temporary name and renamed, ``list.txt`` last, so an interrupted call leaves nothing
half-written and a rerun redoes only what is missing.

    python benchmarks/align_shards.py runs/long96d/data/train-draw5_weighted runs/align96/data/train-draw5a
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stem_restore.atomic import atomic_write_text  # noqa: E402
from stem_restore.rowalign import DEFAULT_ALIGN, align_rows, parse_align  # noqa: E402
from stem_restore.snapshots import read_listing  # noqa: E402


def align_shard(src: pathlib.Path, dst: pathlib.Path, params: dict) -> None:
    """Write ``dst``: ``src`` with each input patch row-aligned (float32 as read, then float64)."""
    import h5py

    from datagen.writers.hdf5 import write_hdf5_shard

    with h5py.File(src, "r") as f:
        data, label = f["data"][...], f["label"][...]
        weight = f["weight"][...] if "weight" in f else None
    out = np.empty_like(data)
    for i, patch in enumerate(data):
        out[i, 0] = align_rows(patch[0].astype(np.float64), **params)
    write_hdf5_shard(dst, out, label, weight=weight)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=pathlib.Path, help="folder with list.txt and its shards")
    p.add_argument("out", type=pathlib.Path)
    p.add_argument("--align", default=DEFAULT_ALIGN, help=f"align_rows parameters (default {DEFAULT_ALIGN})")
    a = p.parse_args()
    params = parse_align(a.align)
    listing = a.src / "list.txt"
    if not listing.is_file():
        sys.exit(f"{listing}: no such list file (a datagen HDF5 folder holds one)")
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    settings = out / "align.txt"
    wanted = f"source {a.src.resolve()}\nalign {a.align}\n"
    if settings.exists() and settings.read_text() != wanted:
        sys.exit(f"{settings}: {out} holds shards aligned with other settings; use another folder")
    atomic_write_text(settings, wanted)
    paths, t0 = [], time.time()
    for shard in read_listing(listing):
        target = out / pathlib.Path(shard).name
        if not target.exists():
            align_shard(pathlib.Path(shard), target, params)
            print(f"{target} ({time.time() - t0:.0f} s)", flush=True)
        paths.append(target)
    atomic_write_text(out / "list.txt", "".join(f"{q}\n" for q in paths))


if __name__ == "__main__":
    main()
