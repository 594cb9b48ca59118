"""How far did the distortions move the atomic columns, and what does each method do at each distance?

evaluate's column-position error (:func:`evaluate.metrics.column_position_error`) searches each
column within :data:`~evaluate.metrics.PEAK_RADIUS` = 2 px of where it stands in the clean target.
A column that slow line jitter or drift moved farther is found on its window's rim (error
2-3.5 px whatever the method: the rim, plus up to half a sample per axis), so a mean over such columns measures how many there are, not how
well a method places them.  This script locates every column again within a window that grows
with the lattice (half-width ``--spacing-fraction`` x the distance to its nearest neighbour, at
least 2 px: 0.35 keeps the window's corners nearer to the column than to any neighbour) and
prints, on the evaluation's test images (the full mix, in and out of distribution):

1. each method's RMS error (px) with the 2 px window (evaluate's) and with the wide one, and
   with the wide one on frames with drift scored against their drift-only reference (what a
   single frame cannot know taken out, as evaluate's drift residual does for PSNR);
2. the RMS error of each method by how far the distortions moved the column: bins of the
   column's displacement in the noise-free distorted frame (``datagen.scanned_references``;
   not the raw frame's own, whose noise would pick the columns raw happened to place well), the
   same columns for every method: where a method wins, on columns the scan left within a
   fraction of a pixel (noise moves them) or on ones jitter moved pixels.

Methods: the raw frame, a Gaussian (sigma 1 px), row alignment (``--align``), row alignment +
Gaussian (sigma 1 px), the net, and ``restore.py --align-rows`` (the net on row-aligned frames,
its output aligned again: ``restoration.prealign.RowAligned``).

    CAFFE_DNNL_MATH=fp32 python benchmarks/column_reach.py [--weights W] [--doses 300]
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import datagen  # noqa: E402
from evaluate import run  # noqa: E402
from evaluate.baselines import align_gaussian, gaussian  # noqa: E402
from evaluate.metrics import PEAK_RADIUS, column_displacements, column_spacing  # noqa: E402
from pre_align import evaluation_setup  # noqa: E402
from restoration.prealign import RowAligned  # noqa: E402

#: Bins (px) of the columns' displacement by the scan (noise-free distorted frame).
BINS = (0.0, 0.5, 1.0, 2.0, np.inf)


def wide_radius(fraction: float):
    """Per-column search half-width: ``fraction`` x the nearest-neighbour distance, >= PEAK_RADIUS."""
    def radius(peaks: np.ndarray) -> np.ndarray:
        spacing = np.minimum(column_spacing(peaks), 1e6)  # a lone column: any window
        return np.maximum(PEAK_RADIUS, np.floor(fraction * spacing)).astype(int)
    return radius


def rms(d: np.ndarray) -> float:
    return float(np.sqrt(np.mean(d**2))) if d.size else float("nan")


def main() -> None:
    def extra(p):
        p.add_argument("--spacing-fraction", type=float, default=0.35,
                       help="wide window's half-width / nearest-neighbour distance (default 0.35)")
    a, model, align, presets = evaluation_setup(__doc__.splitlines()[0], extra)
    wide = wide_radius(a.spacing_fraction)
    aligner = RowAligned(model.restorer, a.align)

    def pipeline(d):
        frame, jitter = aligner.prepare(d)
        return aligner.align_output(model.restore(frame), jitter)

    methods = {"raw": lambda d: d, "gaussian": lambda d: gaussian(d, 1.0),
               "align_rows": lambda d: aligner.prepare(d)[0],
               "align+gaussian": lambda d: align_gaussian(d, 1.0, **align),
               "cnn": model.restore, "restore --align-rows": pipeline}
    doses = [float(d) for d in a.doses.split(",")]
    conds = [("base", c) for c in run.make_conditions([], doses)] + [("heldout", c) for c in run.heldout_conditions(doses)]
    names = list(methods)
    table1, table2 = [], []
    for role, cond in conds:
        preset = run.condition_preset(presets[role], cond)
        pairs = datagen.simulate_pairs(preset, a.count, a.size, a.seed)
        refs = datagen.drift_only_references(preset, a.count, a.size, a.seed)
        moved = np.concatenate([column_displacements(s, c, wide) for s, (_, c) in
                                zip(datagen.scanned_references(preset, a.count, a.size, a.seed), pairs)])
        outs = {m: [f(d) for d, _ in pairs] for m, f in methods.items()}
        narrow = {m: np.concatenate([column_displacements(o, c) for o, (_, c) in zip(outs[m], pairs)]) for m in names}
        far = {m: [column_displacements(o, c, wide) for o, (_, c) in zip(outs[m], pairs)] for m in names}
        resid = {m: np.concatenate([column_displacements(o, r, wide) for o, r in zip(outs[m], refs)]) for m in names}
        far = {m: np.concatenate(v) for m, v in far.items()}
        table1.append(f"| {cond.label} | {moved.size} | {np.mean(moved > PEAK_RADIUS):.0%} | "
                      + " | ".join(f"{rms(narrow[m]):.2f} / {rms(far[m]):.2f} / {rms(resid[m]):.2f}" for m in names) + " |")
        for lo, hi in zip(BINS[:-1], BINS[1:]):
            sel = (moved >= lo) & (moved < hi)
            table2.append(f"| {cond.label} | {lo:g}–{hi:g} px | {sel.mean():.0%} | "
                          + " | ".join(f"{rms(far[m][sel]):.2f}" for m in names) + " |")
        print(table1[-1], flush=True)
    print(f"\nRMS column error (px), columns pooled over the {a.count} images: window 2 px / wide "
          f"({a.spacing_fraction:g} x spacing) / wide, drifted frames against their drift-only reference")
    print("| condition | columns | moved > 2 px by the scan | " + " | ".join(names) + " |")
    print("|---|---:|---:|" + "---:|" * len(names))
    print("\n".join(table1))
    print("\nRMS column error (px, wide window) by how far the scan moved the column (noise-free distorted frame)")
    print("| condition | moved by the scan | share of columns | " + " | ".join(names) + " |")
    print("|---|---|---:|" + "---:|" * len(names))
    print("\n".join(table2))


if __name__ == "__main__":
    main()
