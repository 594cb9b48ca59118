"""How far did training move the net?  Two snapshots on the same frames: their errors' likeness and their mean.

At a plateau the test loss wanders (BENCHMARKS.md, "the plateau at 1.6e-6"), which says little
about how much the net's *function* changes.  This runs ``restore.py --align-rows``'s pipeline
(first alignment, net, output alignment) with two sets of weights on the row-aligned frames of
every evaluation condition (benchmarks/output_align.py's, with its ``--outputs`` cache for each),
and prints per condition

* the PSNR (dB) of each snapshot and of the mean of their outputs (a snapshot ensemble, Huang
  et al. 2017, "Snapshot ensembles: train 1, get M for free", ICLR), averaged before the output
  alignment;
* the correlation of the two snapshots' errors over all pixels (1 = the same errors) and the RMS
  difference of their outputs as a fraction of the first one's RMS error (how far the function
  moved, in units of what it still gets wrong); for the full mixes on frames without drift (the
  drifted frames' large errors are the same for every net: BENCHMARKS.md "drift").

Validation images (seed 2000), the shipped model against the run's latest snapshot:

    CAFFE_DNNL_MATH=fp32 python benchmarks/snapshot_ensemble.py --seed 2000 --outputs /tmp/oa2000.npz \\
        --other runs/long96d/snapshots/adam_iter_35328.caffemodel --other-outputs /tmp/oa2000_35328.npz
"""
from __future__ import annotations

import copy
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from evaluate.metrics import psnr  # noqa: E402
from output_align import net_outputs  # noqa: E402
from pre_align import evaluation_setup  # noqa: E402
from restoration.prealign import RowAligned  # noqa: E402
from stem_restore.rowalign import OUTPUT_ALIGN, OUTPUT_MIN_INPUT_JITTER  # noqa: E402


def likeness(first: np.ndarray, second: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """``(correlation of the two errors, RMS(first - second) / RMS(first - clean))`` over all pixels."""
    e1, e2 = (first - clean).ravel().astype(np.float64), (second - clean).ravel().astype(np.float64)
    rho = float(e1 @ e2 / np.sqrt((e1 @ e1) * (e2 @ e2)))
    moved = float(np.sqrt(np.mean((first - second).astype(np.float64) ** 2) / np.mean(e1 ** 2)))
    return rho, moved


def main() -> None:
    def extra(p):
        p.add_argument("--outputs", type=pathlib.Path, default=None,
                       help="npz keeping the first net's outputs (output_align.py's cache)")
        p.add_argument("--other", required=True, help="the second .caffemodel (same deploy prototxt)")
        p.add_argument("--other-outputs", type=pathlib.Path, default=None, help="npz keeping the second's outputs")

    a, model, _, presets = evaluation_setup(__doc__.splitlines()[0], extra)
    import restoration

    first = net_outputs(a, model, presets, a.outputs)
    b = copy.copy(a)
    b.weights = a.other
    second = net_outputs(b, restoration.load_model(a.model, a.other, tile=a.tile), presets, a.other_outputs)
    post = RowAligned(None, a.align, output=OUTPUT_ALIGN, min_input_jitter=OUTPUT_MIN_INPUT_JITTER)
    print(f"second: {a.other}; output alignment {OUTPUT_ALIGN}@{OUTPUT_MIN_INPUT_JITTER}\n")
    print("| condition | first | second | mean of both | error correlation | moved / error |")
    print("|---|---:|---:|---:|---:|---:|")
    mix = {"first": [], "second": [], "mean": []}
    for (label, family, clean, out1, keep, jitter), (_, _, _, out2, _, _) in zip(first, second):
        both = [(o1 + o2) * np.float32(0.5) for o1, o2 in zip(out1, out2)]
        db = {name: np.mean([psnr(post.align_output(o.copy(), j), c) for o, c, j in zip(outs, clean, jitter)])
              for name, outs in (("first", out1), ("second", out2), ("mean", both))}
        pick = keep if family is None else np.ones(len(clean), bool)
        rho, moved = likeness(*(np.stack([x for x, k in zip(s, pick) if k]) for s in (out1, out2, clean)))
        where = " (no drift)" if family is None else ""
        print(f"| {label} | {db['first']:.2f} | {db['second']:.2f} | {db['mean']:.2f} | {rho:.4f}{where} | "
              f"{moved:.3f}{where} |", flush=True)
        if family is None:
            for name in mix:
                mix[name].append(db[name])
    print("\nfull mix, mean of the rows: " + " / ".join(f"{name} {np.mean(v):.3f}" for name, v in mix.items()))


if __name__ == "__main__":
    main()
