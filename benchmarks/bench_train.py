"""Caffe training speed of the paper's net on this machine.

    python benchmarks/bench_train.py [--batch 8 --size 64] [--run runs/quick]

1. ``caffe time`` (forward + backward, 5 iterations) of the 12-layer net at the
   given batch and patch size: seconds per iteration, patches/s, GFLOP/s.
2. With ``--run``, the seconds per iteration that Caffe itself logged while
   training that run ("Iteration N (x iter/s, ...)"), per stage.

With ``--gpu N`` step 1 runs on that GPU once per cuBLAS math mode
(``CAFFE_CUDA_MATH=fp32`` then ``tf32``, scripts/patches/cuda/0102-*), in one
run, and prints their ratio.  The device (CPU model or GPU name) is printed first.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import tempfile

from stem_restore.machine import cpu_model

REPO = pathlib.Path(__file__).resolve().parents[1]
CAFFE = REPO / ".venv" / "bin" / "caffe"


def flops_per_pixel(n_layers: int = 12, filters: int = 64, k: int = 5) -> float:
    """Forward multiply-adds x 2 of the net, per output pixel."""
    macs = k * k * (1 * filters + (n_layers - 2) * filters * filters + filters * 1)
    return 2.0 * macs


def device_name(gpu: int | None) -> str:
    """The CPU model (/proc/cpuinfo), or the GPU's name as Caffe's device_query logs it."""
    if gpu is None:
        return cpu_model()
    q = subprocess.run([str(CAFFE), "device_query", f"-gpu={gpu}"], capture_output=True, text=True,
                       env={**os.environ, "GLOG_minloglevel": "0"})
    m = re.search(r"Name:\s+(.+)", q.stderr)
    return m.group(1).strip() if m else f"GPU {gpu} (device_query failed: {q.stderr.strip()[-200:]})"


def gpu_engine() -> str:
    """The GPU convolution engine Caffe's default picks: cuDNN in a build linked with it
    (scripts/patches/cuda/0103-*) unless CAFFE_CUDNN=0, else im2col + cuBLAS."""
    tool = CAFFE
    text = tool.read_bytes()[:4096] if tool.is_file() else b""
    m = re.search(rb"exec (\S+)", text) if text.startswith(b"#!") else None  # scripts/gpu_bundle.sh's shim
    if m:
        tool = pathlib.Path(m.group(1).decode())
    # libcaffe sits in ../lib beside the tool (a build and a bundle alike); a bundle's RUNPATH is
    # the build machine's, so it is found through LD_LIBRARY_PATH, as the shim does.
    ldd = subprocess.run(["ldd", str(tool)], capture_output=True, text=True,
                         env={**os.environ, "LD_LIBRARY_PATH": str(tool.parent.parent / "lib")}).stdout
    if "libcudnn" in ldd and os.environ.get("CAFFE_CUDNN", "1") != "0":
        return "cuDNN"
    return "cuBLAS (im2col + GEMM)"


def caffe_time(batch: int, size: int, iterations: int = 5, gpu: int | None = None,
               env: dict | None = None) -> tuple[float, float]:
    """(forward ms, forward+backward ms) per iteration from ``caffe time``."""
    deploy = (REPO / "prototxt" / "deploy.prototxt").read_text()
    deploy = re.sub(r"dim: 1 dim: 1 dim: \d+ dim: \d+", f"dim: {batch} dim: 1 dim: {size} dim: {size}", deploy)
    deploy = deploy.replace('name: "StemRestore12"\n', 'name: "StemRestore12"\nforce_backward: true\n', 1)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(deploy)
    cmd = [str(CAFFE), "time", f"-model={f.name}", f"-iterations={iterations}"]
    cmd += [f"-gpu={gpu}"] if gpu is not None else []
    run = subprocess.run(cmd, capture_output=True, text=True,
                         env={**os.environ, "GLOG_minloglevel": "0", **(env or {})})
    os.unlink(f.name)
    if run.returncode != 0:
        raise SystemExit(f"caffe time failed: {run.stderr.strip()[-1000:]}")
    fwd = float(re.search(r"Average Forward pass: ([\d.]+) ms", run.stderr).group(1))
    fb = float(re.search(r"Average Forward-Backward: ([\d.]+) ms", run.stderr).group(1))
    return fwd, fb


def logged_seconds_per_iter(log: pathlib.Path) -> list[float]:
    """Caffe's own timing lines: 'Iteration N (x iter/s, y s/k iters)'."""
    return [float(a) / float(b) for a, b in re.findall(r"iter/s, ([\d.]+)s/(\d+) iters\)", log.read_text())]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--run", type=pathlib.Path)
    p.add_argument("--gpu", type=int, help="time on this GPU, in fp32 and tf32 cuBLAS math")
    p.add_argument("--iterations", type=int, default=5)
    a = p.parse_args()
    print(f"device: {device_name(a.gpu)}; engine: "
          f"{gpu_engine() if a.gpu is not None else 'CAFFE_DNNL_MATH=' + os.environ.get('CAFFE_DNNL_MATH', 'auto')}")
    px = a.batch * a.size * a.size
    gflop = 3 * flops_per_pixel() * px / 1e9  # backward ~ 2x forward
    modes = [("fp32", {"CAFFE_CUDA_MATH": "fp32"}), ("tf32", {"CAFFE_CUDA_MATH": "tf32"})] if a.gpu is not None \
        else [("", {})]
    times = {}
    for mode, env in modes:
        fwd, fb = caffe_time(a.batch, a.size, a.iterations, a.gpu, env)
        times[mode] = fb
        print(f"caffe time{' ' + mode if mode else ''}, batch {a.batch} x {a.size}^2: forward {fwd / 1000:.3f} s, "
              f"forward+backward {fb / 1000:.3f} s/iter = {a.batch / (fb / 1000):.1f} patches/s, "
              f"{gflop / (fb / 1000):.1f} GFLOP/s (training), "
              f"{flops_per_pixel() * px / 1e9 / (fwd / 1000):.1f} GFLOP/s (forward)")
    if len(times) == 2:
        print(f"tf32 / fp32 speed: {times['fp32'] / times['tf32']:.2f}x")
    if a.run:
        for log in sorted((a.run / "logs").glob("*.log")):
            s = logged_seconds_per_iter(log)
            if s:
                print(f"{log.name}: median {statistics.median(s):.2f} s/iter over {len(s)} display intervals")


if __name__ == "__main__":
    main()
