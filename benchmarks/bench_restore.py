"""Benchmark restore.py on this CPU: throughput, efficiency vs sgemm, peak memory.

    .venv/bin/python benchmarks/bench_restore.py [--sizes 512 1024] [--tile 192]

For each image size a fresh subprocess (so that its peak RSS is its own):

1. measures OpenBLAS ``cblas_sgemm`` -- the very library Caffe links (found in
   ``/proc/self/maps`` after ``import caffe``) -- at the shape of Caffe's
   im2col GEMM for one window: M = 64 filters, K = 64 x 5 x 5 = 1600,
   N = tile^2 pixels;
2. restores an N x N image through :class:`restoration.engine.Restorer`
   (whole-image normalisation, tiling, denormalisation: what restore.py does
   per frame), after one warm-up window;
3. reports megapixels/s, achieved GFLOP/s counting 2 x MACs of the 12
   convolutions (1,027,200 MACs/px) over the image's pixels ("useful") and over
   the pixels actually pushed through the net (with the windows' overlap),
   each as a fraction of the sgemm rate, and the peak RSS (getrusage maxrss).

The weights are random (He-normal): compute and memory do not depend on their
values.  Prints a Markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHILD = r"""
import ctypes, json, os, resource, sys, time
os.environ["GLOG_minloglevel"] = "2"
sys.path.insert(0, {repo!r})
import numpy as np
import caffe
from restoration.engine import Restorer, load_net
from restoration.reference import PAPER_LAYERS, macs_per_pixel
from restoration.tiling import tiling_overhead

size, tile, proto, weights = {size}, {tile}, {proto!r}, {weights!r}

# -- sgemm of the OpenBLAS that Caffe itself links --------------------------
libs = sorted({{ln.split()[-1] for ln in open("/proc/self/maps")
                if "libopenblas" in ln and "scipy" not in ln and "numpy" not in ln}})
blas = ctypes.CDLL(libs[0])
f = blas.cblas_sgemm
f.restype = None
P = ctypes.c_void_p
f.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float, P, ctypes.c_int, P, ctypes.c_int,
                                   ctypes.c_float, P, ctypes.c_int]
M, K, N = 64, 1600, tile * tile
def sgemm_rate(reps=7):
    rng = np.random.default_rng(0)
    A = rng.random((M, K), dtype=np.float32); B = rng.random((K, N), dtype=np.float32)
    C = np.zeros((M, N), np.float32)
    rates = []
    for _ in range(reps):
        t = time.perf_counter()
        f(101, 111, 111, M, N, K, 1.0, A.ctypes.data, K, B.ctypes.data, N, 0.0, C.ctypes.data, N)
        rates.append(2.0 * M * N * K / (time.perf_counter() - t) / 1e9)
    return float(np.median(rates))
sgemm_before = sgemm_rate()

# -- restore --------------------------------------------------------------
net = load_net(proto, weights)
r = Restorer(net, tile=tile)
r.forward(np.zeros((min(tile, size), min(tile, size)), np.float32))  # warm-up: allocate the net
rng = np.random.default_rng(1)
img = rng.poisson(200.0, (size, size)).astype(np.uint16)
out = np.empty(img.shape, np.float32)
t = time.perf_counter()
res = r.restore(img, out=out)
dt = time.perf_counter() - t
maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before sgemm's buffers again
sgemm_after = sgemm_rate()
# the machine is shared: take the better of the two as "this machine's sgemm rate"
sgemm = max(sgemm_before, sgemm_after)
flop_px = 2.0 * macs_per_pixel(PAPER_LAYERS)
over = tiling_overhead((size, size), tile)
print(json.dumps(dict(
    size=size, tile=tile, seconds=dt, tiles=res.n_tiles, overhead=over,
    mpx_s=size * size / dt / 1e6,
    useful_gflops=flop_px * size * size / dt / 1e9,
    executed_gflops=flop_px * size * size * over / dt / 1e9,
    sgemm_gflops=sgemm, sgemm_before=sgemm_before, sgemm_after=sgemm_after, blas=libs[0], blas_threads=int(blas.openblas_get_num_threads()),
    maxrss_mb=maxrss_mb)))
"""


def make_weights(path: Path) -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe
    import numpy as np

    rng = np.random.default_rng(0)
    net = caffe.Net(str(REPO / "prototxt" / "deploy.prototxt"), caffe.TEST)
    for name in net.params:
        w, b = net.params[name]
        w.data[...] = rng.normal(0, np.sqrt(2.0 / np.prod(w.data.shape[1:])), w.data.shape)
        b.data[...] = 0.01
    net.save(str(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--tile", type=int, default=None, help="window edge (default: restore.py's)")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    args = ap.parse_args()
    from restoration.engine import DEFAULT_TILE

    tile = args.tile or DEFAULT_TILE
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "random.caffemodel"
        make_weights(weights)
        for size in args.sizes:
            code = CHILD.format(repo=str(REPO), size=size, tile=tile,
                                proto=str(REPO / "prototxt" / "deploy.prototxt"), weights=str(weights))
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            row = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"\nCPU: {os.cpu_count()} cores; BLAS: {rows[0]['blas']} ({rows[0]['blas_threads']} threads); "
          f"window (tile) {tile} px\n")
    print("| image | s | Mpx/s | windows | px through net / image px | useful GFLOP/s | "
          "executed GFLOP/s | sgemm GFLOP/s (same run) | useful / sgemm | executed / sgemm | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for w in rows:
        print(f"| {w['size']}² | {w['seconds']:.1f} | {w['mpx_s']:.4f} | {w['tiles']} | {w['overhead']:.2f} | "
              f"{w['useful_gflops']:.1f} | {w['executed_gflops']:.1f} | {w['sgemm_gflops']:.1f} | "
              f"{w['useful_gflops'] / w['sgemm_gflops']:.0%} | {w['executed_gflops'] / w['sgemm_gflops']:.0%} | "
              f"{w['maxrss_mb']:.0f} |")
    big = [w for w in rows if w["size"] > tile]  # the net is at full window size
    if len(big) >= 2:
        import numpy as np

        px = np.array([w["size"] ** 2 for w in big], float)
        mb = np.array([w["maxrss_mb"] for w in big], float)
        slope, icpt = np.polyfit(px, mb, 1)
        from restoration.engine import CAFFE_BYTES_PER_PIXEL, auto_tile

        base = icpt - CAFFE_BYTES_PER_PIXEL * tile**2 / 2**20  # Python + libraries
        t_auto = auto_tile((8192, 8192))
        auto_mb = base + CAFFE_BYTES_PER_PIXEL * t_auto**2 / 2**20 + slope * 8192**2
        print(f"\npeak RSS fit over sizes > tile: {icpt:.0f} MB + {slope * 2**20:.1f} B/px; "
              f"8192² with tile {tile}: {icpt + slope * 8192**2:.0f} MB predicted; "
              f"with restore.py's automatic tile for 8192² ({t_auto} px): {auto_mb:.0f} MB predicted "
              f"(net {CAFFE_BYTES_PER_PIXEL} B per window px, base {base:.0f} MB)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
