"""Caffe's CPU convolution with and without patch 0003 (contiguous-row im2col), same run.

    .venv/bin/python benchmarks/bench_im2col.py                      # the project's build only
    .venv/bin/python benchmarks/bench_im2col.py --build stock=/tmp/stock/python

Each ``--build NAME=DIR`` is a pycaffe directory (``DIR/caffe/_caffe.so``); the
project's own build (``.caffe/cpu/src/python``, with ``scripts/patches/*``) is
always included as ``patched``.  A stock build for comparison is the pinned
source with patches 0001-0002 only (the protobuf and NumPy fixes, without
which it does not build or import) and the same CMake flags as
``scripts/install.sh``; e.g. ``tar -xzf .caffe/downloads/caffe_*.orig.tar.gz
-C /tmp/stock/src``, ``patch -p1`` 0001 and 0002 there, then ``cmake
../src -DCPU_ONLY=ON -DBLAS=Open -DUSE_OPENCV=OFF -DBUILD_python=ON
-Dpython_version=3 ...`` and ``make caffe pycaffe`` in ``/tmp/stock/build``
(``/tmp/stock/src/python`` is then the DIR).

For every build, in a fresh subprocess, the best of ``--repeats`` timings of:

- ``Im2col`` layer, forward (what the patch changes), 64 channels, 5 x 5;
- one 64 -> 64, 5 x 5 Convolution + ReLU forward on a restore block
  (5 x 171 output px plus halo, ``restoration.stream``'s block) and on a
  training batch (8 x 64 x 64, pad 2), and the training batch's forward +
  backward (backward = im2col again for the weight gradient, col2im for the
  input gradient);

as microseconds per output pixel.  Builds are run alternately, ``--rounds``
times, and the best round is kept: the 2-vCPU machine is shared and noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT_PYCAFFE = REPO / ".caffe" / "cpu" / "src" / "python"

CHILD = r"""
import json, os, sys
os.environ["GLOG_minloglevel"] = "2"
pycaffe, reps, repo = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.path.insert(0, pycaffe)
import numpy as np
import caffe
caffe.set_mode_cpu()
assert os.path.realpath(caffe.__file__).startswith(os.path.realpath(pycaffe)), caffe.__file__

sys.path.insert(1, repo)
from benchmarks.pycaffe_timing import best_seconds as best, random_net as net

def data(n, c, h, w):
    return ('layer {{ name: "data" type: "Input" top: "data" '
            'input_param {{ shape {{ dim: {} dim: {} dim: {} dim: {} }} }} }}\n').format(n, c, h, w)

CONV = ('layer {{ name: "conv" type: "Convolution" bottom: "data" top: "out" '
        'convolution_param {{ num_output: 64 kernel_size: 5 pad: {} }} }}\n'
        'layer {{ name: "relu" type: "ReLU" bottom: "out" top: "out" }}\n')
rows, cols = 5, 171                      # restore block: 855 output px
out = {}
i2c = net(data(1, 64, rows + 4, cols + 4) +
          'layer { name: "i2c" type: "Im2col" bottom: "data" top: "col" convolution_param { kernel_size: 5 } }\n')
out["im2col, restore block"] = best(i2c.forward, reps) / (rows * cols)
block = net(data(1, 64, rows + 4, cols + 4) + CONV.format(0))
out["conv+ReLU forward, restore block"] = best(block.forward, reps) / (rows * cols)
train = net(data(8, 64, 64, 64) + CONV.format(2), force_backward=True)
px = 8 * 64 * 64
out["conv+ReLU forward, batch 8 x 64²"] = best(train.forward, reps) / px
def fwd_bwd():
    train.forward(); train.backward()
out["conv+ReLU forward+backward, batch 8 x 64²"] = best(fwd_bwd, reps) / px
print(json.dumps({k: v * 1e6 for k, v in out.items()}))
"""


def run_build(pycaffe: str, reps: int) -> dict[str, float]:
    r = subprocess.run([sys.executable, "-c", CHILD, pycaffe, str(reps), str(REPO)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{pycaffe}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else 'failed'}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", action="append", default=[], metavar="NAME=DIR",
                    help="another pycaffe directory to compare (repeatable)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    builds = {"patched": str(PROJECT_PYCAFFE)}
    for spec in args.build:
        name, _, path = spec.partition("=")
        if not path or not (Path(path) / "caffe").is_dir():
            raise SystemExit(f"--build {spec!r}: expected NAME=DIR with DIR/caffe a pycaffe package")
        builds[name] = path
    results: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for name, path in builds.items():
            r = run_build(path, args.repeats)
            print(name, json.dumps(r), file=sys.stderr, flush=True)
            results[name] = {k: min(v, results.get(name, {}).get(k, v)) for k, v in r.items()}
    names = list(builds)
    print("\n| µs per output pixel | " + " | ".join(names) +
          ("".join(f" | {n} / patched" for n in names[1:])) + " |")
    print("|---" * (1 + 2 * len(names) - 1) + "|")
    for key in results["patched"]:
        cells = [f"{results[n][key]:.3f}" for n in names]
        ratios = [f"{results[n][key] / results['patched'][key]:.2f}×" for n in names[1:]]
        print(f"| {key} | " + " | ".join(cells + ratios) + " |")


if __name__ == "__main__":
    main()
