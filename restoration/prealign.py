"""Row alignment around the net: ``restore.py --align-rows``, ``restoration.restore(..., align_rows=True)``.

The net sees 49 px around a pixel (:data:`stem_restore.network.RECEPTIVE_FIELD`), so it can
estimate a scan line's x offset only from that short piece of the line; cross-correlating
whole lines (:func:`stem_restore.rowalign.align_rows`) estimates it from the full width.  On
the evaluation's 256² frames, aligning first and then running the shipped net gained +1.1 dB
on line jitter and +0.3 dB on the full mix, but it moves good rows too: frames whose median
line offset is below 0.15 px are left alone (the frame gate), and still good frames lose 0.5-1.0
dB (BENCHMARKS.md "restoring: the net after row alignment", "row alignment's frame gate").
Hence an option, off by default, for frames with visible line jitter.

The net then leaves line offsets that wander over 9-33 rows, farther than the 4 rows either side
that the first alignment compares a line with; on the net's denoised output the shift from one
line to the next is sharp, so a second alignment there (:data:`stem_restore.rowalign.OUTPUT_ALIGN`)
takes them out: integrated down the frame minus the local straight line over 41 rows (a
tilted lattice's ramp), +0.35 / +0.47 / +0.50 dB more on the full mix at doses 100 / 300 / 1000
and +0.56 / +0.52 / +0.53 on held-out specimens.  Only on frames whose input shows line jitter
(:data:`stem_restore.rowalign.OUTPUT_MIN_INPUT_JITTER`): on a well-restored lattice the output's
row-to-row shifts follow the lattice, and aligning them cost good frames up to 4 dB; so gated, the
families without jitter lose at most 0.16 dB (BENCHMARKS.md "the error budget by band", "the
trend the output alignment takes out").

:class:`RowAligned` wraps a restorer: each frame is row-aligned (float64), restored, and the
result row-aligned again; results stay in the input's intensity units.  Frames under 3 rows or 4
columns pass unaligned.
"""
from __future__ import annotations

import numpy as np

from stem_restore.rowalign import (DEFAULT_ALIGN, OUTPUT_ALIGN, OUTPUT_MIN_INPUT_JITTER, align_rows,
                                   estimate_row_offsets, frame_jitter, parse_align, shift_rows)

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
    """A restorer (anything with ``restore(frame, out=...)`` returning a result with a
    ``restored`` array) that row-aligns each frame first and the net's output after.

    Parameters
    ----------
    restorer
        E.g. :class:`restoration.engine.Restorer`; its other attributes stay reachable.
    align : str
        ``key=value,...`` parameters of :func:`stem_restore.rowalign.align_rows` before the net.
    output : str or None
        The same for the net's output (default :data:`stem_restore.rowalign.OUTPUT_ALIGN`);
        None: before the net only.
    min_input_jitter : float
        The output is aligned only for frames whose line jitter, measured by the first alignment
        on the input, is at least this many px (default
        :data:`stem_restore.rowalign.OUTPUT_MIN_INPUT_JITTER`).
    """

    def __init__(self, restorer, align: str, output: str | None = OUTPUT_ALIGN,
                 min_input_jitter: float = OUTPUT_MIN_INPUT_JITTER):
        self.inner = restorer
        self.align, self.output = align, output
        self.min_input_jitter = float(min_input_jitter)
        self.params = parse_align(align)
        self.output_params = None if output is None else parse_align(output)

    @staticmethod
    def _alignable(frame: np.ndarray) -> bool:
        return frame.ndim == 2 and frame.shape[0] >= 3 and frame.shape[1] >= 4

    def prepare(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """``(frame with its rows aligned (float64), its line jitter in px)``: exactly
        ``align_rows(frame, **params)``, and :func:`~stem_restore.rowalign.frame_jitter` of the
        offsets before the frame gate; frames too small to correlate unchanged, jitter 0."""
        frame = np.asarray(frame)
        if not self._alignable(frame):
            return frame, 0.0
        offsets = estimate_row_offsets(frame, **{**self.params, "min_jitter": 0.0})
        jitter = frame_jitter(offsets)
        if jitter < self.params.get("min_jitter", 0.0):
            offsets = np.zeros_like(offsets)
        return shift_rows(frame, offsets), jitter

    def aligned(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` with its rows aligned (float64); frames too small to correlate unchanged."""
        return self.prepare(frame)[0]

    def align_output(self, restored: np.ndarray, jitter: float) -> np.ndarray:
        """Align the rows of the net's output ``restored`` in place, if the input's line
        ``jitter`` (px, from :meth:`prepare`) reaches ``min_input_jitter``; returns it."""
        if self.output_params is not None and jitter >= self.min_input_jitter and self._alignable(restored):
            restored[...] = align_rows(restored, **self.output_params)
        return restored

    def restore(self, frame: np.ndarray, out: np.ndarray | None = None):
        aligned, jitter = self.prepare(frame)
        result = self.inner.restore(aligned, out=out)
        self.align_output(result.restored, jitter)
        return result

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (e.g. during copying): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
