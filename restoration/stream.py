"""Layer-streamed forward pass: Caffe's own layers, one layer and one block at a time.

Why
---
Reshaped to a ``H x W`` window, the 12-layer deploy net keeps a 64-channel
output blob *and its own im2col buffer* (``C_in * k * k`` floats per pixel,
6.4 kB for a 64-channel 5x5 layer) for every layer: about 73 kB per window
pixel.  Windows must then be small (192 px), and with the 24 px overlap that
exactness needs, 1.7-2.3x the image's pixels go through the net.

The network is a plain chain of same-size convolutions (stride 1, ``pad =
(k - 1) / 2``), each followed by a ReLU, so it can be run layer by layer:
the activations of the current layer for the whole window live in a NumPy
array (256 bytes per pixel for 64 channels, two of them: input and output,
with a zero border), and each layer is applied in small rectangular blocks
by a one-layer Caffe net (``Input -> Convolution(pad 0) -> ReLU``) fed with
the block plus ``p`` pixels of halo on every side.  That net's im2col buffer
only covers one block (:data:`BLOCK_PIXELS`), so windows of 2048 x 2048 px
fit in about 2.3 GB and the overlap waste drops to a few per cent.

Blocks of ~1000 output pixels are also what makes the pass fast: the im2col
buffer (6.4 MB) stays in this CPU's caches between im2col writing it and the
GEMM reading it.  4,096-px row strips (26 MB buffers) ran the whole net at
63-73 % of the sgemm rate, blocks at 88-91 % (BENCHMARKS.md).

The convolutions, biases and ReLUs are still Caffe's (``ConvolutionLayer``
im2col + GEMM, ``ReLULayer``), with the trained weights copied into the
one-layer nets; only the order in which pixels are visited changes.  The
zero border around the window is exactly Caffe's zero padding, so the result
equals the whole-net forward pass up to float32 summation order (the tests
compare both, and a float64 NumPy reference).

With the oneDNN engine of the project's CPU build (Caffe patch 0004, the
default there) a convolution has no im2col buffer at all: blocks are then
:data:`DNNL_BLOCK_PIXELS` = 16,384 px, whole rows of the window, so that the
per-call cost (reorders into oneDNN's layout, the primitive's set-up) is
spread over many pixels; 1,000-px blocks ran 20 % slower.
:func:`default_blocks` picks the sizes for the engine the process runs.

Nets that are not such a chain (other layer types, strides, dilations,
groups) are run whole by :class:`restoration.engine.Restorer` instead.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stem_restore.network import (INPUT_BLOB, OUTPUT_BLOB, conv_geometry, in_test_phase, is_residual_sum,
                                  read_net)

#: Output pixels per block (rows x cols) fed to a one-layer net.  Its im2col
#: buffer is ``C_in * k * k * 4`` bytes per pixel: 6.4 MB for 64 x 5 x 5, in
#: cache.  Measured (2-core EPYC, OpenBLAS 0.3.21; one 64-channel 5x5 layer
#: with its block copies): 1,000-1,500 px blocks 85-98 % of the sgemm rate,
#: 2,000 px 67-77 %, 16,000 px 54 %.
BLOCK_PIXELS = 1000
#: Widest block (px): wider windows are split into columns of at most this.
MAX_BLOCK_COLS = 250
#: Fewest rows per block: each block also reads 2 x pad halo rows.
MIN_BLOCK_ROWS = 2
#: Block size and widest block (px) with the oneDNN convolution engine: no
#: im2col buffer, ~1 kB per block pixel (blobs and oneDNN's reordered copies).
#: Measured (2-core EPYC, AVX2, 512^2 frame, shipped model): 1,000-px blocks
#: 0.027 Mpx/s, 4,000 0.033, 16,000 0.034, 65,536 0.031.
DNNL_BLOCK_PIXELS = 16384
DNNL_MAX_BLOCK_COLS = 4096


def uses_dnnl() -> bool:
    """Whether this process's default CPU convolutions run on the oneDNN engine."""
    import caffe

    info = getattr(caffe, "conv_engine_info", None)
    return info is not None and info().startswith("dnnl ")


def default_blocks() -> tuple[int, int]:
    """(block_pixels, max_block_cols) for the convolution engine this process runs."""
    if uses_dnnl():
        return DNNL_BLOCK_PIXELS, DNNL_MAX_BLOCK_COLS
    return BLOCK_PIXELS, MAX_BLOCK_COLS


