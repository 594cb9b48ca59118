"""Start the residual variant from a paper-net snapshot: trained features, output = input.

The residual variant (:func:`make_nets.train_hdf5` with ``residual=True``: the loss on
input + conv12, linear last layer; Zhang et al. 2017, DnCNN) has the paper net's 24
parameter blobs, so a paper-net snapshot pair can start it.  Taken as it is, the pair
would make the variant output input + (the paper net's restored image), about twice the
input.  This start keeps ``conv1`` .. ``conv11`` as trained and sets ``conv12`` to zero,
so at the snapshot's iteration the variant outputs exactly its input (a perfect frame
comes out perfect) and training only has to learn the correction from features that
are already trained (zero-initialised last layer: Goyal et al. 2017).

In the ``.solverstate``, ``conv12``'s first Adam moment is set to zero with its weights
and its second moment is kept: it is the scale of that layer's gradients, so the first
steps stay near ``base_lr`` instead of the ~3 x ``base_lr`` a zero second moment gives
right after the bias correction (Kingma & Ba 2015; the run is thousands of iterations
in, where the correction is ~1).  Caffe's Adam solver keeps the first moments of every
learnable blob and then the second moments, in the net's parameter order
(``AdamSolver::AdamPreSolve``)::

    python prototxt/residual_init.py runs/long/snapshots/adam_iter_3584.solverstate --out START
    caffe train --solver=adam.prototxt --snapshot=START/adam_iter_3584.solverstate

(``benchmarks/train_ab.py --resume STATE --arm NAME=residual`` does this for its arm.)
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a script: the repository's stem_restore

from stem_restore.network import CONV_NAMES, PARAM_BLOBS  # noqa: E402
from stem_restore import snapshots  # noqa: E402

#: The layer the variant's start sets to zero: the net's last convolution.
HEAD = CONV_NAMES[-1]


def _zero(blob) -> None:
    blob.data[:] = np.zeros(len(blob.data), np.float32).tolist()


def residual_start(state_path: str | pathlib.Path, dest: str | pathlib.Path) -> pathlib.Path:
    """Copy the Adam snapshot pair ``state_path`` into ``dest`` with :data:`HEAD` zeroed.

    Returns the copied ``.solverstate`` (resume it with ``caffe train --snapshot``).  Raises
    ``ValueError`` naming the file, before writing anything, if the pair is not a whole Adam
    snapshot of the paper's net.
    """
    net, layers, state = snapshots.paper_adam_pair(state_path)
    for blob in layers[-1].blobs:
        _zero(blob)
    head_blobs = len(layers[-1].blobs)  # weights and bias: the last of the net's parameter blobs
    for i in range(PARAM_BLOBS - head_blobs, PARAM_BLOBS):  # their first moments
        _zero(state.history[i])
    return snapshots.write_start(state_path, dest, net, state)


def main(argv: list[str] | None = None) -> int:
    return snapshots.start_main(residual_start, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
