"""Image-quality metrics for restoration: PSNR, SSIM, atomic-column positions and a scan-distortion measure.

PSNR and SSIM compare a restored (or raw) image with its clean target and use
scikit-image.  Both images must be in the same intensity units (datagen's
``simulate_pairs`` returns them so; the CNN output is mapped back with
``denormalize``).

``data_range`` choice
---------------------
PSNR and SSIM need the dynamic range of the signal.  We use the **clean
target's range**, ``max(clean) - min(clean)``, per image.  It does not depend
on the method being scored (a noisy raw image or one with zingers would
inflate its own range and so its own score), and it is the same for every
method on the same test image, so the numbers in one row are comparable.

Atomic-column positions
-----------------------
REFERENCE.md §5 asks for the atomic-column position precision.
:func:`column_peaks` finds the columns in the *clean* target (local maxima of
at least :data:`PEAK_MIN_CONTRAST` of its range above its minimum, at least
:data:`PEAK_MIN_DISTANCE` px apart and :data:`PEAK_RADIUS` + 1 px from the
edges) that are peaks in every direction (:data:`PEAK_MIN_ROUNDNESS`: a maximum along a
ridge, where columns merge into lines at the frame's sampling, has no position along it and is
left out).
:func:`column_position_error` then locates each of them in a raw or
restored image the same way for every method -- the maximum of the
image smoothed with a Gaussian of :data:`PEAK_SMOOTH_PX`, searched within
:data:`PEAK_RADIUS` px of the true column, refined to sub-pixel precision by a
parabola through the three samples around it along each axis -- and returns
the root-mean-square distance (px) to the same estimate on the clean target.
Multiply by the pixel size for pm.  Scan jitter and drift move columns;
noise makes the maximum wander; a restoration that puts columns back where
they belong lowers the error.

Ground-truth-free scan measure
------------------------------
:func:`line_shifts` cross-correlates each scan line with the next one along
the fast-scan axis (x, the last array axis) and finds the peak to sub-pixel
precision (parabola through the three samples around the maximum).
:func:`scan_shift_spread` returns the standard deviation (in px) of these
line-to-line shifts.  A rigid, undistorted image of a (possibly rotated)
lattice has nearly constant shifts (0, or a constant tilt), so the spread is
~0; scan jitter, per-line offsets and flyback errors make adjacent lines
disagree and the spread grows (REFERENCE.md §5: "the standard deviation of
line-to-line shifts as a scan-noise measure").  Noise also adds spread (the
peak of a noisy correlation wanders), so compare images at similar dose.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

__all__ = ["clean_range", "psnr", "ssim", "column_peaks", "column_position_error", "row_shift", "pair_shifts",
           "line_shifts", "scan_shift_spread"]

#: Default largest line-to-line shift searched, in px.  Lattice images are
#: periodic: a larger window could jump to the next column (one period away).
DEFAULT_MAX_SHIFT = 6
#: Per-image PSNR cap (dB) used when averaging over images: an image left
#: identical to its target (e.g. a family that happened to change nothing)
#: has PSNR = inf, which would make every mean infinite.
PSNR_CAP_DB = 100.0
#: Column detection in the clean target: smallest peak height above the
#: image minimum, as a fraction of its range; smallest distance between
#: columns (px); search radius around each true column (px); Gaussian
#: smoothing (px) applied before locating a maximum.
PEAK_MIN_CONTRAST = 0.3
PEAK_MIN_DISTANCE = 3
PEAK_RADIUS = 2
PEAK_SMOOTH_PX = 1.0
#: A column must be a peak in every direction: at its maximum, the curvature of the smoothed
#: clean target along its flattest direction is at least this fraction of the curvature along
#: its steepest (the ratio of the Hessian's eigenvalues; 1 = round column, 0 = ridge).  A maximum
#: along a ridge (a lattice whose columns merge into lines at the frame's sampling) has no
#: position along the ridge: located in a noisy image it lands anywhere within the search
#: radius, whatever the method.
PEAK_MIN_ROUNDNESS = 0.2


def _as_pair(restored: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return both images as float64 after checking they have the same 2-D shape."""
    r = np.asarray(restored, dtype=np.float64)
    c = np.asarray(clean, dtype=np.float64)
    if r.shape != c.shape or r.ndim != 2:
        raise ValueError(f"images must be 2-D with the same shape, got {r.shape} and {c.shape}")
    return r, c


def clean_range(clean: np.ndarray) -> float:
    """Dynamic range used by :func:`psnr` and :func:`ssim`: ``max - min`` of the clean target.

    A flat target (range 0) gets range 1 so that the metrics stay defined.
    """
    c = np.asarray(clean, dtype=np.float64)
    rng = float(c.max() - c.min())
    return rng if rng > 0 else 1.0


