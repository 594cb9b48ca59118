"""Command line: reproduction checks and the ground-truth-free scan measure.

Evaluation (default)::

    python -m evaluate --model prototxt/deploy.prototxt --weights W.caffemodel \\
        --preset quick --size 128 --count 6 --val-count 4 --seed 1000 \\
        --doses 100,300,1000 --out DIR [--train-log-dir RUNDIR/logs] [--bm3d mix]

scores the raw input, every classical baseline (tuned on a validation split)
and the CNN for each distortion family alone and for the full mix at every
dose; writes DIR/results.md, DIR/results.csv, DIR/figure.png and DIR/checklist.md,
and prints the checklist.  Without ``--weights`` the CNN is skipped.
``--bm3d`` chooses where the slow BM3D baseline runs: ``off``, ``mix`` (full-mix
conditions only, the default) or ``all``.

Scan measure::

    python -m evaluate measure IMAGE [IMAGE ...]

prints, for each image (.tif/.tiff, .npy, or any format Pillow reads), the
standard deviation of line-to-line shifts along x (px) and their mean.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from . import checks, report, run
from .metrics import DEFAULT_MAX_SHIFT, line_shifts

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "prototxt" / "deploy.prototxt"


# ------------------------------------------------------------------ measure

def read_image(path: str | Path) -> np.ndarray:
    """Read a 2-D image (first frame of a stack; RGB averaged to grey) as float64."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        arr = tifffile.imread(path)
    elif suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
    else:
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im)
    arr = np.squeeze(np.asarray(arr))
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].mean(axis=-1)
    elif arr.ndim == 3:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"unsupported pixel type {arr.dtype}")
    return arr.astype(np.float64)


def cmd_measure(argv: list[str]) -> int:
    """``python -m evaluate measure IMAGE...``: print the scan measure per file."""
    p = argparse.ArgumentParser(prog="python -m evaluate measure",
                                description="Ground-truth-free scan-distortion measure: std of line-to-line "
                                            "x shifts (px) from sub-pixel cross-correlation of adjacent rows.")
    p.add_argument("images", nargs="+", help=".tif/.tiff, .npy or Pillow-readable images; rows = scan lines")
    p.add_argument("--max-shift", type=int, default=DEFAULT_MAX_SHIFT, help="largest shift searched, px")
    p.add_argument("--smooth", type=float, default=0.0, help="Gaussian sigma along x before correlating, px")
    a = p.parse_args(argv)
    status = 0
    print(f"{'image':40s} {'spread_px':>10s} {'mean_px':>9s} {'lines':>6s}")
    for name in a.images:
        try:
            d = line_shifts(read_image(name), max_shift=a.max_shift, smooth=a.smooth)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other files
            print(f"error: {name}: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{name:40s} {np.std(d):10.4f} {np.mean(d):9.4f} {d.size + 1:6d}")
    return status


# --------------------------------------------------------------------- run

def _doses(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"doses must be comma-separated numbers, got {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"doses must be positive, got {text!r}")
    return vals


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="deploy prototxt (default prototxt/deploy.prototxt)")
    p.add_argument("--weights", help="trained .caffemodel; without it the CNN is skipped")
    p.add_argument("--preset", default="quick", help="datagen preset of the full mix (default quick)")
    p.add_argument("--size", type=int, default=128, help="test image size, px (default 128)")
    p.add_argument("--count", type=int, default=6, help="test images per condition (default 6)")
    p.add_argument("--val-count", type=int, default=4, help="validation images per condition for tuning (default 4)")
    p.add_argument("--seed", type=int, default=1000,
                   help=f"test seed, >= {run.MIN_EVAL_SEED} (training uses seeds below); validation uses "
                        f"seed + {run.VALIDATION_SEED_OFFSET}")
    p.add_argument("--doses", type=_doses, default=[100.0, 300.0, 1000.0],
                   help="comma-separated doses for the full mix, counts at the brightest pixel (default 100,300,1000)")
    p.add_argument("--family-dose", type=float, help="dose of the single-family conditions (default: middle dose)")
    p.add_argument("--families", help="comma-separated subset of datagen.FAMILIES (default all)")
    p.add_argument("--no-family-noise", action="store_true",
                   help="skip the 'family + shot_noise' conditions (each family with Poisson noise at the family dose)")
    p.add_argument("--baselines", help="comma-separated subset of gaussian,median,align_rows,anscombe_wiener,bm3d")
    p.add_argument("--bm3d", choices=("off", "mix", "all"), default="mix",
                   help="where the slow BM3D baseline runs (default mix: full-mix conditions only)")
    p.add_argument("--train-log-dir", help="RUNDIR/logs with Caffe logs (adam.log, sgd.log) to check training claims")
    p.add_argument("--examples", type=int, default=3, help="held-out images in figure.png (default 3)")
    p.add_argument("--gpu", type=int, help="GPU device id for the CNN (needs a CUDA Caffe; default CPU)")
    p.add_argument("--strict", action="store_true", help="exit with status 2 if any checklist item fails")
    p.add_argument("--out", required=True, help="output folder")
    return p


def architecture_checklist(model: str, net) -> tuple[str, bool]:
    """Checklist text from the loaded net (if any) and from the prototxt text."""
    text, ok = "", True
    if net is not None:
        convs, output = checks.layers_from_net(net)
        items = checks.check_architecture(convs, output)
        text += checks.format_checklist("Architecture (from the loaded Caffe net)", items) + "\n"
        ok &= all(i.passed for i in items)
    convs, output = checks.layers_from_prototxt(model)
    items = checks.check_architecture(convs, output)
    text += checks.format_checklist(f"Architecture (from {model})", items) + "\n"
    ok &= all(i.passed for i in items)
    return text, ok


