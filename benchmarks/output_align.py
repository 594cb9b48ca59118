"""Which row alignment of the net's output?  A grid of settings on the same outputs.

``restore.py --align-rows`` aligns the rows before the net (:data:`DEFAULT_ALIGN`) and the net's
output after it (:data:`OUTPUT_ALIGN`, BENCHMARKS.md "the error budget by band").  This runs the
net once on the row-aligned frames of every condition of the evaluation (each family alone and
with shot noise at the middle dose, the full mix and the held-out mix at every dose; its sizes)
and applies each setting of ``--setting`` (``align_rows``'s ``key=value,...``, optionally
``@X``: only where the input's line jitter reaches X px, as ``restore.py --align-rows`` does with
:data:`OUTPUT_MIN_INPUT_JITTER`; repeatable; default: the candidates of session 27) to the same
outputs.  Per setting it prints the mean PSNR
over the six full-mix rows, the largest loss against the net's output unaligned over the family
rows (where the frame gate should leave good frames alone), the rows that need a raw-or-45-dB
floor (flyback, detector lag) and, per full-mix row, all frames / frames without drift
(evaluate's split).  ``--outputs FILE.npz`` keeps the net's outputs (computed once, read back
when the file exists and holds the same images).  ``--lattice KEY=VALUE,...`` adds a row: restore.py's
output alignment, then each output row moved onto the frame's own lattice
(``benchmarks/lattice_reference.py``: measured in session 28, not adopted).

Pick on images the evaluation does not use, then report on the evaluation's:

    CAFFE_DNNL_MATH=fp32 python benchmarks/output_align.py --seed 2000   # validation images
    CAFFE_DNNL_MATH=fp32 python benchmarks/output_align.py               # the evaluation's (seed 1000)
"""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import datagen  # noqa: E402
from evaluate import run  # noqa: E402
from evaluate.metrics import psnr  # noqa: E402
from lattice_reference import LATTICE_DEFAULT, align_to_lattice, parse_lattice  # noqa: E402
from pre_align import evaluation_setup  # noqa: E402
from stem_restore.atomic import atomic_path  # noqa: E402
from restoration.prealign import RowAligned  # noqa: E402
from stem_restore.rowalign import OUTPUT_ALIGN, OUTPUT_MIN_INPUT_JITTER  # noqa: E402

#: Session 27's candidates: session 26's setting (a running median over 33 rows, no input gate)
#: and the local straight line over 25-49 rows, with and without smoothing, at several output
#: gates, and gated on the input's line jitter (``@X`` px).
CANDIDATES = (
    "reference=previous,detrend=33,smooth=1,max_shift=2,min_jitter=0.15",
    "reference=previous,trend=linear,detrend=25,smooth=1,max_shift=2,min_jitter=0.15",
    "reference=previous,trend=linear,detrend=33,smooth=1,max_shift=2,min_jitter=0.15",
    "reference=previous,trend=linear,detrend=41,smooth=1,max_shift=2,min_jitter=0.15",
    "reference=previous,trend=linear,detrend=49,smooth=1,max_shift=2,min_jitter=0.15",
    "reference=previous,trend=linear,detrend=41,smooth=0,max_shift=2,min_jitter=0.15",
    "reference=previous,trend=linear,detrend=41,smooth=0,max_shift=2,min_jitter=0.35",
    "reference=previous,trend=linear,detrend=41,smooth=0,max_shift=2,min_jitter=0.15@0.15",
    "reference=previous,trend=linear,detrend=41,smooth=0,max_shift=2,min_jitter=0.3@0.3",
    "reference=previous,trend=linear,detrend=41,smooth=1,max_shift=2,min_jitter=0.15@0.5",
    "reference=previous,trend=linear,detrend=33,smooth=0,max_shift=2,min_jitter=0.15@0.5",
    "reference=previous,trend=linear,detrend=41,smooth=0,max_shift=2,min_jitter=0.15@0.5",
    "reference=previous,trend=linear,detrend=41,smooth=0,max_shift=2,min_jitter=0.15@0.7",
    "reference=previous,trend=linear,detrend=41,smooth=0,max_shift=2,min_jitter=0.15@1.0",
)

#: Families whose raw frames the issue asks the net to keep (at least raw or 45 dB).
FLOOR_FAMILIES = ("flyback", "detector_lag")


