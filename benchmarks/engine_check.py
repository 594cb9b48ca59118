"""cuDNN against Caffe's own convolution engine: the same net, weights and batch through both.

    python benchmarks/engine_check.py --gpu 0 --weights models/stem_restore.caffemodel

GPU Caffe built with cuDNN (scripts/patches/cuda/0103-*: cuDNN 8/9) runs the paper's net on
cuDNN unless ``CAFFE_CUDNN=0``, which gives Caffe's own layers (im2col + cuBLAS).  Before a
lent GPU trains on cuDNN, this checks that both engines compute the same thing:

1. writes ``--batch`` training pairs (``datagen``, preset ``training``, ``--seed``) of ``--size``²;
2. per engine, one SGD step of rate ``LR`` from ``--weights`` (``caffe train``): the loss at
   iteration 0 (forward) and, from the snapshot after it, each layer's gradient = (the weights
   before minus after) / ``LR`` (backward);
3. compares them: the loss's relative difference and, per layer, ‖g_cudnn − g_caffe‖ / ‖g_caffe‖;
4. times both engines (``caffe time``, forward + backward, benchmarks/bench_train.py).

The engines agree when the loss differs by less than ``--loss-tol`` (relative) and every layer's
gradient by less than ``--grad-tol``: both engines may use TF32 tensor cores (10-bit mantissa
products, ``CAFFE_CUDA_MATH``), which alone moves gradients by ~1e-3; a wrong algorithm moves
them by ~1.  The last line is ``engine: cudnn`` (agrees and is faster) or ``engine: caffe (why)``,
for scripts/gpu_chunk.sh to export ``CAFFE_CUDNN=0`` from.  Without ``--gpu`` both runs use the
CPU build's engine (CAFFE_CUDNN means nothing there): a check of the check, as the tests run it.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import numpy as np

from bench_train import CAFFE, REPO, caffe_time, device_name

sys.path.insert(0, str(REPO))
from stem_restore.network import caffe_pb2  # noqa: E402

ENGINES = {"cudnn": {"CAFFE_CUDNN": "1"}, "caffe": {"CAFFE_CUDNN": "0"}}

#: SGD with momentum 0: w <- w - LR * g, so g = (before - after) / LR.  A power of two (exact
#: division); large, so that LR * g outweighs w and float32 rounding of w - LR * g costs g little.
LR = 1024.0

SOLVER = """net: "net.prototxt"
type: "SGD"
base_lr: {lr}
lr_policy: "fixed"
momentum: 0
weight_decay: 0
max_iter: 1
display: 1
snapshot_prefix: "step"
random_seed: 1
solver_mode: {mode}
"""


def write_pairs(out: pathlib.Path, batch: int, size: int, seed: int) -> pathlib.Path:
    """``batch`` training pairs as one HDF5 shard; returns its list file."""
    run = subprocess.run([sys.executable, "-m", "datagen", "--preset", "training", "--count", str(batch),
                          "--size", str(size), "--out", str(out), "--seed", str(seed), "--quiet"],
                         cwd=REPO, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"datagen failed: {run.stderr.strip()[-500:]}")
    return out / "list.txt"


def net_text(listing: pathlib.Path, batch: int) -> str:
    sys.path.insert(0, str(REPO / "prototxt"))
    import make_nets  # noqa: E402  (prototxt/ is not a package)
    return make_nets.train_hdf5(batch=batch).replace('"data/train/list.txt"', f'"{listing}"')


def read_blobs(path: pathlib.Path) -> dict[str, list[np.ndarray]]:
    net = caffe_pb2().NetParameter()
    net.ParseFromString(path.read_bytes())
    return {layer.name: [np.asarray(b.data, dtype=np.float64) for b in layer.blobs]
            for layer in net.layer if layer.blobs}


def one_step(work: pathlib.Path, weights: pathlib.Path, gpu: int | None, env: dict) -> tuple[float, dict]:
    """(loss at iteration 0, {layer: [gradient per blob]}) from one SGD step of rate ``LR``."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "solver.prototxt").write_text(SOLVER.format(lr=LR, mode="GPU" if gpu is not None else "CPU"))
    cmd = [str(CAFFE), "train", "--solver=solver.prototxt", f"--weights={weights.resolve()}"]
    cmd += [f"--gpu={gpu}"] if gpu is not None else []
    run = subprocess.run(cmd, cwd=work, capture_output=True, text=True,
                         env={**os.environ, "GLOG_minloglevel": "0", **env})
    found = re.findall(r"Train net output #0: loss = (\S+)", run.stderr)  # iteration 0's first
    if run.returncode != 0 or not found:
        raise RuntimeError(f"caffe train failed in {work}: {run.stderr.strip()[-800:]}")
    before, after = read_blobs(weights), read_blobs(work / "step_iter_1.caffemodel")
    grads = {name: [(b - a) / LR for b, a in zip(before[name], after[name])] for name in after}
    return float(found[0]), grads


