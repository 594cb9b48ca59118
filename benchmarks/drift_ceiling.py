"""How much drift alone costs a single frame, by frame size: the drift-only ceiling.

Drift (datagen/scan/drift.py) is zero at the first pixel and grows with scan time, so its
displacement, and the error it leaves, grow with the frame's size.  One frame cannot tell
it from the specimen, so every single-frame method is bounded on drifted frames by the
clean specimen scanned with the frame's drift and nothing else
(``datagen.drift_only_references``).  For the full mix of a preset, this prints, per frame
size, how many test images drift and the mean PSNR of that reference over them:

    python benchmarks/drift_ceiling.py --preset training --sizes 64,128,256 --count 24

Seeds and data_range are evaluate's (seed 1000; data_range = clean max - min), so the
numbers are those of ``python -m evaluate``'s drift table for the same preset and count.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import datagen  # noqa: E402
from datagen.presets import full_mix, with_dose  # noqa: E402
from evaluate.metrics import psnr  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="training")
    p.add_argument("--sizes", default="64,128,256", help="frame edges, px")
    p.add_argument("--count", type=int, default=24)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--dose", type=float, default=300.0, help="drift does not depend on it")
    args = p.parse_args()
    preset = with_dose(full_mix(args.preset), args.dose)
    print(f"preset {args.preset} full mix @ {args.dose:g}, {args.count} images per size, seed {args.seed}")
    print("| frame | images with drift | ceiling: mean PSNR over them (dB) | min | max |")
    print("|---|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        clean = [c for _, c in datagen.simulate_pairs(preset, args.count, size, args.seed)]
        refs = datagen.drift_only_references(preset, args.count, size, args.seed)
        vals = np.array([psnr(r, c) for r, c in zip(refs, clean) if not np.array_equal(r, c)])
        print(f"| {size}² | {len(vals)} of {args.count} | {vals.mean():.2f} | {vals.min():.2f} | {vals.max():.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
