"""Mean detector response: electrons -> ADC levels.

The clean training target is the specimen image through this MEAN response:

    target = gain * (dose * image) + dark          [ADC levels]

with ``image`` normalised to 1 at its brightest pixel, so ``dose`` is the
expected number of detected electrons there (MULTEM's augmenter draws
100-1000).  The gain is set like an operator sets the detector contrast: the
brightest mean signal sits at ``peak_fraction`` of the ADC full scale.

:meth:`DetectorResponse.to_adc` is also the one boundary of the detector
chain (:mod:`datagen.detector.chain`): every effect acts either on electrons
before it (:data:`COUNTS`) or on ADC levels after it (:data:`ADC`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Signal domain of effects acting on expected or counted detected electrons.
COUNTS = "counts"
#: Signal domain of effects acting on ADC levels (after ``gain * counts + dark``).
ADC = "adc"


@dataclass(frozen=True)
class DetectorResponse:
    """Linear detector response.

    Parameters
    ----------
    dose_counts : float
        Expected detected electrons at the brightest clean pixel.
    gain_adc_per_count : float
        ADC levels per detected electron.
    dark_offset_adc : float
        Signal with no electrons (brightness / black level), ADC levels.
    full_scale_adc : float
        Largest ADC code, 2**bits - 1.
    """

    dose_counts: float
    gain_adc_per_count: float
    dark_offset_adc: float
    full_scale_adc: float

    @classmethod
    def from_settings(cls, dose_counts: float, adc_bits: int, peak_fraction: float,
                      dark_fraction: float) -> "DetectorResponse":
        """Gain and dark level from fractions of the ADC full scale."""
        if dose_counts <= 0:
            raise ValueError(f"dose must be > 0 counts, got {dose_counts}")
        full = float(2 ** int(adc_bits) - 1)
        dark = dark_fraction * full
        gain = peak_fraction * (full - dark) / dose_counts
        return cls(float(dose_counts), float(gain), float(dark), full)

    def expected_counts(self, image: np.ndarray) -> np.ndarray:
        """Mean detected electrons per pixel: dose * image."""
        return self.dose_counts * image

    def to_adc(self, counts: np.ndarray) -> np.ndarray:
        """ADC levels from (possibly noisy) electron counts: gain * counts + dark."""
        return self.gain_adc_per_count * counts + self.dark_offset_adc

    def mean(self, image: np.ndarray) -> np.ndarray:
        """Noise-free response to a normalised image (the clean target)."""
        return self.to_adc(self.expected_counts(image))

    @property
    def peak_adc(self) -> float:
        """Mean signal above dark at the brightest clean pixel, ADC levels."""
        return self.gain_adc_per_count * self.dose_counts
