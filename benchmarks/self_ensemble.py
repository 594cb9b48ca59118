"""Does averaging the net over the slow-scan mirror help?  ``cnn`` vs ``(cnn(x) + flipud(cnn(flipud(x)))) / 2``.

The mirror self-ensemble of :mod:`restoration.ensemble` (``restore.py --self-ensemble``; why
the mirrored frame is a fair second estimate is written there).  Per condition of
``benchmarks/pre_align.py`` (the evaluation's test images): mean PSNR and column-position error
of the net, the ensemble, both after row alignment, and both with their outputs aligned again
(``post(...)``: what ``restore.py --align-rows`` does since session 26,
:data:`stem_restore.rowalign.OUTPUT_ALIGN` where the input's line jitter reaches
:data:`~stem_restore.rowalign.OUTPUT_MIN_INPUT_JITTER`; ``restoration.prealign.RowAligned``).

    CAFFE_DNNL_MATH=fp32 python benchmarks/self_ensemble.py --doses 300
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
from pre_align import conditions, evaluation_setup  # noqa: E402
from restoration.ensemble import mirror_mean  # noqa: E402
from restoration.prealign import RowAligned  # noqa: E402


def main() -> None:
    a, model, _, presets = evaluation_setup(__doc__.splitlines()[0])
    methods = ("cnn", "mirror mean", "cnn(align_rows)", "mirror mean(align_rows)",
               "post(cnn(align_rows))", "post(mirror mean(align_rows))")
    aligner = RowAligned(model.restorer, a.align)
    print("| condition | " + " | ".join(f"{m} dB" for m in methods) + " | "
          + " | ".join(f"{m} px" for m in methods) + " |")
    print("|---|" + "---:|" * (2 * len(methods)))
    for role, cond in conditions([float(d) for d in a.doses.split(",")]):
        pairs = datagen.simulate_pairs(run.condition_preset(presets[role], cond), a.count, a.size, a.seed)
        clean = [c for _, c in pairs]
        raw = [d for d, _ in pairs]
        prepared = [aligner.prepare(d) for d in raw]  # (align_rows(d, **align), line jitter)
        aligned = [f for f, _ in prepared]
        outs = {"cnn": [model.restore(d) for d in raw],
                "mirror mean": [mirror_mean(model.restore, d) for d in raw],
                "cnn(align_rows)": [model.restore(d) for d in aligned],
                "mirror mean(align_rows)": [mirror_mean(model.restore, d) for d in aligned]}
        for m in ("cnn(align_rows)", "mirror mean(align_rows)"):
            outs[f"post({m})"] = [aligner.align_output(o.copy(), j) for o, (_, j) in zip(outs[m], prepared)]
        db = {m: np.mean([psnr(o, c) for o, c in zip(outs[m], clean)]) for m in methods}
        px = {m: run.rms_column_error(outs[m], clean) for m in methods}
        print(f"| {cond.label} | " + " | ".join(f"{db[m]:.2f}" for m in methods) + " | "
              + " | ".join(f"{px[m]:.3f}" for m in methods) + " |", flush=True)


if __name__ == "__main__":
    main()
