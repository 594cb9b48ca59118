"""Which line-to-line row shifts does a net keep: a Brownian drift walk's or scan lines'?

Until session 30 the simulator's drift walk was Brownian (``[drift]
random_walk_time_constant_s`` absent or 0): every scan line stepped independently from the
last, like ``scan_lines`` noise, and targets that keep drift (``[target] keep_drift``) kept
those steps while targets never keep scan lines.  This restores frames with one family alone
(no noise) and measures how much of the line-to-line row shift, against the clean specimen,
the net leaves:

- ``drift``: the Brownian walk alone (no linear drift, ``--walk`` A/sqrt(s), tau = 0);
- ``scan_lines``: the preset's AR(1) per-line shifts in x alone.

Row shift = ``stem_restore.rowalign.pair_shifts(clean, image)`` per row (px); its first
difference down the frame is the line-to-line part (slow trends, which no row alignment
sees, drop out); printed is its RMS for the input and the output, and the share kept.  A net
that keeps the walk's steps and removes the scan lines' does what the Brownian targets taught
it; one trained on the slow walk should remove both.

    CAFFE_DNNL_MATH=fp32 python benchmarks/line_wander.py [--weights W.caffemodel] [--count 10]
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import datagen  # noqa: E402
from datagen.presets import family_preset, with_dose  # noqa: E402
from stem_restore.rowalign import pair_shifts  # noqa: E402


def line_to_line_shift(image: np.ndarray, clean: np.ndarray) -> float:
    """RMS (px) of the row-to-row change of ``image``'s row shifts against ``clean``."""
    shifts = pair_shifts(clean, image)
    steps = np.diff(shifts)
    return float(np.sqrt(np.nanmean(steps ** 2)))


def family_frames(preset: str, family: str, count: int, size: int, seed: int, dose: float, walk: float):
    """``count`` (distorted, clean) pairs with ``family`` alone (the drift: walk only, Brownian)."""
    p = with_dose(family_preset(preset, family), dose)
    if family == "drift":
        p["drift"].update(velocity_angstrom_per_s=0.0, random_walk_angstrom_per_sqrt_s=walk,
                          random_walk_time_constant_s=0.0)
    else:
        p["scan_lines"].update(std_y_angstrom=0.0)
    return datagen.simulate_pairs(p, count, size, seed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="training")
    p.add_argument("--weights", default=None, help="default: the shipped model")
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--dose", type=float, default=300.0, help="no shot noise: sets the ADC scale only")
    p.add_argument("--walk", type=float, default=1.0, help="Brownian walk strength, A/sqrt(s)")
    args = p.parse_args()

    import restoration

    model = restoration.load_model(weights=args.weights) if args.weights else restoration.load_model()
    print(f"preset {args.preset}, {args.count} frames of {args.size}² per family, seed {args.seed}, "
          f"weights {args.weights or 'shipped'}")
    print("| family alone | line-to-line row shift, input (px) | net output (px) | kept |")
    print("|---|---:|---:|---:|")
    for family in ("drift", "scan_lines"):
        pairs = family_frames(args.preset, family, args.count, args.size, args.seed, args.dose, args.walk)
        raw = np.mean([line_to_line_shift(x, c) for x, c in pairs])
        out = np.mean([line_to_line_shift(model.restore(x), c) for x, c in pairs])
        label = f"drift: Brownian walk {args.walk:g} Å/√s" if family == "drift" else "scan_lines (x)"
        print(f"| {label} | {raw:.3f} | {out:.3f} | {out / raw:.0%} |", flush=True)


if __name__ == "__main__":
    main()
