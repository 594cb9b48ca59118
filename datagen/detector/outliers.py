"""Outlier pixels: zingers (X-ray / cosmic hits, hot pixels) and dead pixels."""
from __future__ import annotations

import numpy as np


class Zingers:
    """Isolated bright pixels.

    Parameters
    ----------
    fraction : float
        Probability that a pixel is hit.
    amplitude_adc : float
        Mean added signal, ADC levels; each hit draws U(0.5, 1.5) times it.
    """

    def __init__(self, fraction: float, amplitude_adc: float):
        self.fraction = float(fraction)
        self.amplitude_adc = float(amplitude_adc)

    def __call__(self, signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.fraction == 0.0 or self.amplitude_adc == 0.0:
            return signal
        hit = rng.random(signal.shape) < self.fraction
        out = signal.copy()
        out[hit] += self.amplitude_adc * rng.uniform(0.5, 1.5, int(hit.sum()))
        return out


class DeadPixels:
    """Pixels reading zero (ADC level 0).

    Parameters
    ----------
    fraction : float
        Probability that a pixel is dead.
    """

    def __init__(self, fraction: float):
        self.fraction = float(fraction)

    def __call__(self, signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.fraction == 0.0:
            return signal
        out = signal.copy()
        out[rng.random(signal.shape) < self.fraction] = 0.0
        return out
