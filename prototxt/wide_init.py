"""Start the wide variant from a paper-net snapshot: the same function, room along x.

The wide variant (:func:`make_nets.train_hdf5` with ``wide=True``) has the paper net's
layers with kernels of :data:`stem_restore.network.WIDE_KERNEL` = 5 x 9 px instead of
5 x 5: 9 px along the fast-scan axis x, so an output pixel sees 49 x 97 px, twice as
much of its own scan line.  The paper net's largest remaining error is rows at the wrong
x (BENCHMARKS.md, "the error budget"), and how far a line sits off can only be read from
enough of the line.

A 5 x 5 kernel is a 5 x 9 kernel whose two outer column pairs are zero (with ``pad_w``
4 instead of 2 the output grid is the same), so the variant can start *exactly* where a
paper-net snapshot is: this start copies each trained kernel into the middle five
columns of a zero 5 x 9 kernel.  At the snapshot's iteration the variant computes the
paper net's output bit for bit (up to the order of the sums), and training then decides
what the new columns are worth: an A/B against the paper net continued from the same
pair, with the same batches, measures only the width.

In the ``.solverstate`` the new columns have no history: both Adam moments are zero, as
for any parameter at Adam's start.  The run is thousands of iterations in, where Adam's
bias correction is ~1, so a new tap with a steady gradient moves
``base_lr x (1 - 0.9^t) / sqrt(1 - 0.999^t)`` per iteration: ~3x ``base_lr`` at first,
~6x after 10 iterations, ~2x after 256, ~1x after a few thousand (Kingma & Ba 2015,
beta1 = 0.9, beta2 = 0.999), while the trained taps go on at ``base_lr``: the new
columns catch up faster than the rate alone would let them.  (``residual_init.py`` keeps
its zeroed layer's second moments instead, to keep a trained layer's steps small.)
Biases and their moments are kept::

    python prototxt/wide_init.py runs/long96d/snapshots/adam_iter_30976.solverstate --out START
    caffe train --solver=adam.prototxt --snapshot=START/adam_iter_30976.solverstate

with ``train.prototxt`` from ``make_nets.train_hdf5(wide=True)``.
(``benchmarks/train_ab.py --resume STATE --arm NAME=wide`` does this for its arm.)
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a script: the repository's stem_restore

from stem_restore import snapshots  # noqa: E402
from stem_restore.network import KERNEL, PARAM_BLOBS, WIDE_KERNEL  # noqa: E402


def widen(kernels: np.ndarray) -> np.ndarray:
    """Kernels ``(out, in, 5, 5)`` -> ``(out, in, 5, 9)``: each in the middle columns,
    the new columns (two on each side along x) zero."""
    out, cin, kh, kw = kernels.shape
    if (kh, kw) != (KERNEL, KERNEL):
        raise ValueError(f"kernels of {kh} x {kw} px, expected the paper's {KERNEL} x {KERNEL}")
    wide = np.zeros((out, cin, WIDE_KERNEL[0], WIDE_KERNEL[1]), np.float32)
    left = (WIDE_KERNEL[1] - KERNEL) // 2
    wide[..., left:left + KERNEL] = kernels
    return wide


def _blob_array(blob) -> np.ndarray:
    return np.asarray(blob.data, np.float32).reshape(tuple(blob.shape.dim))


def _set_blob(blob, array: np.ndarray) -> None:
    """``blob`` = ``array`` (float32 data and shape; no diff, no double data: Caffe checks
    every field it finds against the shape)."""
    blob.Clear()
    blob.shape.dim.extend(array.shape)
    blob.data.extend(array.ravel().tolist())


def wide_start(state_path: str | pathlib.Path, dest: str | pathlib.Path) -> pathlib.Path:
    """Copy the Adam snapshot pair ``state_path`` of the paper's net into ``dest`` as the
    wide variant's start (module docstring).  Returns the copied ``.solverstate``; raises
    ``ValueError`` naming the file, before writing anything, if the pair is not a whole Adam
    snapshot of the paper's net."""
    net, layers, state = snapshots.paper_adam_pair(state_path)
    index = 0  # parameter blob index: weights and bias of each layer, input to output
    for layer in layers:
        for k, blob in enumerate(layer.blobs):
            if k == 0:  # the kernel; the bias (k = 1) and its moments stay as they are
                _set_blob(blob, widen(_blob_array(blob)))
                first, second = state.history[index], state.history[PARAM_BLOBS + index]
                _set_blob(first, widen(_blob_array(first)))
                _set_blob(second, widen(_blob_array(second)))
            index += 1
    return snapshots.write_start(state_path, dest, net, state)


def main(argv: list[str] | None = None) -> int:
    return snapshots.start_main(wide_start, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
