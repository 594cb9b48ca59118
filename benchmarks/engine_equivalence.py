"""Training with each convolution engine from the same seed: held-out loss curves in one plot.

    for m in off fp32; do
        CAFFE_DNNL_MATH=$m bash run_training.sh --preset quick --run runs/equiv_$m --train-only
    done
    .venv/bin/python benchmarks/engine_equivalence.py runs/equiv_off runs/equiv_fp32 -o equivalence.png

Every run folder's Caffe logs (``logs/*.log``, stages concatenated as in
:mod:`evaluate.losscurve`) give its held-out ("Testing net") losses; they are
drawn together, and the final ones are printed with their largest relative
difference (issue 12 asks for <= 2 %), plus each run's median seconds per
iteration as Caffe logged them.  The label of a run is its folder name.
"""
from __future__ import annotations

import argparse
import io
import re
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evaluate.checks import parse_caffe_log, stage_order_key  # noqa: E402
from evaluate.losscurve import last_per_iteration  # noqa: E402
from stem_restore.atomic import atomic_write_bytes  # noqa: E402


def held_out_curve(run: Path) -> tuple[list[int], list[float], list[float]]:
    """(iterations, held-out losses, seconds per iteration) of a run, stages concatenated."""
    logs = [parse_caffe_log(f.read_text(errors="replace"), str(f)) for f in sorted((run / "logs").glob("*.log"))]
    stages = sorted((lg for lg in logs if lg.solver_type and lg.train_losses), key=stage_order_key)
    its, losses, offset = [], [], 0
    for lg in stages:
        t_its, t_losses = last_per_iteration(lg.test_losses)
        its += [offset + i for i in t_its]
        losses += t_losses
        offset += last_per_iteration(lg.train_losses)[0][-1]
    seconds = []
    for f in (run / "logs").glob("*.log"):
        seconds += [float(a) / float(b) for a, b in
                    re.findall(r"iter/s, ([\d.]+)s/(\d+) iters\)", f.read_text(errors="replace"))]
    return its, losses, seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True, help="PNG of the curves")
    a = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    finals = {}
    for run in a.runs:
        its, losses, seconds = held_out_curve(run)
        if not losses:
            print(f"{run}: no held-out losses in {run / 'logs'}", file=sys.stderr)
            return 1
        finals[run.name] = losses[-1]
        ax.plot(its, losses, "o-", ms=3, label=run.name)
        sec = statistics.median(seconds) if seconds else float("nan")
        print(f"{run.name}: held-out loss {losses[0]:.1f} (iteration {its[0]}) -> {losses[-1]:.2f} "
              f"(iteration {its[-1]}); median {sec:.2f} s/iteration")
    spread = (max(finals.values()) - min(finals.values())) / min(finals.values())
    print(f"final held-out losses: " + ", ".join(f"{k} {v:.2f}" for k, v in finals.items()) +
          f"; largest relative difference {100 * spread:.2f} %")
    ax.set_yscale("log")
    ax.set_xlabel("iteration (Adam, then SGD)")
    ax.set_ylabel("held-out EuclideanLoss")
    ax.set_title("same seed, same data: convolution engines")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(a.out, buf.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
