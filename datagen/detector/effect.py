"""The base of the detector chain's effects (:data:`datagen.detector.chain.CHAIN`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..params import draw

if TYPE_CHECKING:
    from .chain import Acquisition


class DetectorEffect:
    """One physical effect of the detector chain.

    A subclass sets ``acts_on`` (:data:`~datagen.detector.response.COUNTS` or
    :data:`~datagen.detector.response.ADC`) and is called as ``effect(signal, rng)``.
    Where its constructor's arguments are plain draws from its preset section, it
    lists their keys in ``PRESET_KEYS`` (in draw order) and inherits :meth:`from_preset`;
    an effect whose parameters need units converted or the acquisition overrides it.
    """

    acts_on: ClassVar[str]
    PRESET_KEYS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_preset(cls, section: dict, rng: np.random.Generator, acq: Acquisition):
        """The effect with ``PRESET_KEYS`` drawn from ``section`` in order (``acq`` unused here)."""
        return cls(*(draw(section, key, rng) for key in cls.PRESET_KEYS))
