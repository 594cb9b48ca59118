"""Specimen drift: linear in acquisition time plus a slow random walk.

    d(t) = v t + W(t),   W Brownian with  <W(t)^2> = D t  per axis

v in Angstrom/s (typical 0.01-5 A/s), D = (random_walk)^2 in A^2/s.
The random walk is integrated over the true pixel times (flyback included).
"""
from __future__ import annotations

import numpy as np

from .timing import ScanTiming


class Drift:
    """Linear drift plus random walk.

    Parameters
    ----------
    velocity_angstrom_per_s : float
        Drift speed |v|, Angstrom per second.
    direction_deg : float
        Direction of v, degrees from +x (fast-scan axis) towards +y.
    random_walk_angstrom_per_sqrt_s : float
        Random-walk strength sqrt(D): rms displacement after 1 s, per axis.
    """

    def __init__(self, velocity_angstrom_per_s: float, direction_deg: float = 0.0,
                 random_walk_angstrom_per_sqrt_s: float = 0.0):
        self.velocity_angstrom_per_s = float(velocity_angstrom_per_s)
        self.direction_deg = float(direction_deg)
        self.random_walk_angstrom_per_sqrt_s = float(random_walk_angstrom_per_sqrt_s)

    def bound_angstrom(self, timing: ScanTiming, shape) -> float:
        """Practical bound of |d| over the frame (linear part + 4 sigma walk), Angstrom."""
        t = timing.frame_time_s(shape)
        return self.velocity_angstrom_per_s * t + 4.0 * self.random_walk_angstrom_per_sqrt_s * np.sqrt(t)

    def __call__(self, timing: ScanTiming, shape, rng: np.random.Generator):
        """Return (dx, dy) in Angstrom (zero at the first pixel)."""
        t = timing.pixel_times(shape)
        a = np.deg2rad(self.direction_deg)
        v = self.velocity_angstrom_per_s
        dx = v * np.cos(a) * t
        dy = v * np.sin(a) * t
        if self.random_walk_angstrom_per_sqrt_s > 0:
            tf = t.ravel()
            dt = np.diff(tf, prepend=tf[0])
            steps = rng.normal(size=(2, tf.size)) * np.sqrt(dt) * self.random_walk_angstrom_per_sqrt_s
            walk = np.cumsum(steps, axis=1)
            dx = dx + walk[0].reshape(shape)
            dy = dy + walk[1].reshape(shape)
        return dx, dy
