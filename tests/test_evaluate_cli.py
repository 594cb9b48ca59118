"""The `python -m evaluate` command line: scan measure, an end-to-end smoke run and the
held-out-specimens section."""
import csv
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from evaluate.__main__ import main
from evaluate.baselines import shift_rows
from helpers import RSCIIO_DATA, lattice

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "prototxt" / "deploy.prototxt"


def test_measure_subcommand(tmp_path, capsys):
    clean = lattice(96, angle=0.3)
    jittered = shift_rows(clean, np.random.default_rng(0).normal(0, 1.0, 96))
    tifffile.imwrite(tmp_path / "clean.tif", clean.astype(np.float32))
    np.save(tmp_path / "jittered.npy", jittered)
    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    grey = np.round(255 * (jittered - jittered.min()) / np.ptp(jittered)).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.png")  # restoration.io: luminance
    shutil.copy(RSCIIO_DATA / "digitalmicrograph" / "2D" / "test_STEM_image.dm3", tmp_path / "stem.dm3")
    names = ["clean.tif", "broken.tif", "jittered.npy", "rgb.png", "stem.dm3"]
    status = main(["measure", *(str(tmp_path / n) for n in names)])
    captured = capsys.readouterr()
    assert status == 1  # the broken file is reported, the others are still measured
    assert "broken.tif" in captured.err
    assert "rgb.png: RGB image converted to luminance" in captured.err  # restoration.io's warning
    rows = {Path(line.split()[0]).name: float(line.split()[1]) for line in captured.out.splitlines()[1:]}
    assert set(rows) == {"clean.tif", "jittered.npy", "rgb.png", "stem.dm3"}
    assert rows["clean.tif"] < 0.1
    assert rows["jittered.npy"] > 1.0
    assert rows["rgb.png"] > 1.0
    assert math.isfinite(rows["stem.dm3"])  # Gatan DM, read by restore.py's reader


def test_measure_refuses_bad_options_and_flat_frames(tmp_path, capsys):
    np.save(tmp_path / "flat.npy", np.full((32, 32), 7.0))
    np.save(tmp_path / "lattice.npy", lattice(64, angle=0.3))
    for option in (["--max-shift", "0"], ["--max-shift", "-1"], ["--smooth", "-1"], ["--smooth", "nan"]):
        with pytest.raises(SystemExit) as info:
            main(["measure", *option, str(tmp_path / "lattice.npy")])
        assert info.value.code == 2 and option[0] in capsys.readouterr().err
    assert main(["measure", str(tmp_path / "flat.npy"), str(tmp_path / "lattice.npy")]) == 1
    captured = capsys.readouterr()
    assert "flat.npy: every scan line is flat" in captured.err and "lattice.npy" in captured.out


def test_run_rejects_training_seed(tmp_path, capsys):
    assert main(["--seed", "5", "--out", str(tmp_path)]) == 2
    assert "1000" in capsys.readouterr().err


def test_bad_family_dose_and_preset_are_refused_before_the_output_folder(tmp_path, capsys):
    for dose in ("-5", "0", "inf", "lots"):
        with pytest.raises(SystemExit) as info:
            main(["--family-dose", dose, "--out", str(tmp_path / "a")])
        assert info.value.code == 2 and "--family-dose: dose must be" in capsys.readouterr().err
    assert main(["--preset", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "b")]) == 2
    assert "missing.toml" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def _has_columns(preset, cond, count: int, size: int, seed: int) -> bool:
    """Whether any clean test image of ``cond`` has atomic columns (then its column error must exist)."""
    import datagen
    from evaluate import run
    from evaluate.metrics import column_peaks

    pairs = datagen.simulate_pairs(run.condition_preset(datagen.load_preset(preset), cond), count, size, seed)
    return any(len(column_peaks(clean)) > 0 for _, clean in pairs)


