"""Clipping and quantisation by the analogue-to-digital converter."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .effect import DetectorEffect
from .response import ADC

if TYPE_CHECKING:
    from .chain import Acquisition


class Quantiser(DetectorEffect):
    """Clip to [0, 2**bits - 1] and round to integer ADC levels.

    Parameters
    ----------
    adc_bits : int
        ADC bit depth (8-16 typical).
    """

    acts_on = ADC

    def __init__(self, adc_bits: int):
        if not 1 <= int(adc_bits) <= 32:
            raise ValueError(f"adc_bits must be 1..32, got {adc_bits}")
        self.adc_bits = int(adc_bits)

    @classmethod
    def from_preset(cls, section: dict, rng: np.random.Generator, acq: Acquisition) -> Quantiser:
        """From ``[quantisation]``: nothing to draw; the bit depth is the acquisition's
        (``[detector] adc_bits``)."""
        return cls(acq.adc_bits)

    @property
    def full_scale_adc(self) -> float:
        return float(2 ** self.adc_bits - 1)

    def __call__(self, signal: np.ndarray, rng=None) -> np.ndarray:
        return np.round(np.clip(signal, 0.0, self.full_scale_adc))
