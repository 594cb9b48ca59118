"""Restore real STEM micrographs with a trained Caffe model.

Python API (:mod:`restoration.api`)
-----------------------------------
``restore(image, ...)``
    A 2-D frame or an ``(N, H, W)`` stack -> float32 in the input's units; a
    HyperSpy ``Signal2D`` -> a new ``Signal2D`` with the same axes and
    metadata plus provenance.  Options as restore.py's (model, weights, gpu,
    tile, engine); the default model is loaded once and cached.
``load_model(...)`` / ``Model``
    Load the Caffe net once, then ``model.restore(frame)`` many times.
``InputError``, ``ModelError``
    Raised for bad input data and bad model files.

Modules
-------
io
    Readers for the file formats microscopists have (TIFF, PNG/JPEG, NPY,
    Gatan DM3/DM4, FEI/TIA SER, Velox and Berkeley EMD, MRC), all through
    maintained libraries, returning 2-D frames plus the pixel size.
tiling
    Pure arithmetic: how an image is cut into overlapping tiles whose
    overlap covers the network's 49 px receptive field
    (:data:`stem_restore.network.RECEPTIVE_FIELD`).
engine
    The pycaffe forward pass: normalise with :mod:`stem_restore.normalize`, cut
    into windows, run them (``layers`` or ``net`` engine), denormalise.
stream
    The ``layers`` engine: Caffe's own Convolution/ReLU layers one layer at
    a time over small blocks, 512 bytes per window pixel instead of ~73 kB.
reference
    An independent NumPy forward pass of the same 12-layer network (used by
    the tests to check pycaffe's output).
outputs
    Atomic writers for the restored / difference TIFFs and the figure panel.
prealign
    ``--align-rows`` / ``align_rows=``: row alignment of each frame before the net and, where
    the frame showed line jitter, of its output after it.
ensemble
    ``--self-ensemble`` / ``self_ensemble=True``: the mean of the net's output and
    its output on the frame with its scan lines in reverse order.
api
    The Python API above.
cli
    ``restore.py``'s (and the ``stem-restore`` console script's) command
    line, a layer over :mod:`restoration.api`.
"""
from .api import Model, load_model, restore
from .io import InputError
from .validate import ModelError

__all__ = ["restore", "load_model", "Model", "InputError", "ModelError",
           "io", "tiling", "engine", "stream", "reference", "outputs", "prealign", "ensemble", "api",
           "cli"]
