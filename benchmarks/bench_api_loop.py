#!/usr/bin/env python3
"""Per-frame time: the Python API with one loaded model vs restore.py once per frame (issue 14).

    .venv/bin/python benchmarks/bench_api_loop.py [--frames 20] [--size 256] [--cli-calls 5]

A: ``model = restoration.load_model()`` once, then ``model.restore(frame)`` for
``--frames`` different frames (synthetic lattice images in counts).
B: ``restore.py frame_k.tif -o out`` as a new process for each of ``--cli-calls``
frames (interpreter start, model checks, Caffe's trial load, net load, the restored and
difference TIFFs, no figure) -- what a per-frame script loop costs.
Prints seconds per frame for both, the model's load time, and the CPU's convolution
engine.  Wall-clock times on a shared machine: compare runs made back to back.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def frames(n: int, size: int) -> np.ndarray:
    """``n`` Poisson-noisy lattice frames of ``size`` x ``size`` px (float32 counts)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:size, :size].astype(np.float32)
    out = np.empty((n, size, size), np.float32)
    for k in range(n):
        phase = rng.uniform(0, 2 * np.pi, 2)
        lattice = (np.cos(2 * np.pi * x / 7.1 + phase[0]) * np.cos(2 * np.pi * y / 6.9 + phase[1])) ** 2
        out[k] = rng.poisson(20 + 500 * lattice)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--cli-calls", type=int, default=5)
    args = p.parse_args()

    import tifffile

    import restoration

    data = frames(max(args.frames, args.cli_calls), args.size)
    t0 = time.perf_counter()
    model = restoration.load_model()
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for frame in data[:args.frames]:
        model.restore(frame, progress=False)
    api_s = (time.perf_counter() - t0) / args.frames

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cli = []
        for k in range(args.cli_calls):
            src = tmp / f"frame_{k}.tif"
            tifffile.imwrite(src, data[k])
            t0 = time.perf_counter()
            subprocess.run([sys.executable, str(REPO / "restore.py"), str(src), "-o", str(tmp / "out")],
                           check=True, capture_output=True)
            cli.append(time.perf_counter() - t0)
    print(f"conv engine: {model.conv_engine}; engine: {model.engine}; frames {args.size}^2 px")
    print(f"API, one loaded model: load {load_s:.2f} s once, then {api_s:.3f} s/frame "
          f"({args.frames} frames)")
    print(f"restore.py, one process per frame: {np.mean(cli):.3f} s/frame "
          f"(min {min(cli):.3f}, max {max(cli):.3f}; {args.cli_calls} calls)")
    print(f"ratio restore.py / API: {np.mean(cli) / api_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
