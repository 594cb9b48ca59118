"""Photomultiplier gain noise: random pulse height per detected electron.

Each electron produces a pulse of random height (mean 1, relative standard
deviation ``cv``).  Modelling the pulse height as Gamma(1/cv^2, cv^2), the sum
over n electrons is exactly Gamma(n/cv^2, cv^2): mean n, variance n cv^2, so the
total variance after shot noise is n (1 + cv^2) (excess noise factor).
"""
from __future__ import annotations

import numpy as np

from .effect import DetectorEffect
from .response import COUNTS


class PMTGainNoise(DetectorEffect):
    """Multiplicative pulse-height noise.

    Parameters
    ----------
    gain_cv : float
        Relative standard deviation of the single-electron pulse height
        (0 = noiseless multiplication; scintillator+PMT typically 0.3-0.6).
    """

    acts_on = COUNTS
    PRESET_KEYS = ("gain_cv",)  # [pmt_readout], dimensionless

    def __init__(self, gain_cv: float):
        self.gain_cv = float(gain_cv)

    def __call__(self, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.gain_cv == 0.0:
            return counts
        v = self.gain_cv ** 2
        n = np.clip(counts, 0.0, None)
        out = np.zeros_like(n, dtype=np.float64)
        pos = n > 0
        out[pos] = rng.gamma(n[pos] / v, v)
        return out
