"""Initial weights for the paper's net that start it at the identity (max(input, 0)).

The paper's 12 x (conv 5x5 + ReLU) net from the usual random (msra) start learns within a
few hundred iterations to smooth like a Gaussian filter, and then stays there for
thousands: it has not learnt to pass a good frame through unchanged (BENCHMARKS.md,
"training: the paper's net vs a residual variant").  This start keeps the paper's
architecture and changes only the first weights:

- filter 0 of every layer is a centred 5x5 delta on channel 0 (weight 1, bias 0), so
  channel 0 carries the input through all 12 layers; the ReLUs pass it because the
  normalised input is >= 0 but for its darkest 1 % (:mod:`stem_restore.normalize`);
- every other filter of ``conv1`` .. ``conv11`` is drawn as Caffe's msra filler would,
  N(0, 2 / fan_in) with fan_in = c_in * 5 * 5 (He et al. 2015);
- ``conv12`` reads only channel 0 at the start (its weights on channels 1-63 are 0), so
  the untrained features add nothing to the output until training gives them weight.

The network's output at iteration 0 is therefore exactly max(input, 0), and training only
has to learn the correction, as a residual net does (Zhang et al. 2017; He et al. 2016;
zero-initialised last layers: Goyal et al. 2017), while the net, the prototxt and the
``.caffemodel`` stay the paper's and stock Caffe's.  Write it and train from it::

    python prototxt/identity_init.py --out init.caffemodel --seed 1
    caffe train --solver=adam.prototxt --weights=init.caffemodel

(``run_training.sh`` does both when the schedule's ``run.env`` says ``INIT=identity``.)
The same seed writes the same bytes.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a script: the repository's stem_restore

from stem_restore.atomic import atomic_path  # noqa: E402
from stem_restore.network import CONV_NAMES, LAYERS, caffe_pb2  # noqa: E402

#: The channel that carries the input through every layer.
IDENTITY_CHANNEL = 0


def identity_weights(seed: int = 1) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Layer name -> (weights [c_out, c_in, k, k], bias [c_out]) as float32, from ``seed``."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, (c_in, c_out, k) in zip(CONV_NAMES, LAYERS):
        std = np.sqrt(2.0 / (c_in * k * k))  # msra, variance_norm FAN_IN (Caffe's default)
        w = (rng.standard_normal((c_out, c_in, k, k)) * std).astype(np.float32)
        if name == CONV_NAMES[-1]:
            w[:] = 0.0
        w[IDENTITY_CHANNEL] = 0.0
        w[IDENTITY_CHANNEL, IDENTITY_CHANNEL, k // 2, k // 2] = 1.0
        params[name] = (w, np.zeros(c_out, np.float32))
    return params


def write_caffemodel(params: dict[str, tuple[np.ndarray, ...]], path: str | pathlib.Path,
                     net_name: str = "StemRestore12") -> pathlib.Path:
    """Write ``params`` as a binary ``.caffemodel`` (a NetParameter with layer blobs, the
    form Caffe's ``CopyTrainedLayersFrom`` reads by layer name), atomically."""
    pb = caffe_pb2()
    net = pb.NetParameter(name=net_name)
    for name, blobs in params.items():
        layer = net.layer.add(name=name, type="Convolution")
        for array in blobs:
            blob = layer.blobs.add()
            blob.shape.dim.extend(array.shape)
            blob.data.extend(np.ascontiguousarray(array, np.float32).ravel().tolist())
    path = pathlib.Path(path)
    with atomic_path(path) as tmp:
        pathlib.Path(tmp).write_bytes(net.SerializeToString())
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, required=True, help=".caffemodel to write")
    parser.add_argument("--seed", type=int, default=1, help="random filters' seed (default 1)")
    args = parser.parse_args(argv)
    print(write_caffemodel(identity_weights(args.seed), args.out))


if __name__ == "__main__":
    main()
