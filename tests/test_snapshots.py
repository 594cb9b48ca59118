"""stem_restore.snapshots: whole snapshots, the resumed shard order, continuation copies."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from stem_restore import snapshots
from stem_restore.network import caffe_pb2

CHECKPOINT = next((REPO / "models" / "checkpoint").glob("*_iter_*.solverstate"))
PATHS = ["a.h5", "b.h5", "c.h5"]


@pytest.mark.parametrize("iteration, first, exact", [
    (0, "a.h5", True),      # the start
    (2, "b.h5", True),      # 2 x 4 = row 8 = b's first row
    (3, "b.h5", False),     # row 12: inside b -> b, not exact
    (5, "c.h5", True),      # row 20 = c's first row (b has 12 rows)
    (7, "a.h5", True),      # row 28 = one epoch (8 + 12 + 8): wrapped around to a
    (9, "b.h5", True),      # row 36 = epoch + 8
])
def test_resume_order_starts_at_the_shard_holding_the_next_row(iteration, first, exact):
    order, is_exact = snapshots.resume_order(PATHS, [8, 12, 8], batch=4, iteration=iteration)
    assert order[0] == first and is_exact == exact
    assert order == PATHS[PATHS.index(first):] + PATHS[:PATHS.index(first)]  # a rotation, not a shuffle


def test_exact_command_answers_whether_a_stage_resumes_exactly(tmp_path):
    """``exact LIST BATCH IT`` (run_training.sh --for): exit 0 at a shard boundary, 1 inside a shard."""
    import h5py
    import numpy as np

    listing = tmp_path / "list.txt"
    paths = []
    for name, rows in (("a.h5", 8), ("b.h5", 12)):
        with h5py.File(tmp_path / name, "w") as fh:
            fh["data"] = np.zeros((rows, 1, 2, 2), np.float32)
        paths.append(str(tmp_path / name))
    listing.write_text("\n".join(paths) + "\n")
    for iteration, code in ((0, 0), (2, 0), (3, 1), (5, 0), (6, 1)):
        cli = subprocess.run([sys.executable, "-m", "stem_restore.snapshots", "exact", str(listing), "4",
                              str(iteration)], capture_output=True, text=True)
        assert cli.returncode == code, (iteration, cli.stderr)


def test_resume_order_refuses_bad_arguments():
    with pytest.raises(ValueError):
        snapshots.resume_order(PATHS, [8, 8], batch=4, iteration=1)
    with pytest.raises(ValueError):
        snapshots.resume_order(PATHS, [8, 8, 8], batch=0, iteration=1)


def test_whole_checkpoint_and_broken_copies(tmp_path):
    assert snapshots.is_whole(CHECKPOINT)
    model = snapshots.weights_of(CHECKPOINT)
    assert model.is_file() and model.suffix == ".caffemodel"

    truncated = tmp_path / "truncated" / CHECKPOINT.name
    truncated.parent.mkdir()
    truncated.write_bytes(CHECKPOINT.read_bytes()[:1000])
    shutil.copy(model, truncated.parent)
    assert not snapshots.is_whole(truncated)

    orphan = tmp_path / "orphan" / CHECKPOINT.name  # the .solverstate without its .caffemodel
    orphan.parent.mkdir()
    shutil.copy(CHECKPOINT, orphan)
    assert not snapshots.is_whole(orphan)

    wrong_stage = tmp_path / "stage" / CHECKPOINT.name.replace("adam_", "sgd_")  # 48 blobs, SGD has 24
    wrong_stage.parent.mkdir()
    shutil.copy(CHECKPOINT, wrong_stage)
    shutil.copy(model, wrong_stage.parent)
    assert not snapshots.is_whole(wrong_stage)

    cli = subprocess.run([sys.executable, "-m", "stem_restore.snapshots", "whole", str(orphan)])
    assert cli.returncode == 1
    with pytest.raises(ValueError, match="not a whole snapshot pair"):
        snapshots.copy_pair(orphan, tmp_path / "nowhere")


def test_copy_pair_is_resumed_by_caffe_from_another_folder(caffe_bin, tmp_path):
    """The copy names the copied weights by absolute path: ``caffe train --snapshot`` continues
    it from a folder that has no snapshots/ of its own, at the checkpoint's iteration."""
    sys.path.insert(0, str(REPO / "prototxt"))
    import make_nets

    copy = snapshots.copy_pair(CHECKPOINT, tmp_path / "pair")
    state = caffe_pb2().SolverState.FromString(copy.read_bytes())
    original = caffe_pb2().SolverState.FromString(CHECKPOINT.read_bytes())
    assert state.learned_net == str((tmp_path / "pair" / snapshots.weights_of(CHECKPOINT).name).resolve())
    assert state.iter == original.iter and len(state.history) == len(original.history)
    assert snapshots.weights_of(copy).read_bytes() == snapshots.weights_of(CHECKPOINT).read_bytes()

    work = tmp_path / "elsewhere"
    gen = subprocess.run([sys.executable, "-m", "datagen", "--preset", "quick", "--count", "2", "--size", "64",
                          "--out", str(work / "data" / "train"), "--seed", "5", "--workers", "1"],
                         cwd=REPO, capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr[-2000:]
    shutil.copytree(work / "data" / "train", work / "data" / "test")
    (work / "data" / "test" / "list.txt").write_text(str(work / "data" / "test" / "shard-00000.h5") + "\n")
    (work / "train.prototxt").write_text(make_nets.train_hdf5(batch=2))
    (work / "solver.prototxt").write_text(
        f'net: "train.prototxt"\ntype: "Adam"\nbase_lr: 0.0001\nmomentum: 0.9\nlr_policy: "fixed"\n'
        f'max_iter: {original.iter + 1}\ndisplay: 1\nsnapshot_after_train: false\nsolver_mode: CPU\n')
    run = subprocess.run([str(caffe_bin), "train", "--solver=solver.prototxt", f"--snapshot={copy}"],
                         cwd=work, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "GLOG_minloglevel": "0"})  # INFO lines, whatever pycaffe set
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"Resuming from {copy}" in run.stderr
    assert f"Iteration {original.iter}, lr = 0.0001" in run.stderr, run.stderr[-2000:]
