"""Row alignment alone, with and without its frame gate: what it gives on line jitter, what it costs good frames.

On the evaluation's test images (seeds and presets as ``python -m evaluate``; 16 images of 256²
per condition at one dose), the mean PSNR of the raw frame and of ``align_rows`` with
``DEFAULT_ALIGN``'s parameters at several ``min_jitter`` values (px; 0 = no gate), and per setting
how many frames end > 1 dB below (↓) or above (↑) the raw frame.  Conditions: line jitter alone and
with shot noise, flyback, detector lag and shot noise alone (good raw frames), the full mix and the
held-out mix.  NumPy/SciPy only, no Caffe (~4 min on one core).

    python benchmarks/align_gate.py
    python benchmarks/align_gate.py --gates 0,0.15,0.3 --dose 1000
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
from stem_restore.rowalign import DEFAULT_ALIGN, align_rows, parse_align  # noqa: E402
from stem_restore.machine import cpu_model  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default=str(REPO / "runs/long96d/datagen.toml"))
    p.add_argument("--heldout-preset", default=str(REPO / "runs/long96d/heldout.toml"))
    p.add_argument("--gates", default="0,0.1,0.15,0.2", help="min_jitter values, px (0 = no gate)")
    p.add_argument("--dose", type=float, default=300.0)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--seed", type=int, default=1000)
    a = p.parse_args()
    base = {k: v for k, v in parse_align(DEFAULT_ALIGN).items() if k != "min_jitter"}
    gates = [float(g) for g in a.gates.split(",")]
    presets = {"base": datagen.load_preset(a.preset), "heldout": datagen.load_preset(a.heldout_preset)}
    conds = [("base", run.Condition("scan_jitter", a.dose)), ("base", run.Condition("scan_jitter", a.dose, True))]
    conds += [("base", run.Condition(f, a.dose)) for f in ("flyback", "detector_lag", "shot_noise")]
    conds += [("base", c) for c in run.make_conditions([], [a.dose])]
    conds += [("heldout", c) for c in run.heldout_conditions([a.dose])]
    cpu = cpu_model()
    print(f"CPU: {cpu}; align_rows({', '.join(f'{k}={v}' for k, v in base.items())}); "
          f"{a.count} images of {a.size}², seed {a.seed}\n")
    print("| condition | raw dB | " + " | ".join(f"min_jitter {g:g}" for g in gates) + " |")
    print("|---|---:|" + "---:|" * len(gates))
    for role, cond in conds:
        pairs = datagen.simulate_pairs(run.condition_preset(presets[role], cond), a.count, a.size, a.seed)
        raw = np.array([psnr(d, c) for d, c in pairs])
        cells = []
        for g in gates:
            db = np.array([psnr(align_rows(d, min_jitter=g, **base), c) for d, c in pairs])
            cells.append(f"{db.mean():.2f} ({(db < raw - 1).sum()}↓ {(db > raw + 1).sum()}↑)")
        print(f"| {cond.label} | {raw.mean():.2f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
