"""Independent NumPy forward pass of the 12-layer restoration network.

Written from the layer definitions alone (no Caffe code): each layer is a
Caffe ``Convolution`` -- a cross-correlation (no kernel flip) with zero
padding ``pad`` and stride 1, plus a bias -- followed by ``ReLU``.  Used by
the tests to check that pycaffe's output (and restore.py's tiling) is right.

Computed in float64, so it is a reference for Caffe's float32 result.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from stem_restore.network import LAYERS, PAD


def conv2d_caffe(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, pad: int) -> np.ndarray:
    """One Caffe convolution layer, stride 1.

    Parameters
    ----------
    x : ndarray, shape (C_in, H, W)
    weight : ndarray, shape (C_out, C_in, k, k)
    bias : ndarray, shape (C_out,)
    pad : int
        Zero padding on every side (px).

    Returns
    -------
    ndarray, shape (C_out, H + 2 pad - k + 1, W + 2 pad - k + 1), float64
        ``out[o, y, x] = bias[o] + sum_{c,i,j} weight[o,c,i,j] * xpad[c, y+i, x+j]``.
    """
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    k = weight.shape[-1]
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(xp, (k, k), axis=(1, 2))  # (C, H', W', k, k)
    out = np.tensordot(weight, windows, axes=([1, 2, 3], [0, 3, 4]))  # (O, H', W')
    return out + np.asarray(bias, dtype=np.float64)[:, None, None]


def forward_reference(
    image: np.ndarray,
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    pad: int = PAD,
    final_relu: bool = True,
) -> np.ndarray:
    """Run the conv+ReLU stack on one normalised 2-D image.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Normalised input (what goes into the ``data`` blob).
    layers : sequence of (weight, bias)
        Per convolution, as in ``net.params[name][0].data`` / ``[1].data``.
    pad : int
        Zero padding of every convolution (px; the paper's net: 2).
    final_relu : bool
        True for ``deploy.prototxt`` (ReLU after the last layer too, as the
        paper states), False for ``deploy_linear_output.prototxt``.

    Returns
    -------
    ndarray, shape (H, W), float64
    """
    x = np.asarray(image, dtype=np.float64)[None]
    n = len(layers)
    for i, (w, b) in enumerate(layers):
        x = conv2d_caffe(x, w, b, pad)
        if i < n - 1 or final_relu:
            np.maximum(x, 0.0, out=x)
    return x[0]


def macs_per_pixel(layers: Sequence[tuple[int, int, int]]) -> int:
    """Multiply-accumulates per output pixel for ``(c_in, c_out, k)`` layers."""
    return int(sum(ci * co * k * k for ci, co, k in layers))


#: (c_in, c_out, k) of the paper's 12 layers (:data:`stem_restore.network.LAYERS`).
PAPER_LAYERS = list(LAYERS)
