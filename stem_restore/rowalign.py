"""Scan-line alignment along the fast-scan axis: the one home of the row-shift estimator.

Used by the evaluation (``evaluate.metrics.line_shifts``: a ground-truth-free scan-noise
measure; ``evaluate.baselines.align_rows``: a classical baseline), by ``restore.py
--align-rows`` (row alignment before the net, :data:`DEFAULT_ALIGN`, and of its output,
:data:`OUTPUT_ALIGN`) and by ``benchmarks/align_shards.py``.

Estimator: the normalised cross-correlation of two mean-free lines over their overlap, for
every integer lag in ``[-max_shift, max_shift]`` px, with a parabola through the three samples
around the maximum for the sub-pixel peak.  Alignment in the spirit of Gwyddion's row
alignment: each row's x offset is estimated against its neighbours and the row is shifted
back by linear interpolation (:func:`estimate_row_offsets`, :func:`align_rows`); optionally a
frame whose median offset is below ``min_jitter`` px is left as it is.
Images are 2-D, rows = scan lines (slow axis y first, fast axis x last); shifts in px.  SciPy is
imported where it is used: importing this module (restoration does) stays cheap.
"""
from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_MAX_SHIFT", "DEFAULT_ALIGN", "OUTPUT_ALIGN", "OUTPUT_MIN_INPUT_JITTER", "subpixel_peak",
           "row_shift", "pair_shifts", "line_shifts", "shift_rows", "slow_trend", "estimate_row_offsets",
           "frame_jitter", "align_rows", "parse_options", "parse_align"]

#: Default largest line-to-line shift searched, in px.  Lattice images are
#: periodic: a larger window could jump to the next column (one period away).
DEFAULT_MAX_SHIFT = 6


def subpixel_peak(cc: np.ndarray, k: int) -> float:
    """Offset of the parabola vertex through ``cc[k-1], cc[k], cc[k+1]`` (in samples)."""
    if k <= 0 or k >= cc.size - 1:
        return 0.0
    a, b, c = cc[k - 1], cc[k], cc[k + 1]
    denom = a - 2.0 * b + c
    if denom >= 0:  # not a maximum (flat or convex): keep the integer peak
        return 0.0
    return float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))


def row_shift(reference: np.ndarray, row: np.ndarray, max_shift: int = DEFAULT_MAX_SHIFT) -> float:
    """Shift ``s`` (px, sub-pixel) such that ``row[x] ~ reference[x - s]``.

    Uses the normalised cross-correlation of the mean-free lines over the
    overlapping samples for every integer lag in ``[-max_shift, max_shift]``,
    then a parabolic fit around the best lag.  A positive ``s`` means the row's
    content sits further right (larger x) than in the reference.  NaN if either line is flat
    (:func:`pair_shifts`).
    """
    a = np.asarray(reference, dtype=np.float64).reshape(1, -1)
    b = np.asarray(row, dtype=np.float64).reshape(1, -1)
    if a.shape != b.shape:
        raise ValueError(f"rows must have the same length, got {a.shape[1]} and {b.shape[1]}")
    return float(pair_shifts(a, b, max_shift)[0])


def line_shifts(image: np.ndarray, max_shift: int = DEFAULT_MAX_SHIFT, smooth: float = 0.0) -> np.ndarray:
    """Line-to-line shifts (px) along the fast-scan axis x between adjacent rows.

    Same estimator as :func:`row_shift` (normalised cross-correlation over the
    overlap, parabolic sub-pixel peak), vectorised over all row pairs.

    Parameters
    ----------
    image : ndarray
        2-D image, rows = scan lines (slow axis y first, fast axis x last).
    max_shift : int
        Largest shift searched, px.
    smooth : float
        Optional Gaussian sigma (px) applied along x before correlating
        (reduces the influence of pixel noise); 0 = none.

    Returns
    -------
    ndarray, shape (ny - 1,)
        ``d[i]`` = shift of row ``i + 1`` relative to row ``i`` (positive:
        row ``i + 1``'s content lies at larger x).
    """
    from scipy import ndimage

    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or img.shape[0] < 2 or img.shape[1] < 4:
        raise ValueError(f"need a 2-D image with >= 2 rows and >= 4 columns, got shape {img.shape}")
    if smooth > 0:
        img = ndimage.gaussian_filter1d(img, smooth, axis=1)
    return pair_shifts(img[:-1], img[1:], max_shift)


