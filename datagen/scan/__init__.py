"""Scan-position distortions: each a small object returning a displacement field.

Every effect is called as ``effect(timing, shape, rng) -> (dx, dy)`` with the
displacements in Angstrom, one value per pixel, evaluated at the pixel's
acquisition time (see :class:`~datagen.scan.timing.ScanTiming`).  Effects add;
:func:`~datagen.scan.resample.resample` then samples the specimen at the
displaced probe positions.
"""
from .timing import ScanTiming
from .jitter import ScanJitter
from .lines import LineShifts
from .drift import Drift
from .flyback import Flyback
from .resample import resample

__all__ = ["ScanTiming", "ScanJitter", "LineShifts", "Drift", "Flyback", "resample"]
