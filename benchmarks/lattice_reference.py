"""The specimen's own lattice as the reference for scan-line offsets: measured, not adopted
(session 28, BENCHMARKS.md "restoring: what a better first alignment would add, and the
specimen's lattice as the reference").

Line offsets that wander over tens of rows bend a crystal's atom columns, and a reference built
from neighbouring rows (:mod:`stem_restore.rowalign`) cannot tell such a bend from the specimen.
A crystal is periodic: its Fourier transform holds the lattice in a few sharp peaks (the
reflections), all integer combinations of two basis vectors, while a wander moves part of their
weight into side bands one wander frequency away along the slow-scan axis, off the reciprocal
lattice.  :func:`lattice_fit` fits plane waves at the reciprocal lattice's points to the frame
(least squares), a reference whose columns are straight over the whole frame; each row's x offset
against the same row of it (:func:`stem_restore.rowalign.pair_shifts`) is taken for the row's
wander (:func:`lattice_offsets`).  Frames with fewer than two reflections in different directions
(fringes: a bend of theirs may be the specimen's) or whose fitted lattice explains less than
``min_share`` of their variance (amorphous, empty) are left as they are, as are rows whose
reference has little contrast.

Why not adopted: where the specimen is not one perfect crystal (a particle's edge, an interface,
the amorphous support, random static column displacements) the average lattice differs from the
frame row by row and those differences read as offsets; on validation images the method lost
0.04-0.07 dB on the full mixes' mean (held out -0.12 to -0.14) while gaining 0.4-1.9 dB on single
crystals with wander.  Measured with ``benchmarks/output_align.py --lattice KEY=VALUE,...``.

Images are 2-D, rows = scan lines (slow axis y first, fast axis x last); offsets in px, positive
where a row's content lies at larger x than the reference's.
"""
from __future__ import annotations

import pathlib
import sys
from typing import NamedTuple

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from stem_restore.rowalign import pair_shifts, parse_options, shift_rows, subpixel_peak  # noqa: E402

__all__ = ["LATTICE_DEFAULT", "LatticeFit", "lattice_fit", "lattice_offsets", "align_to_lattice", "parse_lattice"]

#: The parameters measured (BENCHMARKS.md, session 28); ``--lattice`` varies them.
LATTICE_DEFAULT = "rel=0.1,max_peaks=8,min_peaks=2,min_share=0.2,min_contrast=0.2,edge=0,max_shift=2,tolerance=1"


class LatticeFit(NamedTuple):
    """What :func:`lattice_fit` found: the fitted ``reference`` image (same shape as the frame),
    the reflections' ``frequencies`` (cycles/px, rows (fy, fx), one of each ± pair) and the
    ``share`` of the frame's variance the fitted lattice explains."""
    reference: np.ndarray
    frequencies: np.ndarray
    share: float


