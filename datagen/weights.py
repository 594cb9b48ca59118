"""Per-pair loss weights: make a good frame count in training as it counts in the tables.

Caffe's ``EuclideanLoss`` sums squared errors, so a pair pulls on the weights in proportion
to its squared error, while evaluate's tables average PSNR, ``10 log10(peak² / MSE)``, over
images.  The gradient of a mean PSNR is the gradient of the squared error *divided by each
image's MSE*: a frame that is already good (small MSE) counts for far more in the table than
in the loss (``benchmarks/loss_share.py`` measures the gap: on the long run's test pairs the
24 % with raw PSNR ≥ 35 dB carry 2 % of the loss, and the model damages every one of them).

The weight of pair *i* is ``w_i = sqrt(scale / (e_i + 10^(-floor_db / 10)))``, with
``e_i = MSE(input_i, target_i) / peak_i²`` the raw input's relative error (peak = the
target's range, as :func:`evaluate.metrics.psnr`).  A training net that multiplies both its
output and the target by ``w_i`` (two stock ``Scale`` layers, ``prototxt/make_nets.py``
``weighted=True``) minimises ``Σ w_i² ‖ŷ_i − y_i‖² / 2N``: each pair's squared error in units
of its raw input's error, i.e. a PSNR-like loss, without the model in the loop, so the weights
are a pure function of the data (deterministic, regenerable from datagen's seeds).

``floor_db`` is the PSNR at which a pair stops gaining weight: a perfect frame (``e_i = 0``)
gets the weight of a raw input at ``floor_db``.  It stands for the error the model still makes
on good frames (~35–40 dB for the long run; below that a perfect frame would weigh without
limit).  ``scale`` sets the loss's overall size; ``benchmarks/loss_share.py --floor-db F``
prints the scale that gives a model's weighted loss the size of its plain loss on the same
pairs, so that Adam's moments carried from a plain-loss run keep their meaning.

The weights live in the shard as a third dataset ``weight`` (N floats), read by the
``HDF5Data`` layer as a third top; shards with weights still work with the plain net.
"""
from __future__ import annotations

import os
import pathlib
from typing import Callable

import numpy as np

from stem_restore.atomic import atomic_write_text


def relative_error(data: np.ndarray, label: np.ndarray) -> np.ndarray:
    """``MSE(data_i, label_i) / peak_i²`` of each N x ... pair (peak: ``label_i``'s range; 1 if flat)."""
    n = len(label)
    d = np.asarray(data, dtype=np.float64).reshape(n, -1)
    t = np.asarray(label, dtype=np.float64).reshape(n, -1)
    peak = np.ptp(t, axis=1)
    peak[peak == 0] = 1.0
    return ((d - t) ** 2).mean(axis=1) / peak ** 2


def loss_weights(data: np.ndarray, label: np.ndarray, floor_db: float, scale: float = 1.0) -> np.ndarray:
    """Weight ``w_i`` of each pair (float32, shape N): see the module docstring."""
    if not np.isfinite(floor_db):
        raise ValueError(f"floor_db must be finite, got {floor_db}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    floor = 10.0 ** (-floor_db / 10.0)
    return np.sqrt(scale / (relative_error(data, label) + floor)).astype(np.float32)


def weight_scale(squared_error: np.ndarray, relative: np.ndarray, floor_db: float) -> float:
    """The ``scale`` at which ``Σ w_i² sq_i = Σ sq_i``: the weighted loss of a model whose
    per-pair squared errors are ``squared_error`` equals its plain loss."""
    sq = np.asarray(squared_error, dtype=np.float64)
    inv = 1.0 / (np.asarray(relative, dtype=np.float64) + 10.0 ** (-floor_db / 10.0))
    return float(sq.sum() / (sq * inv).sum())


def weight_mismatch_db(output_relative: np.ndarray, raw_relative: np.ndarray, floor_db: float) -> np.ndarray:
    """How far each pair's weight sits from the one a mean PSNR asks for, in dB.

    The gradient of a mean PSNR weights pair *i*'s squared error by ``1 / e_out,i``, the
    relative error the *model* still makes on it; :func:`loss_weights` uses the raw input's
    ``e_i + floor`` instead, so that the weights stay a function of the data.  This returns
    ``10 log10((e_i + floor) / e_out,i)``, centred on its mean over the pairs given (only
    ratios of weights matter): 0 where the two agree, positive where the pair weighs less
    in the loss than in the table (``benchmarks/loss_share.py`` prints it per raw-PSNR bin).
    """
    out = np.asarray(output_relative, dtype=np.float64)
    if np.any(out <= 0):
        raise ValueError("output errors must be > 0 (a model that restores a pair exactly has no PSNR)")
    db = 10.0 * np.log10((np.asarray(raw_relative, dtype=np.float64) + 10.0 ** (-floor_db / 10.0)) / out)
    return db - db.mean()


def weight_shards(src: str | os.PathLike, out: str | os.PathLike, floor_db: float, scale: float,
                  progress: Callable[[str], None] | None = None) -> pathlib.Path:
    """Copy every shard of ``src/list.txt`` to ``out`` with the ``weight`` dataset added.

    Each shard is written under a temporary name and renamed, ``out/list.txt`` last (absolute
    paths, the source's order), so an interrupted call leaves no half-written file and a rerun
    redoes only what is missing.  Returns the new list file.
    """
    from stem_restore.snapshots import read_listing

    from .writers.hdf5 import read_hdf5_shard, write_hdf5_shard

    src, out = pathlib.Path(src), pathlib.Path(out).resolve()
    listing = src / "list.txt"
    if not listing.is_file():
        raise ValueError(f"{listing}: no such list file (a datagen HDF5 folder holds one)")
    out.mkdir(parents=True, exist_ok=True)
    settings = out / "weights.txt"  # what the shards hold: a rerun must ask for the same
    wanted = f"source {src.resolve()}\nfloor_db {floor_db!r}\nscale {scale!r}\n"
    if settings.exists() and settings.read_text() != wanted:
        raise ValueError(f"{settings}: {out} holds weights made with other settings "
                         f"({settings.read_text().strip()!r}); use another --out")
    atomic_write_text(settings, wanted)
    paths = []
    for shard in read_listing(listing):
        target = out / pathlib.Path(shard).name
        if target in paths:
            raise ValueError(f"{listing}: two shards named {target.name}")
        if not target.exists():
            data, label = read_hdf5_shard(shard)
            write_hdf5_shard(target, data, label, weight=loss_weights(data, label, floor_db, scale))
        if progress is not None:
            progress(str(target))
        paths.append(target)
    new_listing = out / "list.txt"
    atomic_write_text(new_listing, "".join(f"{p}\n" for p in paths))
    return new_listing
