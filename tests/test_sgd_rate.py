"""benchmarks/sgd_rate.py: the SGD stage's rate from the Adam stage's history."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("sgd_rate", REPO / "benchmarks" / "sgd_rate.py")
sgd_rate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sgd_rate)


def test_steps_of_a_steady_gradient():
    """No noise (m = g, v = g^2): Adam moves every parameter by lr (|step| = lr sqrt(N)), SGD's
    velocity settles at lr |g| / (1 - mu)."""
    g = [np.array([3.0, -4.0]), np.array([0.5]), np.array([1.0, 2.0, 2.0]), np.array([0.0 + 1e-3])]
    rows = sgd_rate.step_norms(g, [x * x for x in g], lr_t=1e-3, delta=0.0, mu=0.9)
    assert len(rows) == 2
    assert rows[0][0] == pytest.approx(1e-3 * np.sqrt(3))
    assert rows[0][1] == pytest.approx(np.sqrt(25 + 0.25) / 0.1)
    # pure noise (m = 0): the velocity is a random walk damped by mu
    rows = sgd_rate.step_norms([np.zeros(2), np.zeros(1)], [np.ones(2), np.ones(1)], 1e-3, 1e-8, 0.9)
    assert rows[0] == (0.0, pytest.approx(np.sqrt(3 / (1 - 0.81))))


def test_on_the_committed_checkpoint():
    """The run's committed Adam state: a rate per convolution and one for the net, within the
    range session 21 measured by hand (1e-8 tracked Adam at 3.3x today's Adam rate)."""
    state = next((REPO / "models" / "checkpoint").glob("adam_iter_*.solverstate"))
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "sgd_rate.py"),
                           str(REPO / "models" / "checkpoint" / "adam.prototxt"), str(state)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(re.findall(r"^\| conv\d+ \|", done.stdout, re.M)) == 12
    rate = float(re.search(r"SGD base_lr ([0-9.e+-]+)\*\*", done.stdout)[1])
    assert 1e-10 < rate < 1e-7
