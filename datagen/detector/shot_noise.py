"""Electron shot noise: detected electrons are Poisson distributed."""
from __future__ import annotations

import numpy as np

from .effect import DetectorEffect
from .response import COUNTS


class ShotNoise(DetectorEffect):
    """Poisson counting noise on the expected electron counts.

    No parameters: the dose lives in :class:`DetectorResponse`.  Mean and
    variance of the output both equal the expected count.
    """

    acts_on = COUNTS

    def __call__(self, expected_counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(np.clip(expected_counts, 0.0, None)).astype(np.float64)
