"""Flyback lag: the beam has not settled at the start of each scan line.

    x' = x - a exp(-t_line / b)

with t_line the time since the line started (REFERENCE.md section 3; e.g.
Sang & LeBeau, Ultramicroscopy 138 (2014) 28, on line-start distortions).
"""
from __future__ import annotations

import numpy as np

from .timing import ScanTiming


class Flyback:
    """Exponentially settling x offset at every line start.

    Parameters
    ----------
    amplitude_angstrom : float
        Offset a at the first pixel of each line, Angstrom.
    time_constant_s : float
        Settling time b, seconds.
    """

    def __init__(self, amplitude_angstrom: float, time_constant_s: float):
        self.amplitude_angstrom = float(amplitude_angstrom)
        self.time_constant_s = float(time_constant_s)

    def bound_angstrom(self, timing: ScanTiming, shape) -> float:
        """|d| is largest at the line start: the amplitude, Angstrom."""
        return abs(self.amplitude_angstrom)

    def __call__(self, timing: ScanTiming, shape, rng: np.random.Generator):
        """Return (dx, dy) in Angstrom; dy is zero.  ``rng`` is unused."""
        if self.amplitude_angstrom == 0.0 or self.time_constant_s <= 0.0:
            return np.zeros(shape), np.zeros(shape)
        tl = timing.line_times(shape)
        return -self.amplitude_angstrom * np.exp(-tl / self.time_constant_s), np.zeros(shape)
