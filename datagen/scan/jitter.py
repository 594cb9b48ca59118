"""Time-series scan jitter: a sum of sinusoids in x and y.

    d(t) = sum_k A_k sin(2 pi f_k t + delta_k)

with independent random phases delta_k for x and y.  Mains/mechanical lines measured on
a Titan (abTEM's ``ScanNoiseTransform`` documentation, Voyles group): 30, 120, 160, 430,
1000 and 2725 Hz with 0.15, 0.10, 0.07, 0.04, 0.04, 0.04 A.  Components in the kHz-MHz
band change within one scan line (dwell 1-20 us) and give the fast-scan-correlated
distortions of Lobato et al.

Sampling.  REFERENCE.md §3 (and abTEM) evaluate d at one instant per pixel.  A detector
integrates over the dwell time tau while the probe moves, so a line above 1/(2 tau) blurs
the pixel instead of shifting it; sampled at one instant it aliases (at f tau = 1, 2, ... a
constant shift along each line).  With ``integrate_dwell`` the pixel sees the probe's mean
position over its dwell,

    <sin(2 pi f t + delta)>_[t0, t0 + tau] = sinc(f tau) sin(2 pi f (t0 + tau/2) + delta),

sinc(x) = sin(pi x) / (pi x), and the spread about that mean, averaged over the phase,

    var_k = A_k^2 / 2 (1 - sinc^2(f_k tau))        (x; times y_to_x_ratio^2 in y),

which :meth:`ScanJitter.dwell_spread_angstrom` returns and the pipeline applies as a
Gaussian blur of the scanned specimen (a sum of lines is near Gaussian; one dominant line
would give an arcsine profile of the same variance).
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
    integrate_dwell : bool
        False: d sampled at the start of each pixel's dwell (REFERENCE.md §3, aliases
        lines above 1/(2 dwell)).  True: the mean of d over each pixel's dwell, plus a
        spread (:meth:`dwell_spread_angstrom`) for the blur within it (module docstring).
    """

    def __init__(self, frequencies_hz, amplitudes_angstrom, y_to_x_ratio: float = 1.0,
                 integrate_dwell: bool = False):
        self.frequencies_hz = np.asarray(frequencies_hz, dtype=np.float64)
        self.amplitudes_angstrom = np.asarray(amplitudes_angstrom, dtype=np.float64)
        if self.frequencies_hz.shape != self.amplitudes_angstrom.shape:
            raise ValueError("frequencies and amplitudes must have the same length")
        self.y_to_x_ratio = float(y_to_x_ratio)
        self.integrate_dwell = bool(integrate_dwell)

    def bound_angstrom(self, timing: ScanTiming, shape) -> float:
        """Upper bound of |d| over the frame, Angstrom (the instantaneous one, which also
        bounds the dwell mean: the canvas is the same either way)."""
        return float(np.abs(self.amplitudes_angstrom).sum() * max(1.0, abs(self.y_to_x_ratio)))

    def _dwell_gain(self, timing: ScanTiming) -> np.ndarray:
        """sinc(f_k tau) per line with ``integrate_dwell``, else 1."""
        if not self.integrate_dwell:
            return np.ones_like(self.frequencies_hz)
        return np.sinc(self.frequencies_hz * timing.dwell_time_s)

    def dwell_spread_angstrom(self, timing: ScanTiming) -> tuple[float, float]:
        """(x, y) standard deviation of the probe position within one dwell, Angstrom,
        averaged over the phase; (0, 0) without ``integrate_dwell``."""
        if not self.integrate_dwell:
            return 0.0, 0.0
        var = float(np.sum(self.amplitudes_angstrom ** 2 / 2 * (1 - self._dwell_gain(timing) ** 2)))
        sx = float(np.sqrt(max(var, 0.0)))
        return sx, sx * abs(self.y_to_x_ratio)

    def __call__(self, timing: ScanTiming, shape, rng: np.random.Generator):
        """Return (dx, dy) in Angstrom, arrays of ``shape``: d at each pixel's start, or
        with ``integrate_dwell`` its mean over the pixel's dwell."""
        phases = rng.uniform(0.0, 2 * np.pi, (2, self.frequencies_hz.size))
        t = timing.pixel_times(shape)
        if self.integrate_dwell:
            t = t + timing.dwell_time_s / 2
        gains = self._dwell_gain(timing)
        dx = np.zeros(shape)
        dy = np.zeros(shape)
        for f, a, g, px, py in zip(self.frequencies_hz, self.amplitudes_angstrom, gains, phases[0], phases[1]):
            if a == 0.0:
                continue
            w = 2 * np.pi * f * t
            dx += a * g * np.sin(w + px)
            dy += a * g * self.y_to_x_ratio * np.sin(w + py)
        return dx, dy
