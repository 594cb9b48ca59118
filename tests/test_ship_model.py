"""scripts/ship_model.sh: a finished run, or one snapshot of a run in progress, copied into
models/ (here a temporary destination, SHIP_TO) with the evaluation of exactly those weights."""
import hashlib
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "ship_model.sh"
#: A Caffe log of a stage that wrote snapshot 3072 and went on (glog lines as Caffe writes them).
LOG = """I20261202 03:42:29.091451 28027 solver.cpp:45] Initializing solver from parameters: \nbase_lr: 0.0001
type: "Adam"
I20261202 03:42:29.091701 28027 solver.cpp:102] Creating training net from net file: train.prototxt
I20261202 03:42:30.000000 28027 solver.cpp:239] Iteration 3040 (0.3 iter/s, 104.3s/32 iters), loss = 342.01
I20261202 03:42:31.000000 28027 solver.cpp:464] Snapshotting to binary proto file {run}/snapshots/adam_iter_3072.caffemodel
I20261202 03:42:31.100000 28027 sgd_solver.cpp:284] Snapshotting solver state to binary proto file \
{run}/snapshots/adam_iter_3072.solverstate
I20261202 03:42:32.000000 28027 solver.cpp:239] Iteration 3104 (0.3 iter/s, 104.3s/32 iters), loss = 340.00
"""
SET_UP = ["deploy.prototxt", "config.env", "adam.prototxt", "sgd.prototxt", "train.prototxt", "datagen.toml",
          "heldout.toml", "datagen-draw15.toml", "heldout-draw15.toml", "loss.png"]


def make_run(root: Path, weights: str, logs=("adam",)) -> Path:
    """A run folder with its set-up, Caffe logs naming the run's absolute path, one snapshot,
    and an evaluation folder whose results.md names ``weights``."""
    run = root / "run"
    (run / "logs").mkdir(parents=True)
    (run / "snapshots").mkdir()
    for name in SET_UP:
        (run / name).write_text(f"{name} of the run\n")
    for log in logs:
        (run / "logs" / f"{log}.log").write_text(LOG.format(run=run.resolve()))
    (run / "snapshots" / "adam_iter_3072.caffemodel").write_bytes(b"snapshot weights")
    ev = root / "eval"
    ev.mkdir()
    (ev / "results.md").write_text(f"# Results\n- CNN: deploy + {weights}\n")
    for name in ("results.csv", "checklist.md", "figure.png"):
        (ev / name).write_text(name)
    return run


def ship(*args, dest: Path):
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "SHIP_TO": str(dest)}, timeout=60)


def test_ships_a_snapshot_of_a_run_in_progress(tmp_path):
    run = make_run(tmp_path, "runs/long/snapshots/adam_iter_3072.caffemodel")
    dest = tmp_path / "models"
    # a table of another pipeline of the model shipped before (evaluate --self-ensemble)
    (dest / "evaluation" / "self_ensemble").mkdir(parents=True)
    (dest / "evaluation" / "self_ensemble" / "results.md").write_text("of the old weights")
    snap = run / "snapshots" / "adam_iter_3072.caffemodel"
    proc = ship(run, "--snapshot", snap, "--eval", tmp_path / "eval", dest=dest)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "stem_restore.caffemodel").read_bytes() == b"snapshot weights"
    digest = hashlib.sha256(b"snapshot weights").hexdigest()
    assert (dest / "SHA256SUMS").read_text() == f"{digest}  stem_restore.caffemodel\n"
    for name in SET_UP[1:-1]:
        assert (dest / "training" / name).read_text() == f"{name} of the run\n"
    assert (dest / "deploy.prototxt").is_file()
    # The log is cut after the line that wrote the snapshot, paths made relative to the run,
    # and the loss curve redrawn from it (a PNG, not the run's own file).
    log = (dest / "training" / "adam.log").read_text()
    assert log.endswith("to binary proto file snapshots/adam_iter_3072.solverstate\n")
    assert "Iteration 3104" not in log and "Iteration 3040" in log and str(run) not in log
    assert (dest / "training" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (dest / "training" / "sgd.log").exists()  # the SGD stage has not run
    assert {p.name for p in (dest / "evaluation").iterdir()} == {"results.md", "results.csv", "checklist.md",
                                                                 "figure.png"}


def test_refuses_before_copying_anything(tmp_path):
    run = make_run(tmp_path, "some_other.caffemodel", logs=("adam", "sgd"))
    dest = tmp_path / "models"
    snap = run / "snapshots" / "adam_iter_3072.caffemodel"
    proc = ship(run, "--snapshot", snap, "--eval", tmp_path / "eval", dest=dest)
    assert proc.returncode == 1 and "does not name adam_iter_3072.caffemodel" in proc.stderr
    other = run / "snapshots" / "adam_iter_2816.caffemodel"
    other.write_bytes(b"older weights")  # no log line wrote it
    proc = ship(run, "--snapshot", other, "--eval", tmp_path / "eval", dest=dest)
    assert proc.returncode == 1 and "does not log writing adam_iter_2816.solverstate" in proc.stderr
    proc = ship(run, dest=dest)  # no --snapshot: the run must be finished
    assert proc.returncode == 1 and "final.caffemodel missing: is the run finished?" in proc.stderr
    (run / "final.caffemodel").write_bytes(b"final")
    (tmp_path / "eval" / "results.md").write_text("CNN: final.caffemodel\n")
    (tmp_path / "eval" / "figure.png").unlink()
    proc = ship(run, "--eval", tmp_path / "eval", dest=dest)
    assert proc.returncode == 1 and "figure.png missing" in proc.stderr
    assert not dest.exists()
    (tmp_path / "eval" / "figure.png").write_text("png")
    proc = ship(run, "--eval", tmp_path / "eval", dest=dest)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "stem_restore.caffemodel").read_bytes() == b"final"
    assert (dest / "training" / "sgd.log").is_file() and (dest / "training" / "adam.log").is_file()


