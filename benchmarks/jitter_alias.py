"""How much of a preset's scan jitter lies above the dwell time's Nyquist frequency?

    .venv/bin/python benchmarks/jitter_alias.py [--preset training] [--count 20000] [--seed 0]

``datagen.scan.ScanJitter`` evaluates each sinusoid at one instant per pixel, its start
(REFERENCE.md §3: "evaluated at each pixel's time", as abTEM's ``ScanNoiseTransform``).  A real
detector integrates over the dwell time tau while the probe moves, so a line at f > 1/(2 tau)
blurs the pixel instead of shifting it; sampled at one instant it aliases to a slower
displacement (at f tau = 1, 2, ... a constant shift along each scan line, at f tau = 1/2 a shift
alternating from pixel to pixel) that no instrument records.  This draws the jitter lines, dwell
time and pixel size of ``--count`` samples of the preset's scan_jitter family (the draws the
pipeline makes, no images) and prints how much of the displacement variance (A^2 / 2 per line)
lies above 1/(2 tau): its share of each sample's jitter, and its RMS in pixels.  Numpy only, ~5 s.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import datagen  # noqa: E402
from datagen.params import draw  # noqa: E402
from datagen.pipeline import _scan_effect  # noqa: E402
from stem_restore.machine import cpu_model  # noqa: E402


def aliased_variance(frequencies_hz: np.ndarray, amplitudes: np.ndarray, dwell_s: float) -> tuple[float, float]:
    """(variance above 1/(2 dwell), total variance) of a sum of sinusoids, in amplitude units squared."""
    var = np.asarray(amplitudes, dtype=np.float64) ** 2 / 2.0
    above = np.asarray(frequencies_hz, dtype=np.float64) * dwell_s > 0.5
    return float(var[above].sum()), float(var.sum())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="training")
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    preset = datagen.load_preset(a.preset)
    rng = np.random.default_rng(a.seed)
    share, rms_px = [], []
    for _ in range(a.count):
        jitter = _scan_effect("scan_jitter", preset["scan_jitter"], rng)
        dwell = draw(preset["scan"], "dwell_time_us", rng) * 1e-6
        pixel = draw(preset["specimen"], "pixel_size_angstrom", rng)
        above, total = aliased_variance(jitter.frequencies_hz, jitter.amplitudes_angstrom, dwell)
        share.append(above / total if total > 0 else 0.0)
        rms_px.append(np.sqrt(above) / pixel)
    share, rms_px = np.array(share), np.array(rms_px)
    print(f"# CPU: {cpu_model()} (numpy only); preset {a.preset}, {a.count} scan_jitter draws, seed {a.seed}")
    print(f"share of the jitter variance above 1/(2 dwell): mean {share.mean():.3f}, median {np.median(share):.4f}, "
          f"samples with > 10 %: {(share > 0.1).mean():.3f}")
    print(f"RMS of that part (px): median {np.median(rms_px):.3f}, 90th percentile {np.percentile(rms_px, 90):.3f}, "
          f"samples with > 0.5 px: {(rms_px > 0.5).mean():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
