"""Detector lag (scintillator afterglow): exponential smear along the scan.

The recorded signal is the true signal convolved in time with a normalised
exponential of time constant tau.  Sampled per pixel this is the recursion

    y_n = a y_(n-1) + (1 - a) x_n,    a = exp(-dwell / tau)

running in acquisition order.  During the flyback the beam retraces the line
it has just scanned, so the memory relaxes towards that line's mean input:
state <- m + (y_last - m) exp(-flyback / tau).  Smears features towards +x;
a uniform image is unchanged.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.signal import lfilter

from ..params import draw
from ..scan.timing import ScanTiming
from .effect import DetectorEffect
from .response import COUNTS

if TYPE_CHECKING:
    from .chain import Acquisition


class DetectorLag(DetectorEffect):
    """Exponential afterglow along the fast-scan direction.

    Parameters
    ----------
    time_constant_s : float
        Afterglow decay time tau, seconds (0 = no lag).
    timing : ScanTiming
        Dwell and flyback times of the scan.
    """

    acts_on = COUNTS

    def __init__(self, time_constant_s: float, timing: ScanTiming):
        self.time_constant_s = float(time_constant_s)
        self.timing = timing

    @classmethod
    def from_preset(cls, section: dict, rng: np.random.Generator, acq: Acquisition) -> DetectorLag:
        """From ``[detector_lag]``: ``time_constant_us`` (microseconds), on ``acq.timing``."""
        return cls(draw(section, "time_constant_us", rng) * 1e-6, acq.timing)

    def __call__(self, signal: np.ndarray, rng=None) -> np.ndarray:
        if self.time_constant_s <= 0.0:
            return signal
        a = float(np.exp(-self.timing.dwell_time_s / self.time_constant_s))
        carry = float(np.exp(-self.timing.flyback_time_s / self.time_constant_s))
        out = np.empty_like(signal, dtype=np.float64)
        state = float(signal[0, 0])  # settled on the first pixel
        for i, row in enumerate(signal):
            y, _ = lfilter([1.0 - a], [1.0, -a], row, zi=[a * state])
            out[i] = y
            m = float(row.mean())
            state = m + (y[-1] - m) * carry
        return out
