"""pycaffe forward pass: normalise, pad small images, tile large ones.

Memory
------
BVLC Caffe gives every convolution layer its own im2col buffer of
``C_in * k * k * H * W`` floats (6,400 bytes per pixel for a 64-channel 5x5
layer) plus a 64-channel output blob (256 bytes per pixel), so the 12-layer
net needs about 73 kB per pixel of the image it is reshaped to -- 19 GB for a
whole 512 x 512 image.  Images are therefore pushed through in windows of
``tile x tile`` px (:data:`DEFAULT_TILE` = 192: about 2.7 GB of Caffe
memory), whatever the image size, so the net's memory is bounded by the tile,
not the image.  Only the image-sized arrays grow with the image (about
28 bytes/px); for images above ~6000^2 px :func:`auto_tile` shrinks the window
so that the whole stays within :data:`MEMORY_BUDGET` (3.6 GB).

Exactness
---------
Statistics for :func:`datagen.normalize.normalize` come from the whole image
(never per tile), and windows overlap by the 24 px receptive-field radius
(:mod:`restoration.tiling`), so the tiled result equals the whole-image one.
Images with an edge below 49 px are padded (``symmetric``) to 49 px, restored
and cropped back.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datagen.normalize import NormStats, denormalize, norm_stats, normalize

from .tiling import CONTEXT, RECEPTIVE_FIELD, pad_widths_to_min, plan_tiles

#: Largest window edge fed to the network (px); 192^2 px x ~73 kB/px = 2.7 GB.
DEFAULT_TILE = 192
#: Smallest window edge chosen automatically (px): below this the 24 px
#: overlaps cost more than half of the compute.
MIN_AUTO_TILE = 112
#: Memory budget for the automatic tile choice (bytes): net + image arrays.
MEMORY_BUDGET = 3.6e9
#: Image-sized memory per pixel during restoration (bytes, measured with
#: benchmarks/bench_restore.py: the input, the float32 result and the float64
#: temporaries of datagen.normalize.norm_stats).
IMAGE_BYTES_PER_PIXEL = 28
#: Input and output blob names of deploy.prototxt.
INPUT_BLOB = "data"
OUTPUT_BLOB = "conv12"
#: Approximate Caffe memory per pixel of the reshaped net (bytes), see above.
CAFFE_BYTES_PER_PIXEL = 11 * (64 * 25 * 4 + 64 * 4) + (25 + 64) * 4 + 2 * 4


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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
    """Window edge (px) for an image of ``shape`` so that net + image fit ``budget``.

    :data:`DEFAULT_TILE` unless the image itself is so large (above ~6000^2 px)
    that a smaller window is needed, never below :data:`MIN_AUTO_TILE`.
    """
    free = budget - IMAGE_BYTES_PER_PIXEL * float(shape[0]) * float(shape[1])
    edge = int(np.sqrt(max(free, 0.0) / CAFFE_BYTES_PER_PIXEL))
    return int(max(MIN_AUTO_TILE, min(DEFAULT_TILE, edge)))


@dataclass
class FrameResult:
    """Restored frame (input units, float32) and the statistics used."""

    restored: np.ndarray
    stats: NormStats
    n_tiles: int
    tile: int


class Restorer:
    """Restore 2-D images with a loaded Caffe net.

    Parameters
    ----------
    net : caffe.Net
        Deploy net (input blob ``data``, output blob ``conv12``).
    tile : int or None
        Window edge (px) fed to the net; 0 = whole image in one pass; None =
        :func:`auto_tile` per image (bounded memory).
    context : int
        Overlap on each inner side of a window (px); >= 24 for exactness.
    net_factory : callable, optional
        Returns a fresh net.  Caffe never shrinks its buffers, so when an
        automatic tile is smaller than the largest window run so far, the net
        is reloaded to give that memory back.
    """

    def __init__(self, net, tile: int | None = None, context: int = CONTEXT, net_factory=None):
        if tile and tile <= 2 * context:
            raise ValueError(f"--tile must be 0 or > {2 * context} px (got {tile})")
        self.net = net
        self.tile = None if tile is None else int(tile)
        self.context = int(context)
        self.net_factory = net_factory
        self._max_window_px = 0

    @classmethod
    def from_files(cls, model, weights, gpu=None, tile=None) -> "Restorer":
        def factory():
            return load_net(model, weights, gpu)

        return cls(factory(), tile=tile, net_factory=factory)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Network output for one normalised float32 image (no tiling)."""
        blob = self.net.blobs[INPUT_BLOB]
        shape = (1, 1) + tuple(x.shape)
        if tuple(blob.data.shape) != shape:
            blob.reshape(*shape)
            self.net.reshape()
        blob.data[0, 0] = x
        self._max_window_px = max(self._max_window_px, x.size)
        self.net.forward()
        return np.array(self.net.blobs[OUTPUT_BLOB].data[0, 0], dtype=np.float32)

    def restore(self, image: np.ndarray, out: np.ndarray | None = None) -> FrameResult:
        """Restore one 2-D frame; the result is in the input's intensity units.

        The image is normalised with its own whole-image statistics, padded to
        49 px if smaller, split into overlapping windows if larger than the
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
        tile = self.tile if self.tile is not None else auto_tile(src.shape)
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
