"""Row alignment before the net: ``restore.py --align-rows``, ``restoration.restore(..., align_rows=True)``.

The net sees 49 px around a pixel (:data:`stem_restore.network.RECEPTIVE_FIELD`), so it can
estimate a scan line's x offset only from that short piece of the line; cross-correlating
whole lines (:func:`stem_restore.rowalign.align_rows`) estimates it from the full width.  On
the evaluation's 256² frames, aligning first and then running the shipped net gained +1.1 dB
on line jitter and +0.3 dB on the full mix, but it moves good rows too: frames whose median
line offset is below 0.15 px are left alone (the frame gate), and still good frames lose 0.5-1.0
dB (BENCHMARKS.md "restoring: the net after row alignment", "row alignment's frame gate").
Hence an option, off by default, for frames with visible line jitter.

:class:`RowAligned` wraps a restorer: each frame is row-aligned (float64), then restored;
results stay in the input's intensity units.  Frames under 3 rows or 4 columns pass unaligned.
"""
from __future__ import annotations

import numpy as np

from stem_restore.rowalign import DEFAULT_ALIGN, align_rows, parse_align

__all__ = ["RowAligned", "align_option"]


def align_option(value: bool | str | None) -> str | None:
    """The canonical ``key=value,...`` text of an ``align_rows`` option, or None for off.

    ``True`` -> :data:`stem_restore.rowalign.DEFAULT_ALIGN`; a string is checked with
    :func:`stem_restore.rowalign.parse_align` (ValueError naming a bad item) and overrides those
    keys of ``DEFAULT_ALIGN`` (``"smooth=2"``: the defaults with ``smooth=2``); ``False`` /
    ``None`` / ``""`` -> None.
    """
    if value is None or value is False or value == "":
        return None
    if value is True:
        return DEFAULT_ALIGN
    if not isinstance(value, str):
        raise ValueError(f"align_rows must be True, False, None or 'key=value,...', got {value!r}")
    params = {**parse_align(DEFAULT_ALIGN), **parse_align(value)}
    return ",".join(f"{k}={v}" for k, v in params.items())


class RowAligned:
    """A restorer (anything with ``restore(frame, out=...)``) that row-aligns each frame first.

    Parameters
    ----------
    restorer
        E.g. :class:`restoration.engine.Restorer`; its other attributes stay reachable.
    align : str
        ``key=value,...`` parameters of :func:`stem_restore.rowalign.align_rows`.
    """

    def __init__(self, restorer, align: str):
        self.inner = restorer
        self.align = align
        self.params = parse_align(align)

    def aligned(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` with its rows aligned (float64); frames too small to correlate unchanged."""
        frame = np.asarray(frame)
        if frame.ndim != 2 or frame.shape[0] < 3 or frame.shape[1] < 4:
            return frame
        return align_rows(frame, **self.params)

    def restore(self, frame: np.ndarray, out: np.ndarray | None = None):
        return self.inner.restore(self.aligned(frame), out=out)

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (e.g. during copying): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
