"""Restore real STEM micrographs with a trained Caffe model.

Modules
-------
io
    Readers for the file formats microscopists have (TIFF, PNG/JPEG, NPY,
    Gatan DM3/DM4, FEI/TIA SER, Velox and Berkeley EMD, MRC), all through
    maintained libraries, returning 2-D frames plus the pixel size.
tiling
    Pure arithmetic: how an image is cut into overlapping tiles whose
    overlap covers the network's 49 px receptive field.
engine
    The pycaffe forward pass: normalise with :mod:`datagen.normalize`, cut
    into windows, run them (``layers`` or ``net`` engine), denormalise.
stream
    The ``layers`` engine: Caffe's own Convolution/ReLU layers one layer at
    a time over small blocks, 512 bytes per window pixel instead of ~73 kB.
reference
    An independent NumPy forward pass of the same 12-layer network (used by
    the tests to check pycaffe's output).
outputs
    Atomic writers for the restored / difference TIFFs and the figure panel.
cli
    ``restore.py``'s command line.
"""

__all__ = ["io", "tiling", "engine", "stream", "reference", "outputs", "cli"]
