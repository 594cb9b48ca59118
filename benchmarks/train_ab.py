"""Training A/B: nets, starts, data or solver settings side by side, with real Caffe.

Each *arm* trains for the same iterations with the same solver template and
``random_seed``, and differs in one thing:

    paper       the paper's net from Caffe's msra filler (the shipped default)
    identity    the paper's net from prototxt/identity_init.py's weights (output = input at
                iteration 0; same architecture, prototxt and .caffemodel format)
    residual    a variant: the loss on input + conv12, linear last layer (DnCNN-style)
    wide        a variant: every kernel 5 x 9 px (9 along the fast-scan axis x; 49 x 97 px seen)

plus any solver line, e.g. ``fast=paper,base_lr=0.001``, two data keys:
``train=DIR`` (the arm's own datagen HDF5 folder, any patch size; default DATA/train) and
``batch=N`` (its batch; default ``--batch``), e.g. ``p96=paper,train=AB/p96,batch=4``,
``iters=N`` (its iterations; default ``--iters``: arms of other batch or patch sizes compared at
the same pixels seen, e.g. 1024 iterations of 8 x 64^2 against ``iters=114`` of 32 x 96^2; such
an arm is scored at its start and end only, in the columns of the --iters arms' start and end),
``math=fp32|bf16|off`` (``CAFFE_DNNL_MATH`` while the arm trains; default: the environment's)
and ``loss=weighted`` (the training loss weighted per pair, ``make_nets.train_hdf5(weighted=True)``;
its ``train=`` folder made by ``python -m datagen weight``; scored with the plain loss like every arm).
Every arm is scored with ``--score-math`` (default ``fp32``), whatever math it trained with.

``--resume STATE`` continues every trained arm from a run's ``.solverstate`` (weights and
Adam moments, at that iteration) for ``--iters`` more iterations, each arm reading its
training shards from where a run resumed there would (:mod:`stem_restore.snapshots`): the
way to try a change on a long run without starting over (a residual arm continues it with
``conv12`` set to zero, :mod:`prototxt/residual_init.py`: the run's features, output =
input at the start; a wide arm continues it with each kernel zero-padded to 5 x 9,
:mod:`prototxt/wide_init.py`: the run's very function at the start).  An arm can also be *scored*
instead of trained: ``--scored long=runs/long/snapshots`` reads that run's
``<prefix>_iter_N.caffemodel`` snapshots (for a run with the same data, solver and seed,
they are the paper arm's weights: training is deterministic), with the paper's net (a
variant's snapshots are scored by training it as an arm).

Every arm is scored from its snapshots, every ``--test-interval`` iterations, with Caffe's
EuclideanLoss (Σ squared error / 2 per image, averaged over images) on one set: ``--test``
(default DATA/test: distorted pairs, what the model is for; any image size, e.g. whole
256² frames, where the 24-px border a 64² patch is mostly made of matters less), and at
the end on the undistorted set (input = target: any loss there is damage done to a good
frame).  Writes ``ab.md`` and the curves ``ab.png``; each trained arm's folder holds its
``snap_iter_N.caffemodel`` snapshots and the ``deploy.prototxt`` that restores them
(``benchmarks/error_budget.py --model OUT/NAME/deploy.prototxt --weights ...``).

The comparison on the long run's data (session 6), with the long run's Adam solver:

    python -m datagen --preset benchmarks/undistorted.toml --count 256 --size 64 \\
        --out AB/undistorted --seed 33
    python benchmarks/train_ab.py runs/long/data AB/undistorted --out AB/result \\
        --solver runs/long/adam.prototxt --iters 512 --test-interval 256 \\
        --scored paper=runs/long/snapshots --arm identity=identity

``--gpu N`` trains and scores every arm on that GPU (GPU Caffe, e.g. from scripts/gpu_bundle.sh on
a lent machine: a rate A/B of a few thousand iterations per arm fits in minutes there).

Prints the CPU model (and the GPU's name with ``--gpu``) and the convolution engine Caffe chose.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

from lr_sweep import CAFFE, REPO, solver_text

sys.path.insert(0, str(REPO))
from stem_restore.figures import save_png  # noqa: E402
from stem_restore.snapshots import copy_pair, read_listing, resume_order, shard_rows  # noqa: E402
from stem_restore.machine import cpu_model  # noqa: E402

NETS = ("paper", "identity", "residual", "wide")
DATA_KEYS = ("train", "batch", "iters", "math", "loss")  # arm keys that are not solver lines
MATHS = ("auto", "fp32", "bf16", "off")
LOSSES = ("plain", "weighted")


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "prototxt" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_arm(text: str) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """``NAME=NET[,key=value...]`` -> (name, net, data keys, solver overrides)."""
    name, _, spec = text.partition("=")
    net, *pairs = spec.split(",")
    if not name or net not in NETS:
        raise SystemExit(f"--arm {text!r}: expected NAME=NET[,key=value...] with NET one of {NETS}")
    if any("=" not in p for p in pairs):
        raise SystemExit(f"--arm {text!r}: every setting after the net is key=value")
    overrides = dict(p.split("=", 1) for p in pairs)
    data = {k: overrides.pop(k) for k in DATA_KEYS if k in overrides}
    if data.get("math", "auto") not in MATHS:
        raise SystemExit(f"--arm {text!r}: math={data['math']}: expected one of {MATHS}")
    if data.get("loss", "plain") not in LOSSES:
        raise SystemExit(f"--arm {text!r}: loss={data['loss']}: expected one of {LOSSES}")
    return name, net, data, overrides


def test_iterations(listing: pathlib.Path, batch: int) -> int:
    """Batches that read every pair of ``listing`` once (each test ends where it began)."""
    rows = sum(shard_rows(read_listing(listing)))
    if rows % batch:
        raise SystemExit(f"{listing}: {rows} pairs is not a multiple of the batch {batch}")
    return rows // batch


SCORE_MATH = {"CAFFE_DNNL_MATH": "fp32", "CAFFE_CUDA_MATH": "fp32"}  # set by --score-math
GPU_ARGS: list[str] = []  # ["--gpu=N"] with --gpu: every caffe train and test runs there


def caffe_test(work: pathlib.Path, net: str, weights: pathlib.Path, test_list: pathlib.Path,
               batch: int) -> float:
    """Mean EuclideanLoss of ``weights`` over every pair of ``test_list``, ``batch`` at a time,
    with the convolution math of ``SCORE_MATH``."""
    (work / "test.prototxt").write_text(net.replace('"data/test/list.txt"', f'"{test_list}"'))
    run = subprocess.run([str(CAFFE), "test", "--model=test.prototxt", f"--weights={weights}",
                          f"--iterations={test_iterations(test_list, batch)}", *GPU_ARGS],
                         cwd=work, capture_output=True, text=True, env={**os.environ, **SCORE_MATH})
    found = re.findall(r"\] loss = (\S+)", run.stderr)
    if run.returncode != 0 or not found:
        raise RuntimeError(f"caffe test failed in {work}: {run.stderr[-500:]}")
    return float(found[-1])


def train_arm(work: pathlib.Path, solver: str, start: pathlib.Path | None, math: str | None = None) -> str:
    """Run ``caffe train`` from ``start`` (a .caffemodel or .solverstate, or None: the fillers),
    with ``CAFFE_DNNL_MATH=math`` if given; return the engine line of its log."""
    (work / "solver.prototxt").write_text(solver)
    args = [str(CAFFE), "train", "--solver=solver.prototxt", *GPU_ARGS]
    if start is not None:  # absolute: caffe runs in ``work``
        args.append(f"--{'snapshot' if start.suffix == '.solverstate' else 'weights'}={start.resolve()}")
    with open(work / "caffe.log", "w") as log:
        run = subprocess.run(args, cwd=work, stderr=log, stdout=subprocess.DEVNULL,
                             env={**os.environ, "GLOG_minloglevel": "0",
                                  **({"CAFFE_DNNL_MATH": math} if math else {})})
    text = (work / "caffe.log").read_text()
    if run.returncode != 0:
        raise RuntimeError(f"caffe train failed in {work}: {text[-500:]}")
    return next(iter(re.findall(r"Layer conv2: (.*)", text)), "engine not logged")


def score(work: pathlib.Path, net: str, folder: pathlib.Path, iterations: dict[int, int],
          test_list: pathlib.Path, batch: int) -> dict[int, float]:
    """{column: test loss} of the ``*_iter_N.caffemodel`` snapshots in ``folder`` (and below),
    N = ``iterations[column]``; columns without a snapshot are left out."""
    curve = {}
    for column, it in iterations.items():
        snap = next(iter(sorted(folder.rglob(f"*_iter_{it}.caffemodel"))), None)
        if snap is not None:
            curve[column] = caffe_test(work, net, snap.resolve(), test_list, batch)
    if not curve:
        raise SystemExit(f"{folder}: no *_iter_N.caffemodel for N in {list(iterations.values())}")
    return curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=pathlib.Path, help="folder with train/ and test/ (datagen HDF5)")
    p.add_argument("undistorted", type=pathlib.Path, help="datagen HDF5 folder of undistorted pairs")
    p.add_argument("--out", type=pathlib.Path, required=True)
    p.add_argument("--solver", type=pathlib.Path, default=REPO / "solvers/quick/adam.prototxt",
                   help="solver template")
    p.add_argument("--arm", action="append", default=[],
                   help="NAME=NET[,train=DIR][,batch=N][,solver_key=value...] (repeat)")
    p.add_argument("--scored", action="append", default=[],
                   help="NAME=SNAPSHOT_DIR: score that run's snapshots instead of training")
    p.add_argument("--resume", type=pathlib.Path,
                   help="a .solverstate every trained arm continues (paper, residual and wide nets)")
    p.add_argument("--test", type=pathlib.Path, help="datagen HDF5 folder the arms are scored on "
                   "(default DATA/test)")
    p.add_argument("--iters", type=int, default=512, help="iterations each arm trains (after --resume's)")
    p.add_argument("--test-interval", type=int, default=256)
    p.add_argument("--batch", type=int, default=8, help="training batch (arms' default) and scoring batch")
    p.add_argument("--score-math", default="fp32", choices=MATHS,
                   help="CAFFE_DNNL_MATH of the scoring (default fp32: every arm scored alike)")
    p.add_argument("--seed", type=int, default=1, help="identity start's seed (= the solver's random_seed)")
    p.add_argument("--gpu", type=int, help="train and score on this GPU (GPU Caffe: cuBLAS in TF32 while "
                   "training, CAFFE_CUDA_MATH; in fp32 while scoring unless --score-math says otherwise)")
    args = p.parse_args()
    if not args.arm and not args.scored:
        p.error("give at least one --arm or --scored")
    arms = [parse_arm(a) for a in args.arm]
    SCORE_MATH["CAFFE_DNNL_MATH"] = args.score_math
    SCORE_MATH["CAFFE_CUDA_MATH"] = "fp32" if args.score_math in ("fp32", "off") else "tf32"
    if args.gpu is not None:
        GPU_ARGS.append(f"--gpu={args.gpu}")
    if args.resume is not None and any(kind == "identity" for _, kind, _, _ in arms):
        p.error("--resume continues a run's weights: an identity arm has its own start")
    cpu = cpu_model()
    if args.gpu is not None:
        query = subprocess.run(["nvidia-smi", f"--id={args.gpu}", "--query-gpu=name", "--format=csv,noheader"],
                               capture_output=True, text=True)
        cpu += f"; GPU {args.gpu}: {query.stdout.strip() or 'unknown (nvidia-smi failed)'}"
    nets = _module("make_nets")
    args.out.mkdir(parents=True, exist_ok=True)
    undistorted_list = (args.undistorted / "list.txt").resolve()
    test_list = ((args.test or args.data / "test") / "list.txt").resolve()
    first = 0
    if args.resume is not None:
        from stem_restore.network import caffe_pb2
        first = caffe_pb2().SolverState.FromString(args.resume.read_bytes()).iter
    last = first + args.iters
    steps = range(first - first % args.test_interval, last + 1, args.test_interval)
    scoring_net = nets.train_hdf5(batch=args.batch)
    curves, rows, engines = {}, [], {}

    def finish(name: str, label: str, work: pathlib.Path, folder: pathlib.Path, net: str,
               seconds: float | None = None, pixels: int = 0, at: dict[int, int] | None = None) -> None:
        """Score one arm; ``pixels``: training pixels per iteration, ``at``: {column: snapshot}."""
        curve = score(work, net, folder, at or {i: i for i in steps}, test_list, args.batch)
        end = sorted(folder.rglob(f"*_iter_{(at or {}).get(max(curve), max(curve))}.caffemodel"))[0]
        good = caffe_test(work, net, end.resolve(), undistorted_list, args.batch)
        curves[name] = curve
        rows.append((name, label, curve, good, seconds, pixels))
        speed = "" if seconds is None else f"; {seconds:.2f} s/iteration, {pixels / seconds / 1e3:.0f} kpx/s"
        print(f"{name}: {curve}; undistorted {good:.2f}{speed}", flush=True)

    for name, kind, data, overrides in arms:
        work = args.out / name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        batch = int(data.get("batch", args.batch))
        iters = int(data.get("iters", args.iters))
        train_dir = pathlib.Path(data.get("train", args.data / "train")).resolve()
        shards = read_listing(train_dir / "list.txt")
        weighted = data.get("loss") == "weighted"
        if weighted:
            import h5py
            from stem_restore.network import WEIGHT_BLOB
            with h5py.File(shards[0], "r") as f:
                if WEIGHT_BLOB not in f:
                    raise SystemExit(f"--arm {name}: loss=weighted, but {shards[0]} has no "
                                     f"'{WEIGHT_BLOB}' dataset (make the folder with python -m datagen weight)")
        start = None
        if kind == "identity":
            init = _module("identity_init")
            start = init.write_caffemodel(init.identity_weights(args.seed), work / "init_iter_0.caffemodel")
        if args.resume is not None:  # every arm reads the batches a resumed run would
            if kind == "residual":  # the run's features, output = input
                start = _module("residual_init").residual_start(args.resume, work / "resumed")
            elif kind == "wide":  # the run's function, kernels zero-padded along x
                start = _module("wide_init").wide_start(args.resume, work / "resumed")
            else:
                start = copy_pair(args.resume, work / "resumed")
            shards, exact = resume_order(shards, shard_rows(shards), batch, first)
            if not exact:
                print(f"{name}: iteration {first} x batch {batch} is inside a shard of {train_dir}: "
                      f"its data restart at that shard's first row", file=sys.stderr)
        (work / "train_list.txt").write_text("\n".join(shards) + "\n")
        variant = {"residual": kind == "residual", "wide": kind == "wide"}
        net = nets.train_hdf5(batch=batch, weighted=weighted, **variant)
        net = net.replace('"data/train/list.txt"', '"train_list.txt"', 1)
        (work / "train.prototxt").write_text(net)
        (work / "deploy.prototxt").write_text(nets.deploy(**variant))  # restore/evaluate the arm's snapshots
        # Caffe builds the net's TEST layer (reading data/test) but never runs it: the arms are
        # scored from their snapshots afterwards (test_interval must be > 0; 10^9 = never).
        (work / "data").symlink_to(args.data.resolve())
        solver = solver_text(args.solver, max_iter=first + iters, test_interval=10**9,
                             test_initialization="false",
                             snapshot=args.test_interval if iters == args.iters else iters,
                             snapshot_prefix='"snap"', net='"train.prototxt"', **overrides)
        t0 = time.perf_counter()
        engines[name] = train_arm(work, solver, start, data.get("math"))
        seconds = (time.perf_counter() - t0) / iters
        label = kind + "".join(f", {k}={v}" for k, v in {**data, **overrides}.items())
        height, width = h5_shape(shards[0])
        at = None if iters == args.iters else {c: it for c, it in ((first, first), (last, first + iters))
                                               if c in steps}
        finish(name, label, work, work, nets.train_hdf5(batch=args.batch, **variant),
               seconds, batch * height * width, at)

    # Scored last: a run still training has written its newest snapshots by then.
    for spec in args.scored:
        name, _, folder = spec.partition("=")
        work = args.out / name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        finish(name, f"scored snapshots of {folder}", work, pathlib.Path(folder), scoring_net)

    test_size = h5_shape(read_listing(test_list)[0])
    engine = "; ".join(f"{n}: {e}" for n, e in engines.items()) or "no arm trained"
    lines = [f"CPU: {cpu}; conv2 while training: {engine}; scored with CAFFE_DNNL_MATH={args.score_math}",
             f"solver {args.solver} (iterations {first} to {last}"
             + (f", resumed from {args.resume}" if args.resume else "") + f"), batch {args.batch}; "
             f"scored on {test_list.parent} ({sum(shard_rows(read_listing(test_list)))} pairs of "
             f"{test_size[0]}×{test_size[1]} px)", "",
             "| arm | net / settings | " + " | ".join(f"test @ {i}" for i in steps)
             + " | undistorted @ end | s/iteration | training kpx/s |",
             "|---|---|" + "---:|" * (len(steps) + 3)]
    for name, label, curve, good, seconds, pixels in rows:
        cells = " | ".join(f"{curve[i]:.1f}" if i in curve else "" for i in steps)
        speed = "(scored) | " if seconds is None else f"{seconds:.2f} | {pixels / seconds / 1e3:.0f}"
        lines.append(f"| {name} | {label} | {cells} | {good:.2f} | {speed} |")
    (args.out / "ab.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(curves, args.out / "ab.png")


def h5_shape(path: str) -> tuple[int, int]:
    """(height, width) of the pairs in one HDF5 shard."""
    import h5py
    with h5py.File(path, "r") as f:
        return tuple(f["data"].shape[-2:])


def plot(curves: dict[str, dict[int, float]], path: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        its = sorted(curve)
        ax.plot(its, [curve[i] for i in its], marker="o", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("test EuclideanLoss (distorted pairs)")
    ax.legend()
    fig.tight_layout()
    save_png(fig, path)


if __name__ == "__main__":
    main()
