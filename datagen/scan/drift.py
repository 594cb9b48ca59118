"""Specimen drift: linear in acquisition time plus a slow random walk.

    d(t) = v t + W(t),   <W(t)^2> -> D t  per axis at long times

v in Angstrom/s (typical 0.01-5 A/s), D = (random_walk)^2 in A^2/s.

The walk is *slow* (REFERENCE.md: "linear in acquisition time, plus a slow random walk"):
with a time constant tau > 0 the drift velocity itself wanders, an Ornstein-Uhlenbeck
velocity with correlation time tau and stationary std sqrt(D / (2 tau)) per axis, so the
displacement is smooth over times shorter than tau and diffuses with D over longer ones
(<W(t)^2> = D [t - tau (1 - exp(-t/tau))]).  Thermal and mechanical drift keep their
direction for seconds; probe motion from scan line to scan line is the jitter's and the
scan lines' (:mod:`.jitter`, :mod:`.lines`), which one frame shows and a net must undo.
tau = 0 is Brownian motion integrated over the true pixel times (flyback included): rough
at every time scale, so its line-to-line steps look like scan-line noise.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from .timing import ScanTiming

#: Velocity samples per time constant of the slow walk (successive samples correlate
#: exp(-1/16) = 0.94; the displacement between them is interpolated linearly).
SAMPLES_PER_TIME_CONSTANT = 16
#: Most velocity samples one frame's slow walk may take: a 4096^2 frame at 20 us per pixel
#: (335 s) takes 5.4e4 at tau = 0.1 s; only a tau far below any scan time comes near it.
MAX_WALK_SAMPLES = 10_000_000


class Drift:
    """Linear drift plus random walk.

    Parameters
    ----------
    velocity_angstrom_per_s : float
        Drift speed |v|, Angstrom per second.
    direction_deg : float
        Direction of v, degrees from +x (fast-scan axis) towards +y.
    random_walk_angstrom_per_sqrt_s : float
        Random-walk strength sqrt(D): rms displacement after 1 s, per axis (at long times
        when ``random_walk_time_constant_s`` > 0).
    random_walk_time_constant_s : float
        Correlation time tau of the walk's velocity, seconds; 0: Brownian displacement.
    """

    def __init__(self, velocity_angstrom_per_s: float, direction_deg: float = 0.0,
                 random_walk_angstrom_per_sqrt_s: float = 0.0, random_walk_time_constant_s: float = 0.0):
        self.velocity_angstrom_per_s = float(velocity_angstrom_per_s)
        self.direction_deg = float(direction_deg)
        self.random_walk_angstrom_per_sqrt_s = float(random_walk_angstrom_per_sqrt_s)
        self.random_walk_time_constant_s = float(random_walk_time_constant_s)
        if not self.random_walk_time_constant_s >= 0:
            raise ValueError(f"random_walk_time_constant_s must be >= 0, got {random_walk_time_constant_s!r}")

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
            if self.random_walk_time_constant_s > 0:
                walk = self._slow_walk(t.ravel(), rng)
            else:
                tf = t.ravel()
                dt = np.diff(tf, prepend=tf[0])
                steps = rng.normal(size=(2, tf.size)) * np.sqrt(dt) * self.random_walk_angstrom_per_sqrt_s
                walk = np.cumsum(steps, axis=1)
            dx = dx + walk[0].reshape(shape)
            dy = dy + walk[1].reshape(shape)
        return dx, dy

    def _slow_walk(self, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(2, len(times)) displacement of the slow walk at ``times`` (s, from 0): an
        Ornstein-Uhlenbeck velocity on a grid of tau / :data:`SAMPLES_PER_TIME_CONSTANT`,
        started from its stationary spread, integrated (trapezoids) and interpolated."""
        tau = self.random_walk_time_constant_s
        h = tau / SAMPLES_PER_TIME_CONSTANT
        n = int(np.ceil(times.max() / h)) + 2
        if n > MAX_WALK_SAMPLES:
            raise ValueError(f"random_walk_time_constant_s = {tau:g} s is too short for a {times.max():g}-s "
                             f"frame ({n} velocity samples); 0 gives the Brownian walk")
        decay = np.exp(-h / tau)
        sigma_v = self.random_walk_angstrom_per_sqrt_s / np.sqrt(2.0 * tau)
        kicks = rng.normal(size=(2, n)) * sigma_v
        kicks[:, 1:] *= np.sqrt(1.0 - decay * decay)
        velocity = lfilter([1.0], [1.0, -decay], kicks, axis=1)
        grid = np.arange(n) * h
        steps = 0.5 * h * (velocity[:, 1:] + velocity[:, :-1])
        position = np.concatenate([np.zeros((2, 1)), np.cumsum(steps, axis=1)], axis=1)
        return np.stack([np.interp(times, grid, position[i]) for i in range(2)])
