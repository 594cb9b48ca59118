"""Caffe training snapshots: whole or not, where a resumed stage reads, continuation copies.

Used by ``run_training.sh`` (through the command line below) and
``benchmarks/train_ab.py``.

* A snapshot is *whole* when its ``.solverstate`` parses, holds the solver's
  history blobs (:func:`stem_restore.network.history_blobs`: SGD one per
  parameter blob, Adam two) and the ``.caffemodel`` it names exists: a run
  killed while Caffe was writing one resumes from the one before
  (:func:`is_whole`).
* Caffe's HDF5Data layer reads its (unshuffled) shards in list order and wraps
  around, and a ``.solverstate`` does not record where it was.  A stage resumed
  at iteration N therefore reads the shard list rotated to the shard where row
  N x batch falls (:func:`resume_order`): exact when that is a shard boundary
  (the ``long`` schedule snapshots once per shard), else the nearest shard start
  before it.
* A ``.solverstate`` names its weights by the path Caffe wrote
  (``learned_net``, relative to the run folder).  :func:`copy_pair` copies a
  pair elsewhere and points the copy at the copied weights, so that
  ``caffe train --snapshot=COPY`` continues it from any folder; with
  ``relative_to`` (a run folder) the copy names them relative to it, as Caffe
  does, so the run folder can move (``run_training.sh --weights STATE``: a run
  that continues another run's Adam stage with its own data, batch or patch size).

Command line (for ``run_training.sh``)::

    python -m stem_restore.snapshots whole STATE           # exit 0 if whole, 1 if not
    python -m stem_restore.snapshots order LIST BATCH IT   # the shard list to resume at IT
    python -m stem_restore.snapshots exact LIST BATCH IT   # exit 0 if IT resumes exactly, 1 if not, 2 on error
    python -m stem_restore.snapshots adopt STATE RUN       # the pair into RUN/snapshots/
"""
from __future__ import annotations

import os
import pathlib
import sys

from stem_restore.atomic import atomic_write_bytes
from stem_restore.network import CONV_NAMES, LAYERS, PARAM_BLOBS, caffe_pb2, history_blobs

__all__ = ["read_listing", "shard_rows", "resume_order", "weights_of", "is_whole", "copy_pair",
           "paper_adam_pair", "write_start", "start_main"]


def read_listing(listing: str | os.PathLike) -> list[str]:
    """The shard paths of a Caffe HDF5 list file (one path a line, blank lines ignored)."""
    return [line.strip() for line in pathlib.Path(listing).read_text().splitlines() if line.strip()]


def shard_rows(paths: list[str]) -> list[int]:
    """Rows (pairs) in each HDF5 shard: the length of its ``data`` dataset."""
    import h5py
    rows = []
    for p in paths:
        with h5py.File(p, "r") as f:
            rows.append(int(f["data"].shape[0]))
    return rows


def resume_order(paths: list[str], rows: list[int], batch: int, iteration: int) -> tuple[list[str], bool]:
    """The shard list a stage resumed at ``iteration`` reads, and whether that is exact.

    Caffe has read ``iteration * batch`` rows (modulo the epoch) when it snapshots at
    ``iteration``; the returned list starts at the shard holding the next row.  ``exact`` is
    False when that row is not the shard's first: the data then restart at the shard's start.
    """
    if len(paths) != len(rows) or not paths:
        raise ValueError("resume_order: one row count per shard, at least one shard")
    if batch < 1 or iteration < 0:
        raise ValueError(f"resume_order: batch {batch} must be >= 1 and iteration {iteration} >= 0")
    offset, first_row = iteration * batch % sum(rows), 0
    for start, n in enumerate(rows):
        if first_row + n > offset:
            return paths[start:] + paths[:start], first_row == offset
        first_row += n
    raise AssertionError("unreachable: offset < sum(rows)")


def _state(path: pathlib.Path):
    return caffe_pb2().SolverState.FromString(path.read_bytes())


def weights_of(state_path: str | os.PathLike) -> pathlib.Path:
    """The ``.caffemodel`` beside ``state_path`` that its ``learned_net`` names (by file name)."""
    state_path = pathlib.Path(state_path)
    return state_path.parent / pathlib.Path(_state(state_path).learned_net).name


def is_whole(state_path: str | os.PathLike) -> bool:
    """True if the snapshot can be resumed: see the module docstring."""
    state_path = pathlib.Path(state_path)
    try:
        state = _state(state_path)
        stage = state_path.name.split("_iter_")[0]  # adam | sgd: the solver type
        model = state_path.parent / pathlib.Path(state.learned_net).name
        return (state.iter > 0 and len(state.history) == history_blobs(stage)
                and model.is_file() and model.stat().st_size > 0)
    except Exception:  # unreadable, truncated, unknown stage: not whole
        return False


def copy_pair(state_path: str | os.PathLike, dest: str | os.PathLike,
              relative_to: str | os.PathLike | None = None) -> pathlib.Path:
    """Copy a snapshot pair into folder ``dest``; the copied state names the copied weights.

    Returns the copied ``.solverstate``, whose ``learned_net`` is the copied
    ``.caffemodel``'s absolute path, or its path relative to folder ``relative_to``
    (where ``caffe train`` will run).  The weights are written first, both atomically:
    an interrupted copy is never a whole pair (:func:`is_whole`).
    """
    state_path, dest = pathlib.Path(state_path), pathlib.Path(dest)
    if not is_whole(state_path):
        raise ValueError(f"{state_path}: not a whole snapshot pair (unreadable .solverstate, "
                         f"wrong number of history blobs, or its .caffemodel is missing)")
    dest.mkdir(parents=True, exist_ok=True)
    model = dest / weights_of(state_path).name
    atomic_write_bytes(model, weights_of(state_path).read_bytes())
    state = _state(state_path)
    state.learned_net = str(model.resolve() if relative_to is None
                            else model.resolve().relative_to(pathlib.Path(relative_to).resolve()))
    copy = dest / state_path.name
    atomic_write_bytes(copy, state.SerializeToString())
    return copy


