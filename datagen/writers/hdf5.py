"""HDF5 shards for Caffe's ``HDF5Data`` layer.

Each shard holds float32 datasets ``data`` (input) and ``label`` (target),
shape N x 1 x H x W, C order, and optionally ``weight`` (``WEIGHT_BLOB``, N values:
per-pair loss weights, :mod:`datagen.weights`).  Caffe loads a file whole and refuses a blob of
more than INT_MAX elements, so N*H*W must stay below 2**31 - 1.  Files are
written to a temporary name in the same folder and renamed (atomic).
"""
from __future__ import annotations

import os
import pathlib

import numpy as np

from stem_restore.atomic import atomic_path
from stem_restore.network import WEIGHT_BLOB

HDF5_MAX_ELEMENTS = 2**31 - 1


def write_hdf5_shard(path: str | os.PathLike, data: np.ndarray, label: np.ndarray,
                     weight: np.ndarray | None = None) -> pathlib.Path:
    """Atomically write one shard (``data``, ``label``: N x 1 x H x W float32; ``weight``:
    N finite floats >= 0, or None)."""
    import h5py

    path = pathlib.Path(path)
    data = np.ascontiguousarray(data, dtype=np.float32)
    label = np.ascontiguousarray(label, dtype=np.float32)
    if data.shape != label.shape or data.ndim != 4:
        raise ValueError(f"data {data.shape} and label {label.shape} must be equal N x C x H x W")
    if data.size > HDF5_MAX_ELEMENTS:
        raise ValueError(f"{path}: {data.size} elements exceed Caffe's INT_MAX blob limit")
    if weight is not None:
        weight = np.ascontiguousarray(weight, dtype=np.float32)
        if weight.shape != data.shape[:1] or not np.all(np.isfinite(weight)) or np.any(weight < 0):
            raise ValueError(f"{path}: weight must be {data.shape[0]} finite values >= 0, "
                             f"got shape {weight.shape}")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("data", data=data, track_times=False)
            f.create_dataset("label", data=label, track_times=False)
            if weight is not None:
                f.create_dataset(WEIGHT_BLOB, data=weight, track_times=False)
    return path


def read_hdf5_shard(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read (data, label) of a shard; ValueError naming the file if malformed."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            data, label = f["data"][...], f["label"][...]
    except (OSError, KeyError) as exc:
        raise ValueError(f"{path}: not a valid datagen shard ({exc})") from None
    if data.shape != label.shape or data.ndim != 4 or data.dtype != np.float32:
        raise ValueError(f"{path}: bad shapes/dtypes {data.shape} {data.dtype} / {label.shape}")
    return data, label
