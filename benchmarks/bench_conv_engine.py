"""Caffe's convolution engines side by side: stock (im2col + OpenBLAS) vs DNNL fp32 vs DNNL bf16.

    .venv/bin/python benchmarks/bench_conv_engine.py                 # everything, ~15 min on 2 cores
    .venv/bin/python benchmarks/bench_conv_engine.py --parts layer   # one part: layer, train, restore
    .venv/bin/python benchmarks/bench_conv_engine.py --modes off fp32 bf16

Modes are values of ``CAFFE_DNNL_MATH`` (``off`` = Caffe's own ConvolutionLayer,
the stock engine with the project's im2col patch). ``bf16`` runs by default
only where oneDNN has bf16 kernels (AVX-512 or AMX); elsewhere it falls to
oneDNN's reference code, which is not a speed to report.

Parts, each measured in a fresh subprocess per mode, modes alternating,
``--rounds`` times (the best round is kept: the 2-vCPU machine is shared):

- ``layer``: one Convolution 64 -> 64, 5 x 5, pad 2 on a training batch
  (8 x 64 x 64 px): GFLOP/s of forward, backward-weights (the layer with
  ``propagate_down: false``) and backward-data (backward with
  ``force_backward``, which computes both, minus backward-weights);
- ``train``: the paper's 12-layer net (``prototxt/deploy.prototxt`` with
  ``force_backward``), forward + backward, seconds per iteration at batch
  8 x 64^2 and 32 x 96^2 (the solver's update is < 1 % and left out);
- ``restore``: ``restoration.stream.LayerStream`` (restore.py's CPU engine)
  on 512^2 and 2048^2 normalised frames with the shipped weights: Mpx/s.

Prints the CPU model, its ISA flags and what oneDNN chose, then one
table with ratios to the stock engine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from stem_restore.machine import cpu_model

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"

CHILD = r"""
import json, os, re, sys
os.environ["GLOG_minloglevel"] = "2"
repo, part, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, repo)
import numpy as np
import caffe
caffe.set_mode_cpu()

from benchmarks.pycaffe_timing import best_seconds as best, random_net as net_from

out = {"engine": caffe.conv_engine_info()}
if part == "layer":
    n, c, h, w, k = 8, 64, 64, 64, 5
    flop = 2.0 * n * h * w * c * c * k * k
    # loss_weight on the convolution's top makes Caffe run its backward. Weights only:
    # propagate_down false; both: force_backward (which also forces the parameter
    # gradients, so backward-data = both - weights only).
    layer = ('%s'
             'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: %d dim: %d dim: %d dim: %d } } }\n'
             'layer { name: "conv" type: "Convolution" bottom: "data" top: "out" loss_weight: 1 %s'
             'convolution_param { num_output: %d kernel_size: %d pad: 2 } }\n')
    weights_only = net_from(layer % ("", n, c, h, w, "propagate_down: false ", c, k))
    both = net_from(layer % ("force_backward: true\n", n, c, h, w, "", c, k))
    fwd = best(weights_only.forward, reps)
    bw = best(lambda: weights_only.backward(), reps)
    bwd = best(lambda: both.backward(), reps)
    out.update(fwd=flop / fwd / 1e9, bwd_weights=flop / bw / 1e9, bwd_data=flop / max(bwd - bw, 1e-9) / 1e9)