def test_end_to_end_smoke(tmp_path, weights):
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
    assert all(np.isfinite(float(r["psnr_mean"])) and np.isfinite(float(r["ssim_mean"])) for r in rows)
    md = (out / "results.md").read_text()
    assert "| full mix @ 300 |" in md and "Regenerate with" in md
    assert "## CNN vs the raw input, single families" in md
    # the margin over the best baseline with its interval, paired over the 2 test images
    assert re.search(r"- full mix @ 300: CNN [\d.]+ dB (beats|is ahead of \(95 % interval includes 0\)|does NOT beat) best baseline \S+ [\d.]+ dB "
                     r"\(margin [+-][\d.]+ ± [\d.]+ dB\)", md), md
    assert "## Atomic-column position error" in md
    # A column error exists exactly where a clean test image has atomic columns (NaN otherwise).
    from evaluate import run

    conds = {c.label: c for c in run.make_conditions(["scan_jitter", "shot_noise"], [300.0], with_noise=True)}
    has = {label: _has_columns("quick", c, 2, 64, 1000) for label, c in conds.items()}
    assert any(has.values())  # not vacuous: some condition must report real numbers
    for r in rows:
        value = float(r["column_error_px"])
        assert math.isfinite(value) == has[r["condition"]], (r["condition"], r["method"], value)
        if has[r["condition"]]:
            assert 0 <= value < 64, (r["condition"], r["method"], value)
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


def test_heldout_conditions():
    from evaluate import run

    conds = run.heldout_conditions([100, 1000])
    assert [c.label for c in conds] == ["heldout full mix @ 100", "heldout full mix @ 1000"]
    assert all(c.family is None and not c.with_noise for c in conds)
    assert run.Condition(None, 300.0).label == "full mix @ 300"  # in-distribution labels unchanged


def _raw_psnr(preset: str, dose: float, count: int, size: int, seed: int) -> float:
    """Mean PSNR of the distorted images of the full mix of ``preset`` at ``dose`` (the 'raw' row)."""
    import datagen
    from evaluate import run

    pairs = datagen.simulate_pairs(run.condition_preset(datagen.load_preset(preset), run.Condition(None, dose)),
                                   count, size, seed)
    return run.score_images([d for d, _ in pairs], [c for _, c in pairs])["psnr_mean"]


