"""Which samples drive training?  A model's loss on datagen pairs, binned by the raw input's PSNR.

    .venv/bin/python benchmarks/loss_share.py DATA_DIR --model DEPLOY --weights W [--count 256]

Caffe's EuclideanLoss sums squared errors, so each pair pulls on the weights in proportion
to its squared error; evaluate's tables average PSNR, a logarithm, over images.  The two
disagree most where the errors differ most: a frame that is already good (raw PSNR > 40 dB)
has a squared error hundreds of times smaller than a dose-100 frame (raw ~20 dB), so its
share of the gradient is tiny even when the model *damages* it.  This prints, per bin of
raw PSNR: the pairs, their share of the summed squared error (= of the loss and, for one
step, roughly of the gradient), the model's mean PSNR and its gain over the raw input.
PSNR in the normalised units of the shards, peak = the clean target's range (as
evaluate.metrics.psnr); capped at 100 dB as in evaluate's tables.

``--floor-db F`` also prints, for per-pair loss weights with that floor (datagen/weights.py),
the share each bin would carry, the ``--scale`` for ``python -m datagen weight`` at which
this model's weighted loss on these pairs equals its plain loss, and how far those weights sit
from the ones the gradient of a mean PSNR asks for with this model (``1 / e_out``, the error it
still makes; :func:`datagen.weights.weight_mismatch_db`): per bin, the mean of
``10 log10((e_raw + floor) / e_out)`` over its pairs, centred on all pairs: positive where a
bin weighs less in the loss than in the tables.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datagen.weights import relative_error, weight_mismatch_db, weight_scale  # noqa: E402
from datagen.writers.hdf5 import read_hdf5_shard  # noqa: E402
from stem_restore.snapshots import read_listing  # noqa: E402
from stem_restore.machine import cpu_model  # noqa: E402

CAP_DB = 100.0
EDGES_DB = (0.0, 25.0, 30.0, 35.0, 40.0, 45.0, np.inf)  # raw-PSNR bins


def per_sample_psnr(images: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """PSNR (dB, capped) of each N x 1 x H x W image against its clean target."""
    n = len(clean)
    err = ((images.astype(np.float64) - clean) ** 2).reshape(n, -1).mean(axis=1)
    peak = np.ptp(clean.reshape(n, -1), axis=1).astype(np.float64)
    peak[peak == 0] = 1.0
    with np.errstate(divide="ignore"):
        db = 10 * np.log10(peak ** 2 / err)
    return np.minimum(db, CAP_DB)


def forward(model: str, weights: str, data: np.ndarray, batch: int) -> np.ndarray:
    """The net's output for every pair (pycaffe, the deploy net reshaped to the patches)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe

    caffe.set_mode_cpu()
    net = caffe.Net(model, caffe.TEST, weights=weights)
    inp, out = net.inputs[0], net.outputs[0]
    net.blobs[inp].reshape(batch, *data.shape[1:])
    net.reshape()
    result = np.empty_like(data)
    for start in range(0, len(data), batch):
        chunk = data[start:start + batch]
        if len(chunk) != batch:
            net.blobs[inp].reshape(len(chunk), *data.shape[1:])
            net.reshape()
        net.blobs[inp].data[...] = chunk
        result[start:start + len(chunk)] = net.forward()[out]
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=pathlib.Path, help="datagen HDF5 folder (its list.txt)")
    p.add_argument("--model", required=True, help="deploy prototxt")
    p.add_argument("--weights", required=True, help=".caffemodel")
    p.add_argument("--count", type=int, default=256, help="pairs read from the start of the listing")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--floor-db", type=float, help="also: shares and scale of loss weights with this floor")
    p.add_argument("--edges", default=",".join(f"{e:g}" for e in EDGES_DB[:-1]),
                   help="raw-PSNR bin edges in dB, comma-separated (the last bin is open; default %(default)s)")
    args = p.parse_args()
    cpu = cpu_model()
    data, label = [], []
    for shard in read_listing(args.data / "list.txt"):
        d, lab = read_hdf5_shard(shard)
        data.append(d), label.append(lab)
        if sum(len(x) for x in data) >= args.count:
            break
    data = np.concatenate(data)[:args.count]
    label = np.concatenate(label)[:args.count]
    out = forward(args.model, args.weights, data, args.batch)
    raw_db, out_db = per_sample_psnr(data, label), per_sample_psnr(out, label)
    sq = ((out.astype(np.float64) - label) ** 2).reshape(len(label), -1).sum(axis=1)
    weighted = mismatch = None
    if args.floor_db is not None:
        raw_rel = relative_error(data, label)
        scale = weight_scale(sq, raw_rel, args.floor_db)
        weighted = sq * scale / (raw_rel + 10 ** (-args.floor_db / 10))
        mismatch = weight_mismatch_db(relative_error(out, label), raw_rel, args.floor_db)
    print(f"CPU: {cpu}; CAFFE_DNNL_MATH={os.environ.get('CAFFE_DNNL_MATH', 'auto')}; "
          f"{len(label)} pairs of {data.shape[-2]}x{data.shape[-1]} from {args.data}; {args.weights}")
    extra = "" if weighted is None else (f" share, weights floor {args.floor_db:g} dB |"
                                         " weight a mean PSNR asks / this weight (dB) |")
    print("| raw PSNR (dB) | pairs | share of the loss | raw mean (dB) | model mean (dB) | gain (dB) |"
          + extra + "\n|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if extra else ""))
    edges = sorted(float(e) for e in args.edges.split(",")) + [np.inf]
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (raw_db >= lo) & (raw_db < hi)
        if not m.any():
            continue
        print(f"| {lo:.0f}–{hi:.0f} | {m.sum()} | {sq[m].sum() / sq.sum():.1%} | {raw_db[m].mean():.2f} "
              f"| {out_db[m].mean():.2f} | {out_db[m].mean() - raw_db[m].mean():+.2f} |"
              + ("" if weighted is None else f" {weighted[m].sum() / weighted.sum():.1%} "
                                             f"| {mismatch[m].mean():+.2f} |"))
    print(f"| all | {len(label)} | 100% | {raw_db.mean():.2f} | {out_db.mean():.2f} "
          f"| {out_db.mean() - raw_db.mean():+.2f} |" + ("" if weighted is None else " 100% | 0 |"))
    if weighted is not None:
        print(f"scale for `python -m datagen weight --floor-db {args.floor_db:g}`: {scale:.6g} "
              f"(this model's weighted loss = its plain loss on these pairs)")


if __name__ == "__main__":
    main()
