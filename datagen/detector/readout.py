"""Gaussian readout noise of the amplifier/ADC chain (also dark-current and
thermal noise), additive, in ADC levels."""
from __future__ import annotations

import numpy as np


class ReadoutNoise:
    """Additive white Gaussian noise.

    Parameters
    ----------
    std_adc : float
        Standard deviation, ADC levels (0 = none).
    """

    def __init__(self, std_adc: float):
        self.std_adc = float(std_adc)

    def __call__(self, signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.std_adc == 0.0:
            return signal
        return signal + rng.normal(0.0, self.std_adc, signal.shape)