def lattice_fit(image: np.ndarray, rel: float = 0.1, max_peaks: int = 8, min_ratio: float = 8.0,
                dc_radius: float = 4.0, tolerance: float = 1.0) -> LatticeFit:
    """The frame's lattice: a sum of plane waves on its reciprocal lattice, fitted by least squares.

    Parameters
    ----------
    image : ndarray
        2-D frame.
    rel : float
        Peaks weaker than ``rel`` times the strongest (in amplitude) are not kept.
    max_peaks : int
        At most this many reflections (± pairs count once; the strongest).
    min_ratio : float
        A peak is a local maximum (5 × 5 samples) at least ``min_ratio`` times the median amplitude.
    dc_radius : float
        Frequencies closer than this (samples) to zero are no peaks (the frame's slow background).
    tolerance : float
        A peak belongs to the lattice when it lies within this many frequency samples of an integer
        combination of the two basis reflections.

    Peaks are found on the transform of the frame under a Hann window, each refined to a fraction
    of a sample (a parabola through the log amplitude along each axis).  The strongest peak and the
    strongest one in another direction that is not its side band are the basis ``g1``, ``g2``; the peaks within ``tolerance``
    of ``m g1 + n g2`` are the lattice's reflections (side bands, which line offsets put one wander
    frequency away from a reflection along y, are not on the lattice), ``g1`` and ``g2`` are refined
    by least squares over them, and the amplitudes of the plane waves at ``m g1 + n g2`` (a cosine
    and a sine each, and a constant) are fitted to the frame itself.  The reference is thus straight
    over the whole frame, also where the lattice does not fit the frame a whole number of times (a
    mask on the transform, a Bragg filter, wraps periodically and bends it).  A frame with no second
    direction (fringes) or no peak gives a constant reference and ``frequencies`` of length < 2.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 8:
        raise ValueError(f"need a 2-D image of at least 8 x 8 px, got shape {img.shape}")
    from scipy import ndimage

    ny, nx = img.shape
    window = np.outer(np.hanning(ny), np.hanning(nx))
    amp = np.abs(np.fft.fftshift(np.fft.fft2((img - img.mean()) * window)))
    ky, kx = np.mgrid[:ny, :nx]
    amp[np.hypot(ky - ny // 2, kx - nx // 2) < dc_radius] = 0.0
    positive = amp[amp > 0]
    floor = min_ratio * (np.median(positive) if positive.size else 0.0)
    is_peak = (amp == ndimage.maximum_filter(amp, size=5)) & (amp > floor)
    peaks = np.argwhere(is_peak)
    strength = amp[is_peak]
    order = np.argsort(strength)[::-1]
    peaks, strength = peaks[order], strength[order]
    if strength.size:
        peaks = peaks[strength >= rel * strength[0]]
    log_amp = np.log(amp + 1e-30)
    pos = []  # refined positions, frequency samples from zero (y, x)
    for py, px in peaks:
        dy = subpixel_peak(log_amp[:, px], py)
        dx = subpixel_peak(log_amp[py], px)
        pos.append((py - ny // 2 + dy, px - nx // 2 + dx))
    pos = np.array(pos, dtype=np.float64).reshape(-1, 2)
    freqs = np.zeros((0, 2))
    if len(pos) >= 1:
        g1 = pos[0]
        cross = np.abs(pos[:, 0] * g1[1] - pos[:, 1] * g1[0]) / (np.hypot(*g1) * np.hypot(pos[:, 0], pos[:, 1]))
        # g2: in another direction (sin of the angle > 0.2), and not a side band of ±g1 (the same x
        # frequency, within 0.75 |g1| along y: a lattice's reflections lie farther apart)
        near = np.zeros(len(pos), dtype=bool)
        for g in (g1, -g1):
            near |= (np.abs(pos[:, 1] - g[1]) <= 1) & (np.abs(pos[:, 0] - g[0]) < 0.75 * np.hypot(*g1))
        other = np.flatnonzero((cross > 0.2) & ~near)
        freqs = g1[None] / [ny, nx]
        if other.size:
            basis = np.stack([g1, pos[other[0]]])  # rows g1, g2
            mn = np.linalg.solve(basis.T, pos.T).T  # pos = m g1 + n g2
            whole = np.round(mn)
            on = (np.hypot(*((mn - whole) @ basis).T) <= tolerance) & np.any(whole != 0, axis=1)
            # one of each ± pair, strongest first (pos is sorted by strength)
            seen, keep = set(), []
            for k in np.flatnonzero(on):
                m, n = int(whole[k, 0]), int(whole[k, 1])
                if (m, n) not in seen and (-m, -n) not in seen:
                    seen.add((m, n))
                    keep.append(k)
            keep = keep[:max_peaks]
            basis = np.linalg.lstsq(whole[keep], pos[keep], rcond=None)[0]  # refined g1, g2
            freqs = (whole[keep] @ basis) / [ny, nx]
    y, x = np.mgrid[:ny, :nx].astype(np.float64)
    phase = 2 * np.pi * (freqs[:, 0, None, None] * y + freqs[:, 1, None, None] * x)
    design = np.concatenate([np.ones((1, ny, nx)), np.cos(phase), np.sin(phase)]).reshape(1 + 2 * len(freqs), -1)
    coef, *_ = np.linalg.lstsq(design.T, img.ravel(), rcond=None)
    reference = (coef @ design).reshape(ny, nx)
    variance = img.var()
    share = float(1.0 - np.mean((img - reference) ** 2) / variance) if variance > 0 else 0.0
    return LatticeFit(reference, freqs, share)


def lattice_offsets(image: np.ndarray, rel: float = 0.1, max_peaks: int = 8, min_peaks: int = 2,
                    min_share: float = 0.2, min_contrast: float = 0.2, edge: int = 0, max_shift: int = 2,
                    tolerance: float = 1.0) -> np.ndarray:
    """Per-row x offset (px) of each scan line against the frame's own lattice.

    Each row against the same row of :func:`lattice_fit`'s reference (``rel``, ``max_peaks``,
    ``tolerance`` as there), within ``max_shift`` px; zeros for the whole frame when it shows fewer
    than ``min_peaks`` reflections, no two of them in different directions (fringes: a bend of
    theirs may be the specimen's), or the fitted lattice explains less than ``min_share`` of its
    variance; 0 for rows whose reference row's standard deviation is under ``min_contrast`` times
    the largest row's and for the ``edge`` rows at either end.  The offsets of the other rows are
    centred on their median.
    """
    img = np.asarray(image, dtype=np.float64)
    offsets = np.zeros(img.shape[0] if img.ndim == 2 else 0)
    if img.ndim != 2 or min(img.shape) < 8:
        return offsets
    fit = lattice_fit(img, rel=rel, max_peaks=max_peaks, tolerance=tolerance)
    if len(fit.frequencies) < max(2, min_peaks) or fit.share < min_share:
        return offsets
    contrast = fit.reference.std(axis=1)
    use = contrast >= min_contrast * contrast.max() if contrast.max() > 0 else np.zeros(img.shape[0], bool)
    edge = int(edge)
    if edge > 0:
        use[:edge] = False
        use[-edge:] = False
    if not use.any():
        return offsets
    found = pair_shifts(fit.reference[use], img[use], max_shift)
    offsets[use] = found - np.median(found)
    return offsets


def align_to_lattice(image: np.ndarray, **params) -> np.ndarray:
    """``image`` (float64) with each row moved onto the frame's lattice (:func:`lattice_offsets`)."""
    return shift_rows(image, lattice_offsets(image, **params))


def parse_lattice(text: str) -> dict:
    """``"key=value,..."`` -> keyword arguments of :func:`lattice_offsets` (numbers as numbers)."""
    return parse_options(text, {"rel", "max_peaks", "min_peaks", "min_share", "min_contrast", "edge", "max_shift",
                                "tolerance"}, "lattice alignment")
