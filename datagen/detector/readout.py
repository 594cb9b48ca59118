"""Gaussian readout noise of the amplifier/ADC chain (also dark-current and
thermal noise), additive, in ADC levels."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..params import draw
from .effect import DetectorEffect
from .response import ADC

if TYPE_CHECKING:
    from .chain import Acquisition


class ReadoutNoise(DetectorEffect):
    """Additive white Gaussian noise.

    Parameters
    ----------
    std_adc : float
        Standard deviation, ADC levels (0 = none).
    """

    acts_on = ADC

    def __init__(self, std_adc: float):
        self.std_adc = float(std_adc)

    @classmethod
    def from_preset(cls, section: dict, rng: np.random.Generator, acq: Acquisition) -> ReadoutNoise:
        """From ``[pmt_readout]``: ``readout_std_counts`` (std in detected electrons),
        converted to ADC levels with the response gain (ADC levels per electron)."""
        return cls(draw(section, "readout_std_counts", rng) * acq.response.gain_adc_per_count)

    def __call__(self, signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.std_adc == 0.0:
            return signal
        return signal + rng.normal(0.0, self.std_adc, signal.shape)