elif part == "train":
    deploy = open(os.path.join(repo, "prototxt", "deploy.prototxt")).read()
    for batch, size in ((8, 64), (32, 96)):
        text = re.sub(r"dim: 1 dim: 1 dim: \d+ dim: \d+", "dim: %d dim: 1 dim: %d dim: %d" % (batch, size, size), deploy)
        net = net_from("force_backward: true\n" + text)
        def step():
            net.forward(); net.backward()
        out["s_per_iter_%dx%d" % (batch, size)] = best(step, max(1, reps // 2))
        del net
elif part == "restore":
    from restoration.stream import LayerStream
    model = os.path.join(repo, "models", "deploy.prototxt")
    net = caffe.Net(model, caffe.TEST, weights=os.path.join(repo, "models", "stem_restore.caffemodel"))
    stream = LayerStream.from_net(model, net)
    rng = np.random.default_rng(1)
    for size in (512, 2048):
        x = rng.normal(0, 1, (size, size)).astype(np.float32)
        t = best(lambda: stream.forward(x), 1 if size > 1000 else reps)
        out["mpx_s_%d" % size] = size * size / t / 1e6
print("RESULT " + json.dumps(out))
"""


def cpu_flags() -> str:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]
    return " ".join(f for f in wanted if f in flags) or "none of avx2/avx512/amx"


def run_child(mode: str, part: str, reps: int) -> dict:
    env = {**os.environ, "CAFFE_DNNL_MATH": mode}
    proc = subprocess.run([str(PYTHON), "-c", CHILD, str(REPO), part, str(reps)],
                          capture_output=True, text=True, env=env, cwd=REPO)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{mode}/{part} failed:\n{proc.stderr[-2000:]}")


def merge_best(old: dict | None, new: dict) -> dict:
    """Keep the faster value of every number (higher rates, lower times)."""
    if old is None:
        return new
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, float):
            merged[key] = min(old[key], value) if key.startswith("s_per") else max(old[key], value)
    return merged


METRICS = {
    "layer": [("fwd", "conv 64->64 5x5, 8x64^2: forward GFLOP/s"),
              ("bwd_data", "  backward-data GFLOP/s"),
              ("bwd_weights", "  backward-weights GFLOP/s")],
    "train": [("s_per_iter_8x64", "12-layer net fwd+bwd, batch 8x64^2: s/iter"),
              ("s_per_iter_32x96", "12-layer net fwd+bwd, batch 32x96^2: s/iter")],
    "restore": [("mpx_s_512", "restore (layers engine) 512^2: Mpx/s"),
                ("mpx_s_2048", "restore (layers engine) 2048^2: Mpx/s")],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", nargs="+", default=None,
                    help="CAFFE_DNNL_MATH values (default: off fp32, plus bf16 where oneDNN has bf16 kernels)")
    ap.add_argument("--parts", nargs="+", choices=list(METRICS), default=list(METRICS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    a = ap.parse_args()
    probe = run_child("fp32", "none", 1)["engine"]
    modes = a.modes
    if modes is None:
        modes = ["off", "fp32"] + (["bf16"] if "avx512" in probe else [])
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); flags: {cpu_flags()}")
    print(f"oneDNN: {probe}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    results: dict = {}
    for r in range(a.rounds):
        for part in a.parts:
            for mode in modes:
                res = run_child(mode, part, a.repeats)
                results.setdefault(part, {})[mode] = merge_best(results.get(part, {}).get(mode), res)
                print(f"  round {r + 1} {part:7s} {mode:4s} " +
                      " ".join(f"{k}={v:.3g}" for k, v in res.items() if isinstance(v, float)), flush=True)
    engines = {m: results[a.parts[0]][m]["engine"] for m in modes}
    print("\nengines: " + "; ".join(f"{m}: {e}" for m, e in engines.items()))
    head = "| measure | " + " | ".join(modes) + " | " + " | ".join(f"{m}/off" for m in modes if m != "off") + " |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for part in a.parts:
        for key, label in METRICS[part]:
            vals = {m: results[part][m][key] for m in modes}
            cells = [f"{vals[m]:.3g}" for m in modes]
            if "off" in vals:
                for m in modes:
                    if m == "off":
                        continue
                    ratio = vals["off"] / vals[m] if key.startswith("s_per") else vals[m] / vals["off"]
                    cells.append(f"{ratio:.2f}x")
            print(f"| {label} | " + " | ".join(cells) + " |")
    if a.json:
        a.json.write_text(json.dumps({"cpu": cpu_model(), "flags": cpu_flags(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
