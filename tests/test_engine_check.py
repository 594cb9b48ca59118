"""benchmarks/engine_check.py: one SGD step of rate 1,024 through two engines, losses and per-layer
gradients compared.  No GPU here: both runs use the CPU build's engine, which must agree with
itself exactly; the comparison itself is checked on gradients with a known difference."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import engine_check  # noqa: E402


def test_compare_reports_the_relative_loss_and_gradient_differences():
    rng = np.random.default_rng(0)
    g = {"conv1": [rng.normal(size=100), rng.normal(size=4)], "conv2": [rng.normal(size=50)]}
    off = {"conv1": [g["conv1"][0] * 1.01, g["conv1"][1] * 1.01], "conv2": [g["conv2"][0].copy()]}
    loss, layers = engine_check.compare((200.0, g), (201.0, off))
    assert loss == pytest.approx(0.005)
    assert layers["conv1"] == pytest.approx(0.01)
    assert layers["conv2"] == 0.0


@pytest.mark.usefixtures("caffe_bin")
def test_the_same_engine_twice_agrees_exactly_and_a_zero_tolerance_says_so():
    def run(*extra):
        done = subprocess.run([sys.executable, "benchmarks/engine_check.py", "--batch", "2", "--size", "64",
                               "--iterations", "0", *extra], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.splitlines()

    out = run()
    assert "(relative difference 0.00e+00" in out[1]
    # Real gradients (a zero one would compare as equal too), then no difference between the runs.
    norms = [float(v) for v in re.findall(r"conv\d+ ([-+.\deE]+)", out[2])]
    assert out[2].startswith("gradient norm per layer (caffe):") and len(norms) == 12 and min(norms) > 0
    assert out[3].startswith("gradient, relative difference per layer: conv1 0.0e+00") and "conv12 0.0e+00" in out[3]
    assert out[-1] == "engine: caffe (no --gpu: both runs used the CPU build's engine)"
    assert run("--grad-tol", "0")[-1].startswith("engine: caffe (the two runs disagree")
