"""The paper's net against a residual variant, same data, seed and solver, with real Caffe.

The shipped model restores a perfect (undistorted) frame to only ~32 dB: it has not learnt
the identity.  A residual variant (the loss on input + conv12, DnCNN-style) starts near
the identity.  This trains both for the same iterations from the same ``random_seed``
with the quick schedule's Adam solver and reports Caffe's EuclideanLoss on two held-out
sets: distorted pairs (what the model is for) and undistorted ones (input = target: any
loss there is damage done to a good frame).

    python -m datagen --preset quick --count 400 --size 64 --out AB/data/train --seed 1
    python -m datagen --preset quick --count 64 --size 64 --out AB/data/test --seed 2
    python -m datagen --preset AB/clean.toml --count 64 --size 64 --out AB/clean --seed 3
    python benchmarks/residual_ab.py AB/data AB/clean --out AB/result --iters 150

``clean.toml``: ``extends = "quick"`` with every family's probability 0.  Prints the CPU.
"""
from __future__ import annotations

import argparse
import importlib.util
import pathlib
import platform
import re
import shutil
import subprocess
import time

from lr_sweep import CAFFE, REPO, solver_text, train


def make_nets():
    spec = importlib.util.spec_from_file_location("make_nets", REPO / "prototxt" / "make_nets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=pathlib.Path, help="folder with train/ and test/ (datagen HDF5)")
    p.add_argument("clean", type=pathlib.Path, help="datagen HDF5 folder of undistorted pairs")
    p.add_argument("--out", type=pathlib.Path, required=True)
    p.add_argument("--iters", type=int, default=150)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--test-iters", type=int, default=8, help="TEST batches per held-out set")
    args = p.parse_args()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    print(f"CPU: {cpu}; engine: CAFFE_DNNL_MATH default (see caffe.conv_engine_info())", flush=True)
    nets = make_nets()
    rows = []
    for variant, residual in (("paper", False), ("residual", True)):
        work = args.out / variant
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "data").symlink_to(args.data.resolve())
        net = nets.train_hdf5(batch=args.batch, residual=residual)
        (work / "train.prototxt").write_text(net)
        solver = solver_text(REPO / "solvers/quick/adam.prototxt", max_iter=args.iters,
                             test_interval=args.iters, snapshot=args.iters, display=1, average_loss=1,
                             test_iter=args.test_iters, snapshot_prefix='"snap"')
        t0 = time.perf_counter()
        tr, te = train(work, solver)
        seconds = (time.perf_counter() - t0) / args.iters
        weights = work / f"snap_iter_{args.iters}.caffemodel"
        clean = caffe_test(work, net, weights, (args.clean / "list.txt").resolve(), args.test_iters)
        rows.append((variant, tr[0], sum(tr[-10:]) / len(tr[-10:]), te[0], te[-1], clean, seconds))
        print(f"{variant}: train {tr[0]:.1f} -> {rows[-1][2]:.1f}; distorted test {te[0]:.1f} -> {te[-1]:.1f}; "
              f"undistorted test {clean:.2f}; {seconds:.2f} s/iteration", flush=True)
    lines = [f"CPU: {cpu}; {args.iters} Adam iterations (solvers/quick/adam.prototxt), batch {args.batch}",
             "", "| net | first train loss | mean of last 10 | distorted test: before | after "
             "| undistorted test after | s/iteration |", "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {v} | {a:.1f} | {b:.1f} | {c:.1f} | {d:.1f} | {e:.2f} | {f:.2f} |" for v, a, b, c, d, e, f in rows]
    (args.out / "ab.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