def pair_shifts(references: np.ndarray, rows: np.ndarray, max_shift: int = DEFAULT_MAX_SHIFT) -> np.ndarray:
    """Row-wise :func:`row_shift`: shift (px) of ``rows[i]`` relative to ``references[i]``.

    Both arrays have shape (m, n).  Normalised cross-correlation over the
    overlap for each integer lag in ``[-max_shift, max_shift]``, parabolic
    sub-pixel peak.  A pair with a flat line (constant over the overlap at every lag: vacuum
    clipped to one value, a blanked or saturated line) carries no position: NaN, not the edge
    of the search (its correlation is 0 at every lag).
    """
    ref = np.asarray(references, dtype=np.float64)
    nxt = np.asarray(rows, dtype=np.float64)
    n = ref.shape[1]
    max_shift = int(min(max_shift, n // 2))
    lags = np.arange(-max_shift, max_shift + 1)
    cc = np.empty((ref.shape[0], lags.size))
    measured = np.zeros(ref.shape[0], dtype=bool)
    for i, s in enumerate(lags):
        if s >= 0:
            u, v = ref[:, : n - s], nxt[:, s:]
        else:
            u, v = ref[:, -s:], nxt[:, : n + s]
        u = u - u.mean(axis=1, keepdims=True)
        v = v - v.mean(axis=1, keepdims=True)
        den = np.sqrt((u * u).sum(axis=1) * (v * v).sum(axis=1))
        num = (u * v).sum(axis=1)
        cc[:, i] = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        measured |= den > 0
    k = np.argmax(cc, axis=1)
    shifts = np.array([lags[kk] + subpixel_peak(row, kk) for row, kk in zip(cc, k)], dtype=np.float64)
    shifts[~measured] = np.nan
    return shifts


def shift_rows(image: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Move the content of each row ``i`` by ``-shifts[i]`` px along x.

    Linear interpolation; samples beyond the row's ends take the edge value.
    Integer shifts are exact away from the borders.
    """
    img = np.asarray(image, dtype=np.float64)
    x = np.arange(img.shape[1], dtype=np.float64)
    out = np.empty_like(img)
    for i, (row, s) in enumerate(zip(img, shifts)):
        out[i] = np.interp(x + s, x, row)
    return out


def estimate_row_offsets(image: np.ndarray, max_shift: int = DEFAULT_MAX_SHIFT, smooth: float = 1.0,
                         detrend: int = 15, reference: str = "previous", half_window: int = 3,
                         iterations: int = 2, min_jitter: float = 0.0, trend: str = "median") -> np.ndarray:
    """Per-row x offset (px) of each scan line.

    Two references, both cross-correlation based (:func:`pair_shifts`):

    ``reference="previous"`` (Gwyddion-like): the shift of each row relative to
    the previous row, integrated down the image; integration turns genuine
    structure (lattice tilt, slow drift) and estimation errors into a slow
    trend, removed over ``detrend`` rows (:func:`slow_trend`).

    ``reference="local"``: each row against the mean of its ``half_window``
    neighbours on either side (the row itself excluded), which averages out
    their jitter; no integration, so errors do not accumulate.  Repeated
    ``iterations`` times on the progressively aligned image.

    Parameters
    ----------
    image : ndarray
        2-D image, fast-scan axis x last.
    max_shift : int
        Largest shift searched, px.
    smooth : float
        Gaussian sigma (px) along x before correlating (noise robustness).
    detrend : int
        Trend window (rows) for ``reference="previous"``; 0 or 1: the whole frame.
    trend : {"median", "linear"}
        For ``reference="previous"``: how the slow trend is estimated over ``detrend`` rows,
        a running median or a local straight line (:func:`slow_trend`).
    reference : {"previous", "local"}
    half_window : int
        Rows on each side forming the local reference.
    iterations : int
        Refinement passes for ``reference="local"``.
    min_jitter : float
        Frame gate, px: if the median |offset| is below it the frame shows no
        measurable line jitter and all offsets are 0 (the frame is left alone: sub-pixel
        moves of good rows only interpolate, i.e. blur, them); 0 = no gate.
    """
    from scipy import ndimage

    img = np.asarray(image, dtype=np.float64)
    if reference == "previous":
        d = np.nan_to_num(line_shifts(img, max_shift=max_shift, smooth=smooth))  # a flat line: not moved
        offsets = np.concatenate([[0.0], np.cumsum(d)])
        return _gate(offsets - slow_trend(offsets, detrend, trend), min_jitter)
    if reference != "local":
        raise ValueError(f"reference must be 'previous' or 'local', got {reference!r}")
    if smooth > 0:
        img = ndimage.gaussian_filter1d(img, smooth, axis=1)
    offsets = np.zeros(img.shape[0])
    size = 2 * int(half_window) + 1
    for _ in range(max(1, int(iterations))):
        aligned = shift_rows(img, offsets)
        window_sum = ndimage.uniform_filter1d(aligned, size=size, axis=0, mode="reflect") * size
        ref = (window_sum - aligned) / (size - 1)
        offsets += np.nan_to_num(pair_shifts(ref, aligned, max_shift))  # a flat line: not moved
        offsets -= np.median(offsets)
    return _gate(offsets, min_jitter)


def slow_trend(offsets: np.ndarray, window: int, kind: str = "median") -> np.ndarray:
    """The slow part of integrated row offsets (px), estimated over ``window`` rows.

    ``kind="median"``: their running median (ends: nearest), or for ``window`` 0 or 1 their
    median.  A running median keeps a monotonic sequence as it is, so on a tilted lattice (offsets
    that climb a ramp) it also keeps the wander on top of the ramp wherever the sum still climbs.
    ``kind="linear"``: the straight line fitted to the ``window`` rows around each row
    (Savitzky-Golay, order 1; the first and last half-windows take the line fitted to the first
    and last ``window`` rows): a ramp (lattice tilt) is followed exactly, ends included, and what
    wanders faster than ``window`` rows is left out of the trend.  ``window`` is cut to the
    largest odd number of rows the frame has; 0, 1 or fewer than 3 rows: one line for the frame.
    """
    offsets = np.asarray(offsets, dtype=np.float64)
    if kind == "median":
        if window and window > 1:
            from scipy import ndimage

            return ndimage.median_filter(offsets, size=int(window), mode="nearest")
        return np.full_like(offsets, np.median(offsets))
    if kind != "linear":
        raise ValueError(f"trend must be 'median' or 'linear', got {kind!r}")
    n = offsets.size
    window = min(int(window or 0) | 1, n if n % 2 else n - 1)  # odd, at most n
    if window < 3:
        x = np.arange(n, dtype=np.float64)
        return np.polyval(np.polyfit(x, offsets, 1), x) if n > 1 else offsets.copy()
    from scipy import signal

    return signal.savgol_filter(offsets, window, 1, mode="interp")


def frame_jitter(offsets: np.ndarray) -> float:
    """A frame's line jitter (px): the median magnitude of its row offsets (0 for no rows)."""
    offsets = np.asarray(offsets)
    return float(np.median(np.abs(offsets))) if offsets.size else 0.0


def _gate(offsets: np.ndarray, min_jitter: float) -> np.ndarray:
    """``offsets``, or zeros when their median magnitude is below ``min_jitter`` px."""
    if min_jitter > 0 and frame_jitter(offsets) < min_jitter:
        return np.zeros_like(offsets)
    return offsets


def align_rows(image: np.ndarray, **params) -> np.ndarray:
    """Row-by-row cross-correlation line alignment; parameters as :func:`estimate_row_offsets`."""
    return shift_rows(image, estimate_row_offsets(image, **params))



#: Row alignment before the net (``restore.py --align-rows``, ``benchmarks/pre_align.py``):
#: the parameters the evaluation's grid search picked for the ``align_rows`` baseline on the
#: full mix's validation images at doses 300 and 1000 (``key=value,...``, :func:`parse_align`),
#: and a frame gate of 0.15 px (session 21, BENCHMARKS.md "row alignment's frame gate"): on the
#: evaluation's 16 flyback / detector-lag frames it keeps 51.1 / 57.1 dB of the raw 53.3 / 58.3
#: (41.9 / 42.5 ungated), for -0.09 dB on line jitter and 0.00 on the full mix.
DEFAULT_ALIGN = "reference=local,smooth=1,half_window=4,min_jitter=0.15"

#: Row alignment of the net's output, after row alignment before it (sessions 26-27, BENCHMARKS.md
#: "the error budget by band", "the trend the output alignment takes out"): the net leaves line offsets
#: that wander over 9-33 rows, which :data:`DEFAULT_ALIGN`'s reference of 4 rows either side
#: cannot see.  On the denoised output the shift from each row to the next is sharp: integrated
#: down the frame, minus the local straight line over 41 rows (lattice tilt and slower wander
#: stay; a running median kept the wander wherever a tilted lattice's offsets climb), at most
#: 2 px per row pair (no jump to the next lattice column), no smoothing along x, the same frame
#: gate.  Only on frames whose input shows line jitter (:data:`OUTPUT_MIN_INPUT_JITTER`).
OUTPUT_ALIGN = "reference=previous,trend=linear,detrend=41,smooth=0,max_shift=2,min_jitter=0.15"

#: The net's output is aligned only where the first alignment measured a line jitter
#: (:func:`frame_jitter` of :data:`DEFAULT_ALIGN`'s offsets on the input) of at least this many px.
#: On a well-restored lattice the shift from one output row to the next follows the lattice's own
#: structure (rows cross the atoms at other heights), which the output's offsets cannot tell from
#: wander; the output's own gate let such frames through and cost good frames up to 4 dB (session 27,
#: BENCHMARKS.md "the trend the output alignment takes out").  Picked on validation images
#: (seed 2000) with :data:`OUTPUT_ALIGN`.
OUTPUT_MIN_INPUT_JITTER = 0.5


def parse_options(text: str, known: set, what: str) -> dict:
    """``"key=value,..."`` -> keyword arguments (numbers as numbers), keys among ``known``.

    Raises ValueError naming ``what`` and the item for an unknown key or an item without ``=``.
    """
    out: dict = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in known:
            raise ValueError(f"{what} option {item!r}: expected key=value with key one of "
                             f"{', '.join(sorted(known))}")
        for kind in (int, float):
            try:
                out[key] = kind(value)
                break
            except ValueError:
                continue
        else:
            out[key] = value
    return out


def parse_align(text: str) -> dict:
    """``"key=value,..."`` -> keyword arguments of :func:`align_rows` (numbers as numbers).

    Raises ValueError naming the item for an unknown key or an item without ``=``.
    """
    return parse_options(text, {"max_shift", "smooth", "detrend", "trend", "reference", "half_window", "iterations",
                                "min_jitter"}, "row alignment")
