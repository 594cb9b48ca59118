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

``--weights W.caffemodel [...]`` (``shipped`` = the model in ``models/``) also restores
drift-only frames (every other family off) of the largest size and prints their squared
error by band of rows, i.e. by scan time: drift starts at zero on the first row, so a
method that undid it would lower the error of the late rows, and one that only smooths
raises the error of the early rows.
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
    p.add_argument("--weights", nargs="*", default=[], help="models to score by row band")
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
    if args.weights:
        by_row(args.preset, max(int(s) for s in args.sizes.split(",")), args.count, args.seed, args.dose,
               args.weights)


def by_row(preset_name: str, size: int, count: int, seed: int, dose: float, weights: list[str]) -> None:
    """Mean squared error / data_range² (x 10⁴) of drift-only frames by band of rows, columns
    24 px in from the sides (the net's full-context interior)."""
    import restoration
    from datagen.presets import family_preset

    pairs = datagen.simulate_pairs(with_dose(family_preset(preset_name, "drift"), dose), count, size, seed)
    edges = [0, 24, size // 4, size // 2, 3 * size // 4, size - 24, size]
    bands = list(zip(edges[:-1], edges[1:]))

    def row_errors(images):
        err = [((im - c) / np.ptp(c)) ** 2 for im, (_, c) in zip(images, pairs)]
        return [1e4 * float(np.mean([e[a:b, 24:-24].mean() for e in err])) for a, b in bands]

    print(f"\ndrift-only frames ({preset_name}, {count} of {size}², seed {seed}): squared error / range² "
          f"x 10⁴ by rows (scan time), columns 24:-24")
    print("| method | " + " | ".join(f"rows {a}–{b - 1}" for a, b in bands) + " |")
    print("|---|" + "---:|" * len(bands))
    rows = {"raw": row_errors([d for d, _ in pairs])}
    for w in weights:
        model = restoration.load_model() if w == "shipped" else restoration.load_model(weights=w)
        rows[w] = row_errors([model.restore(d) for d, _ in pairs])
    for name, vals in rows.items():
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in vals) + " |", flush=True)


if __name__ == "__main__":
    main()