def test_ships_a_snapshot_an_ab_arm_wrote_into_the_lineage(tmp_path):
    """A train_ab.py arm spliced into the run's log writes snap_iter_N; its pair, copied in as
    snapshots/adam_iter_N, ships with the log cut at that line; another iteration's does not."""
    run = make_run(tmp_path, "runs/long/snapshots/adam_iter_3328.caffemodel")
    log = run / "logs" / "adam.log"
    log.write_text(log.read_text() + "### session 10: iterations 3072-3328 are an A/B arm\n"
                   "I20261202 15:45:08.495500 16726 solver.cpp:464] Snapshotting to binary proto file "
                   "snap_iter_3328.caffemodel\n"
                   "I20261202 15:45:08.512356 16726 sgd_solver.cpp:284] Snapshotting solver state to binary "
                   "proto file snap_iter_3328.solverstate\n"
                   "I20261202 15:46:00.000000 17253 solver.cpp:239] Iteration 3360 (0.3 iter/s, 104.3s/32 iters)"
                   ", loss = 330.0\n")
    (run / "snapshots" / "adam_iter_3328.caffemodel").write_bytes(b"arm weights")
    (run / "snapshots" / "adam_iter_332.caffemodel").write_bytes(b"no such snapshot")
    dest = tmp_path / "models"
    proc = ship(run, "--snapshot", run / "snapshots" / "adam_iter_332.caffemodel", "--eval", tmp_path / "eval",
                dest=dest)
    assert proc.returncode == 1 and "does not log writing adam_iter_332.solverstate" in proc.stderr
    proc = ship(run, "--snapshot", run / "snapshots" / "adam_iter_3328.caffemodel", "--eval", tmp_path / "eval",
                dest=dest)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "stem_restore.caffemodel").read_bytes() == b"arm weights"
    shipped = (dest / "training" / "adam.log").read_text()
    assert shipped.endswith("proto file snap_iter_3328.solverstate\n") and "Iteration 3360" not in shipped


def test_a_failure_on_the_way_leaves_the_shipped_model_and_other_weights_are_refused(tmp_path):
    """models/ changes only once everything is written; an evaluation of another file with the same
    name (another run's snapshot) is refused; the previous weights' other tables go."""
    run = make_run(tmp_path, "")
    snap = run / "snapshots" / "adam_iter_3072.caffemodel"
    (tmp_path / "eval" / "results.md").write_text(f"# Results\n- CNN: deploy + {snap}\n")
    dest = tmp_path / "models"
    for sub in ("self_ensemble", "align_rows_self_ensemble"):
        (dest / "evaluation" / sub).mkdir(parents=True)
        (dest / "evaluation" / sub / "results.md").write_text("of the old weights")
    (dest / "stem_restore.caffemodel").write_bytes(b"old weights")
    before = sorted((p.relative_to(dest), p.read_bytes() if p.is_file() else None) for p in dest.rglob("*"))
    failing = subprocess.run(["bash", str(SCRIPT), str(run), "--snapshot", str(snap), "--eval", str(tmp_path / "eval")],
                             capture_output=True, text=True, timeout=60,
                             env={"PATH": "/usr/bin:/bin", "SHIP_TO": str(dest), "PYTHON": "/bin/false"})
    assert failing.returncode != 0  # the loss curve could not be redrawn
    assert sorted((p.relative_to(dest), p.read_bytes() if p.is_file() else None) for p in dest.rglob("*")) == before
    assert not list(tmp_path.glob("models.ship.*"))  # the staging folder is gone
    other = tmp_path / "other" / "adam_iter_3072.caffemodel"
    other.parent.mkdir()
    other.write_bytes(b"another run's weights")
    (tmp_path / "eval" / "results.md").write_text(f"# Results\n- CNN: deploy + {other}\n")
    proc = ship(run, "--snapshot", snap, "--eval", tmp_path / "eval", dest=dest)
    assert proc.returncode == 1 and "not the bytes of" in proc.stderr
    (tmp_path / "eval" / "results.md").write_text(f"# Results\n- CNN: deploy + {snap}\n")
    proc = ship(run, "--snapshot", snap, "--eval", tmp_path / "eval", dest=dest)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "stem_restore.caffemodel").read_bytes() == b"snapshot weights"
    assert not (dest / "evaluation" / "align_rows_self_ensemble").exists() and "align_rows_self_ensemble" in proc.stdout
