"""What the net leaves on drifted frames besides the drift, and whether the drift causes it.

On the evaluation's full mix about half of the frames drift, and on them the net's margin
over the best classical baseline is a fraction of the one on the other half (BENCHMARKS.md,
"evaluation: how sure is a margin over 16 images?").  Drift itself is not asked of the net:
the long run trains on targets that keep it (``training.toml`` ``[target] keep_drift``) and
evaluate's ceiling is the clean specimen scanned with the frame's drift alone
(``datagen.drift_only_references``).  What the net can be blamed for on a drifted frame is
its error against that reference: the *residual*.

This scores the residual on the drifted frames of evaluate's test images (same seed, size and
``data_range`` = clean max - min) three ways, **paired**: the same frames regenerated with the
drift's displacement multiplied by each ``--scales`` factor and nothing else changed (same
specimen, canvas, jitter, noise draws; the drift's own draws too: only its output is scaled,
by wrapping :class:`datagen.scan.drift.Drift` for the run of this script).  ``0`` is the same
frame without drift.  If the residual falls towards the no-drift value as the scale falls,
the drift makes the net worse at everything else; if it stays, the drifted frames are just
harder frames.  ``0.375`` = 96/256: roughly the per-line drift a 96-px training patch
(scanned as its own 96-px frame) has for the same speed, dwell and flyback.

    CAFFE_DNNL_MATH=fp32 python benchmarks/drift_residual.py --count 32 --dose 300 [--align-rows]

Prints one row per scale: mean PSNR (dB) over the drifted frames of raw, net and
align+gaussian (tuned on these frames against their references: its best case) against the
frame's drift-only reference (residual), of the reference against the clean frame (ceiling)
and of the net against the clean frame; then the net's residual per frame by drift speed.
"""
from __future__ import annotations

import argparse
import contextlib
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import datagen.pipeline as dp  # noqa: E402
from datagen.presets import full_mix, with_dose  # noqa: E402
from datagen.scan.drift import Drift  # noqa: E402
from evaluate.metrics import clean_range, psnr  # noqa: E402


@contextlib.contextmanager
def drift_scaled(scale: float):
    """Within the block every :class:`Drift` displacement is multiplied by ``scale`` (its draws
    unchanged, so every other draw of a sample, and the canvas, stay the same); yields the list
    of the drift speeds (A/s, as drawn) of the samples simulated meanwhile."""
    original = Drift.__call__
    speeds = []

    def scaled(self, timing, shape, rng):
        speeds.append(self.velocity_angstrom_per_s)
        dx, dy = original(self, timing, shape, rng)
        return dx * scale, dy * scale

    Drift.__call__ = scaled
    try:
        yield speeds
    finally:
        Drift.__call__ = original


def drifted_frames(preset: dict, count: int, size: int, seed: int, scale: float):
    """(index, input, drift-only reference, clean, drift speed A/s as drawn, line period s, A/px)
    of the drifted frames among evaluate's first ``count`` test images."""
    out = []
    for i in range(count):
        with drift_scaled(scale) as speeds:
            x, clean, info = dp.simulate(preset, size, dp.sample_rng(seed, i), drift_only=True)
        if not info["active"]["drift"]:
            continue
        out.append((i, x, info["drift_only"], clean, speeds[-1],
                    info["timing"].line_period_s(size), info["pixel_size_angstrom"]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="training")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--count", type=int, default=32, help="test images scanned (about half drift)")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--dose", type=float, default=300.0)
    p.add_argument("--scales", default="1,0.375,0")
    p.add_argument("--weights", default=None, help="default: the shipped model")
    p.add_argument("--align-rows", action="store_true",
                   help="the net as restore.py --align-rows runs it (row alignment before and after)")
    args = p.parse_args()

    import restoration
    from evaluate.baselines import BASELINES, tune

    options = {"align_rows": True} if args.align_rows else {}
    if args.weights:
        options["weights"] = args.weights
    model = restoration.load_model(**options)
    align_gauss = BASELINES["align+gaussian"]
    preset = with_dose(full_mix(args.preset), args.dose)
    print(f"preset {args.preset} full mix @ {args.dose:g}, drifted frames among {args.count} of "
          f"{args.size}², seed {args.seed}, weights {args.weights or 'shipped'}"
          f"{', with --align-rows' if args.align_rows else ''}")
    print("| drift scale | frames | ceiling (ref vs clean) | raw vs ref | align+gaussian vs ref | "
          "net vs ref (residual) | net vs clean |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    per_frame = {}
    for scale in (float(s) for s in args.scales.split(",")):
        rows = drifted_frames(preset, args.count, args.size, args.seed, scale)
        cols = {k: [] for k in ("ceiling", "raw", "ag", "net", "net_clean")}
        best, _ = tune(align_gauss.apply, align_gauss.grid, [(x, ref) for _, x, ref, *_ in rows])
        for i, x, ref, clean, speed, period, px in rows:
            r = clean_range(clean)
            y = model.restore(x)
            g = align_gauss.apply(x, **best)
            cols["ceiling"].append(psnr(ref, clean, r) if scale else np.inf)
            cols["raw"].append(psnr(x, ref, r))
            cols["ag"].append(psnr(g, ref, r))
            cols["net"].append(psnr(y, ref, r))
            cols["net_clean"].append(psnr(y, clean, r))
            per_frame.setdefault(i, {})[scale] = (cols["net"][-1], speed * period / px)
        m = {k: float(np.mean(v)) for k, v in cols.items()}
        print(f"| {scale:g} | {len(rows)} | {m['ceiling']:.2f} | {m['raw']:.2f} | {m['ag']:.2f} | "
              f"**{m['net']:.2f}** | {m['net_clean']:.2f} |", flush=True)
    scales = [float(s) for s in args.scales.split(",")]
    print("\nper frame: drift at scale 1 in px per scan line, and the net's residual PSNR at each scale")
    print("| frame | px/line | " + " | ".join(f"residual @ {s:g}" for s in scales) + " |")
    print("|---:|---:|" + "---:|" * len(scales))
    for i, by in sorted(per_frame.items(), key=lambda kv: kv[1][scales[0]][1]):
        print(f"| {i} | {by[scales[0]][1]:.3f} | " + " | ".join(f"{by[s][0]:.2f}" for s in scales) + " |")


if __name__ == "__main__":
    main()
