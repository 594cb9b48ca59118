"""run_training.sh end to end with real Caffe on a tiny schedule: Adam -> SGD handoff,
falling test loss, and a killed-and-resumed run ending with the same weights."""
from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import REPO
from evaluate.checks import parse_caffe_log

SCRIPT = REPO / "run_training.sh"
#: A run's frozen set-up (run_training.sh's FROZEN), written at its first start.
FROZEN = ("config.env", "adam.prototxt", "sgd.prototxt", "train.prototxt", "deploy.prototxt", "datagen.toml")

# A tiny schedule in the shape of solvers/quick: 52x52 patches, batch 2, an
# epoch of 4 iterations in two shards of 2 iterations, Adam 8 iterations
# (snapshots every shard: 2, 4, 6, 8), SGD 4.
RUN_ENV = """\
DATAGEN_PRESET=quick
TRAIN_NET=train_hdf5.prototxt
PATCH_SIZE=52
BATCH_SIZE=2
TRAIN_COUNT=8
SHARD_SIZE=4
TRAIN_SEED=1
TEST_COUNT=4
TEST_SEED=2
EVAL_SIZE=64
EVAL_COUNT=1
EVAL_SEED=1000
EVAL_ARGS="--val-count 1 --doses 300 --families shot_noise,scan_lines --bm3d off --examples 1"
RESTORE_EXAMPLES=0
"""


def solver(kind: str, max_iter: int, lr: str) -> str:
    text = (REPO / "solvers" / "quick" / f"{kind}.prototxt").read_text()
    for key, value in (("test_iter", 2), ("test_interval", 4), ("max_iter", max_iter),
                       ("snapshot", 2), ("display", 1), ("average_loss", 1), ("base_lr", lr)):
        lines = [f"{key}: {value}" if line.split(":")[0] == key else line for line in text.splitlines()]
        text = "\n".join(lines) + "\n"
    return text


