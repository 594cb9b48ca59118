"""Electron shot noise: detected electrons are Poisson distributed."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .response import COUNTS

if TYPE_CHECKING:
    from .chain import Acquisition


class ShotNoise:
    """Poisson counting noise on the expected electron counts.

    No parameters: the dose lives in :class:`DetectorResponse`.  Mean and
    variance of the output both equal the expected count.
    """

    acts_on = COUNTS

    @classmethod
    def from_preset(cls, section: dict, rng: np.random.Generator, acq: Acquisition) -> ShotNoise:
        """From ``[shot_noise]``: nothing to draw (the dose is in ``acq.response``)."""
        return cls()

    def __call__(self, expected_counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(np.clip(expected_counts, 0.0, None)).astype(np.float64)
