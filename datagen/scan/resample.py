"""Sample the specimen at displaced probe positions."""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def resample(canvas: np.ndarray, field: tuple[slice, slice], dx_px: np.ndarray,
             dy_px: np.ndarray, order: int = 3) -> np.ndarray:
    """Image seen by a probe displaced by (dx_px, dy_px) pixels.

    Parameters
    ----------
    canvas : ndarray
        Specimen image, larger than the scanned field.
    field : (slice, slice)
        Scanned field inside ``canvas`` (nominal probe positions).
    dx_px, dy_px : ndarray
        Displacement of every probe position, pixels (x = columns).
    order : int
        Spline order for :func:`scipy.ndimage.map_coordinates` (3 = cubic;
        positions outside the canvas take the nearest edge value).

    With all displacements exactly zero the field is returned unchanged
    (exact identity, no interpolation).  Cubic overshoot is clipped at 0.
    """
    if not np.any(dx_px) and not np.any(dy_px):
        return canvas[field].copy()
    ys, xs = field
    rows = np.arange(ys.start, ys.stop, dtype=np.float64)[:, None] + dy_px
    cols = np.arange(xs.start, xs.stop, dtype=np.float64)[None, :] + dx_px
    out = ndimage.map_coordinates(canvas, [rows, cols], order=order, mode="nearest")
    return np.clip(out, 0.0, None)
