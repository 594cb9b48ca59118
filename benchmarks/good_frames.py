"""Does a model leave good frames alone?  PSNR of restored vs clean on frames with no
distortion at all and with shot noise only, at a high and a medium dose.

    .venv/bin/python benchmarks/good_frames.py [--model DEPLOY --weights W] [--count 6 --size 128]

A model that has learnt the identity keeps a perfect frame near the 100 dB cap and does not
do worse on a dose-30,000 frame (raw ~52 dB) than on a dose-300 one (raw ~32 dB).  Held-out
seeds (1000 + i), paper preset; the default model is the shipped one (models/).
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datagen.pipeline import sample_rng, simulate_pair  # noqa: E402
from datagen.presets import family_preset, with_dose  # noqa: E402
from evaluate.metrics import psnr  # noqa: E402
from restoration.api import load_model  # noqa: E402

CAP_DB = 100.0  # the per-image cap of evaluate's tables


def conditions(base: str) -> list[tuple[str, dict]]:
    """(label, preset): undistorted, and shot noise only at doses 30,000 and 300."""
    shot = family_preset(base, "shot_noise")
    return [("no distortion", family_preset(base, None)),
            ("shot noise only @ 30000", with_dose(shot, 30000)),
            ("shot noise only @ 300", with_dose(shot, 300))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="deploy prototxt (default: the shipped model's)")
    p.add_argument("--weights", help=".caffemodel (default: the shipped model)")
    p.add_argument("--preset", default="paper")
    p.add_argument("--count", type=int, default=6)
    p.add_argument("--size", type=int, default=128)
    args = p.parse_args()
    model = load_model(args.model, args.weights)
    print(f"| condition | raw (dB) | model (dB) |\n|---|---:|---:|")
    for label, preset in conditions(args.preset):
        raw, out = [], []
        for i in range(args.count):
            distorted, clean = simulate_pair(preset, args.size, sample_rng(1000, i))
            restored = np.asarray(model.restore(distorted))
            raw.append(min(psnr(distorted, clean), CAP_DB))
            out.append(min(psnr(restored, clean), CAP_DB))
        print(f"| {label} | {np.mean(raw):.2f} | {np.mean(out):.2f} |", flush=True)


if __name__ == "__main__":
    main()
