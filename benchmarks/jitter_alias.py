"""How much of a preset's scan jitter lies above the dwell time's Nyquist frequency?

    .venv/bin/python benchmarks/jitter_alias.py [--preset training] [--count 20000] [--seed 0]

REFERENCE.md §3 (as abTEM's ``ScanNoiseTransform``) evaluates each sinusoid at one instant per
pixel.  A real detector integrates over the dwell time tau while the probe moves, so a line at
f > 1/(2 tau) blurs the pixel instead of shifting it; sampled at one instant it aliases to a
slower displacement (at f tau = 1, 2, ... a constant shift along each scan line, at f tau = 1/2 a
shift alternating from pixel to pixel) that no instrument records.  This draws the jitter lines,
dwell time and pixel size of ``--count`` samples of the preset's scan_jitter family (the draws
the pipeline makes, no images) and prints how much of the displacement variance (A^2 / 2 per
line) lies above 1/(2 tau), its share of each sample's jitter and its RMS in pixels, twice: for
one instant per pixel (``integrate_dwell = false``, the presets before session 38) and for the
dwell mean (``integrate_dwell = true``: each line times sinc(f tau)), with the blur within the
dwell that replaces it (``ScanJitter.dwell_spread_angstrom``).  Numpy only, ~5 s.
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


def aliased_variance(frequencies_hz: np.ndarray, amplitudes: np.ndarray, dwell_s: float,
                     integrate: bool = False) -> tuple[float, float]:
    """(variance above 1/(2 dwell), total variance) of a sum of sinusoids, in amplitude units
    squared; with ``integrate`` of their means over each dwell (amplitudes times sinc(f dwell))."""
    ftau = np.asarray(frequencies_hz, dtype=np.float64) * dwell_s
    gain = np.sinc(ftau) if integrate else 1.0
    var = (np.asarray(amplitudes, dtype=np.float64) * gain) ** 2 / 2.0
    return float(var[ftau > 0.5].sum()), float(var.sum())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="training")
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    preset = datagen.load_preset(a.preset)
    rng = np.random.default_rng(a.seed)
    share, rms_px, blur_px = {False: [], True: []}, {False: [], True: []}, []
    for _ in range(a.count):
        jitter = _scan_effect("scan_jitter", preset["scan_jitter"], rng)
        dwell = draw(preset["scan"], "dwell_time_us", rng) * 1e-6
        pixel = draw(preset["specimen"], "pixel_size_angstrom", rng)
        for integrate in (False, True):
            above, total = aliased_variance(jitter.frequencies_hz, jitter.amplitudes_angstrom, dwell, integrate)
            share[integrate].append(above / total if total > 0 else 0.0)
            rms_px[integrate].append(np.sqrt(above) / pixel)
        gain = np.sinc(jitter.frequencies_hz * dwell)
        blur_px.append(np.sqrt(np.sum(jitter.amplitudes_angstrom ** 2 / 2 * (1 - gain ** 2))) / pixel)
    print(f"# CPU: {cpu_model()} (numpy only); preset {a.preset}, {a.count} scan_jitter draws, seed {a.seed}")
    for integrate, label in ((False, "one instant per pixel"), (True, "mean over the dwell")):
        sh, rm = np.array(share[integrate]), np.array(rms_px[integrate])
        print(f"{label}: share of the variance above 1/(2 dwell): mean {sh.mean():.3f}, median {np.median(sh):.4f}, "
              f"samples with > 10 %: {(sh > 0.1).mean():.3f}; its RMS (px): median {np.median(rm):.3f}, "
              f"90th percentile {np.percentile(rm, 90):.3f}, samples with > 0.5 px: {(rm > 0.5).mean():.3f}")
    blur = np.array(blur_px)
    print(f"blur within the dwell (x sigma, px): median {np.median(blur):.3f}, 90th percentile "
          f"{np.percentile(blur, 90):.3f}, samples with > 0.5 px: {(blur > 0.5).mean():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
