"""Caffe training speed of the paper's net on this machine.

    python benchmarks/bench_train.py [--batch 8 --size 64] [--run runs/quick]

1. ``caffe time`` (forward + backward, 5 iterations) of the 12-layer net at the
   given batch and patch size: seconds per iteration, patches/s, GFLOP/s.
2. With ``--run``, the seconds per iteration that Caffe itself logged while
   training that run ("Iteration N (x iter/s, ...)"), per stage.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
CAFFE = REPO / ".venv" / "bin" / "caffe"


def flops_per_pixel(n_layers: int = 12, filters: int = 64, k: int = 5) -> float:
    """Forward multiply-adds x 2 of the net, per output pixel."""
    macs = k * k * (1 * filters + (n_layers - 2) * filters * filters + filters * 1)
    return 2.0 * macs


def caffe_time(batch: int, size: int, iterations: int = 5) -> tuple[float, float]:
    """(forward ms, forward+backward ms) per iteration from ``caffe time``."""
    deploy = (REPO / "prototxt" / "deploy.prototxt").read_text()
    deploy = re.sub(r"dim: 1 dim: 1 dim: \d+ dim: \d+", f"dim: {batch} dim: 1 dim: {size} dim: {size}", deploy)
    deploy = deploy.replace('name: "StemRestore12"\n', 'name: "StemRestore12"\nforce_backward: true\n', 1)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(deploy)
    run = subprocess.run([str(CAFFE), "time", f"-model={f.name}", f"-iterations={iterations}"],
                         capture_output=True, text=True, env={**os.environ, "GLOG_minloglevel": "0"})
    os.unlink(f.name)
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
    a = p.parse_args()
    fwd, fb = caffe_time(a.batch, a.size)
    px = a.batch * a.size * a.size
    gflop = 3 * flops_per_pixel() * px / 1e9  # backward ~ 2x forward
    print(f"caffe time, batch {a.batch} x {a.size}^2: forward {fwd / 1000:.2f} s, forward+backward "
          f"{fb / 1000:.2f} s/iter = {a.batch / (fb / 1000):.2f} patches/s, "
          f"{gflop / (fb / 1000):.1f} GFLOP/s (training), {flops_per_pixel() * px / 1e9 / (fwd / 1000):.1f} GFLOP/s (forward)")
    if a.run:
        for log in sorted((a.run / "logs").glob("*.log")):
            s = logged_seconds_per_iter(log)
            if s:
                print(f"{log.name}: median {statistics.median(s):.2f} s/iter over {len(s)} display intervals")


if __name__ == "__main__":
    main()
