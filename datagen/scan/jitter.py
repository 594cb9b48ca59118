"""Time-series scan jitter: a sum of sinusoids in x and y.

    d(t) = sum_k A_k sin(2 pi f_k t + delta_k)

evaluated at each pixel's acquisition time, with independent random phases
delta_k for x and y.  Mains/mechanical lines measured on a Titan (abTEM's
``ScanNoiseTransform`` documentation, Voyles group): 30, 120, 160, 430, 1000
and 2725 Hz with 0.15, 0.10, 0.07, 0.04, 0.04, 0.04 A.  Components in the
kHz-MHz band change within one scan line (dwell 1-20 us) and give the
fast-scan-correlated distortions of Lobato et al.
"""
from __future__ import annotations

import numpy as np

from .timing import ScanTiming


class ScanJitter:
    """Sinusoidal probe-position jitter.

    Parameters
    ----------
    frequencies_hz : sequence of float
        Line frequencies f_k, Hz.
    amplitudes_angstrom : sequence of float
        Amplitudes A_k, Angstrom (applied to x and to y, independent phases).
    y_to_x_ratio : float
        Amplitude in y relative to x (1 = isotropic).
    """

    def __init__(self, frequencies_hz, amplitudes_angstrom, y_to_x_ratio: float = 1.0):
        self.frequencies_hz = np.asarray(frequencies_hz, dtype=np.float64)
        self.amplitudes_angstrom = np.asarray(amplitudes_angstrom, dtype=np.float64)
        if self.frequencies_hz.shape != self.amplitudes_angstrom.shape:
            raise ValueError("frequencies and amplitudes must have the same length")
        self.y_to_x_ratio = float(y_to_x_ratio)

    def bound_angstrom(self, timing: ScanTiming, shape) -> float:
        """Upper bound of |d| over the frame, Angstrom."""
        return float(np.abs(self.amplitudes_angstrom).sum() * max(1.0, abs(self.y_to_x_ratio)))

    def __call__(self, timing: ScanTiming, shape, rng: np.random.Generator):
        """Return (dx, dy) in Angstrom, arrays of ``shape``."""
        phases = rng.uniform(0.0, 2 * np.pi, (2, self.frequencies_hz.size))
        t = timing.pixel_times(shape)
        dx = np.zeros(shape)
        dy = np.zeros(shape)
        for f, a, px, py in zip(self.frequencies_hz, self.amplitudes_angstrom, phases[0], phases[1]):
            if a == 0.0:
                continue
            w = 2 * np.pi * f * t
            dx += a * np.sin(w + px)
            dy += a * self.y_to_x_ratio * np.sin(w + py)
        return dx, dy
