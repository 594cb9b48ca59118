"""Tile arithmetic for restoring images larger than memory allows.

The network is 12 convolutions of 5 x 5 with ``pad: 2``: each output pixel
depends on a 49 x 49 px neighbourhood (:data:`stem_restore.network.RECEPTIVE_FIELD`,
radius :data:`stem_restore.network.CONTEXT` = 12 x 2 = 24 px).
Caffe pads every layer with zeros, so a tile's output is exact (equal to the
whole-image output, up to float rounding) wherever the pixel is at least
24 px from every tile edge that is *not* also an image edge.

Tiles are all ``tile x tile`` (the net is reshaped once per image size): the
inner *cores*, which partition the image, are written out; each core sits in
a window that gives it >= 24 px of real context on every inner side.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stem_restore.network import CONTEXT, RECEPTIVE_FIELD


@dataclass(frozen=True)
class Span:
    """One tile along one axis.

    ``win`` is the window fed to the network, ``core`` the part of the image
    whose result is taken from this window, both as [start, stop) in image
    coordinates.
    """

    win_start: int
    win_stop: int
    core_start: int
    core_stop: int


def plan_axis(length: int, tile: int, context: int = CONTEXT) -> list[Span]:
    """Split one axis of ``length`` px into windows of ``tile`` px.

    Parameters
    ----------
    length : int
        Image size along the axis (px).
    tile : int
        Window size (px); 0 or ``tile >= length`` means one window covering
        the axis.  Otherwise it must exceed ``2 * context``.
    context : int
        Real context needed on each inner side of a core (px).

    Returns
    -------
    list of Span
        Cores partition ``[0, length)``; every window lies inside the image
        and has size ``min(tile, length)``; each core has >= ``context`` px of
        window on each side that is not an image edge.
    """
    if length <= 0:
        raise ValueError("length must be positive")
    if tile <= 0 or tile >= length:
        return [Span(0, length, 0, length)]
    if tile <= 2 * context:
        raise ValueError(f"tile ({tile} px) must exceed 2 x context = {2 * context} px")
    step = tile - 2 * context
    spans = []
    start = 0
    while True:
        if start == 0:
            win_start = 0
        else:
            win_start = start - context
        # The last core: its window is the final `tile` px of the axis.
        if start >= length - tile + context:
            win_start = length - tile
            spans.append(Span(win_start, length, start, length))
            break
        stop = tile - context if start == 0 else start + step
        spans.append(Span(win_start, win_start + tile, start, stop))
        start = stop
    return spans


def plan_tiles(shape: tuple[int, int], tile: int | tuple[int, int], context: int = CONTEXT) -> list[tuple[Span, Span]]:
    """All (row span, column span) pairs covering a ``shape = (H, W)`` image.

    ``tile`` is the window edge, or (rows, columns) for rectangular windows.
    """
    th, tw = (tile, tile) if isinstance(tile, (int, np.integer)) else tile
    rows = plan_axis(shape[0], int(th), context)
    cols = plan_axis(shape[1], int(tw), context)
    return [(r, c) for r in rows for c in cols]


def tiling_overhead(shape: tuple[int, int], tile: int | tuple[int, int], context: int = CONTEXT) -> float:
    """Pixels pushed through the net divided by image pixels (>= 1)."""
    total = sum(
        (r.win_stop - r.win_start) * (c.win_stop - c.win_start)
        for r, c in plan_tiles(shape, tile, context)
    )
    return total / (shape[0] * shape[1])


def pad_widths_to_min(shape: tuple[int, int], minimum: int = RECEPTIVE_FIELD) -> tuple[tuple[int, int], tuple[int, int]]:
    """Padding (before, after) per axis that brings each edge to >= ``minimum``."""
    out = []
    for n in shape:
        extra = max(0, minimum - n)
        out.append((extra // 2, extra - extra // 2))
    return tuple(out)  # type: ignore[return-value]
