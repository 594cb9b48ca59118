"""Does the CNN leave line jitter that a whole-row estimate removes?  The net, and the net after row alignment.

The net sees 49 px around a pixel, so it can estimate a scan line's x offset from at most 49 px
of that line and its neighbours; row alignment (``stem_restore.rowalign.align_rows``, what
``restore.py --align-rows`` does first) cross-correlates whole lines (256 px here).  On the
evaluation's test images this prints, per condition, the mean PSNR and the column-position
error (evaluate's metrics, the same seeds and data_range as ``python -m evaluate``) of: the raw
frame, row alignment, the net, and the net applied to the row-aligned frame; for the full mix
also the gain on the frames without drift.  Conditions: line jitter alone and with shot noise,
three families whose raw frames are good (flyback, detector lag, shot noise alone: what
alignment costs where there is no jitter), the full mix and the held-out mix.

    python benchmarks/pre_align.py --weights runs/long96d/snapshots/adam_iter_N.caffemodel
    python benchmarks/pre_align.py --also aligned=runs/align96/snapshots/adam_iter_N.caffemodel

``align_rows(cnn)`` is the other order: the net first, then row alignment of its output (whose
rows are denoised, so their cross-correlation is sharper); ``cnn(align@cnn)`` measures the line
offsets on the net's output, undoes them on the raw frame and runs the net on that;
``post(cnn(align_rows))`` aligns before the net and then the net's output again, with
``--output-align`` (:data:`stem_restore.rowalign.OUTPUT_ALIGN`: offsets wandering over tens of
rows) where the input's line jitter reaches ``--min-input-jitter`` px (what ``restore.py
--align-rows`` does: ``restoration.prealign.RowAligned``).  ``--also NAME=WEIGHTS`` adds a net
(same deploy prototxt) applied to the row-aligned frames, e.g. one trained on row-aligned inputs
(``benchmarks/align_shards.py``).

Row alignment runs with fixed parameters (``--align``; default: those evaluate's grid search
picked for align_rows on the full mix's validation images at doses 300 and 1000), not tuned
per condition.  Set ``CAFFE_DNNL_MATH=fp32`` for numbers comparable with the evaluation's.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import datagen  # noqa: E402
from evaluate import run  # noqa: E402
from evaluate.metrics import psnr  # noqa: E402
from restoration.prealign import RowAligned  # noqa: E402
from stem_restore.machine import cpu_model  # noqa: E402
from stem_restore.rowalign import (DEFAULT_ALIGN, OUTPUT_ALIGN, OUTPUT_MIN_INPUT_JITTER, align_rows,  # noqa: E402
                                   estimate_row_offsets, parse_align, shift_rows)

#: Families whose raw frames are already good (evaluate's table @ 300: 52-53 dB raw for flyback
#: and detector lag): where alignment can only move good rows.
GOOD_FRAMES = ("flyback", "detector_lag", "shot_noise")


def conditions(doses: list[float]) -> list[tuple[str, run.Condition]]:
    """(preset role, condition): line jitter alone and with shot noise, the full mix, the held-out mix."""
    mid = sorted(doses)[len(doses) // 2]
    out = [("base", run.Condition("scan_jitter", mid)), ("base", run.Condition("scan_jitter", mid, True))]
    out += [("base", run.Condition(f, mid)) for f in GOOD_FRAMES]
    out += [("base", c) for c in run.make_conditions([], doses)]
    out += [("heldout", c) for c in run.heldout_conditions(doses)]
    return out


def evaluation_arguments(p: argparse.ArgumentParser) -> None:
    """The net and the evaluation's test images (its seeds, sizes and doses), and row alignment's
    parameters: the options this script shares with benchmarks/error_budget.py."""
    p.add_argument("--model", default=None, help="deploy prototxt (default: the shipped one)")
    p.add_argument("--weights", default=None, help=".caffemodel (default: the shipped one)")
    p.add_argument("--preset", default=str(REPO / "models/training/datagen.toml"))  # the shipped model's
    p.add_argument("--heldout-preset", default=str(REPO / "models/training/heldout.toml"))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--doses", default="100,300,1000")
    p.add_argument("--align", default=DEFAULT_ALIGN, help=f"align_rows parameters (default {DEFAULT_ALIGN})")
    p.add_argument("--tile", type=int, default=None, help="restore's window edge (px; 0 = whole image; "
                   "default automatic): 0 spares a variant that sees farther its wider window overlaps")


def evaluation_setup(description: str, extra=None):
    """Parse :func:`evaluation_arguments` (and what ``extra(parser)`` adds), load the net and print
    what runs (CPU, convolution engine, weights, images): ``(args, model, align_rows parameters,
    {"base", "heldout": preset})``, for benchmarks/error_budget.py, self_ensemble.py and
    output_align.py."""
    p = argparse.ArgumentParser(description=description)
    evaluation_arguments(p)
    if extra is not None:
        extra(p)
    a = p.parse_args()

    import restoration

    model = restoration.load_model(a.model, a.weights, tile=a.tile)
    print(f"CPU: {cpu_model()}; convolutions: {model.conv_engine}; restore engine: {model.engine}")
    print(f"weights: {a.weights or 'shipped'}; {a.count} images of {a.size}², seed {a.seed}\n")
    presets = {"base": datagen.load_preset(a.preset), "heldout": datagen.load_preset(a.heldout_preset)}
    return a, model, parse_align(a.align), presets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    evaluation_arguments(p)
    p.add_argument("--output-align", default=OUTPUT_ALIGN,
                   help=f"align_rows parameters for the net's output in post(cnn(align_rows)) (default {OUTPUT_ALIGN})")
    p.add_argument("--min-input-jitter", type=float, default=OUTPUT_MIN_INPUT_JITTER,
                   help="post(...) aligns the output only where the input's line jitter reaches this (px; "
                        f"default {OUTPUT_MIN_INPUT_JITTER})")
    p.add_argument("--also", action="append", default=[], metavar="NAME=WEIGHTS",
                   help="another .caffemodel, applied to the row-aligned frames (repeatable)")
    a = p.parse_args()

    import restoration

    model = restoration.load_model(a.model, a.weights, tile=a.tile)
    others = {}
    for item in a.also:
        name, eq, weights = item.partition("=")
        if not eq:
            p.error(f"--also {item!r}: expected NAME=WEIGHTS")
        others[f"{name}(align_rows)"] = restoration.load_model(a.model, weights, tile=a.tile)
    align = parse_align(a.align)
    print(f"CPU: {cpu_model()}; convolutions: {model.conv_engine}")
    print(f"weights: {a.weights or 'shipped'}; align_rows({a.align}); post: align_rows({a.output_align}) "
          f"where the input's jitter >= {a.min_input_jitter} px; "
          f"{a.count} images of {a.size}², seed {a.seed}")
    for name, net in others.items():
        print(f"{name}: weights {net.weights}")
    print()
    presets = {"base": datagen.load_preset(a.preset), "heldout": datagen.load_preset(a.heldout_preset)}
    aligner = RowAligned(model.restorer, a.align, output=a.output_align, min_input_jitter=a.min_input_jitter)
    methods = ("raw", "align_rows", "cnn", "cnn(align_rows)", "align_rows(cnn)", "cnn(align@cnn)",
               "post(cnn(align_rows))") + tuple(others)
    print("| condition | " + " | ".join(f"{m} dB" for m in methods)
          + " | " + " | ".join(f"{m} − cnn, no-drift frames" for m in methods[3:]) + " | "
          + " | ".join(f"{m} px" for m in methods) + " |")
    print("|---|" + "---:|" * (3 * len(methods) - 3))
    for role, cond in conditions([float(d) for d in a.doses.split(",")]):
        preset = run.condition_preset(presets[role], cond)
        pairs = datagen.simulate_pairs(preset, a.count, a.size, a.seed)
        clean = [c for _, c in pairs]
        outs = {"raw": [d for d, _ in pairs]}
        prepared = [aligner.prepare(d) for d in outs["raw"]]  # (align_rows(d, **align), line jitter)
        outs["align_rows"] = [f for f, _ in prepared]
        outs["cnn"] = [model.restore(d) for d in outs["raw"]]
        outs["cnn(align_rows)"] = [model.restore(d) for d in outs["align_rows"]]
        outs["align_rows(cnn)"] = [align_rows(o, **align) for o in outs["cnn"]]  # rows of the denoised frame
        # The offsets measured on the net's output, undone on the raw frame, then the net again.
        outs["cnn(align@cnn)"] = [model.restore(shift_rows(d, estimate_row_offsets(o, **align)))
                                  for d, o in zip(outs["raw"], outs["cnn"])]
        # Both: row alignment before the net, and of the net's output with --output-align.
        outs["post(cnn(align_rows))"] = [aligner.align_output(o.copy(), j)
                                         for o, (_, j) in zip(outs["cnn(align_rows)"], prepared)]
        for name, net in others.items():
            outs[name] = [net.restore(d) for d in outs["align_rows"]]
        db = {m: np.array([psnr(o, c) for o, c in zip(outs[m], clean)]) for m in methods}
        still = ["–"] * (len(methods) - 3)
        if cond.family is None:
            refs = datagen.drift_only_references(preset, a.count, a.size, a.seed)
            keep = np.array([np.array_equal(r, c) for r, c in zip(refs, clean)])
            still = [f"{(db[m][keep] - db['cnn'][keep]).mean():+.2f} ({keep.sum()} of {a.count})"
                     for m in methods[3:]]
        px = {m: run.rms_column_error(outs[m], clean) for m in methods}
        print(f"| {cond.label} | " + " | ".join(f"{db[m].mean():.2f}" for m in methods)
              + " | " + " | ".join(still) + " | "
              + " | ".join(f"{px[m]:.3f}" for m in methods) + " |", flush=True)


if __name__ == "__main__":
    main()
