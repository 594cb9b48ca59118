"""The one intensity normalisation shared by datagen, training and restore.py.

Every image that enters the network, and every target it learns, goes through
:func:`normalize` with statistics taken from the *distorted input only*; the
network output is mapped back with :func:`denormalize` using the same
statistics.  A restored image therefore comes back in the input's own
intensity units (counts, ADC levels, ...), whatever the detector gain.

Why an offset at a low percentile and a scale of one standard deviation
----------------------------------------------------------------------
The paper's network ends with a ReLU (the abstract puts one after every layer,
the last included), so it can only output values >= 0.  The usual
zero-mean normalisation, (x - mean) / std as in the same group's later tk_r_em
package, places about half of every target below zero, where a final ReLU
cannot reach.  Subtracting a low percentile (``LOW_PERCENTILE`` = 1 %) of the
input instead puts the vacuum / background level near 0 and the atomic
columns at positive values; only pixels darker than the 1 % darkest of the
*distorted* input (which is noisier, so its low tail is wider than the clean
image's) fall below zero.  The percentile, not the minimum, keeps dead pixels
(exact zeros) and single dark outliers from setting the offset.  Dividing by
the standard deviation (not the range) keeps zingers (hot pixels) from
compressing the scale.

Statistics are computed over the whole image, never per tile, so restoring an
image in tiles gives the same numbers as restoring it whole.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Percentile of the input used as the zero level (in %).
LOW_PERCENTILE = 1.0
#: Smallest scale, relative to the image's largest magnitude, before a flat
#: image is treated as having unit scale (avoids dividing by ~0).
MIN_RELATIVE_SCALE = 1e-6


@dataclass(frozen=True)
class NormStats:
    """Offset and scale of one image, in the image's own intensity units."""

    offset: float
    scale: float


def _chunks(x: np.ndarray, elements: int = 1 << 20):
    """Consecutive pieces of the flattened ``x`` with ~``elements`` values each."""
    flat = x.reshape(-1)
    for start in range(0, flat.size, elements):
        yield flat[start:start + elements]


def _mean_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation with float64 accumulation, in chunks.

    Two passes (mean, then squared deviations) keep the precision of
    ``np.std`` without a float64 copy of the whole image: an 8192x8192 frame
    needs ~8 MB of temporaries instead of ~0.5 GB.
    """
    n = x.size
    mean = sum(float(np.sum(c, dtype=np.float64)) for c in _chunks(x)) / n
    ss = sum(float(np.sum(np.square(c.astype(np.float64) - mean))) for c in _chunks(x))
    return mean, (ss / n) ** 0.5


def norm_stats(image: np.ndarray) -> NormStats:
    """Return the normalisation statistics of a (distorted) image.

    Parameters
    ----------
    image : ndarray
        2-D image in any real dtype and any intensity units.  Must be finite.

    Returns
    -------
    NormStats
        ``offset`` = 1st percentile, ``scale`` = standard deviation (or 1
        for a flat image).
    """
    x = np.asarray(image)
    if x.size == 0:
        raise ValueError("cannot normalise an empty image")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64 if x.dtype.itemsize > 2 else np.float32)
    if not all(np.isfinite(c).all() for c in _chunks(x)):
        raise ValueError("image contains NaN or infinite values")
    offset = float(np.percentile(x, LOW_PERCENTILE))
    _, scale = _mean_std(x)
    peak = max(abs(float(x.max())), abs(float(x.min())))
    if scale <= MIN_RELATIVE_SCALE * max(peak, 1e-30):
        scale = 1.0
    return NormStats(offset=offset, scale=scale)


def normalize(image: np.ndarray, stats: NormStats | None = None) -> tuple[np.ndarray, NormStats]:
    """Normalise ``image`` to float32: ``(image - offset) / scale``.

    If ``stats`` is None they are computed from ``image`` itself (the
    distorted input).  Pass the input's stats to normalise its clean target
    the same way.  Computed in float32 (the network's precision), so the
    only full-size temporary is the float32 result.
    """
    if stats is None:
        stats = norm_stats(image)
    x = np.array(image, dtype=np.float32)  # always a copy: the input is never modified
    x -= np.float32(stats.offset)
    x /= np.float32(stats.scale)
    return x, stats


def denormalize(image: np.ndarray, stats: NormStats) -> np.ndarray:
    """Invert :func:`normalize`: back to the input's intensity units (float32)."""
    x = np.array(image, dtype=np.float32)
    x *= np.float32(stats.scale)
    x += np.float32(stats.offset)
    return x
