"""scripts/ship_model.sh: a finished run, or one snapshot of a run in progress, copied into
models/ (here a temporary destination, SHIP_TO) with the evaluation of exactly those weights."""
import hashlib
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "ship_model.sh"
SET_UP = ["deploy.prototxt", "config.env", "adam.prototxt", "sgd.prototxt", "train.prototxt", "datagen.toml",
          "heldout.toml", "loss.png"]


def make_run(root: Path, weights: str, logs=("adam",)) -> Path:
    """A run folder with its set-up, Caffe logs naming the run's absolute path, one snapshot,
    and an evaluation folder whose results.md names ``weights``."""
    run = root / "run"
    (run / "logs").mkdir(parents=True)
    (run / "snapshots").mkdir()
    for name in SET_UP:
        (run / name).write_text(f"{name} of the run\n")
    for log in logs:
        (run / "logs" / f"{log}.log").write_text(f"Snapshotting to {run.resolve()}/snapshots/x\n")
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
    snap = run / "snapshots" / "adam_iter_3072.caffemodel"
    proc = ship(run, "--snapshot", snap, "--eval", tmp_path / "eval", dest=dest)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "stem_restore.caffemodel").read_bytes() == b"snapshot weights"
    digest = hashlib.sha256(b"snapshot weights").hexdigest()
    assert (dest / "SHA256SUMS").read_text() == f"{digest}  stem_restore.caffemodel\n"
    for name in SET_UP[1:]:
        assert (dest / "training" / name).read_text() == f"{name} of the run\n"
    assert (dest / "deploy.prototxt").is_file()
    assert (dest / "training" / "adam.log").read_text() == "Snapshotting to snapshots/x\n"  # path made relative
    assert not (dest / "training" / "sgd.log").exists()  # the SGD stage has not run
    assert {p.name for p in (dest / "evaluation").iterdir()} == {"results.md", "results.csv", "checklist.md",
                                                                 "figure.png"}


def test_refuses_before_copying_anything(tmp_path):
    run = make_run(tmp_path, "some_other.caffemodel", logs=("adam", "sgd"))
    dest = tmp_path / "models"
    snap = run / "snapshots" / "adam_iter_3072.caffemodel"
    proc = ship(run, "--snapshot", snap, "--eval", tmp_path / "eval", dest=dest)
    assert proc.returncode == 1 and "does not name adam_iter_3072.caffemodel" in proc.stderr
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
