"""Which row alignment of the net's output?  A grid of settings on the same outputs.

``restore.py --align-rows`` aligns the rows before the net (:data:`DEFAULT_ALIGN`) and the net's
output after it (:data:`OUTPUT_ALIGN`, BENCHMARKS.md "the error budget by band").  This runs the
net once on the row-aligned frames of the full mix and the held-out mix (the evaluation's
conditions, sizes and doses) and applies each setting of ``--setting`` (``align_rows``'s
``key=value,...``; repeatable; default: the candidates of session 27) to the same outputs.  Per
setting and condition it prints the mean PSNR over all frames / over the frames without drift
(evaluate's split), and their mean over the conditions.

Pick on images the evaluation does not use, then report on the evaluation's:

    CAFFE_DNNL_MATH=fp32 python benchmarks/output_align.py --seed 2000   # validation images
    CAFFE_DNNL_MATH=fp32 python benchmarks/output_align.py               # the evaluation's (seed 1000)
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
from evaluate.metrics import psnr  # noqa: E402
from pre_align import evaluation_setup  # noqa: E402
from stem_restore.rowalign import OUTPUT_ALIGN, align_rows, parse_align  # noqa: E402

#: Session 27's candidates: session 26's setting (a running median over 33 rows), the same without
#: smoothing or gate, and the local straight line over 25-49 rows.
CANDIDATES = (
    "reference=previous,detrend=33,smooth=1,max_shift=2,min_jitter=0.15",
    "reference=previous,detrend=33,smooth=0,max_shift=2,min_jitter=0",
    "reference=previous,trend=linear,detrend=25,smooth=1,max_shift=2,min_jitter=0.15",
    "reference=previous,trend=linear,detrend=33,smooth=1,max_shift=2,min_jitter=0.15",
    "reference=previous,trend=linear,detrend=41,smooth=1,max_shift=2,min_jitter=0.15",
    "reference=previous,trend=linear,detrend=49,smooth=1,max_shift=2,min_jitter=0.15",
    "reference=previous,trend=linear,detrend=41,smooth=2,max_shift=2,min_jitter=0.15",
    "reference=previous,trend=linear,detrend=41,smooth=0,max_shift=2,min_jitter=0.15",
    "reference=previous,trend=linear,detrend=41,smooth=0,max_shift=2,min_jitter=0",
)


def main() -> None:
    def extra(p):
        p.add_argument("--setting", action="append", default=None, metavar="KEY=VALUE,...",
                       help="an alignment of the net's output to try (repeatable; default: CANDIDATES)")

    a, model, align, presets = evaluation_setup(__doc__.splitlines()[0], extra)
    settings = a.setting or list(CANDIDATES)
    doses = [float(d) for d in a.doses.split(",")]
    conds = ([("base", c) for c in run.make_conditions([], doses)]
             + [("heldout", c) for c in run.heldout_conditions(doses)])
    data = []
    for role, cond in conds:
        preset = run.condition_preset(presets[role], cond)
        pairs = datagen.simulate_pairs(preset, a.count, a.size, a.seed)
        refs = datagen.drift_only_references(preset, a.count, a.size, a.seed)
        keep = np.array([np.array_equal(r, c) for r, (_, c) in zip(refs, pairs)])
        outs = [model.restore(align_rows(d, **align)) for d, _ in pairs]
        data.append((cond.label, [c for _, c in pairs], outs, keep))
    print("PSNR dB, all frames / frames without drift; the net's input is row-aligned "
          f"(align_rows {a.align}); OUTPUT_ALIGN = {OUTPUT_ALIGN}\n")
    print("| alignment of the net's output | mean | " + " | ".join(label for label, *_ in data) + " |")
    print("|---|---:|" + "---:|" * len(data))
    for setting in ["none"] + settings:
        post = parse_align(setting) if setting != "none" else None
        cells, means = [], []
        for _, clean, outs, keep in data:
            db = np.array([psnr(align_rows(o, **post) if post else o, c) for o, c in zip(outs, clean)])
            cells.append(f"{db.mean():.2f} / {db[keep].mean():.2f}")
            means.append(db.mean())
        print(f"| {setting} | {np.mean(means):.3f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