def paper_adam_pair(state_path: str | os.PathLike):
    """``(weights, layers, state)`` of a whole Adam snapshot pair of the paper's net.

    ``weights`` is the ``.caffemodel``'s NetParameter, ``layers`` its layers that hold
    blobs (the convolutions, input to output), ``state`` the SolverState, whose history
    holds the first moments of the :data:`~stem_restore.network.PARAM_BLOBS` parameter
    blobs and then their second moments, in the net's parameter order
    (Caffe's ``AdamSolver::AdamPreSolve``).  The start of a variant edits them and
    :func:`write_start` writes the result.  Raises ``ValueError`` naming the file if
    the pair is not whole, not Adam's or not the paper net's layers and shapes.
    """
    state_path = pathlib.Path(state_path)
    if not is_whole(state_path):
        raise ValueError(f"{state_path}: not a whole snapshot pair (unreadable .solverstate, "
                         f"wrong number of history blobs, or its .caffemodel is missing)")
    model_path = weights_of(state_path)
    net = caffe_pb2().NetParameter.FromString(model_path.read_bytes())
    layers = [layer for layer in net.layer if layer.blobs]
    if [layer.name for layer in layers] != list(CONV_NAMES):
        raise ValueError(f"{model_path}: not the paper's net (layers with weights: "
                         f"{[layer.name for layer in layers]})")
    for layer, (c_in, c_out, k) in zip(layers, LAYERS):
        shapes = [tuple(blob.shape.dim) for blob in layer.blobs]
        if shapes != [(c_out, c_in, k, k), (c_out,)]:
            raise ValueError(f"{model_path}: {layer.name} has blobs of shape {shapes}, expected the "
                             f"paper's {[(c_out, c_in, k, k), (c_out,)]}")
    state = _state(state_path)
    if len(state.history) != history_blobs("Adam"):
        raise ValueError(f"{state_path}: {len(state.history)} history blobs, expected Adam's "
                         f"{history_blobs('Adam')} (first and second moments of {PARAM_BLOBS} blobs)")
    return net, layers, state


def write_start(state_path: str | os.PathLike, dest: str | os.PathLike, net, state) -> pathlib.Path:
    """Write a variant's start into folder ``dest``: NetParameter ``net`` under the name of
    ``state_path``'s weights, then SolverState ``state`` under ``state_path``'s name, naming
    those weights by absolute path.  The state is written last, both atomically: an
    interrupted start is never a whole pair.  Returns the ``.solverstate`` (resume it with
    ``caffe train --snapshot``); ``ValueError`` if ``dest`` is the pair's own folder (the
    start would replace the snapshot it comes from)."""
    state_path, dest = pathlib.Path(state_path), pathlib.Path(dest)
    if dest.resolve() == state_path.parent.resolve():
        raise ValueError(f"{dest}: a variant's start goes to another folder than its snapshot {state_path}")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / state_path.name).unlink(missing_ok=True)  # no stale state beside the new weights
    model = dest / weights_of(state_path).name
    atomic_write_bytes(model, net.SerializeToString())
    state.learned_net = str(model.resolve())
    copy = dest / state_path.name
    atomic_write_bytes(copy, state.SerializeToString())
    return copy


def start_main(start, description: str, argv: list[str] | None = None) -> int:
    """The command line of a variant's start script (``prototxt/residual_init.py``,
    ``prototxt/wide_init.py``): ``STATE --out DIR``; prints the start's ``.solverstate``;
    exit 2 with one line naming the file when ``start(STATE, DIR)`` raises ``ValueError``."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("state", type=pathlib.Path, help="a paper-net Adam .solverstate (its .caffemodel beside it)")
    p.add_argument("--out", type=pathlib.Path, required=True, help="folder for the variant's start pair")
    args = p.parse_args(argv)
    try:
        print(start(args.state, args.out))
    except ValueError as e:
        print(f"{p.prog}: {e}", file=sys.stderr)
        return 2
    return 0


def _main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "whole":
        return 0 if is_whole(argv[1]) else 1
    if len(argv) == 4 and argv[0] == "order":
        paths = read_listing(argv[1])
        batch, iteration = int(argv[2]), int(argv[3])
        rows = shard_rows(paths)
        order, exact = resume_order(paths, rows, batch, iteration)
        if not exact:
            row = iteration * batch % sum(rows)
            print(f"resuming at iteration {iteration}: row {row} is inside shard "
                  f"{order[0]}; the data restart at that shard's first row (not exact)", file=sys.stderr)
        sys.stdout.write("\n".join(order) + "\n")
        return 0
    if len(argv) == 4 and argv[0] == "exact":  # 0 exact, 1 not, 2 the list cannot be read
        try:
            paths = read_listing(argv[1])
            return 0 if resume_order(paths, shard_rows(paths), int(argv[2]), int(argv[3]))[1] else 1
        except (OSError, KeyError, ValueError) as err:
            print(f"{argv[1]}: {err}", file=sys.stderr)
            return 2
    if len(argv) == 3 and argv[0] == "adopt":
        try:
            copy_pair(argv[1], pathlib.Path(argv[2]) / "snapshots", relative_to=argv[2])
        except (OSError, ValueError) as err:
            print(err, file=sys.stderr)
            return 1
        return 0
    print(__doc__.split("Command line (for ``run_training.sh``)::")[1].rstrip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
