"""Outlier pixels: zingers (X-ray / cosmic hits, hot pixels) and dead pixels."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..params import draw
from .effect import DetectorEffect
from .response import ADC

if TYPE_CHECKING:
    from .chain import Acquisition


class Zingers(DetectorEffect):
    """Isolated bright pixels.

    Parameters
    ----------
    fraction : float
        Probability that a pixel is hit.
    amplitude_adc : float
        Mean added signal, ADC levels; each hit draws U(0.5, 1.5) times it.
    """

    acts_on = ADC

    def __init__(self, fraction: float, amplitude_adc: float):
        self.fraction = float(fraction)
        self.amplitude_adc = float(amplitude_adc)

    @classmethod
    def from_preset(cls, section: dict, rng: np.random.Generator, acq: Acquisition) -> Zingers:
        """From ``[outliers]``: ``zinger_fraction`` (per pixel) and ``zinger_amplitude_of_peak``
        (fraction of the mean peak signal above dark, :attr:`DetectorResponse.peak_adc`)."""
        return cls(draw(section, "zinger_fraction", rng),
                   draw(section, "zinger_amplitude_of_peak", rng) * acq.response.peak_adc)

    def __call__(self, signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.fraction == 0.0 or self.amplitude_adc == 0.0:
            return signal
        hit = rng.random(signal.shape) < self.fraction
        out = signal.copy()
        out[hit] += self.amplitude_adc * rng.uniform(0.5, 1.5, int(hit.sum()))
        return out


class DeadPixels(DetectorEffect):
    """Pixels reading zero (ADC level 0).

    Parameters
    ----------
    fraction : float
        Probability that a pixel is dead.
    """

    acts_on = ADC
    PRESET_KEYS = ("dead_pixel_fraction",)  # [outliers], per pixel

    def __init__(self, fraction: float):
        self.fraction = float(fraction)

    def __call__(self, signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.fraction == 0.0:
            return signal
        out = signal.copy()
        out[rng.random(signal.shape) < self.fraction] = 0.0
        return out
