"""Shared fixtures: where the project's Caffe build lives."""
from __future__ import annotations

import os
import pathlib
import signal
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: The suite checks fp32 contracts (pycaffe == the numpy reference, tiles == whole frames,
#: training thresholds), so every Caffe net it builds, here or in a `caffe` subprocess, computes
#: in fp32 whatever the CPU: the engine's default (auto) would run bf16 on AVX512-BF16 and AMX machines, and the
#: CI machine may be one.  bf16 has its own tests with its own tolerance
#: (tests/test_dnnl_engine.py switches the mode per test with ``math_mode``).
os.environ["CAFFE_DNNL_MATH"] = "fp32"

#: A suite started in the background (`nohup ... &`, no job control) runs with SIGINT ignored,
#: and every subprocess inherits that: the Ctrl-C tests (restore.py, datagen) would then see no
#: KeyboardInterrupt.  Python's own handler here: subprocesses start with SIGINT at its default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

#: The `caffe` tool that scripts/install.sh links into the venv.
CAFFE_BIN = REPO / ".venv" / "bin" / "caffe"


@pytest.fixture(scope="session")
def caffe():
    """pycaffe, in CPU mode, quiet (GLOG_minloglevel=2 must be set before import)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe as _caffe

    _caffe.set_mode_cpu()
    return _caffe


@pytest.fixture(scope="session")
def caffe_bin() -> pathlib.Path:
    assert CAFFE_BIN.exists(), f"{CAFFE_BIN} missing: run bash scripts/install.sh"
    return CAFFE_BIN


@pytest.fixture(scope="session")
def weights(caffe, tmp_path_factory) -> pathlib.Path:
    """A .caffemodel of prototxt/deploy.prototxt with random weights (helpers.make_weights,
    seed 11), built once for the whole test session."""
    from helpers import make_weights

    return make_weights(caffe, tmp_path_factory.mktemp("weights") / "random.caffemodel", seed=11)


@pytest.fixture(scope="session")
def net(weights):
    """The deploy net with the random :func:`weights`, loaded once by restoration.engine.load_net."""
    from helpers import DEPLOY
    from restoration.engine import load_net

    return load_net(DEPLOY, weights)
