"""Plot the training loss of a run's Caffe logs: ``python -m evaluate.losscurve RUNDIR/logs -o loss.png``.

Every ``*.log`` with a solver block (see :func:`evaluate.checks.parse_caffe_log`)
is one stage; stages are drawn one after the other in glog-timestamp order
(Adam, then SGD), each stage's iterations offset by the previous stage's last
iteration, with a vertical line at each switch.  A log that holds a resumed
stage repeats iterations: the last value logged for an iteration wins.
Training loss ("Iteration N (...), loss = L") as lines, test-net losses
("Iteration N, Testing net" ... "loss = L") as markers.  Log-scaled loss axis.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stem_restore.figures import save_png

from .checks import stage_order_key, parse_caffe_log


def last_per_iteration(points) -> tuple[list[int], list[float]]:
    """Iterations ascending, each with the last value logged for it."""
    latest = dict(points)
    its = sorted(latest)
    return its, [latest[i] for i in its]


def plot_loss_curves(log_dir: str | Path, out: str | Path) -> int:
    """Write the PNG; returns the number of stages plotted (0 = nothing found)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = [parse_caffe_log(f.read_text(errors="replace"), str(f)) for f in sorted(Path(log_dir).glob("*.log"))]
    stages = sorted((lg for lg in logs if lg.solver_type and lg.train_losses), key=stage_order_key)
    fig, ax = plt.subplots(figsize=(7, 4))
    offset = 0
    for n, lg in enumerate(stages):
        its, losses = last_per_iteration(lg.train_losses)
        line, = ax.plot([offset + i for i in its], losses, label=f"{lg.solver_type} train ({Path(lg.path).name})")
        if lg.test_losses:
            t_its, t_losses = last_per_iteration(lg.test_losses)
            ax.plot([offset + i for i in t_its], t_losses, "o", color=line.get_color(),
                    label=f"{lg.solver_type} test")
        if n > 0:
            ax.axvline(offset, color="k", ls="--", lw=1)
            ax.annotate(f"{stages[n - 1].solver_type} \u2192 {lg.solver_type}", (offset, 1), xycoords=("data", "axes fraction"),
                        xytext=(3, -12), textcoords="offset points", fontsize=8)
        offset += its[-1]
    ax.set_xlabel("iteration (stages concatenated)")
    ax.set_ylabel("EuclideanLoss  (sum of squares / 2 / batch)")
    if stages:
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f"no Caffe training logs in {log_dir}", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    save_png(fig, out, dpi=100)
    return len(stages)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evaluate.losscurve", description=__doc__)
    p.add_argument("log_dir", help="folder with the run's Caffe logs (adam.log, sgd.log)")
    p.add_argument("-o", "--out", default="loss.png", help="output PNG (default loss.png)")
    a = p.parse_args(argv)
    n = plot_loss_curves(a.log_dir, a.out)
    print(f"wrote {a.out} ({n} stage(s))")
    if n == 0:
        print(f"warning: no Caffe training logs with losses in {a.log_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
