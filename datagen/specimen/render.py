"""Rendering of projected columns into an image: splat, then probe blur.

Columns are point weights splatted with sub-pixel (bilinear) accuracy onto the
pixel grid; convolving with the probe intensity (a Gaussian core plus an
optional broad Gaussian tail, Angstrom units converted to pixels) then gives
the incoherent HAADF image  I(r) = sum_j w_j P(r - r_j).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def splat(shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray,
          weights: np.ndarray) -> np.ndarray:
    """Bilinear splat of point weights onto a float64 grid of ``shape``.

    ``rows``/``cols`` are pixel coordinates (pixel centres at integers).
    Points whose 2x2 footprint leaves the grid lose that part of their weight.
    """
    h, w = shape
    r0 = np.floor(rows).astype(np.int64)
    c0 = np.floor(cols).astype(np.int64)
    fr = rows - r0
    fc = cols - c0
    out = np.zeros(h * w, dtype=np.float64)
    for dr, dc, wt in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc),
                       (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        rr = r0 + dr
        cc = c0 + dc
        ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        out += np.bincount(rr[ok] * w + cc[ok], weights=(weights * wt)[ok], minlength=h * w)
    return out.reshape(h, w)


class Probe:
    """Probe intensity: Gaussian core plus optional Gaussian tail.

    Parameters
    ----------
    fwhm_angstrom : float
        Full width at half maximum of the core (aberration-corrected probes
        ~0.6-1 A, uncorrected ~1.5-2 A).
    tail_fraction : float
        Fraction of the probe intensity in the broad tail (0 = no tail).
    tail_fwhm_angstrom : float
        FWHM of the tail.
    """

    def __init__(self, fwhm_angstrom: float, tail_fraction: float = 0.0,
                 tail_fwhm_angstrom: float = 4.0):
        self.fwhm_angstrom = fwhm_angstrom
        self.tail_fraction = tail_fraction
        self.tail_fwhm_angstrom = tail_fwhm_angstrom

    def reach_px(self, pixel_size_angstrom: float) -> int:
        """Pixels beyond which the probe's (truncated) kernel is zero."""
        fwhm = self.tail_fwhm_angstrom if self.tail_fraction > 0 else 0.0
        fwhm = max(fwhm, self.fwhm_angstrom)
        return int(np.ceil(3.5 * fwhm * FWHM_TO_SIGMA / pixel_size_angstrom)) + 1

    def __call__(self, image: np.ndarray, pixel_size_angstrom: float) -> np.ndarray:
        """Convolve ``image`` (point weights per pixel) with the probe."""
        s = self.fwhm_angstrom * FWHM_TO_SIGMA / pixel_size_angstrom
        out = ndimage.gaussian_filter(image, s, mode="constant", truncate=3.5)
        if self.tail_fraction > 0:
            st = self.tail_fwhm_angstrom * FWHM_TO_SIGMA / pixel_size_angstrom
            tail = ndimage.gaussian_filter(image, st, mode="constant", truncate=3.0)
            out = (1 - self.tail_fraction) * out + self.tail_fraction * tail
        return out