def _split(length: int, size: int) -> list[int]:
    """Bounds of the fewest near-equal parts of ``length`` no longer than ``size``."""
    n = -(-length // max(1, size))
    return [i * length // n for i in range(n + 1)]


def block_grid(h: int, w: int, block_pixels: int = BLOCK_PIXELS,
               max_cols: int = MAX_BLOCK_COLS) -> tuple[list[int], list[int]]:
    """Row and column bounds of the blocks covering an ``h x w`` window.

    Columns are split evenly into parts of at most ``max_cols`` px, then rows
    into parts of about ``block_pixels / cols`` (at least :data:`MIN_BLOCK_ROWS`).
    """
    cols = _split(w, max_cols)
    width = -(-w // (len(cols) - 1))
    return _split(h, max(MIN_BLOCK_ROWS, block_pixels // width)), cols


@dataclass(frozen=True)
class ConvStep:
    """One Convolution (+ optional ReLU) of the chain, as written in the deploy net."""

    name: str             # layer name: where its weights are in the loaded net
    c_in: int
    c_out: int
    kernel: int           # square, odd (px)
    bias: bool
    relu_slope: float | None  # ReLU negative_slope, or None without a ReLU

    @property
    def pad(self) -> int:
        return (self.kernel - 1) // 2

    @property
    def signature(self) -> tuple:
        """Layers with equal signatures share one block net."""
        return (self.c_in, self.c_out, self.kernel, self.bias, self.relu_slope)


def _same_size_kernel(cp) -> int | None:
    """Kernel edge (px) of a ``ConvolutionParameter`` that keeps the image size, or None.

    Such a convolution is 2-D and square with an odd kernel, ``pad = (k - 1) / 2``,
    stride 1, dilation 1 and one group.
    """
    geom = conv_geometry(cp)
    if geom is None or geom.group != 1 or geom.dilation != (1, 1) or not geom.keeps_size:
        return None
    k_h, k_w = geom.kernel
    return k_h if k_h == k_w else None


def chain_steps(model: str | Path, input_blob: str = INPUT_BLOB,
                output_blob: str = OUTPUT_BLOB) -> list[ConvStep] | None:
    """Parse a deploy prototxt into :class:`ConvStep` s, or None if it is not a same-size chain.

    A chain is, among the layers of the TEST-phase net: one ``Input`` (1
    channel), then ``Convolution`` layers each reading the previous top, with
    stride 1, dilation 1, one group, a square odd kernel and ``pad = (k - 1) /
    2`` (output size = input size), each optionally followed by a ``ReLU``;
    the last top is ``output_blob``.  The residual variant's closing sum
    (:func:`~stem_restore.network.is_residual_sum`) is left out: the steps end at
    ``output_blob`` and the caller adds the input.  ValueError naming the file if it does
    not parse (:func:`stem_restore.network.read_net`).
    """
    layers = [layer for layer in read_net(model).layer if in_test_phase(layer)]
    if not layers or layers[0].type != "Input" or list(layers[0].top) != [input_blob]:
        return None
    shapes = layers[0].input_param.shape
    if not shapes or len(shapes[0].dim) != 4 or shapes[0].dim[1] != 1:
        return None
    steps: list[ConvStep] = []
    current, channels = input_blob, 1
    for i, layer in enumerate(layers[1:], start=2):
        if i == len(layers) and is_residual_sum(layer):
            break  # the residual variant's input + conv12: the caller adds the input
        if len(layer.bottom) != 1 or len(layer.top) != 1 or layer.bottom[0] != current:
            return None
        if layer.type == "Convolution":
            kernel = _same_size_kernel(layer.convolution_param)
            if kernel is None:
                return None
            cp = layer.convolution_param
            steps.append(ConvStep(layer.name, channels, cp.num_output, kernel, cp.bias_term, None))
            channels = cp.num_output
        elif layer.type == "ReLU" and steps and steps[-1].relu_slope is None:
            last = steps[-1]
            steps[-1] = ConvStep(last.name, last.c_in, last.c_out, last.kernel, last.bias,
                                 float(layer.relu_param.negative_slope))
        else:
            return None
        current = layer.top[0]
    if not steps or current != output_blob or channels != 1:
        return None
    return steps


def block_net_text(step: ConvStep, rows: int, cols: int) -> str:
    """Prototxt of the one-layer net that applies ``step`` to a block.

    Input: the ``rows x cols`` block plus ``pad`` pixels of halo on every side
    (from the neighbouring pixels of the window, zeros beyond it); the
    convolution has ``pad: 0``, so the output is ``rows x cols``.
    """
    relu = ""
    if step.relu_slope is not None:
        relu = ('layer { name: "relu" type: "ReLU" bottom: "out" top: "out" '
                f'relu_param {{ negative_slope: {step.relu_slope!r} }} }}\n')
    halo = 2 * step.pad
    return (
        f'name: "block_{step.c_in}_{step.c_out}_{step.kernel}"\n'
        'layer { name: "data" type: "Input" top: "data" '
        f'input_param {{ shape {{ dim: 1 dim: {step.c_in} dim: {rows + halo} dim: {cols + halo} }} }} }}\n'
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "out" convolution_param { '
        f'num_output: {step.c_out} kernel_size: {step.kernel} pad: 0 '
        f'bias_term: {str(step.bias).lower()} }} }}\n' + relu
    )


class LayerStream:
    """Forward pass of a same-size convolution chain, layer by layer, in blocks.

    Parameters
    ----------
    steps : list of ConvStep
        From :func:`chain_steps`.
    net : caffe.Net
        The loaded deploy net: its parameters are the weights used.
    block_pixels, max_block_cols : int, optional
        Block size (output pixels) and widest block (px); see :func:`block_grid`.
        Default: :func:`default_blocks`, for the convolution engine in use.
    """

    def __init__(self, steps: list[ConvStep], net, block_pixels: int | None = None,
                 max_block_cols: int | None = None):
        import caffe

        self.steps = steps
        self.dnnl = uses_dnnl()
        default_px, default_cols = default_blocks()
        self.block_pixels = int(block_pixels or default_px)
        self.max_block_cols = int(max_block_cols or default_cols)
        self.weights = [
            [np.array(b.data, dtype=np.float32) for b in net.params[s.name]] for s in steps
        ]
        self.max_channels = max(max(s.c_in, s.c_out) for s in steps)
        self.max_pad = max(s.pad for s in steps)
        self._nets = {}
        with tempfile.TemporaryDirectory(prefix="stem_restore_block_") as tmp:
            for s in steps:
                if s.signature not in self._nets:
                    path = os.path.join(tmp, f"block_{len(self._nets)}.prototxt")
                    Path(path).write_text(block_net_text(s, 1, 1))
                    self._nets[s.signature] = caffe.Net(path, caffe.TEST)
        self._buffers: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_net(cls, model: str | Path, net, **kw) -> "LayerStream | None":
        """A stream for ``model`` (with ``net``'s weights), or None if it is not a chain."""
        steps = chain_steps(model)
        return None if steps is None else cls(steps, net, **kw)

    @staticmethod
    def bytes_per_pixel(channels: int = 64) -> int:
        """Window-sized memory (bytes per window pixel): two activation arrays."""
        return 2 * channels * 4

    def block_bytes(self) -> int:
        """Memory of the block nets (bytes: blobs, and im2col buffers or oneDNN's copies), for any window.

        A bound: blocks have at most ``max(block_pixels, MIN_BLOCK_ROWS x
        max_block_cols)`` output pixels, and their input (with halo) at most
        ``k^2`` times that; Caffe's engine adds an im2col buffer of
        ``c_in k^2`` floats per output pixel, oneDNN's a reordered copy of the
        input and the output.
        """
        px = max(self.block_pixels, MIN_BLOCK_ROWS * self.max_block_cols)
        if self.dnnl:
            return sum(4 * px * 2 * (c_in * k * k + c_out) for c_in, c_out, k, _, _ in self._nets)
        return sum(4 * px * (2 * c_in * k * k + c_out) for c_in, c_out, k, _, _ in self._nets)

    def grid(self, h: int, w: int) -> tuple[list[int], list[int]]:
        """Block bounds for an ``h x w`` window (see :func:`block_grid`)."""
        return block_grid(h, w, self.block_pixels, self.max_block_cols)

    def _activation_buffers(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Two zero-bordered (C, h + 2 P, w + 2 P) arrays; reused while the window size repeats.

        Only the interior is ever written, so the border stays zero: it is
        Caffe's zero padding for every layer.
        """
        P = self.max_pad
        shape = (self.max_channels, h + 2 * P, w + 2 * P)
        if self._buffers is None or self._buffers[0].shape != shape:
            self._buffers = None  # free the old pair before allocating the new one
            self._buffers = (np.zeros(shape, np.float32), np.zeros(shape, np.float32))
        return self._buffers

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Network output (float32, same shape) for one normalised 2-D window ``x``."""
        h, w = x.shape
        P = self.max_pad
        a, b = self._activation_buffers(h, w)
        a[0, P:P + h, P:P + w] = x
        row_bounds, col_bounds = self.grid(h, w)
        blocks = [(r0, r1, c0, c1) for r0, r1 in zip(row_bounds, row_bounds[1:])
                  for c0, c1 in zip(col_bounds, col_bounds[1:])]
        for step, params in zip(self.steps, self.weights):
            net = self._nets[step.signature]
            for blob, value in zip(net.params["conv"], params):
                blob.data[...] = value
            data, out = net.blobs["data"], net.blobs["out"]
            p, o = step.pad, P - step.pad  # o: where this layer's halo starts in `a`
            shape = None
            for r0, r1, c0, c1 in blocks:
                if shape != (r1 - r0, c1 - c0):
                    shape = (r1 - r0, c1 - c0)
                    data.reshape(1, step.c_in, shape[0] + 2 * p, shape[1] + 2 * p)
                    net.reshape()
                    block_in, block_out = data.data[0], out.data[0]
                block_in[...] = a[:step.c_in, o + r0:P + r1 + p, o + c0:P + c1 + p]
                net.forward()
                b[:step.c_out, P + r0:P + r1, P + c0:P + c1] = block_out
            a, b = b, a
        return np.array(a[0, P:P + h, P:P + w], dtype=np.float32)
