"""pycaffe forward pass: normalise, pad small images, window large ones.

Engines
-------
``layers`` (default on CPU for the paper's net): :class:`restoration.stream.LayerStream`
runs Caffe's own Convolution/ReLU layers one layer at a time over ~1000-px
blocks, keeping only two 64-channel activation arrays per window (512 bytes
per window pixel) and one block-sized im2col buffer.  Windows are up to
:data:`STREAM_WINDOW` = 2048 px, so most micrographs go through in one piece
and huge ones waste only a few per cent on window overlap.

``net``: the whole deploy net reshaped to the window.  BVLC Caffe gives every
convolution layer its own im2col buffer of ``C_in * k * k * H * W`` floats
(6,400 bytes per pixel for a 64-channel 5x5 layer) plus a 64-channel output
blob, so the 12-layer net needs about 73 kB per window pixel -- 19 GB for a
whole 512 x 512 image.  Windows are therefore :data:`DEFAULT_TILE` = 192 px
(about 2.7 GB of Caffe memory).  Used for nets that are not a plain chain of
same-size convolutions, and on a GPU.

In both, only the image-sized arrays grow with the image (about
:data:`IMAGE_BYTES_PER_PIXEL`); :func:`auto_tile` picks the largest window
that keeps the whole within :data:`MEMORY_BUDGET` (3.6 GB).

Exactness
---------
Statistics for :func:`stem_restore.normalize.normalize` come from the whole image
(never per window), and windows overlap by the net's receptive-field radius
(24 px for the paper's net, :data:`stem_restore.network.CONTEXT`; a variant's own,
:func:`stem_restore.network.context_of`; :mod:`restoration.tiling`), so the
windowed result equals the whole-image one.  Images with an edge below the
49 px receptive field (:data:`stem_restore.network.RECEPTIVE_FIELD`) are
padded (``symmetric``) to it, restored and cropped back.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stem_restore.network import (CONTEXT, FILTERS, INPUT_BLOB, KERNEL, N_CONV, OUTPUT_BLOB,
                                  RECEPTIVE_FIELD, RESIDUAL_OUTPUT, context_of, read_net)
from stem_restore.normalize import NormStats, denormalize, norm_stats, normalize

from .stream import LayerStream
from .tiling import pad_widths_to_min, plan_tiles

#: Largest window edge of the ``net`` engine (px); 192^2 px x ~73 kB/px = 2.7 GB.
DEFAULT_TILE = 192
#: Largest window edge of the ``layers`` engine (px); 2048^2 px x 512 B/px = 2.1 GB.
STREAM_WINDOW = 2048
#: Smallest automatic window edge of the ``layers`` engine (px): 134 MB.
MIN_STREAM_WINDOW = 512
#: Engines of :class:`Restorer` (see the module docstring).
ENGINES = ("auto", "layers", "net")
#: Smallest window edge chosen automatically (px): below this the paper net's 24 px
#: overlaps cost more than half of the compute.
MIN_AUTO_TILE = 112
#: Memory budget for the automatic tile choice (bytes): net + image arrays.
MEMORY_BUDGET = 3.6e9
#: Image-sized memory per pixel during restoration (bytes, measured with
#: benchmarks/bench_restore.py: the input, the float32 result and the float64
#: temporaries of stem_restore.normalize.norm_stats).
IMAGE_BYTES_PER_PIXEL = 28
#: Approximate Caffe memory per pixel of the reshaped net (bytes), see above: the
#: im2col buffer and output blob of each layer with a 64-channel input, those of
#: the first (1-channel input) layer, and the input and output blobs.
CAFFE_BYTES_PER_PIXEL = ((N_CONV - 1) * (FILTERS * KERNEL**2 * 4 + FILTERS * 4)
                         + (KERNEL**2 + FILTERS) * 4 + 2 * 4)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def cudnn_loaded(maps: str | Path = "/proc/self/maps") -> bool:
    """Whether this process has cuDNN loaded (Caffe's library links it in a build with cuDNN)."""
    try:
        return "/libcudnn" in Path(maps).read_text()
    except OSError:
        return False


def conv_engine_info(gpu: int | None = None) -> str:
    """What runs the convolutions, for logs and provenance.

    On the CPU, the build's answer (``caffe.conv_engine_info()``): e.g.
    ``dnnl fp32 isa=avx2 onednn=3.2.0`` for the oneDNN engine of the project's
    CPU build (``CAFFE_DNNL_MATH`` = auto | fp32 | bf16 | off picks its math),
    ``caffe (CAFFE_DNNL_MATH=off)`` or ``caffe``; on a GPU ``gpu:N cudnn tf32`` (a build with
    cuDNN, scripts/patches/cuda/0103-*, unless ``CAFFE_CUDNN=0``) or ``gpu:N cublas tf32``
    (Caffe's own im2col + cuBLAS), ``fp32`` for ``tf32`` with ``CAFFE_CUDA_MATH=fp32`` (the GPU
    build's math; default tf32).
    """
    import caffe  # noqa: F401  (loads libcaffe, and with it cuDNN where the build links it)

    if gpu is not None:
        engine = "cudnn" if cudnn_loaded() and os.environ.get("CAFFE_CUDNN", "1") != "0" else "cublas"
        return f"gpu:{gpu} {engine} {os.environ.get('CAFFE_CUDA_MATH', 'tf32')}"

    info = getattr(caffe, "conv_engine_info", None)
    return info() if info is not None else "caffe"


def load_net(model: str | Path, weights: str | Path, gpu: int | None = None):
    """Load a deploy net with pycaffe in TEST phase.

    Parameters
    ----------
    model, weights : path
        ``deploy.prototxt`` and a ``.caffemodel``.
    gpu : int or None
        GPU id (``caffe.set_mode_gpu(); caffe.set_device(gpu)``) or None for CPU.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")  # keep Caffe's INFO logs off the terminal
    import caffe  # lazy: the rest of the package works without Caffe

    if gpu is None:
        caffe.set_mode_cpu()
    else:
        caffe.set_mode_gpu()
        caffe.set_device(int(gpu))
    net = caffe.Net(str(model), caffe.TEST, weights=str(weights))
    for blob in (INPUT_BLOB, OUTPUT_BLOB):
        if blob not in net.blobs:
            raise ValueError(f"{model}: the net has no blob named {blob!r}")
    return net


def auto_tile(shape: tuple[int, int], budget: float = MEMORY_BUDGET) -> int:
    """Window edge (px) of the ``net`` engine for an image of ``shape``.

    :data:`DEFAULT_TILE` unless the image itself is so large (above ~6000^2 px)
    that a smaller window is needed to keep net + image within ``budget``,
    never below :data:`MIN_AUTO_TILE`.
    """
    free = budget - IMAGE_BYTES_PER_PIXEL * float(shape[0]) * float(shape[1])
    edge = int(np.sqrt(max(free, 0.0) / CAFFE_BYTES_PER_PIXEL))
    return int(max(MIN_AUTO_TILE, min(DEFAULT_TILE, edge)))


def _even_split(length: int, count: int, context: int) -> int:
    """Window size that covers ``length`` px with ``count`` overlapping windows."""
    return length if count == 1 else -(-(length - 2 * context) // count) + 2 * context


def auto_window(shape: tuple[int, int], stream: LayerStream, budget: float = MEMORY_BUDGET,
                context: int = CONTEXT) -> tuple[int, int]:
    """Window (rows, columns) of the ``layers`` engine for an image of ``shape``.

    The window's area is bounded by the memory left after the image-sized
    arrays and the block nets (512 bytes per window pixel), and its edges by
    :data:`STREAM_WINDOW`; among the window grids that fit, the one pushing
    the fewest pixels through the net wins, with windows splitting each axis
    evenly (8192^2 px: 5 x 5 windows of 1677 px, 1.05x the image's pixels,
    rather than 4 full ones and a fifth that is mostly overlap).  Never below
    :data:`MIN_STREAM_WINDOW` px per edge.
    """
    h, w = (int(n) for n in shape)
    free = budget - IMAGE_BYTES_PER_PIXEL * float(h) * float(w) - stream.block_bytes()
    area = max(free / LayerStream.bytes_per_pixel(stream.max_channels), float(MIN_STREAM_WINDOW) ** 2)
    best = None
    for n_rows in range(1, h // (MIN_STREAM_WINDOW - 2 * context) + 2):
        th = _even_split(h, n_rows, context)
        if th > STREAM_WINDOW:
            continue
        tw_max = int(min(STREAM_WINDOW, area // th))
        if tw_max < min(w, MIN_STREAM_WINDOW):
            break
        n_cols = 1 if tw_max >= w else -(-(w - 2 * context) // (tw_max - 2 * context))
        tw = _even_split(w, n_cols, context)
        cost = n_rows * th * n_cols * tw
        if best is None or cost < best[0]:
            best = (cost, th, tw)
    if best is None:  # the budget cannot be met: smallest allowed windows
        return min(h, MIN_STREAM_WINDOW), min(w, MIN_STREAM_WINDOW)
    return best[1], best[2]


@dataclass
class FrameResult:
    """Restored frame (input units, float32) and the statistics used."""

    restored: np.ndarray
    stats: NormStats
    n_tiles: int
    tile: int | tuple[int, int]  # window edge, or (rows, columns)


class Restorer:
    """Restore 2-D images with a loaded Caffe net.

    Parameters
    ----------
    net : caffe.Net
        Deploy net (input blob :data:`~stem_restore.network.INPUT_BLOB`, output blob
        :data:`~stem_restore.network.OUTPUT_BLOB`, or for the residual variant
        :data:`~stem_restore.network.RESIDUAL_OUTPUT` = input + that).
    tile : int, (int, int) or None
        Window edge (px) fed to the net, or (rows, columns); 0 = whole image
        in one pass; None = :func:`auto_window` / :func:`auto_tile` per image
        (bounded memory).
    context : int
        Overlap on each inner side of a window (px); for exactness at least the net's
        receptive-field radius (24 for the paper's net; :meth:`from_files` reads it from
        the prototxt, :func:`stem_restore.network.context_of`).
    net_factory : callable, optional
        Returns a fresh net.  Caffe never shrinks its buffers, so when an
        automatic tile is smaller than the largest window run so far, the net
        is reloaded to give that memory back.
    stream : LayerStream, optional
        Run windows layer by layer through this (the ``layers`` engine)
        instead of through ``net`` whole.
    """

    def __init__(self, net, tile: int | None = None, context: int = CONTEXT, net_factory=None,
                 stream: LayerStream | None = None):
        edges = () if tile is None else np.atleast_1d(tile).tolist()
        if any(0 < e <= 2 * context for e in edges) or len(edges) > 2:
            raise ValueError(f"--tile must be 0 or > {2 * context} px (got {tile})")
        self.net = net
        self.tile = None if tile is None else (int(edges[0]) if len(edges) == 1 else tuple(map(int, edges)))
        self.context = int(context)
        self.net_factory = net_factory
        self.stream = stream
        #: The residual variant: output = input + conv12 (:data:`RESIDUAL_OUTPUT`).
        self.residual = RESIDUAL_OUTPUT in net.blobs
        self._max_window_px = 0

    @property
    def engine(self) -> str:
        """``layers`` or ``net`` (see the module docstring)."""
        return "net" if self.stream is None else "layers"


    @classmethod
    def from_files(cls, model, weights, gpu=None, tile=None, engine: str = "auto") -> "Restorer":
        """Load ``model`` + ``weights``; ``engine`` ``auto`` = ``layers`` on CPU when the
        net is a plain convolution chain, else ``net``.  Windows overlap by the net's own
        receptive-field radius (:func:`stem_restore.network.context_of`: 24 px for the
        paper's net, more for a variant that sees farther), so they stay exact."""
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES} (got {engine!r})")
        context = context_of(read_net(model))

        def factory():
            return load_net(model, weights, gpu)

        net = factory()
        stream = None
        if engine == "layers" or (engine == "auto" and gpu is None):
            stream = LayerStream.from_net(model, net)
            if stream is None and engine == "layers":
                raise ValueError(f"{model}: not a plain chain of same-size square convolutions; "
                                 f"use the 'net' engine")
        if stream is not None:  # `net` is kept for its weights and layer list; never run
            return cls(net, tile=tile, context=context, stream=stream)
        return cls(net, tile=tile, context=context, net_factory=factory)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Network output for one normalised float32 image (no tiling)."""
        if self.stream is not None:
            self._max_window_px = max(self._max_window_px, x.size)
            y = self.stream.forward(x)
            return y + x if self.residual else y
        blob = self.net.blobs[INPUT_BLOB]
        shape = (1, 1) + tuple(x.shape)
        if tuple(blob.data.shape) != shape:
            blob.reshape(*shape)
            self.net.reshape()
        blob.data[0, 0] = x
        self._max_window_px = max(self._max_window_px, x.size)
        self.net.forward()
        output = RESIDUAL_OUTPUT if self.residual else OUTPUT_BLOB
        return np.array(self.net.blobs[output].data[0, 0], dtype=np.float32)

    def restore(self, image: np.ndarray, out: np.ndarray | None = None) -> FrameResult:
        """Restore one 2-D frame; the result is in the input's intensity units.

        The image is normalised with its own whole-image statistics, padded to
        the receptive field (:data:`RECEPTIVE_FIELD` px) if smaller, split into overlapping windows if larger than the
        tile, run through the net, and denormalised with the same statistics.

        Parameters
        ----------
        image : ndarray, shape (H, W)
            Real, finite image in any units.
        out : ndarray, shape (H, W), float32, optional
            Where to write the result (saves one image-sized copy).
        """
        image = np.asarray(image)
        if image.ndim != 2:
            raise ValueError(f"expected a 2-D image, got shape {image.shape}")
        stats = norm_stats(image)
        pads = pad_widths_to_min(image.shape, RECEPTIVE_FIELD)
        padded = any(p != (0, 0) for p in pads)
        src = np.pad(image, pads, mode="symmetric") if padded else image
        result = out if (out is not None and not padded) else np.empty(src.shape, dtype=np.float32)
        if self.tile is not None:
            tile = self.tile
        elif self.stream is not None:
            tile = auto_window(src.shape, self.stream, context=self.context)
        else:
            tile = auto_tile(src.shape)
        if self.net_factory is not None and self.tile is None and tile * tile < self._max_window_px:
            self.net = self.net_factory()  # release the larger buffers of earlier images
            self._max_window_px = 0
        tiles = plan_tiles(src.shape, tile, self.context)
        for r, c in tiles:
            window = src[r.win_start:r.win_stop, c.win_start:c.win_stop]
            xn, _ = normalize(window, stats)  # whole-image stats, never per tile
            y = self.forward(xn)
            core = y[r.core_start - r.win_start:r.core_stop - r.win_start,
                     c.core_start - c.win_start:c.core_stop - c.win_start]
            result[r.core_start:r.core_stop, c.core_start:c.core_stop] = denormalize(core, stats)
        if padded:
            (t, _), (l, _) = pads
            result = result[t:t + image.shape[0], l:l + image.shape[1]]
            if out is not None:
                out[...] = result
                result = out
            else:
                result = result.copy()
        return FrameResult(restored=result, stats=stats, n_tiles=len(tiles), tile=tile)
