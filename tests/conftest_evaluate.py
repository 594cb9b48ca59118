"""Shared helpers for the evaluate tests (imported explicitly; not a conftest)."""
from __future__ import annotations

import numpy as np


def lattice(n: int = 64, period: float = 12.0, sigma: float = 1.8, angle: float = 0.0,
            peak: float = 100.0, background: float = 10.0) -> np.ndarray:
    """A square lattice of Gaussian 'atomic columns' (float64), rotated by ``angle`` rad."""
    y, x = np.mgrid[0:n, 0:n].astype(float)
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * x + s * y, -s * x + c * y
    du = (u + period / 2) % period - period / 2
    dv = (v + period / 2) % period - period / 2
    return background + peak * np.exp(-(du**2 + dv**2) / (2 * sigma**2))
