"""Per-line rigid shifts from an AR(1) process along the slow-scan axis.

Each scan line i is shifted by (dx_i, dy_i), independently in x and y:

    d_0 = s xi_0 / sqrt(1 - phi^2),   d_i = phi d_(i-1) + s xi_i,   xi ~ N(0, 1)

(MULTEM's scan-distortion routine, Lobato & Van Dyck).  The stationary
standard deviation is sigma = s / sqrt(1 - phi^2); the preset gives sigma and
phi, so s = sigma sqrt(1 - phi^2).
"""
from __future__ import annotations

import numpy as np

from .timing import ScanTiming


def ar1(n: int, phi: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Stationary AR(1) series of length ``n``, lag-1 correlation ``phi``, std ``sigma``."""
    if not -1.0 < phi < 1.0:
        raise ValueError(f"AR(1) coefficient must be in (-1, 1), got {phi}")
    xi = rng.normal(size=n)
    s = sigma * np.sqrt(1.0 - phi * phi)
    out = np.empty(n)
    out[0] = sigma * xi[0]
    for i in range(1, n):
        out[i] = phi * out[i - 1] + s * xi[i]
    return out


class LineShifts:
    """Rigid per-line probe offsets (AR(1) along the slow axis).

    Parameters
    ----------
    std_x_angstrom, std_y_angstrom : float
        Stationary standard deviation of the per-line shift, Angstrom.
    phi : float
        Lag-1 correlation between consecutive lines, in (-1, 1).
    """

    def __init__(self, std_x_angstrom: float, std_y_angstrom: float, phi: float):
        self.std_x_angstrom = float(std_x_angstrom)
        self.std_y_angstrom = float(std_y_angstrom)
        self.phi = float(phi)

    def bound_angstrom(self, timing: ScanTiming, shape) -> float:
        """Practical bound of |d| (4 standard deviations), Angstrom."""
        return 4.0 * max(self.std_x_angstrom, self.std_y_angstrom)

    def __call__(self, timing: ScanTiming, shape, rng: np.random.Generator):
        """Return (dx, dy) in Angstrom, constant along each row."""
        ny, nx = shape
        sx = ar1(ny, self.phi, self.std_x_angstrom, rng)
        sy = ar1(ny, self.phi, self.std_y_angstrom, rng)
        return (np.broadcast_to(sx[:, None], shape).copy(),
                np.broadcast_to(sy[:, None], shape).copy())