def psnr(restored: np.ndarray, clean: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(range**2 / MSE)``.

    Parameters
    ----------
    restored, clean : ndarray
        2-D images in the same units.
    data_range : float, optional
        Signal range; default :func:`clean_range` of ``clean``.

    Returns
    -------
    float
        PSNR in dB (``inf`` for identical images).
    """
    r, c = _as_pair(restored, clean)
    dr = clean_range(c) if data_range is None else float(data_range)
    if np.array_equal(r, c):
        return float("inf")
    return float(peak_signal_noise_ratio(c, r, data_range=dr))


def ssim(restored: np.ndarray, clean: np.ndarray, data_range: float | None = None) -> float:
    """Structural similarity (Wang et al. 2004) via scikit-image, 7x7 window.

    ``data_range`` defaults to :func:`clean_range` of ``clean``.  Returns 1.0
    for identical images.
    """
    r, c = _as_pair(restored, clean)
    dr = clean_range(c) if data_range is None else float(data_range)
    return float(structural_similarity(c, r, data_range=dr))


def column_peaks(clean: np.ndarray) -> np.ndarray:
    """Integer (row, col) positions of the atomic columns of a clean target, shape (N, 2)."""
    from skimage.feature import peak_local_max

    c = ndimage.gaussian_filter(np.asarray(clean, dtype=np.float64), PEAK_SMOOTH_PX)
    lo, hi = float(c.min()), float(c.max())
    if hi <= lo:
        return np.zeros((0, 2), int)
    peaks = peak_local_max(c, min_distance=PEAK_MIN_DISTANCE, threshold_abs=lo + PEAK_MIN_CONTRAST * (hi - lo),
                           exclude_border=PEAK_RADIUS + 1)
    if len(peaks) == 0:
        return peaks
    y, x = peaks[:, 0], peaks[:, 1]  # >= PEAK_RADIUS + 1 px from the edges: neighbours exist
    dyy = c[y + 1, x] - 2 * c[y, x] + c[y - 1, x]
    dxx = c[y, x + 1] - 2 * c[y, x] + c[y, x - 1]
    dxy = (c[y + 1, x + 1] - c[y + 1, x - 1] - c[y - 1, x + 1] + c[y - 1, x - 1]) / 4
    half_trace, root = (dyy + dxx) / 2, np.sqrt(((dyy - dxx) / 2) ** 2 + dxy**2)
    steep, flat = half_trace - root, half_trace + root  # eigenvalues, steep <= flat (< 0 at a maximum)
    with np.errstate(divide="ignore", invalid="ignore"):
        round_enough = (flat < 0) & (flat / steep >= PEAK_MIN_ROUNDNESS)
    return peaks[round_enough]


def _locate(smoothed: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Sub-pixel maximum of ``smoothed`` within PEAK_RADIUS of each of ``peaks``."""
    r = PEAK_RADIUS
    out = np.empty((len(peaks), 2))
    for i, (y, x) in enumerate(peaks):
        win = smoothed[y - r:y + r + 1, x - r:x + r + 1]
        dy, dx = np.unravel_index(int(np.argmax(win)), win.shape)
        py, px = y - r + dy, x - r + dx
        out[i] = py + _subpixel_peak(smoothed[:, px], py), px + _subpixel_peak(smoothed[py], px)
    return out


def column_position_error(image: np.ndarray, clean: np.ndarray) -> float:
    """RMS distance (px) between the atomic columns located in ``image`` and in ``clean``.

    NaN when the clean target has no columns (e.g. a low-resolution scene
    without a lattice).  See the module docstring for the procedure.
    """
    img, ref = _as_pair(image, clean)
    peaks = column_peaks(ref)
    if len(peaks) == 0:
        return float("nan")
    true = _locate(ndimage.gaussian_filter(ref, PEAK_SMOOTH_PX), peaks)
    found = _locate(ndimage.gaussian_filter(img, PEAK_SMOOTH_PX), peaks)
    return float(np.sqrt(np.mean(np.sum((found - true) ** 2, axis=1))))


def _subpixel_peak(cc: np.ndarray, k: int) -> float:
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
    content sits further right (larger x) than in the reference.
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
    sub-pixel peak.
    """
    ref = np.asarray(references, dtype=np.float64)
    nxt = np.asarray(rows, dtype=np.float64)
    n = ref.shape[1]
    max_shift = int(min(max_shift, n // 2))
    lags = np.arange(-max_shift, max_shift + 1)
    cc = np.empty((ref.shape[0], lags.size))
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
    k = np.argmax(cc, axis=1)
    return np.array([lags[kk] + _subpixel_peak(row, kk) for row, kk in zip(cc, k)], dtype=np.float64)


def scan_shift_spread(image: np.ndarray, max_shift: int = DEFAULT_MAX_SHIFT, smooth: float = 0.0) -> float:
    """Standard deviation (px) of the line-to-line shifts: a ground-truth-free scan-noise measure.

    ~0 for an undistorted image; grows with scan jitter / per-line shifts.
    See the module docstring for what else (noise) contributes.
    """
    return float(np.std(line_shifts(image, max_shift=max_shift, smooth=smooth)))
