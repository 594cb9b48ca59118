"""Short learning-rate sweep for the two solver stages, with real Caffe.

Each candidate rate trains the paper's net for a few iterations from the same
initial weights (same ``random_seed``) on the same data; the table reports
the mean training loss over the last iterations and the held-out test loss.
The SGD candidates all start from the best Adam candidate's weights, as in
run_training.sh.

    python benchmarks/lr_sweep.py DATA_DIR --out BENCH_DIR \
        --adam 1e-3,3e-4,1e-4 --sgd 1e-6,1e-7,1e-8 --iters 30 --sgd-iters 15

DATA_DIR holds train/ and test/ from ``python -m datagen`` (HDF5).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[1]
CAFFE = REPO / ".venv" / "bin" / "caffe"


def solver_text(template: pathlib.Path, **overrides) -> str:
    """The solver file ``template`` with ``key: value`` lines replaced."""
    text = template.read_text()
    for key, value in overrides.items():
        text, n = re.subn(rf"^{key}:.*$", f"{key}: {value}", text, flags=re.M)
        if n == 0:
            text += f"{key}: {value}\n"
    return text


def train(workdir: pathlib.Path, solver: str, weights: str | None = None) -> tuple[list[float], list[float]]:
    """Run ``caffe train``; return (training losses, test losses) from its log."""
    (workdir / "solver.prototxt").write_text(solver)
    args = [str(CAFFE), "train", "--solver=solver.prototxt"]
    if weights:
        args.append(f"--weights={weights}")
    run = subprocess.run(args, cwd=workdir, capture_output=True, text=True,
                         env={**os.environ, "GLOG_minloglevel": "0"})  # the losses are read from the log
    (workdir / "caffe.log").write_text(run.stderr)
    if run.returncode != 0:
        raise RuntimeError(f"caffe failed in {workdir}: {run.stderr[-500:]}")
    train_losses = [float(v) for v in re.findall(r"Iteration \d+ \(.*?\), loss = (\S+)", run.stderr)]
    test_losses = [float(v) for v in re.findall(r"Test net output #0: loss = (\S+)", run.stderr)]
    return train_losses, test_losses


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=pathlib.Path)
    p.add_argument("--out", type=pathlib.Path, required=True)
    p.add_argument("--adam", default="1e-3,3e-4,1e-4")
    p.add_argument("--sgd", default="1e-6,1e-7,1e-8")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--sgd-iters", type=int, default=15)
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    net = (REPO / "prototxt" / "train_hdf5.prototxt").read_text()
    net = re.sub(r"batch_size: \d+", f"batch_size: {args.batch}", net)
    rows = []
    best = None
    for stage, rates, iters, template in (
            ("adam", args.adam, args.iters, REPO / "solvers/quick/adam.prototxt"),
            ("sgd", args.sgd, args.sgd_iters, REPO / "solvers/quick/sgd.prototxt")):
        for lr in rates.split(","):
            work = args.out / f"{stage}_{lr}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            (work / "data").symlink_to(args.data.resolve())
            (work / "train.prototxt").write_text(net)
            solver = solver_text(template, base_lr=lr, max_iter=iters, test_interval=iters,
                                 snapshot=iters, display=1, average_loss=1,
                                 snapshot_prefix='"snap"')
            weights = None
            if stage == "sgd":
                weights = str((args.out / f"adam_{best}" / f"snap_iter_{args.iters}.caffemodel").resolve())
            tr, te = train(work, solver, weights)
            tail = sum(tr[-5:]) / len(tr[-5:])
            rows.append((stage, lr, tr[0], tail, te[0], te[-1]))
            print(f"{stage} lr={lr}: train loss {tr[0]:.1f} -> {tail:.1f}; test {te[0]:.1f} -> {te[-1]:.1f}",
                  flush=True)
        if stage == "adam":
            best = min((r for r in rows if r[0] == "adam"), key=lambda r: r[5])[1]
    lines = ["| stage | base_lr | first train loss | mean of last 5 | test loss before | test loss after |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {s} | {lr} | {a:.1f} | {b:.1f} | {c:.1f} | {d:.1f} |" for s, lr, a, b, c, d in rows]
    (args.out / "sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
