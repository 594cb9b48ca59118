"""How much of a method's remaining error is scan lines sitting at the wrong x?

Line jitter moves each scan line along the fast-scan axis.  One frame constrains that motion
only through the specimen's own regularity, so part of what the net cannot remove may be row
displacement rather than intensity error.  This splits the two with an *oracle*: each row of
a method's output is shifted (sub-pixel, ``stem_restore.rowalign.shift_rows``) by the offset
that best aligns it with the same row of the clean target (``pair_shifts``: cross-correlation
with the truth, which no real method has).  The PSNR gained that way is the share of the error
that is row displacement; what is left is intensity error (noise, blur, lost contrast) and 2-D
distortion (drift, the y part of jitter).

On the evaluation's full-mix test images (the same seeds, sizes and data_range as
``python -m evaluate``), for the raw frame, the net, and the net after row alignment
(``restore.py --align-rows``), it prints per dose the mean PSNR as is and after the oracle,
over all frames and over the frames without drift (evaluate's split,
``datagen.drift_only_references``).

A second table asks how much a better *first* alignment could add to ``restore.py --align-rows``:
the pipeline as it is, and the same with the rows of the raw frame moved by the truth's offsets
(``oracle_rows`` on the input) instead of :data:`~stem_restore.rowalign.DEFAULT_ALIGN`'s estimate
(the output alignment after the net as in the pipeline, gated on the input's estimated jitter).

A third table splits the net's row error by how fast the offsets change down the frame: the
oracle restricted to the part of each row's offset that varies faster than W rows (the offsets
minus their running mean over W rows, :func:`oracle_band`).  The part slower than the net's
49-row field is what one window cannot see; the part faster than the 9 rows that row alignment's
local reference spans (``half_window=4``) is what whole-row alignment can; the band between is
what the net sees and still leaves.

    CAFFE_DNNL_MATH=fp32 python benchmarks/error_budget.py [--weights W.caffemodel]
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import datagen  # noqa: E402
from evaluate import run  # noqa: E402
from evaluate.metrics import psnr  # noqa: E402
from scipy import ndimage  # noqa: E402

from restoration.prealign import RowAligned  # noqa: E402
from stem_restore.rowalign import align_rows, pair_shifts, shift_rows  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from pre_align import evaluation_setup  # noqa: E402


def oracle_rows(image: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """``image`` with each row moved onto the same row of ``clean`` (offsets from the truth)."""
    return shift_rows(image, pair_shifts(clean, image))


#: Band limits of the second table, rows: faster than 3, 9, 33, 129 rows (and all: the oracle).
BAND_ROWS = (3, 9, 33, 129)


def oracle_band(image: np.ndarray, clean: np.ndarray, rows: int) -> np.ndarray:
    """``image`` with only the part of the oracle's row offsets that changes faster than ``rows``
    rows undone (the offsets minus their running mean over ``rows`` rows, reflected at the ends)."""
    shifts = pair_shifts(clean, image)
    return shift_rows(image, shifts - ndimage.uniform_filter1d(shifts, int(rows), mode="reflect"))


def main() -> None:
    a, model, align, presets = evaluation_setup(__doc__.splitlines()[0])
    methods = ("raw", "cnn", "cnn(align_rows)")
    print("| condition | frames | " + " | ".join(f"{m} dB → oracle rows" for m in methods) + " |")
    print("|---|---|" + "---:|" * len(methods))
    doses = [float(d) for d in a.doses.split(",")]
    bands, firsts = [], []
    aligner = RowAligned(model.restorer, a.align)
    conds = [("base", c) for c in run.make_conditions([], doses)] + [("heldout", c) for c in run.heldout_conditions(doses)]
    for role, cond in conds:
        preset = run.condition_preset(presets[role], cond)
        pairs = datagen.simulate_pairs(preset, a.count, a.size, a.seed)
        clean = [c for _, c in pairs]
        outs = {"raw": [d for d, _ in pairs]}
        outs["cnn"] = [model.restore(d) for d in outs["raw"]]
        outs["cnn(align_rows)"] = [model.restore(align_rows(d, **align)) for d in outs["raw"]]
        db = {m: np.array([psnr(o, c) for o, c in zip(outs[m], clean)]) for m in methods}
        oracle = {m: np.array([psnr(oracle_rows(o, c), c) for o, c in zip(outs[m], clean)]) for m in methods}
        refs = datagen.drift_only_references(preset, a.count, a.size, a.seed)
        still = np.array([np.array_equal(r, c) for r, c in zip(refs, clean)])
        for label, keep in (("all", np.ones(a.count, bool)), ("without drift", still)):
            print(f"| {cond.label} | {label} ({keep.sum()}) | "
                  + " | ".join(f"{db[m][keep].mean():.2f} → {oracle[m][keep].mean():.2f}" for m in methods) + " |",
                  flush=True)
        prepared = [aligner.prepare(d) for d in outs["raw"]]
        pipe = [psnr(aligner.align_output(model.restore(f).copy(), j), c) for (f, j), c in zip(prepared, clean)]
        truth = [psnr(aligner.align_output(model.restore(oracle_rows(d, c)).copy(), j), c)
                 for d, (_, j), c in zip(outs["raw"], prepared, clean)]
        pipe, truth = np.array(pipe), np.array(truth)
        for label, keep in (("all", np.ones(a.count, bool)), ("without drift", still)):
            firsts.append(f"| {cond.label} | {label} ({keep.sum()}) | {pipe[keep].mean():.2f} | {truth[keep].mean():.2f} |")
        band = np.array([[psnr(oracle_band(o, c, w), c) for w in BAND_ROWS] for o, c in zip(outs["cnn"], clean)])
        for label, keep in (("all", np.ones(a.count, bool)), ("without drift", still)):
            bands.append(f"| {cond.label} | {label} ({keep.sum()}) | {db['cnn'][keep].mean():.2f} | "
                         + " | ".join(f"{v:.2f}" for v in band[keep].mean(axis=0))
                         + f" | {oracle['cnn'][keep].mean():.2f} |")
    print("\nrestore.py --align-rows: the first alignment as estimated, and from the truth (dB)\n")
    print("| condition | frames | --align-rows | first alignment from the truth |")
    print("|---|---|---:|---:|")
    print("\n".join(firsts))
    print("\ncnn: the oracle on the part of the row offsets that changes faster than W rows (dB)\n")
    print("| condition | frames | cnn | " + " | ".join(f"W = {w}" for w in BAND_ROWS) + " | all rows |")
    print("|---|---|" + "---:|" * (len(BAND_ROWS) + 2))
    print("\n".join(bands))


if __name__ == "__main__":
    main()
