"""Electron shot noise: detected electrons are Poisson distributed."""
from __future__ import annotations

import numpy as np


class ShotNoise:
    """Poisson counting noise on the expected electron counts.

    No parameters: the dose lives in :class:`DetectorResponse`.  Mean and
    variance of the output both equal the expected count.
    """

    def __call__(self, expected_counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(np.clip(expected_counts, 0.0, None)).astype(np.float64)
