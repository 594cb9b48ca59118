"""The slow-scan mirror self-ensemble: ``restore.py --self-ensemble``, ``restoration.restore(..., self_ensemble=True)``.

A frame read with its scan lines in reverse order (``np.flipud``: the slow-scan axis
mirrored) is one the simulator could have made: every line is still scanned left to right,
so flyback and detector lag stay on their side; line jitter is independent per line; drift
has a random direction; specimen orientations are random.  The net's estimate of the mirrored
frame, mirrored back, is therefore a second, partly independent estimate of the same frame,
and the mean of the two a 2-fold self-ensemble (Lim et al. 2017, "Enhanced deep residual
networks for single image super-resolution", CVPR workshops: the geometric self-ensemble; of
its 8 flips and rotations only this one keeps the fast-scan axis and its direction).

It costs a second pass of the net, and memory for the mirrored copy of the frame (in the input's
dtype) and its restored float32 result.  On the evaluation's test images it gained on every
condition, most on good frames (BENCHMARKS.md "restoring: the slow-scan mirror self-ensemble").

:class:`SelfEnsemble` wraps a restorer (anything with ``restore(frame, out=...)`` returning a
:class:`restoration.engine.FrameResult`).  Both passes normalise with the same whole-frame
statistics (a mirrored frame has the same mean and spread), so the mean is taken in the
input's units.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SelfEnsemble", "mirror_mean", "ensemble_option"]


def ensemble_option(value) -> bool:
    """The ``self_ensemble`` option as a bool: True, or False / None for off; anything else
    (e.g. the string ``"false"``) is a ValueError rather than a silent True."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    raise ValueError(f"self_ensemble must be True, False or None, got {value!r}")


def mirror_mean(restore, frame: np.ndarray) -> np.ndarray:
    """``(restore(frame) + flipud(restore(flipud(frame)))) / 2`` for any ``restore(frame) -> array``."""
    first = np.asarray(restore(frame), dtype=np.float32)
    second = np.asarray(restore(np.ascontiguousarray(np.flipud(frame))), dtype=np.float32)
    return (first + second[::-1]) * np.float32(0.5)


class SelfEnsemble:
    """A restorer whose result is the mean of its own and its slow-scan mirror's (see module doc).

    Parameters
    ----------
    restorer
        E.g. :class:`restoration.engine.Restorer`; its other attributes stay reachable.
    """

    def __init__(self, restorer):
        self.inner = restorer

    def restore(self, frame: np.ndarray, out: np.ndarray | None = None):
        frame = np.asarray(frame)
        mirrored = self.inner.restore(np.ascontiguousarray(np.flipud(frame))).restored
        result = self.inner.restore(frame, out=out)
        restored = result.restored
        restored += mirrored[::-1]
        restored *= np.float32(0.5)
        return result

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (e.g. during copying): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
