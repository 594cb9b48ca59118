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

from stem_restore.rowalign import (DEFAULT_MAX_SHIFT, line_shifts, pair_shifts, row_shift,  # noqa: F401 (re-exported)
                                   subpixel_peak)

__all__ = ["clean_range", "psnr", "ssim", "column_peaks", "column_spacing", "column_displacements",
           "column_position_error", "row_shift", "pair_shifts",
           "line_shifts", "scan_shift_spread"]

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


def _locate(smoothed: np.ndarray, peaks: np.ndarray, radius=PEAK_RADIUS) -> np.ndarray:
    """Sub-pixel maximum of ``smoothed`` within ``radius`` px (a square window; a scalar or one per
    peak) of each of ``peaks``; a window is cut at the image's edges, and a maximum on an edge
    keeps its integer position along that axis."""
    radii = np.broadcast_to(np.asarray(radius, int), (len(peaks),))
    out = np.empty((len(peaks), 2))
    for i, ((y, x), r) in enumerate(zip(peaks, radii)):
        y0, x0 = max(y - r, 0), max(x - r, 0)
        win = smoothed[y0:y + r + 1, x0:x + r + 1]
        dy, dx = np.unravel_index(int(np.argmax(win)), win.shape)
        py, px = y0 + dy, x0 + dx
        out[i] = py + subpixel_peak(smoothed[:, px], py), px + subpixel_peak(smoothed[py], px)
    return out


def column_spacing(peaks: np.ndarray) -> np.ndarray:
    """Distance (px) from each of ``peaks`` to the nearest other one (inf for a lone peak)."""
    from scipy.spatial import cKDTree

    if len(peaks) < 2:
        return np.full(len(peaks), np.inf)
    return cKDTree(peaks).query(peaks, 2)[0][:, 1]


def column_displacements(image: np.ndarray, clean: np.ndarray, radius=PEAK_RADIUS) -> np.ndarray:
    """Distance (px) between each atomic column located in ``image`` and in ``clean``, searched
    within ``radius`` px (a scalar, one per column of :func:`column_peaks` (clean), or a callable
    of those columns giving either); empty when the clean target has no columns.  A column moved
    farther than ``radius`` is found on its window's rim or on another peak inside it."""
    img, ref = _as_pair(image, clean)
    peaks = column_peaks(ref)
    if len(peaks) == 0:
        return np.zeros(0)
    r = radius(peaks) if callable(radius) else radius
    true = _locate(ndimage.gaussian_filter(ref, PEAK_SMOOTH_PX), peaks, r)
    found = _locate(ndimage.gaussian_filter(img, PEAK_SMOOTH_PX), peaks, r)
    return np.sqrt(np.sum((found - true) ** 2, axis=1))


def column_position_error(image: np.ndarray, clean: np.ndarray) -> float:
    """RMS distance (px) between the atomic columns located in ``image`` and in ``clean``
    (:func:`column_displacements` within :data:`PEAK_RADIUS`).

    NaN when the clean target has no columns (e.g. a low-resolution scene
    without a lattice).  See the module docstring for the procedure.
    """
    d = column_displacements(image, clean)
    return float(np.sqrt(np.mean(d**2))) if d.size else float("nan")


def scan_shift_spread(image: np.ndarray, max_shift: int = DEFAULT_MAX_SHIFT, smooth: float = 0.0) -> float:
    """Standard deviation (px) of the line-to-line shifts: a ground-truth-free scan-noise measure.

    ~0 for an undistorted image; grows with scan jitter / per-line shifts.
    See the module docstring for what else (noise) contributes.  Pairs with a flat line (no
    position, :func:`stem_restore.rowalign.pair_shifts`) are left out; NaN if every pair is.
    """
    d = line_shifts(image, max_shift=max_shift, smooth=smooth)
    d = d[np.isfinite(d)]
    return float(np.std(d)) if d.size else float("nan")
