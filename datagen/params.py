"""Sampling of preset parameters.

A preset value is either fixed or a range; this module turns one value into
one number drawn from a :class:`numpy.random.Generator`.  Conventions
(TOML syntax):

``x = 3.0``                      fixed value (any scalar, also int/bool/str)
``x = [lo, hi]``                 uniform on [lo, hi]
``x = {log = [lo, hi]}``         log-uniform on [lo, hi] (0 < lo <= hi)
``x = {int = [lo, hi]}``         integer, uniform on lo..hi inclusive
``x = {choice = [a, b, ...]}``   one element, optional ``weights = [...]``

The unit of a value is part of its key name (``_angstrom``, ``_hz``,
``_us``, ``_counts`` ...).
"""
from __future__ import annotations

from typing import Any

import numpy as np


def sample(spec: Any, rng: np.random.Generator, key: str = "?") -> Any:
    """Draw one value from a preset specification (see module docstring)."""
    if isinstance(spec, (bool, int, float, str)):
        return spec
    if isinstance(spec, (list, tuple)):
        if len(spec) != 2:
            raise ValueError(f"preset key {key!r}: a range must be [lo, hi], got {spec!r}")
        lo, hi = float(spec[0]), float(spec[1])
        _check_order(key, lo, hi)
        return lo if lo == hi else float(rng.uniform(lo, hi))
    if isinstance(spec, dict):
        if "log" in spec:
            lo, hi = (float(v) for v in spec["log"])
            _check_order(key, lo, hi)
            if lo <= 0:
                raise ValueError(f"preset key {key!r}: log range needs lo > 0, got {lo}")
            return lo if lo == hi else float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        if "int" in spec:
            lo, hi = (int(v) for v in spec["int"])
            _check_order(key, lo, hi)
            return int(rng.integers(lo, hi + 1))
        if "choice" in spec:
            options = list(spec["choice"])
            if not options:
                raise ValueError(f"preset key {key!r}: empty choice")
            p = spec.get("weights")
            if p is not None:
                p = np.asarray(p, dtype=float)
                if p.shape != (len(options),) or np.any(p < 0) or p.sum() <= 0:
                    raise ValueError(f"preset key {key!r}: bad weights {spec['weights']!r}")
                p = p / p.sum()
            return options[int(rng.choice(len(options), p=p))]
    raise ValueError(f"preset key {key!r}: cannot interpret {spec!r}")


def _check_order(key: str, lo: float, hi: float) -> None:
    if not lo <= hi:
        raise ValueError(f"preset key {key!r}: range [{lo}, {hi}] has lo > hi")


def draw(section: dict, key: str, rng: np.random.Generator) -> Any:
    """Sample ``section[key]``; a clear error names a missing key."""
    if key not in section:
        raise KeyError(f"preset section is missing key {key!r}")
    return sample(section[key], rng, key)
