"""Training A/B: nets, starts or solver settings side by side on the same data, with real Caffe.

Each *arm* trains for the same iterations on the same HDF5 data with the same solver
template and ``random_seed``, and differs in one thing:

    paper       the paper's net from Caffe's msra filler (the shipped default)
    identity    the paper's net from prototxt/identity_init.py's weights (output = input at
                iteration 0; same architecture, prototxt and .caffemodel format)
    residual    a variant: the loss on input + conv12, linear last layer (DnCNN-style)

plus any solver line, e.g. ``fast=paper,base_lr=0.001``.  An arm can also be *scored*
instead of trained: ``--scored paper=runs/long/snapshots`` reads that run's
``<prefix>_iter_N.caffemodel`` snapshots, for a run made with the same data, solver and seed
(training is deterministic, so they are the paper arm's weights).  Every arm is scored with
Caffe's EuclideanLoss on the data's test/ split (distorted pairs: what the model is for) at
every ``--test-interval``, and at the end on an undistorted set (input = target: any loss
there is damage done to a good frame).  Writes ``ab.md`` and the curves ``ab.png``.

The comparison on the long run's data (session 6), with the long run's Adam solver:

    python -m datagen --preset benchmarks/undistorted.toml --count 256 --size 64 \\
        --out AB/undistorted --seed 33
    python benchmarks/train_ab.py runs/long/data AB/undistorted --out AB/result \\
        --solver runs/long/adam.prototxt --iters 512 --test-interval 256 \\
        --scored paper=runs/long/snapshots --arm identity=identity

Prints the CPU model and the convolution engine Caffe chose.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import time

from lr_sweep import CAFFE, REPO, solver_text

sys.path.insert(0, str(REPO))
from stem_restore.figures import save_png  # noqa: E402

NETS = ("paper", "identity", "residual")


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "prototxt" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_arm(text: str) -> tuple[str, str, dict[str, str]]:
    """``NAME=NET[,key=value...]`` -> (name, net, solver overrides)."""
    name, _, spec = text.partition("=")
    net, *pairs = spec.split(",")
    if not name or net not in NETS:
        raise SystemExit(f"--arm {text!r}: expected NAME=NET[,key=value...] with NET one of {NETS}")
    overrides = dict(p.split("=", 1) for p in pairs)
    return name, net, overrides


def caffe_test(work: pathlib.Path, net: str, weights: pathlib.Path, test_list: pathlib.Path,
               iterations: int) -> float:
    """Mean EuclideanLoss of ``weights`` over ``iterations`` TEST batches read from ``test_list``."""
    (work / "test.prototxt").write_text(net.replace('"data/test/list.txt"', f'"{test_list}"'))
    run = subprocess.run([str(CAFFE), "test", "--model=test.prototxt", f"--weights={weights}",
                          f"--iterations={iterations}"], cwd=work, capture_output=True, text=True)
    found = re.findall(r"\] loss = (\S+)", run.stderr)
    if run.returncode != 0 or not found:
        raise RuntimeError(f"caffe test failed in {work}: {run.stderr[-500:]}")
    return float(found[-1])


def train_arm(work: pathlib.Path, solver: str, weights: pathlib.Path | None) -> tuple[dict[int, float], str]:
    """Run ``caffe train``; return ({iteration: test loss}, the engine line of its log)."""
    (work / "solver.prototxt").write_text(solver)
    args = [str(CAFFE), "train", "--solver=solver.prototxt"]
    if weights is not None:
        args.append(f"--weights={weights}")
    with open(work / "caffe.log", "w") as log:
        run = subprocess.run(args, cwd=work, stderr=log, stdout=subprocess.DEVNULL,
                             env={**os.environ, "GLOG_minloglevel": "0"})
    text = (work / "caffe.log").read_text()
    if run.returncode != 0:
        raise RuntimeError(f"caffe train failed in {work}: {text[-500:]}")
    iters = [int(i) for i in re.findall(r"Iteration (\d+), Testing net", text)]
    losses = [float(v) for v in re.findall(r"Test net output #0: loss = (\S+)", text)]
    engine = next(iter(re.findall(r"Layer conv2: (.*)", text)), "engine not logged")
    return dict(zip(iters, losses)), engine


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=pathlib.Path, help="folder with train/ and test/ (datagen HDF5)")
    p.add_argument("undistorted", type=pathlib.Path, help="datagen HDF5 folder of undistorted pairs")
    p.add_argument("--out", type=pathlib.Path, required=True)
    p.add_argument("--solver", type=pathlib.Path, default=REPO / "solvers/quick/adam.prototxt",
                   help="solver template (its test_iter sets the test batches)")
    p.add_argument("--arm", action="append", default=[], help="NAME=NET[,key=value...] (repeat)")
    p.add_argument("--scored", action="append", default=[],
                   help="NAME=SNAPSHOT_DIR: score that run's snapshots instead of training")
    p.add_argument("--iters", type=int, default=512)
    p.add_argument("--test-interval", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seed", type=int, default=1, help="identity start's seed (= the solver's random_seed)")
    args = p.parse_args()
    if not args.arm and not args.scored:
        p.error("give at least one --arm or --scored")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    template = args.solver.read_text()
    test_iter = int(re.search(r"^test_iter:\s*(\d+)", template, re.M).group(1))
    nets = _module("make_nets")
    args.out.mkdir(parents=True, exist_ok=True)
    undistorted_list = (args.undistorted / "list.txt").resolve()
    test_list = (args.data / "test" / "list.txt").resolve()
    curves, rows, engine = {}, [], "engine not logged"

    for spec in args.scored:
        name, _, folder = spec.partition("=")
        work = args.out / name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        net = nets.train_hdf5(batch=args.batch)
        curve = {}
        for it in range(0, args.iters + 1, args.test_interval):
            snap = next(pathlib.Path(folder).glob(f"*_iter_{it}.caffemodel"), None)
            if snap is not None:
                curve[it] = caffe_test(work, net, snap.resolve(), test_list, test_iter)
        last = max(curve)
        snap = next(pathlib.Path(folder).glob(f"*_iter_{last}.caffemodel")).resolve()
        good = caffe_test(work, net, snap, undistorted_list, test_iter)
        curves[name] = curve
        rows.append((name, f"scored snapshots of {folder}", curve, good, None))
        print(f"{name}: {curve}; undistorted {good:.2f}", flush=True)

    for spec in args.arm:
        name, kind, overrides = parse_arm(spec)
        work = args.out / name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "data").symlink_to(args.data.resolve())
        net = nets.train_hdf5(batch=args.batch, residual=kind == "residual")
        (work / "train.prototxt").write_text(net)
        weights = None
        if kind == "identity":
            init = _module("identity_init")
            weights = init.write_caffemodel(init.identity_weights(args.seed), work / "init.caffemodel")
        solver = solver_text(args.solver, max_iter=args.iters, test_interval=args.test_interval,
                             snapshot=args.iters, snapshot_prefix='"snap"', test_initialization="true",
                             net='"train.prototxt"', **overrides)
        t0 = time.perf_counter()
        curve, engine = train_arm(work, solver, weights)
        seconds = (time.perf_counter() - t0) / args.iters
        good = caffe_test(work, net, work / f"snap_iter_{args.iters}.caffemodel", undistorted_list, test_iter)
        curves[name] = curve
        label = kind + "".join(f", {k}={v}" for k, v in overrides.items())
        rows.append((name, label, curve, good, seconds))
        print(f"{name}: {curve}; undistorted {good:.2f}; {seconds:.2f} s/iteration", flush=True)

    steps = sorted({i for c in curves.values() for i in c})
    lines = [f"CPU: {cpu}; {engine}", f"solver {args.solver} (max_iter {args.iters}), batch {args.batch}, "
             f"{test_iter} test batches", "",
             "| arm | net / overrides | " + " | ".join(f"test @ {i}" for i in steps)
             + f" | undistorted @ {args.iters} | s/iteration (incl. tests) |",
             "|---|---|" + "---:|" * (len(steps) + 2)]
    for name, label, curve, good, seconds in rows:
        cells = " | ".join(f"{curve[i]:.1f}" if i in curve else "" for i in steps)
        speed = "(scored)" if seconds is None else f"{seconds:.2f}"
        lines.append(f"| {name} | {label} | {cells} | {good:.2f} | {speed} |")
    (args.out / "ab.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(curves, args.out / "ab.png")


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