def compare(ref: tuple[float, dict], other: tuple[float, dict]) -> tuple[float, dict[str, float]]:
    """(relative loss difference, {layer: relative gradient difference}) of ``other`` to ``ref``."""
    loss_diff = abs(other[0] - ref[0]) / max(abs(ref[0]), 1e-30)
    layers = {}
    for name, grads in ref[1].items():
        num = sum(float(np.sum((o - g) ** 2)) for g, o in zip(grads, other[1][name]))
        den = sum(float(np.sum(g ** 2)) for g in grads)
        layers[name] = (num / max(den, 1e-300)) ** 0.5
    return loss_diff, layers


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpu", type=int, help="GPU to check on (default: the CPU build, both runs alike)")
    p.add_argument("--weights", type=pathlib.Path, default=REPO / "models" / "stem_restore.caffemodel")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--seed", type=int, default=990, help="datagen seed of the pairs (training seeds < 1000)")
    p.add_argument("--loss-tol", type=float, default=1e-3)
    p.add_argument("--grad-tol", type=float, default=2e-2)
    p.add_argument("--iterations", type=int, default=10, help="caffe time iterations per engine (0: no timing)")
    a = p.parse_args(argv)
    if not a.weights.is_file():
        raise SystemExit(f"{a.weights}: no such .caffemodel")
    print(f"device: {device_name(a.gpu)}; CAFFE_CUDA_MATH={os.environ.get('CAFFE_CUDA_MATH', 'tf32')}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        listing = write_pairs(tmp / "pairs", a.batch, a.size, a.seed)
        results = {}
        for engine, env in ENGINES.items():
            (tmp / engine).mkdir()
            (tmp / engine / "net.prototxt").write_text(net_text(listing, a.batch))
            results[engine] = one_step(tmp / engine, a.weights, a.gpu, env)
    loss_diff, layers = compare(results["caffe"], results["cudnn"])
    print(f"loss at the weights, batch {a.batch} x {a.size}^2: caffe {results['caffe'][0]:.6g}, "
          f"cudnn {results['cudnn'][0]:.6g} (relative difference {loss_diff:.2e}, tolerance {a.loss_tol:g})")
    norms = {name: sum(float(np.sum(g ** 2)) for g in grads) ** 0.5 for name, grads in results["caffe"][1].items()}
    print("gradient norm per layer (caffe): " + ", ".join(f"{name} {n:.3g}" for name, n in norms.items()))
    worst = max(layers, key=layers.get)
    print("gradient, relative difference per layer: "
          + ", ".join(f"{name} {d:.1e}" for name, d in layers.items())
          + f" (worst {worst}, tolerance {a.grad_tol:g})")
    agree = loss_diff < a.loss_tol and layers[worst] < a.grad_tol
    speed = ""
    faster = True
    if a.iterations > 0:
        ms = {e: caffe_time(a.batch, a.size, a.iterations, a.gpu, env)[1] for e, env in ENGINES.items()}
        faster = ms["cudnn"] < ms["caffe"]
        speed = f"; forward+backward caffe {ms['caffe']:.1f} ms, cudnn {ms['cudnn']:.1f} ms: " \
                f"cudnn / caffe speed {ms['caffe'] / ms['cudnn']:.2f}x"
        print(f"caffe time, batch {a.batch} x {a.size}^2:{speed[1:]}")
    if a.gpu is None:
        print("engine: caffe (no --gpu: both runs used the CPU build's engine)" if agree else
              f"engine: caffe (the two runs disagree: loss {loss_diff:.1e}, {worst} gradient {layers[worst]:.1e})")
    elif not agree:
        print(f"engine: caffe (cudnn disagrees: loss {loss_diff:.1e}, {worst} gradient {layers[worst]:.1e})")
    elif not faster:
        print("engine: caffe (cudnn is not faster)")
    else:
        print("engine: cudnn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