def net_outputs(a, model, presets, path: pathlib.Path | None):
    """``[(label, family, clean frames, net outputs, without-drift mask, input line jitter)]`` for
    every condition; read from / written to ``path`` (npz) when given."""
    doses = [float(d) for d in a.doses.split(",")]
    aligner = RowAligned(model.restorer, a.align)
    conds = ([("base", c) for c in run.make_conditions(list(datagen.FAMILIES), doses, with_noise=True)]
             + [("heldout", c) for c in run.heldout_conditions(doses)])
    key = json.dumps({"weights": str(a.weights), "model": str(a.model), "preset": a.preset, "heldout": a.heldout_preset,
                      "size": a.size, "count": a.count, "seed": a.seed, "doses": doses, "align": a.align})
    stored = np.load(path) if path is not None and path.exists() else None
    if stored is not None and str(stored["key"]) != key:
        raise SystemExit(f"{path}: holds outputs of other images or weights ({stored['key']}); "
                         "remove it or name another --outputs file")
    data, arrays = [], {"key": np.array(key)}
    for i, (role, cond) in enumerate(conds):
        preset = run.condition_preset(presets[role], cond)
        pairs = datagen.simulate_pairs(preset, a.count, a.size, a.seed)
        refs = datagen.drift_only_references(preset, a.count, a.size, a.seed)
        keep = np.array([np.array_equal(r, c) for r, (_, c) in zip(refs, pairs)])
        prepared = [aligner.prepare(d) for d, _ in pairs]  # (align_rows(d, **align), line jitter)
        if stored is not None:
            outs = list(stored[f"out{i}"])
        else:
            outs = [model.restore(f) for f, _ in prepared]
        arrays[f"out{i}"] = np.stack(outs)
        family = cond.family if not cond.with_noise else f"{cond.family}+noise"
        data.append((cond.label, family, [c for _, c in pairs], outs, keep, np.array([j for _, j in prepared])))
    if path is not None and stored is None:
        with atomic_path(path, suffix=".tmp.npz") as tmp:
            np.savez_compressed(tmp, **arrays)
    return data


def main() -> None:
    def extra(p):
        p.add_argument("--setting", action="append", default=None, metavar="KEY=VALUE,...",
                       help="an alignment of the net's output to try (repeatable; default: CANDIDATES)")
        p.add_argument("--outputs", type=pathlib.Path, default=None,
                       help="npz file keeping the net's outputs (computed once)")
        p.add_argument("--lattice", action="append", default=[], metavar="KEY=VALUE,...",
                       help="also: restore.py's output alignment, then the output's rows moved onto its own lattice "
                            "(benchmarks/lattice_reference.py, not adopted) with these lattice_offsets parameters; "
                            f"repeatable (e.g. {LATTICE_DEFAULT})")

    a, model, _, presets = evaluation_setup(__doc__.splitlines()[0], extra)
    settings = a.setting or ([f"{OUTPUT_ALIGN}@{OUTPUT_MIN_INPUT_JITTER}"] if a.lattice else list(CANDIDATES))
    data = net_outputs(a, model, presets, a.outputs)
    mix = [d for d in data if d[1] is None]
    families = [d for d in data if d[1] is not None]
    floor = [d for d in families if d[1] in FLOOR_FAMILIES]
    print(f"PSNR dB; the net's input is row-aligned (align_rows {a.align}); restore.py --align-rows: "
          f"{OUTPUT_ALIGN}@{OUTPUT_MIN_INPUT_JITTER}\n")
    print("| alignment of the net's output | full mix, mean | worst family Δ | "
          + " | ".join(label for label, *_ in floor) + " | "
          + " | ".join(f"{label} (all / no drift)" for label, *_ in mix) + " |")
    print("|---|---:|---:|" + "---:|" * (len(floor) + len(mix)))
    base = {}
    rows = [(s, None) for s in ["none"] + settings]
    rows += [(f"{OUTPUT_ALIGN}@{OUTPUT_MIN_INPUT_JITTER} + lattice({lat})", parse_lattice(lat)) for lat in a.lattice]
    for setting, lattice in rows:
        text, _, gate = setting.partition(" + ")[0].partition("@")
        post = None if setting == "none" else RowAligned(None, a.align, output=text, min_input_jitter=float(gate or 0))

        def restored(o, j, post=post, lattice=lattice):
            if post is None:
                return o
            o = post.align_output(o.copy(), j)
            return align_to_lattice(o, **lattice) if lattice is not None and j >= post.min_input_jitter else o

        db = {label: np.array([psnr(restored(o, j), c) for o, c, j in zip(outs, clean, jitter)])
              for label, _, clean, outs, _, jitter in data}
        if post is None:
            base = db
        worst = min(db[label].mean() - base[label].mean() for label, *_ in families)
        print(f"| {setting} | {np.mean([db[d[0]].mean() for d in mix]):.3f} | {worst:+.2f} | "
              + " | ".join(f"{db[d[0]].mean():.2f}" for d in floor) + " | "
              + " | ".join(f"{db[d[0]].mean():.2f} / {db[d[0]][d[4]].mean():.2f}" for d in mix) + " |", flush=True)


if __name__ == "__main__":
    main()