def cmd_run(argv: list[str]) -> int:
    """Default command: the full evaluation."""
    a = build_parser().parse_args(argv)
    if a.seed < run.MIN_EVAL_SEED:
        print(f"error: --seed {a.seed}: evaluation seeds must be >= {run.MIN_EVAL_SEED} "
              f"(training uses seeds below {run.MIN_EVAL_SEED})", file=sys.stderr)
        return 2
    if a.count < 1 or a.val_count < 1 or a.size < 16:
        print("error: --count and --val-count must be >= 1 and --size >= 16", file=sys.stderr)
        return 2
    if not Path(a.model).is_file():
        print(f"error: {a.model}: deploy prototxt not found", file=sys.stderr)
        return 2
    if a.weights and not Path(a.weights).is_file():
        print(f"error: {a.weights}: caffemodel not found", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    import datagen

    families = a.families.split(",") if a.families else list(datagen.FAMILIES)
    unknown = [f for f in families if f not in datagen.FAMILIES]
    if unknown:
        print(f"error: unknown families {unknown}; known: {list(datagen.FAMILIES)}", file=sys.stderr)
        return 2
    try:
        base = datagen.load_preset(a.preset)
        all_baselines = run.select_baselines(a.baselines.split(",") if a.baselines else None)
    except Exception as exc:  # noqa: BLE001
        print(f"error: {exc}", file=sys.stderr)
        return 2

    net = cnn = None
    if a.weights:
        from restoration.engine import Restorer  # the same forward pass as restore.py

        for path, what in ((a.model, "deploy prototxt"), (a.weights, "caffemodel")):
            if not Path(path).is_file():  # Caffe would abort the whole process
                print(f"error: {path}: {what} not found", file=sys.stderr)
                return 2
        restorer = Restorer.from_files(a.model, a.weights, gpu=a.gpu)
        net = restorer.net

        def cnn(image):
            return restorer.restore(image).restored

    arch_text, ok = architecture_checklist(a.model, net)
    if a.train_log_dir:
        items = checks.check_training_logs(a.train_log_dir)
        train_text = checks.format_checklist(f"Training (from the Caffe logs in {a.train_log_dir})", items)
        ok &= all(i.passed for i in items)
    else:
        train_text = "### Training\n\n- [ ] not checked: no --train-log-dir given\n"

    t_start = time.perf_counter()
    results = []
    for cond in run.make_conditions(families, a.doses, a.family_dose, with_noise=not a.no_family_noise):
        t0 = time.perf_counter()
        preset = run.condition_preset(base, cond)
        test = datagen.simulate_pairs(preset, a.count, a.size, a.seed)
        val = datagen.simulate_pairs(preset, a.val_count, a.size, a.seed + run.VALIDATION_SEED_OFFSET)
        use = [b for b in all_baselines if not b.slow or a.bm3d == "all" or (a.bm3d == "mix" and cond.family is None)]
        res = run.evaluate_condition(cond, test, val, use, cnn, n_examples=a.examples)
        results.append(res)
        line = "  ".join(f"{s.method}={s.psnr_mean:.2f}" for s in res.scores)
        print(f"[{time.perf_counter() - t0:5.1f} s] {cond.label}: PSNR {line}", file=sys.stderr, flush=True)

    cmd = "python -m evaluate " + " ".join(shlex.quote(x) for x in argv)
    header = "\n".join([
        "# Restoration results on held-out synthetic STEM images", "",
        f"Regenerate with: `{cmd}`", "",
        f"- preset `{a.preset}`, {a.size}x{a.size} px, {a.count} test images per condition (seed {a.seed}), "
        f"{a.val_count} validation images for tuning the baselines (seed {a.seed + run.VALIDATION_SEED_OFFSET}); "
        f"training uses seeds < {run.MIN_EVAL_SEED}.",
        f"- single families at dose {results[0].condition.dose:g} (counts at the brightest clean pixel), alone"
        f"{'' if a.no_family_noise else ' and with shot noise (+ shot_noise)'}; "
        f"full mix at doses {', '.join(f'{d:g}' for d in a.doses)}.",
        f"- CNN: {a.model} + {a.weights}" if a.weights else "- CNN: not run (no --weights)",
        f"- BM3D: {a.bm3d}; total time {time.perf_counter() - t_start:.0f} s.",
    ])
    checklist = arch_text + train_text
    scores = [s for r in results for s in r.scores]
    report.write_csv(out / "results.csv", scores)
    report.atomic_write_bytes(out / "results.md", report.markdown_report(results, header, checklist).encode())
    report.atomic_write_bytes(out / "checklist.md", checklist.encode())
    mix = [r for r in results if r.condition.family is None]
    fig_res = mix[len(mix) // 2] if mix else results[0]
    if "cnn" in fig_res.examples:
        fig_method = "cnn"
    else:
        fig_method = max((s for s in fig_res.scores if s.method != "raw"), key=lambda s: s.psnr_mean,
                         default=fig_res.scores[0]).method
    report.write_figure(out / "figure.png", fig_res, fig_method, n=a.examples)
    print(checklist)
    for label, c, best, b, margin in report.cnn_verdict(results):
        print(f"{label}: CNN {c:.2f} dB vs best baseline {best} {b:.2f} dB ({margin:+.2f} dB)")
    for label, c, raw in report.cnn_vs_raw(results):
        print(f"{label}: CNN {c:.2f} dB vs raw {raw:.2f} dB ({c - raw:+.2f} dB)")
    print(f"wrote {out / 'results.md'}, {out / 'results.csv'}, {out / 'figure.png'}")
    return 2 if (a.strict and not ok) else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "measure":
        return cmd_measure(argv[1:])
    return cmd_run(argv)


if __name__ == "__main__":
    sys.exit(main())