@pytest.fixture(scope="module")
def schedule(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_schedule")
    (d / "run.env").write_text(RUN_ENV)
    (d / "adam.prototxt").write_text(solver("adam", 8, "0.0003"))
    (d / "sgd.prototxt").write_text(solver("sgd", 4, "1e-7"))
    return d


def run_training(schedule, run, **kw):
    return subprocess.run(["bash", str(SCRIPT), "--schedule", str(schedule), "--run", str(run), "--workers", "1"],
                          capture_output=True, text=True, timeout=900, **kw)


def draw_schedule(schedule, folder):
    """The tiny schedule with DRAW_PASSES=1 (fresh pairs every pass), in ``folder``."""
    folder.mkdir()
    (folder / "run.env").write_text(RUN_ENV + "DRAW_PASSES=1\n")
    for f in ("adam.prototxt", "sgd.prototxt"):
        (folder / f).write_text((schedule / f).read_text())
    return folder


def checkpoint_of(run, snapshot, folder):
    """A checkpoint folder as --save-checkpoint writes one: the run's frozen set-up and the pair
    ``snapshot`` (e.g. adam_iter_6), for --resume-from on a "fresh machine"."""
    folder.mkdir()
    for f in FROZEN:
        (folder / f).write_bytes((run / f).read_bytes())
    for suffix in (".caffemodel", ".solverstate"):
        (folder / (snapshot + suffix)).write_bytes((run / "snapshots" / (snapshot + suffix)).read_bytes())
    return folder


def weights(caffe, run):
    net = caffe.Net(str(run / "deploy.prototxt"), str(run / "final.caffemodel"), caffe.TEST)
    return {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}


@pytest.fixture(scope="module")
def uninterrupted(schedule, tmp_path_factory):
    run = tmp_path_factory.mktemp("run_a")
    result = run_training(schedule, run)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run, result


def test_pipeline_writes_everything_of_a_run(uninterrupted):
    run, result = uninterrupted
    for name in ("config.env", "train.prototxt", "deploy.prototxt", "adam.prototxt", "sgd.prototxt", "datagen.toml",
                 "logs/adam.log", "logs/sgd.log", "snapshots/adam_iter_8.caffemodel",
                 "snapshots/sgd_iter_4.caffemodel", "final.caffemodel", "loss.png",
                 "eval/results.md", "eval/results.csv", "eval/figure.png", "eval/checklist.md"):
        assert (run / name).exists(), name
    net = (run / "train.prototxt").read_text()
    assert "batch_size: 2" in net and '"train_list.txt"' in net and '"data/test/list.txt"' in net
    # SGD starts from Adam's weights at row 0: the shards in datagen's order.
    assert (run / "train_list.txt").read_text() == (run / "data" / "train" / "list.txt").read_text().strip() + "\n"
    # The evaluation scored the run's own model on the run's own datagen preset (its frozen copy).
    assert f"--preset {run / 'datagen.toml'}" in (run / "eval" / "results.md").read_text()
    with open(run / "eval" / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cnn = {r["condition"]: float(r["psnr_mean"]) for r in rows if r["method"] == "cnn"}
    assert set(cnn) >= {"shot_noise @ 300", "scan_lines @ 300", "full mix @ 300"}
    assert all(np.isfinite(v) and 0 < v < 100 for v in cnn.values()), cnn
    from PIL import Image
    for png in ("loss.png", "eval/figure.png"):
        with Image.open(run / png) as im:
            assert im.format == "PNG" and min(im.size) > 100 and np.asarray(im).std() > 0, png


def test_adam_hands_its_weights_to_sgd_and_test_loss_falls(uninterrupted):
    run, _ = uninterrupted
    adam = parse_caffe_log((run / "logs" / "adam.log").read_text())
    sgd = parse_caffe_log((run / "logs" / "sgd.log").read_text())
    assert adam.solver_type == "Adam" and sgd.solver_type == "SGD"
    assert sgd.finetune_from and sgd.finetune_from.endswith("adam_iter_8.caffemodel")
    adam_tests = dict(adam.test_losses)
    sgd_tests = dict(sgd.test_losses)
    # SGD's first test (iteration 0, before any SGD step) sees exactly Adam's final weights.
    assert sgd_tests[0] == pytest.approx(adam_tests[8], rel=1e-5)
    assert sgd_tests[4] < adam_tests[0]


def test_a_finished_run_is_not_retrained(schedule, uninterrupted):
    run, _ = uninterrupted
    before = (run / "final.caffemodel").stat().st_mtime_ns
    again = run_training(schedule, run)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "adam: finished earlier" in again.stdout and "sgd: finished earlier" in again.stdout
    assert (run / "snapshots" / "sgd_iter_4.caffemodel").stat().st_mtime_ns <= before


def test_killed_run_resumes_to_the_same_weights(caffe, schedule, uninterrupted, tmp_path):
    run = tmp_path / "run_b"
    proc = subprocess.Popen(["bash", str(SCRIPT), "--schedule", str(schedule), "--run", str(run), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    log = run / "logs" / "adam.log"
    deadline = time.time() + 600
    try:
        # Kill once the iteration-4 snapshot is complete (Caffe logs the next test after writing it).
        while time.time() < deadline:
            text = log.read_text() if log.exists() else ""
            if "adam_iter_4.solverstate" in text and "Iteration 4, Testing net" in text:
                break
            assert proc.poll() is None, "run_training.sh ended before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("no iteration-4 snapshot within the deadline")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (run / "final.caffemodel").exists()

    resumed = run_training(schedule, run)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # The newest whole snapshot: 4 (an epoch end), or 6 if the kill came late (mid-epoch).
    assert re.search(r"adam: resuming from adam_iter_[46]\.solverstate", resumed.stdout), resumed.stdout
    a, b = weights(caffe, uninterrupted[0]), weights(caffe, run)
    for name in a:
        for wa, wb in zip(a[name], b[name]):
            np.testing.assert_array_equal(wa, wb, err_msg=name)


def test_another_config_in_the_same_run_folder_is_refused(schedule, uninterrupted, tmp_path):
    other = tmp_path / "other_schedule"
    other.mkdir()
    for f in ("adam.prototxt", "sgd.prototxt"):
        (other / f).write_text((schedule / f).read_text())
    (other / "run.env").write_text(RUN_ENV.replace("TRAIN_SEED=1", "TRAIN_SEED=3"))
    result = run_training(other, uninterrupted[0])
    assert result.returncode != 0 and "set up with other settings" in result.stderr


def test_checkpoint_saved_then_resumed_on_a_fresh_run_gives_the_same_weights(caffe, schedule, uninterrupted,
                                                                              tmp_path):
    """--save-checkpoint keeps the newest whole pair (what a fresh machine needs); --resume-from
    continues from it exactly, data regenerated from the run's seeds.  Iteration 2 is mid-epoch
    (the second shard is next): exact only because the shard list is rotated on resume."""
    done = uninterrupted[0]
    partial = tmp_path / "partial"  # a run stopped after Adam's iteration-2 snapshot
    (partial / "snapshots").mkdir(parents=True)
    (partial / "logs").mkdir()
    (partial / "config.env").write_text((done / "config.env").read_text())
    for f in FROZEN:
        (partial / f).write_text((done / f).read_text())
    for ext in ("caffemodel", "solverstate"):
        (partial / "snapshots" / f"adam_iter_2.{ext}").write_bytes((done / "snapshots" / f"adam_iter_2.{ext}").read_bytes())
    (partial / "logs" / "adam.log").write_text((done / "logs" / "adam.log").read_text())
    ckpt = tmp_path / "checkpoint"
    saved = subprocess.run(["bash", str(SCRIPT), "--schedule", str(schedule), "--run", str(partial),
                            "--save-checkpoint", str(ckpt)], capture_output=True, text=True, timeout=300)
    assert saved.returncode == 0, saved.stderr[-2000:]
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(["adam_iter_2.caffemodel", "adam_iter_2.solverstate",
                                                             "logs", "loss.png", *FROZEN])
    assert not (partial / "data").exists() or not any((partial / "data").iterdir())  # no training ran

    fresh = tmp_path / "fresh"
    # No --schedule: the checkpoint carries the run's set-up.
    resumed = subprocess.run(["bash", str(SCRIPT), "--run", str(fresh), "--workers", "1",
                              "--resume-from", str(ckpt), "--train-only"],
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "adam: resuming from adam_iter_2.solverstate" in resumed.stdout
    assert not (fresh / "eval").exists()  # --train-only
    a, b = weights(caffe, done), weights(caffe, fresh)
    for name in a:
        for wa, wb in zip(a[name], b[name]):
            np.testing.assert_array_equal(wa, wb, err_msg=name)


def test_weights_fine_tunes_from_a_trained_model(schedule, uninterrupted, tmp_path):
    """--weights: Adam starts from the given model (Caffe logs "Finetuning from"), so the
    held-out loss before the first step is the trained model's final one (same test data)."""
    done = uninterrupted[0]
    run = tmp_path / "finetune"
    result = subprocess.run(["bash", str(SCRIPT), "--schedule", str(schedule), "--run", str(run), "--workers", "1",
                             "--weights", str(done / "final.caffemodel"), "--train-only"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    tuned = parse_caffe_log((run / "logs" / "adam.log").read_text())
    trained = parse_caffe_log((done / "logs" / "sgd.log").read_text())
    assert tuned.finetune_from and tuned.finetune_from.endswith("final.caffemodel")
    assert tuned.test_losses[0][0] == 0
    assert tuned.test_losses[0][1] == pytest.approx(trained.test_losses[-1][1], rel=1e-4)
    bad = subprocess.run(["bash", str(SCRIPT), "--schedule", str(schedule), "--run", str(tmp_path / "x"),
                          "--weights", str(tmp_path / "missing.caffemodel")], capture_output=True, text=True)
    assert bad.returncode != 0 and "missing.caffemodel: no such file" in bad.stderr


def test_weights_solverstate_continues_another_runs_adam_with_other_batch_and_patch(schedule, uninterrupted,
                                                                                      tmp_path):
    """--weights adam_iter_N.solverstate: the new run (here 60^2 patches, batch 4) takes that
    pair as its first snapshot, named relative to the run folder, and Caffe resumes it at
    iteration N (Adam's moments and iteration count carried over) up to its own max_iter."""
    from stem_restore.network import caffe_pb2

    done = uninterrupted[0]
    wider = tmp_path / "wider"
    wider.mkdir()
    (wider / "run.env").write_text(RUN_ENV.replace("PATCH_SIZE=52", "PATCH_SIZE=60")
                                   .replace("BATCH_SIZE=2", "BATCH_SIZE=4"))
    (wider / "adam.prototxt").write_text(solver("adam", 6, "0.0003"))
    (wider / "sgd.prototxt").write_text((schedule / "sgd.prototxt").read_text())
    run = tmp_path / "continued"
    result = subprocess.run(["bash", str(SCRIPT), "--schedule", str(wider), "--run", str(run), "--workers", "1",
                             "--weights", str(done / "snapshots" / "adam_iter_4.solverstate"), "--train-only"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    adopted = caffe_pb2().SolverState.FromString((run / "snapshots" / "adam_iter_4.solverstate").read_bytes())
    assert adopted.learned_net == "snapshots/adam_iter_4.caffemodel" and adopted.iter == 4
    log = (run / "logs" / "adam.log").read_text()
    assert "Resuming from snapshots/adam_iter_4.solverstate" in log
    assert "Iteration 4, lr = 0.0003" in log and "batch_size: 4" in (run / "train.prototxt").read_text()
    assert (run / "snapshots" / "adam_iter_6.solverstate").exists()
    assert not (run / "snapshots" / "adam_iter_2.caffemodel").exists()
    import h5py
    with h5py.File(run / "data" / "train" / "shard-00000.h5") as f:
        assert f["data"].shape[-2:] == (60, 60)

    wrong = subprocess.run(["bash", str(SCRIPT), "--schedule", str(wider), "--run", str(tmp_path / "w"),
                            "--weights", str(done / "snapshots" / "sgd_iter_2.solverstate")],
                           capture_output=True, text=True, timeout=300)
    assert wrong.returncode != 0 and "expected adam_iter_N.solverstate" in wrong.stderr


def test_the_run_folder_is_the_source_of_truth(caffe, uninterrupted, tmp_path):
    """A run reads only its own frozen set-up: here its datagen.toml (fixed dose, no shot
    noise) and its adam.prototxt (max_iter 2), edited after set-up, decide the data and the
    stage lengths; no schedule is given."""
    done = uninterrupted[0]
    run = tmp_path / "edited"
    run.mkdir()
    for f in FROZEN:
        (run / f).write_text((done / f).read_text())
    toml = (run / "datagen.toml").read_text()
    toml = re.sub(r"(?m)^dose_counts = .*$", "dose_counts = 1000000.0", toml)
    toml = re.sub(r"(?ms)^(\[shot_noise\]\nprobability = ).*?$", r"\g<1>0.0", toml)
    (run / "datagen.toml").write_text(toml)
    adam = (run / "adam.prototxt").read_text()
    (run / "adam.prototxt").write_text(re.sub(r"(?m)^max_iter: \d+", "max_iter: 2", adam))
    result = subprocess.run(["bash", str(SCRIPT), "--run", str(run), "--workers", "1", "--train-only"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (run / "snapshots" / "adam_iter_2.caffemodel").exists()
    assert not (run / "snapshots" / "adam_iter_4.caffemodel").exists()
    assert parse_caffe_log((run / "logs" / "sgd.log").read_text()).finetune_from.endswith("adam_iter_2.caffemodel")
    import h5py
    with h5py.File(run / "data" / "train" / "shard-00000.h5") as f, \
            h5py.File(done / "data" / "train" / "shard-00000.h5") as g:
        assert not np.array_equal(f["data"][:], g["data"][:])  # same seed, other physics


def train_two_iterations(schedule, tmp_path, env: str):
    """A schedule folder with run.env ``env`` and a 2-iteration Adam stage, trained with
    --train-only into tmp_path/run; returns (schedule folder, run folder)."""
    custom = tmp_path / "schedule"
    custom.mkdir()
    (custom / "run.env").write_text(env)
    (custom / "adam.prototxt").write_text(solver("adam", 2, "0.0003"))
    (custom / "sgd.prototxt").write_text((schedule / "sgd.prototxt").read_text())
    run = tmp_path / "run"
    result = subprocess.run(["bash", str(SCRIPT), "--schedule", str(custom), "--run", str(run), "--workers", "1",
                             "--train-only"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return custom, run


def test_init_identity_starts_adam_at_the_identity(schedule, tmp_path):
    """run.env INIT=identity: Adam starts from prototxt/identity_init.py's weights (written
    into the run, seeded by adam.prototxt's random_seed), so the held-out loss before the
    first step is exactly that of output = max(input, 0) on the run's test pairs."""
    import h5py

    custom, run = train_two_iterations(schedule, tmp_path, RUN_ENV + "INIT=identity\n")
    log = parse_caffe_log((run / "logs" / "adam.log").read_text())
    assert log.finetune_from.endswith("init.caffemodel")
    with h5py.File(run / "data" / "test" / "shard-00000.h5") as f:
        x, y = f["data"][:].astype(np.float64), f["label"][:].astype(np.float64)
    identity_loss = ((np.maximum(x, 0) - y) ** 2).sum() / (2 * len(x))  # EuclideanLoss, test_iter 2 x batch 2
    assert log.test_losses[0][0] == 0
    assert log.test_losses[0][1] == pytest.approx(identity_loss, rel=1e-4)

    bad = tmp_path / "bad"
    bad.mkdir()
    for f in ("adam.prototxt", "sgd.prototxt"):
        (bad / f).write_text((custom / f).read_text())
    (bad / "run.env").write_text(RUN_ENV + "INIT=zeros\n")
    refused = subprocess.run(["bash", str(SCRIPT), "--schedule", str(bad), "--run", str(tmp_path / "r2")],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "INIT=zeros: expected msra or identity" in refused.stderr


def test_loss_weights_train_on_weighted_copies_of_the_pairs(schedule, tmp_path):
    """run.env LOSS_FLOOR_DB + LOSS_SCALE with the weighted net: the run weights its pairs
    (data/train_weighted, datagen/weights.py) and Caffe reads those shards in training, so
    the first training loss is sum_i w_i^2 |y_i - t_i|^2 / 2N of the identity start; its
    test loss stays the plain one.  A weighted net without weights (or the reverse) is refused."""
    import h5py

    from datagen.weights import loss_weights

    env = RUN_ENV.replace("TRAIN_NET=train_hdf5.prototxt", "TRAIN_NET=train_hdf5_weighted.prototxt")
    custom, run = train_two_iterations(schedule, tmp_path,
                                       env + "INIT=identity\nLOSS_FLOOR_DB=35\nLOSS_SCALE=0.01\n")
    listed = (run / "train_list.txt").read_text().split()
    assert listed and all("/data/train_weighted/" in line for line in listed)
    with h5py.File(listed[0]) as f:
        x, y, w = f["data"][:2].astype(np.float64), f["label"][:2].astype(np.float64), f["weight"][:2]
    assert np.array_equal(w, loss_weights(x, y, 35.0, 0.01)[:2])
    identity = ((np.maximum(x, 0) - y) ** 2).reshape(2, -1).sum(axis=1)  # the start: output = max(input, 0)
    first = re.search(r"Iteration 0 .*?Train net output #0: loss = (\S+)",
                      (run / "logs" / "adam.log").read_text(), re.S)
    assert first and float(first.group(1)) == pytest.approx((w.astype(np.float64) ** 2 * identity).sum() / 4,
                                                            rel=1e-4)

    for name, text in (("plain_net", env.replace("train_hdf5_weighted", "train_hdf5") + "LOSS_FLOOR_DB=35\n"),
                       ("no_floor", env)):
        bad = tmp_path / name
        bad.mkdir()
        (bad / "run.env").write_text(text)
        for f in ("adam.prototxt", "sgd.prototxt"):
            (bad / f).write_text((custom / f).read_text())
        refused = subprocess.run(["bash", str(SCRIPT), "--schedule", str(bad), "--run", str(tmp_path / f"r_{name}")],
                                 capture_output=True, text=True, timeout=300)
        assert refused.returncode != 0 and "LOSS_FLOOR_DB" in refused.stderr, refused.stderr


def test_draw_passes_trains_each_draw_of_fresh_pairs_then_the_next(caffe, schedule, tmp_path):
    """run.env DRAW_PASSES=1: the 8 training pairs are drawn afresh every pass (4 iterations of
    batch 2): Adam 0-4 reads draw 0 (samples 0-7 of seed 1), 4-8 draw 1 (samples 8-15), SGD,
    whose iteration N is the run's position 8 + N, draw 2 (16-23).  Each stage trains in chunks
    that end where a draw does, a draw is deleted once the next is written, and the Adam
    stage counts as finished only after its last chunk; a run continued from a checkpoint in
    mid draw ends with the same weights.  A batch that does not divide the draw is refused."""
    import json

    from evaluate.checks import check_training_logs

    custom = draw_schedule(schedule, tmp_path / "schedule")
    run = tmp_path / "run"
    result = subprocess.run(["bash", str(SCRIPT), "--schedule", str(custom), "--run", str(run), "--workers", "1",
                             "--train-only"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    adam_log = (run / "logs" / "adam.log").read_text()
    sgd_log = (run / "logs" / "sgd.log").read_text()
    assert "--solver=adam.chunk.prototxt" in adam_log and "(draw 0: data/train-draw0, to iteration 4)" in adam_log
    assert "--solver=adam.prototxt --snapshot=snapshots/adam_iter_4.solverstate" in adam_log
    assert "(draw 1: data/train-draw1, to iteration 8)" in adam_log
    assert "(draw 2: data/train-draw2, to iteration 4)" in sgd_log
    assert sorted(p.name for p in (run / "data").iterdir()) == ["test", "train-draw2"]
    manifest = json.loads((run / "data" / "train-draw2" / "manifest.json").read_text())
    assert (manifest["seed"], manifest["first"], manifest["count"]) == (1, 16, 8)
    assert all("/data/train-draw2/" in line for line in (run / "train_list.txt").read_text().split())
    # Adam's first chunk ended with "Optimization Done" at 4; only the last one finishes the stage.
    adam = parse_caffe_log(adam_log)
    assert adam.done and not parse_caffe_log(adam_log.split("--solver=adam.prototxt --snapshot")[0]).done
    finished = [item for item in check_training_logs(run / "logs") if "finished" in item.claim]
    assert len(finished) == 2 and all(item.passed for item in finished), finished

    # Continued on a "fresh machine" from Adam 6 (mid draw 1; a checkpoint folder as
    # --save-checkpoint writes one): draw 1 is regenerated, read from where 6 stopped, and the
    # run ends with the very same weights.
    ckpt = checkpoint_of(run, "adam_iter_6", tmp_path / "ckpt")
    again = tmp_path / "again"
    resumed = subprocess.run(["bash", str(SCRIPT), "--resume-from", str(ckpt), "--run", str(again), "--workers", "1",
                              "--train-only"], capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "(draw 1: data/train-draw1, to iteration 8)" in (again / "logs" / "adam.log").read_text()
    a, b = weights(caffe, run), weights(caffe, again)
    for name in a:
        for wa, wb in zip(a[name], b[name]):
            np.testing.assert_array_equal(wa, wb, err_msg=name)

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.env").write_text(RUN_ENV.replace("BATCH_SIZE=2", "BATCH_SIZE=3") + "DRAW_PASSES=1\n")
    for f in ("adam.prototxt", "sgd.prototxt"):
        (bad / f).write_text((schedule / f).read_text())
    refused = subprocess.run(["bash", str(SCRIPT), "--schedule", str(bad), "--run", str(tmp_path / "r2")],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "not a whole number of batches of 3" in refused.stderr, refused.stderr


def test_a_draw_preset_changes_the_data_from_its_draw_on(schedule, tmp_path):
    """RUN/datagen-draw<D>.toml (DRAW_PASSES): draws D and later are simulated from it, earlier
    draws and the test set from datagen.toml; the end-of-run evaluation reads the last draw's
    presets (RUN/heldout-draw<D>.toml for the held-out split); checkpoints carry both; a
    misnamed one is refused."""
    import json

    custom = draw_schedule(schedule, tmp_path / "schedule")
    run = tmp_path / "run"
    first = subprocess.run(["bash", str(SCRIPT), "--schedule", str(custom), "--run", str(run), "--workers", "1",
                            "--train-only"], capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    # A checkpoint at Adam 2 (draw 0) whose physics change from draw 1 on.
    ckpt = checkpoint_of(run, "adam_iter_2", tmp_path / "ckpt")
    text = (run / "datagen.toml").read_text()
    assert text.startswith('name = "quick"')
    (ckpt / "datagen-draw1.toml").write_text(text.replace('name = "quick"', 'name = "variant"', 1))
    # ... and a held-out split, whose physics change from the last draw (2: SGD's 4 iterations).
    with open(ckpt / "config.env", "a") as f:
        f.write("HELDOUT_PRESET=quick\n")
    (ckpt / "heldout.toml").write_text(text.replace('name = "quick"', 'name = "held"', 1))
    (ckpt / "heldout-draw2.toml").write_text(text.replace('name = "quick"', 'name = "heldvariant"', 1))
    again = tmp_path / "again"
    resumed = subprocess.run(["bash", str(SCRIPT), "--resume-from", str(ckpt), "--run", str(again), "--workers", "1",
                              "--train-only"], capture_output=True, text=True, timeout=900)
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, out[-3000:]
    assert "data/train-draw0: 8 pairs of 52x52, preset quick (datagen.toml)" in out
    assert "data/train-draw1: 8 pairs of 52x52, preset quick (datagen-draw1.toml)" in out
    manifest = {split: json.loads((again / "data" / split / "manifest.json").read_text())
                for split in ("test", "train-draw2")}
    assert manifest["test"]["preset"] == "quick" and manifest["train-draw2"]["preset"] == "variant"
    assert json.loads((run / "data" / "test" / "manifest.json").read_text()) == manifest["test"]
    saved = tmp_path / "saved"
    assert subprocess.run(["bash", str(SCRIPT), "--run", str(again), "--save-checkpoint", str(saved)],
                          capture_output=True, text=True, timeout=300).returncode == 0
    assert (saved / "datagen-draw1.toml").read_text() == (ckpt / "datagen-draw1.toml").read_text()
    assert (saved / "heldout-draw2.toml").read_text() == (ckpt / "heldout-draw2.toml").read_text()
    # The finished run's evaluation: the physics it was trained on last, in and out of distribution.
    evaluated = subprocess.run(["bash", str(SCRIPT), "--run", str(again), "--workers", "1"],
                               capture_output=True, text=True, timeout=900)
    assert evaluated.returncode == 0, (evaluated.stdout + evaluated.stderr)[-3000:]
    assert "evaluation: datagen-draw1.toml, held out heldout-draw2.toml" in evaluated.stdout + evaluated.stderr
    results = (again / "eval" / "results.md").read_text()
    assert "preset `variant (" in results and "preset `heldvariant (" in results, results[:1500]

    (ckpt / "heldout-draw2x.toml").write_text(text)
    refused = subprocess.run(["bash", str(SCRIPT), "--resume-from", str(ckpt), "--run", str(tmp_path / "bad_heldout"),
                              "--workers", "1", "--train-only"], capture_output=True, text=True, timeout=900)
    assert refused.returncode != 0 and "heldout-draw<number>.toml" in refused.stderr, refused.stderr[-2000:]
    (ckpt / "heldout-draw2x.toml").unlink()
    (ckpt / "datagen-draw1x.toml").write_text(text)
    refused = subprocess.run(["bash", str(SCRIPT), "--resume-from", str(ckpt), "--run", str(tmp_path / "bad"),
                              "--workers", "1", "--train-only"], capture_output=True, text=True, timeout=900)
    assert refused.returncode != 0 and "datagen-draw<number>.toml" in refused.stderr, refused.stderr[-2000:]


def test_prefetched_draws_train_to_the_same_weights(caffe, schedule, tmp_path):
    """PREFETCH_DRAWS=1 (the default with --gpu): draw d+1 is written in the background while
    Caffe trains on draw d; the run reads the very same pairs and ends with the same weights
    as one that writes each draw when it needs it.  A bad value is refused."""
    custom = draw_schedule(schedule, tmp_path / "schedule")
    runs, out = {}, {}
    for flag in ("0", "1", "yes"):
        runs[flag] = tmp_path / f"run_{flag}"
        result = subprocess.run(["bash", str(SCRIPT), "--schedule", str(custom), "--run", str(runs[flag]),
                                 "--workers", "1", "--train-only"], capture_output=True, text=True, timeout=900,
                                env={**os.environ, "PREFETCH_DRAWS": flag})
        out[flag] = result
    assert out["yes"].returncode != 0 and "PREFETCH_DRAWS=yes: expected auto, 1 or 0" in out["yes"].stderr
    for flag in ("0", "1"):
        assert out[flag].returncode == 0, out[flag].stdout[-3000:] + out[flag].stderr[-3000:]
    assert "train-draw1: written in the background" in out["1"].stdout
    assert "written in the background" not in out["0"].stdout
    assert "train-draw1" in (runs["1"] / "logs" / "prefetch.out").read_text()
    a, b = weights(caffe, runs["0"]), weights(caffe, runs["1"])
    for name in a:
        for wa, wb in zip(a[name], b[name]):
            np.testing.assert_array_equal(wa, wb, err_msg=name)


def test_for_stops_training_in_time_at_an_exactly_resumable_snapshot(schedule, tmp_path):
    """--for SECONDS (a chunk on a lent or rented GPU): Caffe is interrupted after SECONDS of
    wall time; the run ends like --train-only (loss curve, no SGD, no evaluation), and the
    newest snapshot is one the stage resumes exactly from (a shard boundary: an even iteration
    here, shards of 2 iterations): an odd stop snapshot is removed.  A second --for resumes."""
    custom = tmp_path / "schedule"
    custom.mkdir()
    (custom / "run.env").write_text(RUN_ENV)
    # Far more iterations than fit in the time; periodic snapshots every 20.
    adam = solver("adam", 100000, "0.0003").replace("snapshot: 2\n", "snapshot: 20\n")
    (custom / "adam.prototxt").write_text(adam.replace("test_interval: 4", "test_interval: 1000"))
    (custom / "sgd.prototxt").write_text((schedule / "sgd.prototxt").read_text())
    run = tmp_path / "run"
    cmd = ["bash", str(SCRIPT), "--schedule", str(custom), "--run", str(run), "--workers", "1", "--for", "30"]
    t0 = time.time()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert time.time() - t0 < 30 + 60, "--for did not stop Caffe"
    assert "adam: stopped after --for 30 s" in result.stdout
    assert (run / "loss.png").exists() and not (run / "final.caffemodel").exists()
    assert not (run / "logs" / "sgd.log").exists()
    iters = sorted(int(p.stem.split("_iter_")[1]) for p in (run / "snapshots").glob("adam_iter_*.solverstate"))
    # Periodic snapshots and at most one stop snapshot, all at shard boundaries (even iterations).
    assert all(i % 2 == 0 for i in iters) and all(i % 20 == 0 for i in iters[:-1]), iters
    trained = parse_caffe_log((run / "logs" / "adam.log").read_text()).train_losses[-1][0]
    assert not iters or trained >= iters[-1] - 1
    if "inside a shard" in result.stdout:  # the stop snapshot fell inside a shard and was removed
        assert re.search(r"iteration (\d*[13579]) is inside a shard", result.stdout)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    if iters:
        assert f"adam: resuming from adam_iter_{iters[-1]}.solverstate" in again.stdout

    bad = subprocess.run(cmd[:-1] + ["10s"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "--for 10s: expected a whole number of seconds" in bad.stderr


def test_for_ends_the_background_draw_of_a_run_started_in_the_background(schedule, tmp_path):
    """--for with a draw being written in the background (PREFETCH_DRAWS=1), the script itself
    started with & as scripts/gpu_chunk.sh does (so SIGINT is ignored all the way down): the
    deadline (5 s) passes while draw 0 is written; the draw-1 datagen starts after it, and is
    ended at once rather than waited for; no process of the run is left behind."""
    custom = tmp_path / "schedule"
    custom.mkdir()
    # Draws big enough that one takes tens of seconds to write with one worker.
    env_text = RUN_ENV.replace("TRAIN_COUNT=8", "TRAIN_COUNT=2000").replace("SHARD_SIZE=4", "SHARD_SIZE=500")
    (custom / "run.env").write_text(env_text + "DRAW_PASSES=1\n")
    (custom / "adam.prototxt").write_text(solver("adam", 100000, "0.0003"))
    (custom / "sgd.prototxt").write_text((schedule / "sgd.prototxt").read_text())
    run = tmp_path / "run"
    line = f"bash {SCRIPT} --schedule {custom} --run {run} --workers 1 --for 5 > {tmp_path / 'out.txt'} 2>&1 & wait $!"
    result = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PREFETCH_DRAWS": "1"})
    ended = time.time()
    out = (tmp_path / "out.txt").read_text()
    assert result.returncode == 0, out[-3000:]
    assert "train-draw1: written in the background" in out and "adam: stopped after --for 5 s" in out, out[-3000:]
    draw0 = (run / "data" / "train-draw0" / "list.txt").stat().st_mtime  # draw 0 complete
    assert ended - draw0 < 12, f"{ended - draw0:.0f} s after draw 0: the background draw was waited for"
    assert not (run / "data" / "train-draw1" / "list.txt").exists()
    time.sleep(1)
    left = []
    for proc in os.listdir("/proc"):
        if proc.isdigit():
            try:
                cmdline = open(f"/proc/{proc}/cmdline", "rb").read().decode(errors="replace")
            except OSError:
                continue
            if str(run) in cmdline:
                left.append(cmdline.replace("\0", " "))
    assert not left, left


def test_committed_checkpoint_is_a_whole_pair():
    """models/checkpoint/ holds one .caffemodel + .solverstate pair that git tracks (a
    fresh clone must be able to --resume-from it; *.solverstate is ignored elsewhere)."""
    folder = REPO / "models" / "checkpoint"
    models = sorted(p.stem for p in folder.glob("*_iter_*.caffemodel"))
    states = sorted(p.stem for p in folder.glob("*_iter_*.solverstate"))
    assert len(models) == 1 and models == states, (models, states)
    if (REPO / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", "-q", str(folder / f"{states[0]}.solverstate")],
                                 cwd=REPO)
        assert ignored.returncode == 1, "git ignores the checkpoint's .solverstate"


def test_bad_options_fail_before_anything_is_written(schedule, tmp_path):
    """A typo in --weights, --gpu, --workers or --run stops the script before it sets up a run
    folder (whose frozen preset would outlive the typo) or generates data."""
    run = tmp_path / "run"
    (tmp_path / "notes.txt").write_text("not a model")
    cases = {
        ("--weights", str(tmp_path / "missing.caffemodel")): "no such file (or empty, or a folder)",
        ("--weights", str(tmp_path)): "no such file (or empty, or a folder)",
        ("--weights", str(tmp_path / "notes.txt")): "expected a .caffemodel or another run's",
        ("--gpu", "zero"): "--gpu zero: expected a device number or a list like 0,1",
        ("--workers", "abc"): "--workers abc: expected a positive whole number",
    }
    for option, message in cases.items():
        r = subprocess.run(["bash", str(SCRIPT), "--schedule", str(schedule), "--run", str(run), *option],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and message in r.stderr, (option, r.stderr)
        assert not run.exists(), option
    query = subprocess.run([str(REPO / ".venv" / "bin" / "caffe"), "device_query", "-gpu", "0"],
                           capture_output=True, text=True, timeout=60)
    if "CPU-only" in query.stderr:  # the CPU build (CI's): --gpu is refused before any work
        r = subprocess.run(["bash", str(SCRIPT), "--schedule", str(schedule), "--run", str(run), "--gpu", "0"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "this Caffe build is CPU-only" in r.stderr and not run.exists()
    r = subprocess.run(["bash", str(SCRIPT), "--run", str(run), "--save-checkpoint", str(tmp_path / "ck")],
                       capture_output=True, text=True, timeout=60)  # a mistyped --run of an existing run
    assert r.returncode != 0 and "no run set up there" in r.stderr
    assert not run.exists() and not (tmp_path / "ck").exists()
