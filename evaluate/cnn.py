"""Run the trained CNN on whole (small) images with pycaffe, for evaluation.

Caffe is imported lazily so the rest of :mod:`evaluate` works without it.
Each distorted image is normalised with :func:`datagen.normalize.normalize`
(statistics from the distorted input), passed through the deploy net reshaped
to 1x1xHxW, and mapped back with :func:`datagen.normalize.denormalize` using
the same statistics, so the output is in the input's intensity units.
(restore.py, written separately, adds tiling for large images; evaluation uses
whole images of at most a few hundred px.)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OUTPUT_BLOB", "load_net", "cnn_restore"]

#: Output blob of the deploy nets (prototxt/deploy*.prototxt).
OUTPUT_BLOB = "conv12"


def load_net(deploy: str | Path, weights: str | Path | None = None, gpu: int | None = None) -> Any:
    """Load a deploy prototxt (and optionally weights) with pycaffe in TEST mode.

    Runs on the CPU unless ``gpu`` (a device id) is given, which needs a
    CUDA build of Caffe.  Files are checked first: Caffe aborts the whole
    process on a missing file.
    """
    deploy = Path(deploy)
    if not deploy.is_file():
        raise FileNotFoundError(f"{deploy}: deploy prototxt not found")
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"{weights}: caffemodel not found")
    os.environ.setdefault("GLOG_minloglevel", "2")  # quiet Caffe's net dump (effective before first import)
    import caffe  # lazy: only needed for the CNN

    if gpu is None:
        caffe.set_mode_cpu()
    else:
        caffe.set_device(int(gpu))
        caffe.set_mode_gpu()
    if weights is None:
        return caffe.Net(str(deploy), caffe.TEST)
    return caffe.Net(str(deploy), str(weights), caffe.TEST)


def cnn_restore(net: Any, image: np.ndarray) -> np.ndarray:
    """Restore one 2-D image with a loaded deploy net; returns float32 in the input's units."""
    from datagen.normalize import denormalize, normalize

    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {img.shape}")
    xn, stats = normalize(img)
    data = net.blobs[net.inputs[0]]
    data.reshape(1, 1, *img.shape)
    net.reshape()
    data.data[0, 0] = xn
    net.forward()
    out = np.array(net.blobs[OUTPUT_BLOB].data[0, 0], dtype=np.float32, copy=True)
    return denormalize(out, stats)
