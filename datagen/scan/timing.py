"""Acquisition time of every pixel of a raster scan.

Pixel (ix, iy) of an ny x nx raster is acquired at

    t = iy * (nx * dwell + flyback) + ix * dwell          [s]

(fast scan along x, one flyback per line).  Reference: REFERENCE.md section 3;
e.g. Ophus et al., Ultramicroscopy 162 (2016) 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ScanTiming:
    """Raster timing.

    Parameters
    ----------
    dwell_time_s : float
        Time per pixel, seconds (typ. 1-20 us).
    flyback_time_s : float
        Dead time between the end of one line and the start of the next, s.
    """

    dwell_time_s: float
    flyback_time_s: float = 0.0

    def line_period_s(self, nx: int) -> float:
        """Time from the start of one line to the start of the next, s."""
        return nx * self.dwell_time_s + self.flyback_time_s

    def pixel_times(self, shape: tuple[int, int]) -> np.ndarray:
        """(ny, nx) array of acquisition times, s (first pixel at t = 0)."""
        ny, nx = shape
        iy = np.arange(ny, dtype=np.float64)[:, None]
        ix = np.arange(nx, dtype=np.float64)[None, :]
        return iy * self.line_period_s(nx) + ix * self.dwell_time_s

    def line_times(self, shape: tuple[int, int]) -> np.ndarray:
        """(ny, nx) time since the start of the pixel's own line, s."""
        ny, nx = shape
        return np.broadcast_to(np.arange(nx, dtype=np.float64) * self.dwell_time_s, (ny, nx))

    def frame_time_s(self, shape: tuple[int, int]) -> float:
        """Time from the first to the last pixel, s."""
        ny, nx = shape
        return (ny - 1) * self.line_period_s(nx) + (nx - 1) * self.dwell_time_s
