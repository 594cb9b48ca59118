"""The `python -m evaluate` command line: scan measure and an end-to-end smoke run."""
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile

from evaluate.__main__ import main
from evaluate.baselines import shift_rows
from tests.conftest_evaluate import lattice

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "prototxt" / "deploy.prototxt"


def test_measure_subcommand(tmp_path, capsys):
    clean = lattice(96, angle=0.3)
    jittered = shift_rows(clean, np.random.default_rng(0).normal(0, 1.0, 96))
    tifffile.imwrite(tmp_path / "clean.tif", clean.astype(np.float32))
    np.save(tmp_path / "jittered.npy", jittered)
    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    status = main(["measure", str(tmp_path / "clean.tif"), str(tmp_path / "broken.tif"), str(tmp_path / "jittered.npy")])
    captured = capsys.readouterr()
    assert status == 1  # the broken file is reported, the others are still measured
    assert "broken.tif" in captured.err
    rows = {Path(line.split()[0]).name: float(line.split()[1]) for line in captured.out.splitlines()[1:]}
    assert rows["clean.tif"] < 0.1
    assert rows["jittered.npy"] > 1.0


def test_run_rejects_training_seed(tmp_path, capsys):
    assert main(["--seed", "5", "--out", str(tmp_path)]) == 2
    assert "1000" in capsys.readouterr().err


def _random_caffemodel(path: Path) -> None:
    """A deploy net with He-normal random weights, saved by pycaffe."""
    import caffe

    caffe.set_mode_cpu()
    net = caffe.Net(str(DEPLOY), caffe.TEST)
    rng = np.random.default_rng(0)
    for name, params in net.params.items():
        w = params[0].data
        fan_in = w.shape[1] * w.shape[2] * w.shape[3]
        w[...] = rng.normal(0, np.sqrt(2.0 / fan_in), w.shape)
        params[1].data[...] = 0.01
    net.save(str(path))


def test_end_to_end_smoke(tmp_path):
    weights = tmp_path / "random.caffemodel"
    _random_caffemodel(weights)
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "evaluate", "--model", str(DEPLOY), "--weights", str(weights),
           "--preset", "quick", "--size", "64", "--count", "2", "--val-count", "1", "--seed", "1000",
           "--doses", "300", "--families", "scan_jitter,shot_noise", "--examples", "2", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "PASS: 12 convolution layers" in proc.stdout
    for name in ("results.md", "results.csv", "figure.png", "checklist.md"):
        assert (out / name).stat().st_size > 0
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    conditions = {r["condition"] for r in rows}
    assert conditions == {"scan_jitter @ 300", "shot_noise @ 300", "scan_jitter + shot_noise @ 300",
                          "full mix @ 300"}
    methods = {r["method"] for r in rows if r["condition"] == "full mix @ 300"}
    assert methods == {"raw", "gaussian", "median", "align_rows", "align+gaussian", "anscombe_wiener", "bm3d", "cnn"}
    assert all(np.isfinite(float(r["ssim_mean"])) for r in rows)
    md = (out / "results.md").read_text()
    assert "| full mix @ 300 |" in md and "Regenerate with" in md
    assert "## CNN vs the raw input, single families" in md
    assert "## Atomic-column position error" in md
    assert all(r["column_error_px"] for r in rows)  # a number or nan for every row
    assert "- scan_jitter + shot_noise @ 300: CNN " in md
    assert (out / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_conditions_with_noise():
    from datagen import FAMILIES
    from evaluate import run

    conds = run.make_conditions(["scan_jitter", "shot_noise"], [100, 300, 1000], with_noise=True)
    assert [c.label for c in conds] == ["scan_jitter @ 300", "shot_noise @ 300", "scan_jitter + shot_noise @ 300",
                                        "full mix @ 100", "full mix @ 300", "full mix @ 1000"]
    preset = run.condition_preset("quick", conds[2])
    on = {f for f in FAMILIES if preset[f]["probability"] > 0}
    assert on == {"scan_jitter", "shot_noise"} and preset["detector"]["dose_counts"] == 300
    alone = run.condition_preset("quick", conds[0])
    assert {f for f in FAMILIES if alone[f]["probability"] > 0} == {"scan_jitter"}