def test_heldout_preset_section(tmp_path, capsys):
    """--heldout-preset: the full mix at every dose on the held-out preset's images, as its own
    section of results.md (PSNR, SSIM, column error) and as `heldout full mix @ D` CSV rows."""
    import datagen
    from evaluate import run
    from evaluate.baselines import BASELINES, tune

    out = tmp_path / "eval"
    doses = [100.0, 1000.0]
    argv = ["--preset", "training", "--heldout-preset", "heldout", "--size", "64", "--count", "2",
            "--val-count", "1", "--seed", "1000", "--doses", "100,1000", "--families", "shot_noise",
            "--no-family-noise", "--baselines", "gaussian,median", "--bm3d", "off", "--examples", "1",
            "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    held = [r for r in rows if r["condition"].startswith("heldout ")]
    assert {r["condition"] for r in held} == {"heldout full mix @ 100", "heldout full mix @ 1000"}
    assert {r["method"] for r in held} == {"raw", "gaussian", "median"}
    assert {r["condition"] for r in rows if r not in held} == {"shot_noise @ 1000", "full mix @ 100",
                                                                 "full mix @ 1000"}
    for r in held:  # held-out scenes all have a lattice: every value is a real number
        for key in ("psnr_mean", "ssim_mean", "column_error_px"):
            assert math.isfinite(float(r[key])), (r["condition"], r["method"], key, r[key])
        assert r["n"] == "2"

    # The held-out rows score images of the held-out preset, the others those of --preset (same seed).
    def raw_row(condition):
        return next(float(r["psnr_mean"]) for r in rows if r["condition"] == condition and r["method"] == "raw")

    for dose in doses:
        held_psnr, in_psnr = _raw_psnr("heldout", dose, 2, 64, 1000), _raw_psnr("training", dose, 2, 64, 1000)
        assert abs(held_psnr - in_psnr) > 0.01  # the two presets' images differ at this seed
        assert raw_row(f"heldout full mix @ {dose:g}") == pytest.approx(held_psnr, rel=1e-5)
        assert raw_row(f"full mix @ {dose:g}") == pytest.approx(in_psnr, rel=1e-5)
    # ... and the baselines are tuned on the held-out preset's own validation images.
    val = datagen.simulate_pairs(run.condition_preset(datagen.load_preset("heldout"), run.Condition(None, 100.0)),
                                 1, 64, 1000 + run.VALIDATION_SEED_OFFSET)
    best, _ = tune(BASELINES["gaussian"].apply, BASELINES["gaussian"].grid, val)
    row = next(r for r in held if r["condition"] == "heldout full mix @ 100" and r["method"] == "gaussian")
    assert row["params"] == " ".join(f"{k}={v:g}" for k, v in best.items())

    md = (out / "results.md").read_text()
    main_part, _, section = md.partition("## Held-out specimens (preset heldout)")
    assert section, "no held-out section in results.md"
    section = section.split("\n## ")[0]  # up to the next top-level section
    assert "| heldout full mix" not in main_part  # not in the in-distribution tables
    for heading in ("### PSNR", "### SSIM", "### Atomic-column position error"):
        assert heading in section
    tables = section.split("### ")[1:4]
    for dose in doses:
        for table in tables:  # one row per dose in each metric's table, with numbers in every cell
            row = next(line for line in table.splitlines() if line.startswith(f"| heldout full mix @ {dose:g} |"))
            cells = [c.strip().strip("*") for c in row.strip("|").split("|")[1:]]
            assert len(cells) == 3 and all(math.isfinite(float(c)) for c in cells), row


def test_examples_zero_writes_the_tables_without_a_figure(tmp_path, capsys):
    """--examples 0: results and checklist, no figure.png (it used to fail after the tables
    with 'no example images'); a negative count is refused before any work."""
    out = tmp_path / "eval"
    argv = ["--preset", "quick", "--size", "64", "--count", "1", "--val-count", "1", "--seed", "1000",
            "--doses", "300", "--families", "shot_noise", "--no-family-noise", "--baselines", "gaussian",
            "--bm3d", "off", "--examples", "0", "--out", str(out)]
    assert main(argv) == 0
    assert (out / "results.md").is_file() and (out / "results.csv").is_file()
    assert not (out / "figure.png").exists()
    assert main(argv[:-4] + ["--examples", "-1", "--out", str(tmp_path / "neg")]) == 2
    assert "--examples -1: must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "neg").exists()


def test_drift_ceiling_scores_every_method_on_the_drifted_images():
    """With drift_refs, each method is also scored on the test images whose drift is on, beside
    the drift-only reference; a full mix with strong drift everywhere puts that ceiling above
    the raw input and the baseline, and results.md gets the table."""
    import datagen
    from datagen.presets import full_mix, with_dose
    from evaluate import report, run
    from evaluate.baselines import BASELINES

    preset = with_dose(full_mix("paper"), 300)
    preset["drift"].update(probability=1.0, velocity_angstrom_per_s=8.0)
    test = datagen.simulate_pairs(preset, 3, 96, 1000)
    val = datagen.simulate_pairs(preset, 1, 96, 1000 + run.VALIDATION_SEED_OFFSET)
    refs = datagen.drift_only_references(preset, 3, 96, 1000)
    cond = run.Condition(None, 300.0)
    res = run.evaluate_condition(cond, test, val, [BASELINES["gaussian"]], n_examples=0, drift_refs=refs)
    assert res.n_drifted == 3
    assert set(res.drifted_psnr) == {"raw", "gaussian", run.DRIFT_CEILING}
    ceiling = res.drifted_psnr[run.DRIFT_CEILING]
    assert ceiling > res.drifted_psnr["raw"] and ceiling > res.drifted_psnr["gaussian"]
    # All three images drift: the drifted-image means are the tables' means.
    for s in res.scores:
        assert res.drifted_psnr[s.method] == pytest.approx(s.psnr_mean, rel=1e-9)

    lines = report.drift_section([res])
    row = next(line for line in lines if line.startswith("| full mix @ 300 |"))
    assert row.split("|")[2].strip() == "3 of 3" and f"{ceiling:.2f}" in row
    plain = run.evaluate_condition(cond, test, val, [], n_examples=0)
    assert plain.n_drifted == 0 and report.drift_section([plain]) == []


def test_drift_residual_scores_against_the_drift_only_reference():
    """On drifted frames each method is also scored against the frame's drift-only reference
    (data range of the clean image): on frames with drift and nothing else the raw input is
    near that reference, tens of dB above its PSNR against the drift-free specimen."""
    import datagen
    from datagen.presets import family_preset, with_dose
    from evaluate import report, run
    from evaluate.baselines import BASELINES
    from evaluate.metrics import clean_range

    preset = with_dose(family_preset("paper", "drift"), 300)
    preset["drift"].update(velocity_angstrom_per_s=8.0)
    test = datagen.simulate_pairs(preset, 3, 96, 1000)
    val = datagen.simulate_pairs(preset, 1, 96, 1000 + run.VALIDATION_SEED_OFFSET)
    refs = datagen.drift_only_references(preset, 3, 96, 1000)
    res = run.evaluate_condition(run.Condition(None, 300.0), test, val, [BASELINES["gaussian"]],
                                 n_examples=0, drift_refs=refs)
    assert res.n_drifted == 3 and set(res.drift_residual_psnr) == {"raw", "gaussian"}
    expected = np.mean([min(run.psnr(d, r, clean_range(c)), run.PSNR_CAP_DB) for (d, c), r in zip(test, refs)])
    assert res.drift_residual_psnr["raw"] == pytest.approx(expected, rel=1e-12)
    assert res.drift_residual_psnr["raw"] > res.drifted_psnr["raw"] + 10
    lines = report.drift_section([res])
    head = next(i for i, line in enumerate(lines) if "drift-only reference instead" in line)
    row = next(line for line in lines[head:] if line.startswith("| full mix @ 300 |"))
    assert row.split("|")[2].strip() == "3 of 3" and f"{res.drift_residual_psnr['raw']:.2f}" in row


def test_compare_scores_other_weights_on_the_same_images(tmp_path, capsys, caffe, weights):
    """--compare LABEL=W: W is scored as method cnn_LABEL on the very images of the CNN (the
    same weights give the same numbers, other weights other numbers); it never counts as the
    best classical baseline, and results.md gets the CNN-vs-compared lines."""
    from helpers import make_weights

    other = make_weights(caffe, tmp_path / "other.caffemodel", seed=12)
    out = tmp_path / "eval"
    argv = ["--model", str(DEPLOY), "--weights", str(weights), "--compare", f"same={weights}",
            "--compare", f"other={other}", "--preset", "quick", "--size", "64", "--count", "2",
            "--val-count", "1", "--seed", "1000", "--doses", "300", "--families", "shot_noise",
            "--no-family-noise", "--baselines", "gaussian", "--bm3d", "off", "--examples", "0", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    for condition in ("shot_noise @ 300", "full mix @ 300"):
        psnr = {r["method"]: float(r["psnr_mean"]) for r in rows if r["condition"] == condition}
        assert set(psnr) == {"raw", "gaussian", "cnn", "cnn_same", "cnn_other"}
        assert psnr["cnn_same"] == psnr["cnn"]
        assert psnr["cnn_other"] != psnr["cnn"]
    md = (out / "results.md").read_text()
    assert "best baseline gaussian" in md  # a compared network is not a baseline
    assert "- full mix @ 300: CNN " in md and " vs cnn_other " in md
    assert "+0.00 dB" in next(line for line in md.splitlines() if " vs cnn_same " in line)
    assert "| cnn_same" not in md.split("## Baseline parameters")[1].split("\n## ")[0]
    assert "full mix @ 300: CNN" in printed and "figure.png" not in printed

    for bad in (["--compare", "no-equals-sign"], ["--compare", f"a b={other}"]):
        with pytest.raises(SystemExit):
            main(argv[:6] + bad + argv[8:])
    assert main(argv[:2] + argv[4:]) == 2 and "--compare needs --weights" in capsys.readouterr().err
    missing = argv[:6] + ["--compare", f"gone={tmp_path / 'gone.caffemodel'}"] + argv[8:]
    assert main(missing) == 2 and "gone.caffemodel: caffemodel not found" in capsys.readouterr().err


def test_psnr_and_column_error_on_the_frames_without_drift():
    """Where some test images drift and others do not, each method's PSNR and column error are
    also reported over the images without drift alone (drift caps every method's PSNR and moves
    every column, so the overall numbers mostly measure drift), in two more tables of the drift
    section."""
    import datagen
    from datagen.presets import full_mix, with_dose
    from evaluate import report, run
    from evaluate.baselines import BASELINES

    preset = with_dose(full_mix("paper"), 300)
    preset["drift"].update(probability=0.5, velocity_angstrom_per_s=8.0)
    test = datagen.simulate_pairs(preset, 6, 96, 1000)
    val = datagen.simulate_pairs(preset, 1, 96, 1000 + run.VALIDATION_SEED_OFFSET)
    refs = datagen.drift_only_references(preset, 6, 96, 1000)
    res = run.evaluate_condition(run.Condition(None, 300.0), test, val, [BASELINES["gaussian"]], n_examples=0,
                                 drift_refs=refs)
    still = [i for i, (r, (_, c)) in enumerate(zip(refs, test)) if np.array_equal(r, c)]
    assert 0 < len(still) < 6 and res.n_drifted == 6 - len(still)  # both kinds present at this seed
    raw = run.rms_column_error([test[i][0] for i in still], [test[i][1] for i in still])
    assert set(res.undrifted_column_error) == {"raw", "gaussian"}
    assert res.undrifted_column_error["raw"] == pytest.approx(raw, rel=1e-12, nan_ok=True)
    overall = next(s.column_error_px for s in res.scores if s.method == "raw")
    assert math.isfinite(raw) and raw != overall  # a different set of images than the main table's
    raw_psnr = np.mean([min(run.psnr(test[i][0], test[i][1]), run.PSNR_CAP_DB) for i in still])
    assert set(res.undrifted_psnr) == {"raw", "gaussian"}
    assert res.undrifted_psnr["raw"] == pytest.approx(raw_psnr, rel=1e-12)
    assert res.undrifted_psnr["raw"] != next(s.psnr_mean for s in res.scores if s.method == "raw")
    lines = report.drift_section([res])
    rows = [line for line in lines if line.startswith("| full mix @ 300 |") and line.count("|") == 5]
    assert len(rows) == 3 and rows[0].split("|")[2].strip() == f"{res.n_drifted} of 6"
    rows = rows[1:]  # the first is the residual table, over the drifted images
    assert all(r.split("|")[2].strip() == f"{len(still)} of 6" for r in rows)
    psnr_row, error_row = rows
    assert psnr_row.split("|")[3].strip() == f"{raw_psnr:.2f}"
    assert error_row.split("|")[3].strip() == f"{raw:.3f}"


def test_math_picks_the_cnn_engine_and_leaves_the_environment_as_it_was(tmp_path, monkeypatch, weights):
    """--math sets CAFFE_DNNL_MATH for the CNN (default fp32: one table whatever the CPU),
    results.md names the engine that ran, and the caller's setting comes back afterwards."""
    monkeypatch.setenv("CAFFE_DNNL_MATH", "auto")
    monkeypatch.delenv("CAFFE_CUDA_MATH", raising=False)
    common = ["--model", str(DEPLOY), "--weights", str(weights), "--preset", "quick", "--size", "64",
              "--count", "1", "--val-count", "1", "--seed", "1000", "--doses", "300", "--families",
              "shot_noise", "--no-family-noise", "--baselines", "gaussian", "--bm3d", "off", "--examples", "0"]
    engines = {}
    for math_arg in (None, "off"):
        out = tmp_path / f"eval_{math_arg}"
        assert main(common + ([] if math_arg is None else ["--math", math_arg]) + ["--out", str(out)]) == 0
        engines[math_arg] = next(line for line in (out / "results.md").read_text().splitlines()
                                 if line.startswith("- CNN convolutions: "))
        assert os.environ["CAFFE_DNNL_MATH"] == "auto" and "CAFFE_CUDA_MATH" not in os.environ
    assert engines[None].startswith("- CNN convolutions: dnnl fp32 ") and "`--math fp32`" in engines[None]
    assert "caffe (CAFFE_DNNL_MATH=off)" in engines["off"] and "`--math off`" in engines["off"]
