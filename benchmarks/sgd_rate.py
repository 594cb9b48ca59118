"""The SGD stage's rate, measured from the Adam stage's own history: no training needed.

    python benchmarks/sgd_rate.py runs/long96d/adam.prototxt STATE [STATE ...] [--momentum 0.9]

The paper's schedule ends with SGD after Adam (solvers/*/sgd.prototxt), and a rate carried over
from another patch size can be far off: from Adam 14,976 the schedule's 4e-8 doubled the
weighted training loss at once, 1e-8 tracked Adam (BENCHMARKS.md, session 21).  This reads an
Adam ``.solverstate`` (Caffe's ``AdamSolver``: the first moments ``m`` of every parameter blob,
then the second moments ``v``) and compares the step each optimiser takes per iteration:

* Adam: ``lr_t * m / (sqrt(v) + delta)`` with ``lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)``,
  ``t`` = iteration + 1 and ``lr`` the solver's rate at that iteration (``multistep``: ``base_lr x
  gamma^current_step``, the step count the state holds);
* SGD with momentum ``mu`` (``v <- mu v + lr g``), in its steady state for gradients of mean
  ``g_mean`` and per-parameter variance ``s^2``: a velocity of norm
  ``lr * sqrt(|g_mean|^2 / (1 - mu)^2 + sum(s^2) / (1 - mu^2))``, with ``|g_mean|^2 ~ |m|^2``
  (``m`` averages ~10 iterations; ``beta1`` = 0.9) and ``sum(s^2) ~ sum(v) - |m|^2`` (``v``
  averages ~1000).

and prints, per convolution and for the whole net, the SGD ``base_lr`` whose step has Adam's
norm.  SGD's steps are not spread over the layers as Adam's are (Adam scales each parameter by
its own gradient size): the per-layer rates show which layers one global SGD rate would move
faster or slower than Adam did.  Several states (e.g. the last snapshots) give the spread of the
estimate; ``m`` of one snapshot is a noisy sample.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stem_restore.network import CONV_NAMES, PARAM_BLOBS, caffe_pb2  # noqa: E402
from stem_restore.snapshots import paper_adam_pair  # noqa: E402
from stem_restore.machine import cpu_model  # noqa: E402


def solver_rate(solver, iteration: int, current_step: int) -> float:
    """The rate of an Adam ``SolverParameter`` at ``iteration`` (policies fixed and multistep)."""
    if solver.lr_policy == "fixed":
        return float(solver.base_lr)
    if solver.lr_policy == "multistep":
        return float(solver.base_lr * solver.gamma ** current_step)
    raise ValueError(f"lr_policy {solver.lr_policy!r}: give the rate with --adam-lr")


def moments(state) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """First and second moments of every parameter blob (weights, bias of each convolution)."""
    blobs = [np.asarray(b.data if len(b.data) else b.double_data, dtype=np.float64) for b in state.history]
    return blobs[:PARAM_BLOBS], blobs[PARAM_BLOBS:]


def step_norms(m: list[np.ndarray], v: list[np.ndarray], lr_t: float, delta: float, mu: float):
    """Per convolution: (Adam's step norm, SGD's steady velocity norm per unit rate)."""
    rows = []
    for k in range(0, len(m), 2):  # weights and bias of one convolution together
        mk, vk = np.concatenate(m[k:k + 2]), np.concatenate(v[k:k + 2])
        adam = lr_t * float(np.linalg.norm(mk / (np.sqrt(vk) + delta)))
        mean2 = float(mk @ mk)
        spread2 = max(float(vk.sum()) - mean2, 0.0)
        sgd = float(np.sqrt(mean2 / (1 - mu) ** 2 + spread2 / (1 - mu ** 2)))
        rows.append((adam, sgd))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("solver", type=pathlib.Path, help="the Adam stage's solver prototxt (the run's frozen copy)")
    p.add_argument("states", type=pathlib.Path, nargs="+", help="Adam .solverstate file(s) of the paper's net")
    p.add_argument("--momentum", type=float, default=None,
                   help="SGD momentum (default: the sgd.prototxt beside the solver, else 0.9)")
    p.add_argument("--adam-lr", type=float, help="Adam's rate at the states (default: from the solver)")
    args = p.parse_args(argv)
    from google.protobuf import text_format

    pb2 = caffe_pb2()
    solver = text_format.Parse(args.solver.read_text(), pb2.SolverParameter())
    mu = args.momentum
    sgd_file = args.solver.with_name("sgd.prototxt")
    if mu is None and sgd_file.exists():
        mu = text_format.Parse(sgd_file.read_text(), pb2.SolverParameter()).momentum
    mu = 0.9 if mu is None else mu
    if not 0 <= mu < 1:
        p.error(f"--momentum must be in [0, 1), got {mu}")
    cpu = cpu_model()
    beta1, beta2, delta = solver.momentum, solver.momentum2, solver.delta
    print(f"CPU: {cpu} (numpy only); Adam beta1 {beta1:g}, beta2 {beta2:g}, delta {delta:g}; SGD momentum {mu:g}")
    overall = []
    for path in args.states:
        try:
            _, _, state = paper_adam_pair(path)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        lr = args.adam_lr if args.adam_lr is not None else solver_rate(solver, state.iter, state.current_step)
        t = state.iter + 1
        lr_t = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        rows = step_norms(*moments(state), lr_t, delta, mu)
        adam_all = float(np.sqrt(sum(a * a for a, _ in rows)))
        sgd_all = float(np.sqrt(sum(s * s for _, s in rows)))
        overall.append(adam_all / sgd_all)
        print(f"\n{path} (iteration {state.iter}, Adam rate {lr:.3g}): Adam's step {adam_all:.3g}, "
              f"SGD's at rate 1: {sgd_all:.4g} -> **SGD base_lr {adam_all / sgd_all:.3g}** for Adam's step")
        print("| layer | Adam's step | SGD's step at rate 1 | SGD rate for Adam's step |\n|---|---:|---:|---:|")
        for name, (a, s) in zip(CONV_NAMES, rows):
            print(f"| {name} | {a:.3g} | {s:.4g} | {a / s:.3g} |")
    if len(overall) > 1:
        print(f"\nSGD base_lr for Adam's step over {len(overall)} states: median {np.median(overall):.3g} "
              f"(range {min(overall):.3g}-{max(overall):.3g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
