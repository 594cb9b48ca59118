"""Per-line intensity offsets ("row-line" noise): each scan line gets its own
additive offset and gain, e.g. from slow amplifier/black-level fluctuations
synchronised with the line rate."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..params import draw
from .effect import DetectorEffect
from .response import ADC

if TYPE_CHECKING:
    from .chain import Acquisition


class RowOffsets(DetectorEffect):
    """Random additive offset and relative gain per scan line.

    Parameters
    ----------
    offset_std_adc : float
        Standard deviation of the per-line additive offset, ADC levels.
    gain_std : float
        Standard deviation of the per-line relative gain (dimensionless),
        applied around the dark level.
    dark_offset_adc : float
        Dark level the gain acts around, ADC levels.
    """

    acts_on = ADC

    def __init__(self, offset_std_adc: float, gain_std: float = 0.0, dark_offset_adc: float = 0.0):
        self.offset_std_adc = float(offset_std_adc)
        self.gain_std = float(gain_std)
        self.dark_offset_adc = float(dark_offset_adc)

    @classmethod
    def from_preset(cls, section: dict, rng: np.random.Generator, acq: Acquisition) -> RowOffsets:
        """From ``[row_offsets]``: ``offset_std_of_peak`` (fraction of the mean peak signal
        above dark, :attr:`DetectorResponse.peak_adc`) and ``gain_std`` (dimensionless),
        acting around the response's dark level."""
        response = acq.response
        return cls(draw(section, "offset_std_of_peak", rng) * response.peak_adc,
                   draw(section, "gain_std", rng), response.dark_offset_adc)

    def __call__(self, signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.offset_std_adc == 0.0 and self.gain_std == 0.0:
            return signal
        ny = signal.shape[0]
        off = rng.normal(0.0, self.offset_std_adc, (ny, 1))
        gain = 1.0 + rng.normal(0.0, self.gain_std, (ny, 1))
        return (signal - self.dark_offset_adc) * gain + self.dark_offset_adc + off
