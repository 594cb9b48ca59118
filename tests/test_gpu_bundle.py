"""scripts/gpu_bundle.sh and scripts/gpu_chunk.sh: Caffe packed with the libraries it loads, for
a GPU machine without Caffe's build dependencies, and one training chunk run from the pack.

There is no GPU here, so the CPU build is packed (``--build .caffe/cpu``): the same packing,
env.sh, wrapper and chunk logic as for the GPU build, which ran on a lent H200 (BENCHMARKS.md
"training on a lent H200")."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

from conftest import REPO
from test_training import RUN_ENV, solver

#: What the bundle leaves to the target machine (gpu_bundle.sh's skip list).
SYSTEM = re.compile(r"^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libstdc\+\+|libgcc_s)\.so")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "caffe.tar.xz"
    made = subprocess.run(["bash", str(REPO / "scripts" / "gpu_bundle.sh"), "--build", str(REPO / ".caffe" / "cpu"),
                           "--no-wheels", str(out)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "BUNDLE_XZ_LEVEL": "0"})
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    assert "CPU-only build" in made.stdout
    return out


def test_bundle_holds_the_tool_its_libraries_and_caffe_pb2(bundle, tmp_path):
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path, filter="tar")
    assert {"./bin/caffe", "./env.sh", "./python/caffe/proto/caffe_pb2.py"} <= set(names)
    libs = {n.rsplit("/", 1)[1] for n in names if n.startswith("./lib/") and n != "./lib/"}
    assert {"libcaffe.so.1.0.0", "libglog.so.1", "libprotobuf.so.32", "libdnnl.so.3"} <= libs, libs
    assert not [lib for lib in libs if SYSTEM.match(lib)], "the C/C++ runtime belongs to the target machine"
    # With only the bundle's lib/ on the path, every library but the C/C++ runtime comes from it.
    ldd = subprocess.run(["ldd", str(tmp_path / "bin" / "caffe")], capture_output=True, text=True,
                         env={**os.environ, "LD_LIBRARY_PATH": str(tmp_path / "lib")})
    assert ldd.returncode == 0 and "not found" not in ldd.stdout, ldd.stdout
    for name, path in re.findall(r"^\s*(\S+) => (\S+)", ldd.stdout, flags=re.M):
        assert SYSTEM.match(name) or path.startswith(str(tmp_path / "lib")), (name, path)


def checkout(dest):
    """The parts of the project that a training chunk runs."""
    dest.mkdir()
    shutil.copy(REPO / "run_training.sh", dest)
    for d in ("stem_restore", "datagen", "evaluate", "prototxt", "scripts", "benchmarks"):
        shutil.copytree(REPO / d, dest / d, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_chunk_trains_from_the_bundle_and_collects_what_resumes_the_run(bundle, tmp_path):
    """gpu_chunk.sh in a checkout without .venv: env.sh gives it a .venv shim (python + a caffe
    wrapper with the bundle's libraries), run_training.sh trains the tiny schedule there (on
    the CPU: GPU empty), and OUTDIR gets the newest snapshot pair, the logs, the loss curve."""
    schedule = tmp_path / "tiny"
    schedule.mkdir()
    (schedule / "run.env").write_text(RUN_ENV)
    (schedule / "adam.prototxt").write_text(solver("adam", 8, "0.0003"))
    (schedule / "sgd.prototxt").write_text(solver("sgd", 4, "1e-7"))
    repo = checkout(tmp_path / "checkout")
    out = tmp_path / "out"
    env = {**os.environ, "GPU": "", "BENCH": "0", "PYTHON": sys.executable}
    env.pop("PYTHONPATH", None)
    # A list of bundles: the first that unpacks and resolves is used (here the second).
    bundles = f"{tmp_path / 'absent.tar.xz'},{bundle}"
    chunk = subprocess.run(["bash", "scripts/gpu_chunk.sh", bundles, "300", str(out), "--schedule", str(schedule),
                            "--run", "runs/tiny", "--workers", "1"], cwd=repo, capture_output=True, text=True,
                           timeout=900, env=env)
    assert chunk.returncode == 0, chunk.stdout[-3000:] + chunk.stderr[-3000:]
    assert f"bundle {tmp_path / 'absent.tar.xz'}: not usable here" in chunk.stdout
    assert f"bundle {bundle}\n" in chunk.stdout
    assert (repo / ".venv" / ".gpu-bundle").exists()
    wrapper = (repo / ".venv" / "bin" / "caffe").read_text()
    assert "LD_LIBRARY_PATH=" in wrapper and "/lib" in wrapper
    got = sorted(p.name for p in out.iterdir())
    # The run finished inside its 300 s: its newest pair is SGD's last one.
    assert got == ["adam.log", "loss.png", "sgd.log", "sgd_iter_4.caffemodel", "sgd_iter_4.solverstate",
                   "train.out"], got
    assert "newest snapshot sgd_iter_4.solverstate" in chunk.stdout

    # A checkout with a .venv of its own is left alone.
    other = tmp_path / "other"
    (other / ".venv").mkdir(parents=True)
    refused = subprocess.run(["bash", "-c", f"mkdir -p b && tar -xJf {bundle} -C b && . b/env.sh"], cwd=other,
                             capture_output=True, text=True, timeout=300, env=env)
    assert refused.returncode != 0 and ".venv exists and is not this bundle's" in refused.stderr
