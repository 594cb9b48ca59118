"""Command line: reproduction checks and the ground-truth-free scan measure.

Evaluation (default)::

    python -m evaluate --model prototxt/deploy.prototxt --weights W.caffemodel \\
        --preset quick --size 128 --count 6 --val-count 4 --seed 1000 \\
        --doses 100,300,1000 --out DIR [--train-log-dir RUNDIR/logs] [--bm3d mix] \\
        [--heldout-preset heldout]

scores the raw input, every classical baseline (tuned on a validation split)
and the CNN for each distortion family alone and for the full mix at every
dose; writes DIR/results.md, DIR/results.csv, DIR/figure.png and DIR/checklist.md,
and prints the checklist.  Without ``--weights`` the CNN is skipped.
``--compare shipped=models/stem_restore.caffemodel`` (repeatable) scores further weights of
the same ``--model`` on the same images, as method ``cnn_shipped``: the tables then show
whether a new snapshot beats the model it would replace.
``--bm3d`` chooses where the slow BM3D baseline runs: ``off``, ``mix`` (full-mix
conditions only, the default) or ``all``; ``--cache DIR`` keeps its outputs and
those of the ``--compare`` networks, so scoring the next snapshot on the same
images skips them (:mod:`evaluate.cache`).
``--heldout-preset NAME`` (a datagen
preset name or .toml path, e.g. ``heldout``: specimens never used in training)
adds the full mix at every dose drawn from that preset, with the same seeds and
counts and baselines tuned on its own validation images: a section "Held-out
specimens (preset NAME)" in results.md and rows ``heldout full mix @ DOSE`` in
results.csv.

Scan measure::

    python -m evaluate measure IMAGE [IMAGE ...]

prints, for each image, the standard deviation of line-to-line shifts along x
(px) and their mean.  Images are read by :func:`restoration.io.read_image`
(restore.py's reader: TIFF, PNG/JPEG, NPY, DM3/DM4, SER, EMD, MRC; RGB converted
to luminance with a warning); a file with several images or frames is measured
on the first frame of its first image.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from stem_restore.atomic import atomic_write_bytes

from . import checks, report, run
from .cache import CachedMethod, network_tag
from .metrics import DEFAULT_MAX_SHIFT, line_shifts

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "prototxt" / "deploy.prototxt"


# ------------------------------------------------------------------ measure

def measured_frame(path: str | Path) -> np.ndarray:
    """The frame the scan measure is taken on: the first frame of the first image of ``path``,
    as float64, read by :func:`restoration.io.read_image` (its warnings printed to stderr).

    Raises :class:`restoration.io.InputError` with a one-line reason for a file it cannot read.
    """
    from restoration.io import read_image

    img = read_image(path)
    for note in img.warnings:
        print(f"warning: {path}: {note}", file=sys.stderr)
    return np.asarray(img.signals[0].frames()[0], dtype=np.float64)


def cmd_measure(argv: list[str]) -> int:
    """``python -m evaluate measure IMAGE...``: print the scan measure per file."""
    p = argparse.ArgumentParser(prog="python -m evaluate measure",
                                description="Ground-truth-free scan-distortion measure: std of line-to-line "
                                            "x shifts (px) from sub-pixel cross-correlation of adjacent rows.")
    p.add_argument("images", nargs="+", help="images in any format restore.py reads (TIFF, PNG/JPEG, NPY, "
                                             "DM3/DM4, SER, EMD, MRC); rows = scan lines")
    p.add_argument("--max-shift", type=int, default=DEFAULT_MAX_SHIFT, help="largest shift searched, px (>= 1)")
    p.add_argument("--smooth", type=float, default=0.0, help="Gaussian sigma along x before correlating, px (>= 0)")
    a = p.parse_args(argv)
    if a.max_shift < 1:
        p.error(f"--max-shift must be at least 1 px, got {a.max_shift}")
    if not 0 <= a.smooth < float("inf"):
        p.error(f"--smooth must be a finite sigma >= 0 px, got {a.smooth}")
    status = 0
    print(f"{'image':40s} {'spread_px':>10s} {'mean_px':>9s} {'lines':>6s}")
    for name in a.images:
        try:
            d = line_shifts(measured_frame(name), max_shift=a.max_shift, smooth=a.smooth)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other files
            print(f"error: {name}: {exc}", file=sys.stderr)
            status = 1
            continue
        d = d[np.isfinite(d)]  # pairs with a flat line carry no position
        if not d.size:
            print(f"error: {name}: every scan line is flat (constant): no shift to measure", file=sys.stderr)
            status = 1
            continue
        print(f"{name:40s} {np.std(d):10.4f} {np.mean(d):9.4f} {d.size + 1:6d}")
    return status


# --------------------------------------------------------------------- run

def _dose(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"dose must be a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"dose must be positive and finite, got {text!r}")
    return value


def _doses(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"doses must be comma-separated numbers, got {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"doses must be positive, got {text!r}")
    return vals


def _compare(text: str) -> tuple[str, str]:
    """``LABEL=WEIGHTS`` of ``--compare``: (method name ``cnn_LABEL``, weights path)."""
    label, sep, path = text.partition("=")
    if not sep or not path or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", label):
        raise argparse.ArgumentTypeError(f"--compare needs LABEL=WEIGHTS with a label of letters, digits, "
                                         f"'_', '.' or '-', got {text!r}")
    return f"{run.CNN}_{label}", path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="deploy prototxt (default prototxt/deploy.prototxt)")
    p.add_argument("--weights", help="trained .caffemodel; without it the CNN is skipped")
    p.add_argument("--compare", type=_compare, action="append", default=[], metavar="LABEL=WEIGHTS",
                   help="also score these weights (same --model) on the same images, as method cnn_LABEL, "
                        "e.g. shipped=models/stem_restore.caffemodel: whether a new model beats the old one "
                        "(repeatable)")
    p.add_argument("--preset", default="quick", help="datagen preset of the full mix (default quick)")
    p.add_argument("--size", type=int, default=128, help="test image size, px (default 128)")
    p.add_argument("--count", type=int, default=6, help="test images per condition (default 6)")
    p.add_argument("--val-count", type=int, default=16,
                   help="validation images per condition for tuning the baselines (default 16: with 4, picks "
                        "that win on the 4 lose up to 0.5 dB on the test images, BENCHMARKS.md "
                        "\"evaluation: the baselines' tuning\")")
    p.add_argument("--seed", type=int, default=1000,
                   help=f"test seed, >= {run.MIN_EVAL_SEED} (training uses seeds below); validation uses "
                        f"seed + {run.VALIDATION_SEED_OFFSET}")
    p.add_argument("--doses", type=_doses, default=[100.0, 300.0, 1000.0],
                   help="comma-separated doses for the full mix, counts at the brightest pixel (default 100,300,1000)")
    p.add_argument("--family-dose", type=_dose, help="dose of the single-family conditions (default: middle dose)")
    p.add_argument("--families", help="comma-separated subset of datagen.FAMILIES (default all)")
    p.add_argument("--no-family-noise", action="store_true",
                   help="skip the 'family + shot_noise' conditions (each family with Poisson noise at the family dose)")
    p.add_argument("--baselines", help="comma-separated subset of gaussian,median,align_rows,anscombe_wiener,bm3d")
    p.add_argument("--bm3d", choices=("off", "mix", "all"), default="mix",
                   help="where the slow BM3D baseline runs (default mix: full-mix conditions only)")
    p.add_argument("--cache", metavar="DIR",
                   help="keep the outputs of slow baselines (BM3D) and of the --compare networks in DIR and "
                        "reuse them when the same images are evaluated again, e.g. for the next snapshot "
                        "(evaluate/cache.py)")
    p.add_argument("--heldout-preset", metavar="NAME",
                   help="datagen preset name or .toml path of held-out specimens (e.g. heldout): also score "
                        "the full mix at every dose on images drawn from it, as a separate section")
    p.add_argument("--train-log-dir", help="RUNDIR/logs with Caffe logs (adam.log, sgd.log) to check training claims")
    p.add_argument("--examples", type=int, default=3, help="held-out images in figure.png (default 3; 0: no figure)")
    p.add_argument("--gpu", type=int, help="GPU device id for the CNN (needs a CUDA Caffe; default CPU)")
    p.add_argument("--math", choices=("fp32", "bf16", "auto", "off"), default="fp32",
                   help="CAFFE_DNNL_MATH of the CNNs on the CPU (default fp32: the same numbers on every CPU; "
                        "bf16, restore.py's default on CPUs with AVX512-BF16 or AMX, costs 0.3-0.5 dB on good frames, BENCHMARKS.md); "
                        "with --gpu, fp32/off keep cuBLAS in IEEE fp32 (CAFFE_CUDA_MATH=fp32), bf16/auto allow TF32")
    p.add_argument("--self-ensemble", action="store_true",
                   help="run every CNN as restore.py --self-ensemble does (the mean of its output and its "
                        "output on the frame with its scan lines reversed; restoration/ensemble.py)")
    p.add_argument("--align-rows", action="store_true",
                   help="run every CNN as restore.py --align-rows does (row alignment before the net and of "
                        "its output, default parameters; restoration/prealign.py)")
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


class OptionError(Exception):
    """A bad option or input of the evaluation run; printed as ``error: ...``, exit status 2."""


@dataclass
class RunInputs:
    """What the evaluation runs on, checked and loaded before anything is simulated."""

    families: list[str]
    base: dict  # the --preset
    heldout: dict | None  # the --heldout-preset, if given
    baselines: list
    net: Any = None  # the loaded Caffe net (None without --weights)
    cnn: Callable[[np.ndarray], np.ndarray] | None = None
    compared: dict[str, Callable[[np.ndarray], np.ndarray]] = field(default_factory=dict)  # --compare


def check_options(a: argparse.Namespace) -> None:
    """Refuse training seeds, empty splits, tiny images and missing model files (:class:`OptionError`)."""
    if a.seed < run.MIN_EVAL_SEED:
        raise OptionError(f"--seed {a.seed}: evaluation seeds must be >= {run.MIN_EVAL_SEED} "
                          f"(training uses seeds below {run.MIN_EVAL_SEED})")
    if a.count < 1 or a.val_count < 1 or a.size < 16:
        raise OptionError("--count and --val-count must be >= 1 and --size >= 16")
    if a.examples < 0:
        raise OptionError(f"--examples {a.examples}: must be >= 0 (0: no figure)")
    if not Path(a.model).is_file():  # checked here: Caffe would abort the whole process
        raise OptionError(f"{a.model}: deploy prototxt not found")
    for path in [a.weights] + [w for _, w in a.compare]:
        if path and not Path(path).is_file():
            raise OptionError(f"{path}: caffemodel not found")
    names = [name for name, _ in a.compare]
    if a.compare and not a.weights:
        raise OptionError("--compare needs --weights (the network the others are compared with)")
    if len(set(names)) != len(names):
        raise OptionError(f"--compare: labels must differ, got {', '.join(names)}")


def load_inputs(a: argparse.Namespace) -> RunInputs:
    """Families, presets and baselines named by the options (:class:`OptionError` if unknown)."""
    import datagen

    families = a.families.split(",") if a.families else list(datagen.FAMILIES)
    unknown = [f for f in families if f not in datagen.FAMILIES]
    if unknown:
        raise OptionError(f"unknown families {unknown}; known: {list(datagen.FAMILIES)}")
    try:
        base = datagen.load_preset(a.preset)
        heldout = datagen.load_preset(a.heldout_preset) if a.heldout_preset else None
        baselines = run.select_baselines(a.baselines.split(",") if a.baselines else None)
        if a.cache:
            baselines = [replace(b, apply=CachedMethod(b.name, b.apply, a.cache)) if b.slow else b
                         for b in baselines]
    except Exception as exc:  # noqa: BLE001 - any load error is the user's option
        raise OptionError(str(exc)) from exc
    return RunInputs(families, base, heldout, baselines)


def load_cnn(model: str, weights: str, gpu: int | None, self_ensemble: bool = False,
             align_rows: bool = False) -> tuple[Any, Callable[[np.ndarray], np.ndarray]]:
    """The Caffe net and ``cnn(distorted) -> restored``: the same forward pass as restore.py
    (with ``self_ensemble``, as ``restore.py --self-ensemble``; with ``align_rows``, as
    ``restore.py --align-rows``: the same wrappers in the same order as restoration.api.Model)."""
    from restoration.engine import Restorer
    from restoration.ensemble import SelfEnsemble
    from restoration.prealign import RowAligned, align_option

    restorer = Restorer.from_files(model, weights, gpu=gpu)
    if self_ensemble:
        restorer = SelfEnsemble(restorer)
    if align_rows:
        restorer = RowAligned(restorer, align_option(True))

    def cnn(image: np.ndarray) -> np.ndarray:
        return restorer.restore(image).restored

    return restorer.net, cnn


def training_checklist(train_log_dir: str | None) -> tuple[str, bool]:
    """Checklist text of the training claims from the Caffe logs (if a folder is given), and whether all pass."""
    if not train_log_dir:
        return "### Training\n\n- [ ] not checked: no --train-log-dir given\n", True
    items = checks.check_training_logs(train_log_dir)
    text = checks.format_checklist(f"Training (from the Caffe logs in {train_log_dir})", items)
    return text, all(i.passed for i in items)


def baselines_for(cond: run.Condition, baselines: list, bm3d: str) -> list:
    """The baselines run on ``cond``: slow ones (BM3D) only where ``--bm3d`` allows them."""
    return [b for b in baselines if not b.slow or bm3d == "all" or (bm3d == "mix" and cond.family is None)]


def run_conditions(a: argparse.Namespace, base: dict, conditions: list[run.Condition], baselines: list,
                   cnn, compared: dict | None = None) -> list[run.ConditionResult]:
    """Simulate each condition's test and validation splits from ``base`` and score every method;
    prints one progress line per condition to stderr."""
    import datagen

    results = []
    for cond in conditions:
        t0 = time.perf_counter()
        preset = run.condition_preset(base, cond)
        test = datagen.simulate_pairs(preset, a.count, a.size, a.seed)
        val = datagen.simulate_pairs(preset, a.val_count, a.size, a.seed + run.VALIDATION_SEED_OFFSET)
        refs = datagen.drift_only_references(preset, a.count, a.size, a.seed) if cond.family is None else None
        res = run.evaluate_condition(cond, test, val, baselines_for(cond, baselines, a.bm3d), cnn,
                                     n_examples=a.examples, drift_refs=refs, compared=compared)
        results.append(res)
        line = "  ".join(f"{s.method}={s.psnr_mean:.2f}" for s in res.scores)
        print(f"[{time.perf_counter() - t0:5.1f} s] {cond.label}: PSNR {line}", file=sys.stderr, flush=True)
    return results


def preset_label(arg: str, preset: dict) -> str:
    """How results.md names a preset: its name, and the file it came from when given as a path
    (a training run passes its own frozen copy, RUN/datagen.toml)."""
    name = preset.get("name", arg)
    return name if arg == name else f"{name} ({arg})"


def report_header(a: argparse.Namespace, argv: list[str], results: list[run.ConditionResult],
                  seconds: float, inputs: RunInputs) -> str:
    """The top of results.md: how to regenerate it and what was evaluated."""
    cmd = "python -m evaluate " + " ".join(shlex.quote(x) for x in argv)
    lines = [
        "# Restoration results on held-out synthetic STEM images", "",
        f"Regenerate with: `{cmd}`", "",
        f"- preset `{preset_label(a.preset, inputs.base)}`, {a.size}x{a.size} px, {a.count} test images per condition (seed {a.seed}), "
        f"{a.val_count} validation images for tuning the baselines (seed {a.seed + run.VALIDATION_SEED_OFFSET}); "
        f"training uses seeds < {run.MIN_EVAL_SEED}.",
        f"- single families at dose {results[0].condition.dose:g} (counts at the brightest clean pixel), alone"
        f"{'' if a.no_family_noise else ' and with shot noise (+ shot_noise)'}; "
        f"full mix at doses {', '.join(f'{d:g}' for d in a.doses)}.",
    ]
    if a.heldout_preset:
        lines.append(f"- held-out specimens: full mix of preset `{preset_label(a.heldout_preset, inputs.heldout)}` "
                     f"at the same doses, seeds and "
                     f"counts, baselines tuned on its validation images.")
    lines += [
        f"- CNN: {a.model} + {a.weights}" if a.weights else "- CNN: not run (no --weights)",
        *(f"- compared: {name} = {a.model} + {w}" for name, w in a.compare),
        f"- BM3D: {a.bm3d}; total time {seconds:.0f} s.",
    ]
    if a.weights or a.compare:
        from restoration.engine import conv_engine_info
        lines.append(f"- CNN convolutions: {conv_engine_info(a.gpu)} (`--math {a.math}`).")
        if a.self_ensemble:
            lines.append("- CNNs run as `restore.py --self-ensemble`: the mean of the output and the output "
                         "on the frame with its scan lines reversed (restoration/ensemble.py).")
        if a.align_rows:
            lines.append("- CNNs run as `restore.py --align-rows`: rows aligned before the net and on its "
                         "output (restoration/prealign.py, default parameters).")
    cached = [(b.name, b.apply) for b in inputs.baselines] + list(inputs.compared.items())
    for name, fn in cached:
        if isinstance(fn, CachedMethod):
            lines.append(f"- {name}: outputs cached in `{a.cache}` ({fn.hits} read back, "
                         f"{fn.misses} computed; seconds per image are the computing time).")
    return "\n".join(lines)


def figure_choice(results: list[run.ConditionResult]) -> tuple[run.ConditionResult, str]:
    """The condition and method of figure.png: the middle full-mix dose, the CNN (else the best baseline)."""
    mix = [r for r in results if r.condition.family is None]
    fig_res = mix[len(mix) // 2] if mix else results[0]
    if run.CNN in fig_res.examples:
        return fig_res, run.CNN
    best = max((s for s in fig_res.scores if s.method != "raw"), key=lambda s: s.psnr_mean,
               default=fig_res.scores[0])
    return fig_res, best.method


def write_outputs(a: argparse.Namespace, out: Path, results: list[run.ConditionResult],
                  heldout: list[run.ConditionResult], header: str, checklist: str, heldout_label: str) -> None:
    """results.csv, results.md, checklist.md and (``--examples`` > 0) figure.png in ``out``."""
    scores = [s for r in results + heldout for s in r.scores]
    report.write_csv(out / "results.csv", scores)
    md = report.markdown_report(results, header, checklist, heldout=heldout,
                                heldout_preset=heldout_label)
    atomic_write_bytes(out / "results.md", md.encode())
    atomic_write_bytes(out / "checklist.md", checklist.encode())
    if a.examples > 0:
        fig_res, fig_method = figure_choice(results)
        report.write_figure(out / "figure.png", fig_res, fig_method, n=a.examples)


def print_summary(out: Path, results: list[run.ConditionResult], heldout: list[run.ConditionResult],
                  checklist: str) -> None:
    """The checklist and the CNN verdicts on stdout."""
    print(checklist)
    for label, c, best, b, margin, half in report.cnn_verdict(results + heldout):
        spread = f" ± {half:.2f} dB, 95 %" if math.isfinite(half) else " dB"
        print(f"{label}: CNN {c:.2f} dB vs best baseline {best} {b:.2f} dB ({margin:+.2f}{spread})")
    for label, c, best, params, b, margin, half in report.bound_verdict(results + heldout):
        spread = f" ± {half:.2f} dB, 95 %" if math.isfinite(half) else " dB"
        print(f"{label}: CNN {c:.2f} dB vs {best} at its best on the test images ({params}) {b:.2f} dB "
              f"({margin:+.2f}{spread})")
    for label, c, raw in report.cnn_vs_raw(results):
        print(f"{label}: CNN {c:.2f} dB vs raw {raw:.2f} dB ({c - raw:+.2f} dB)")
    for label, name, c, other in report.cnn_vs_compared(results + heldout):
        print(f"{label}: CNN {c:.2f} dB vs {name} {other:.2f} dB ({c - other:+.2f} dB)")
    written = ["results.md", "results.csv", "checklist.md"] + (["figure.png"] if (out / "figure.png").is_file() else [])
    print("wrote " + ", ".join(str(out / name) for name in written))


def cmd_run(argv: list[str]) -> int:
    """Default command: the full evaluation (exit status 2 for bad options, or with
    ``--strict`` a failed checklist item)."""
    a = build_parser().parse_args(argv)
    try:
        check_options(a)
        inputs = load_inputs(a)  # bad presets fail before the output folder exists
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
    except OptionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    before = {k: os.environ.get(k) for k in ("CAFFE_DNNL_MATH", "CAFFE_CUDA_MATH")}
    os.environ["CAFFE_DNNL_MATH"] = a.math  # read by each convolution layer Caffe builds
    # The GPU build's cuBLAS (read when Caffe makes its handle): IEEE fp32 for the same numbers.
    os.environ["CAFFE_CUDA_MATH"] = "fp32" if a.math in ("fp32", "off") else "tf32"
    try:
        return _evaluate(a, argv, out, inputs)
    finally:  # a caller's own settings come back (main() is also called in-process)
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _evaluate(a: argparse.Namespace, argv: list[str], out: Path, inputs: RunInputs) -> int:
    """The evaluation proper, once the options are checked and the inputs loaded."""
    if a.weights:
        inputs.net, inputs.cnn = load_cnn(a.model, a.weights, a.gpu, a.self_ensemble, a.align_rows)
    for name, w in a.compare:
        cnn = load_cnn(a.model, w, a.gpu, a.self_ensemble, a.align_rows)[1]
        inputs.compared[name] = (CachedMethod(name, cnn, a.cache,
                                              network_tag(a.model, w, a.self_ensemble, a.align_rows, a.gpu))
                                 if a.cache else cnn)

    arch_text, arch_ok = architecture_checklist(a.model, inputs.net)
    train_text, train_ok = training_checklist(a.train_log_dir)
    t_start = time.perf_counter()
    conditions = run.make_conditions(inputs.families, a.doses, a.family_dose, with_noise=not a.no_family_noise)
    results = run_conditions(a, inputs.base, conditions, inputs.baselines, inputs.cnn, inputs.compared)
    heldout = []
    if inputs.heldout is not None:
        heldout = run_conditions(a, inputs.heldout, run.heldout_conditions(a.doses), inputs.baselines, inputs.cnn,
                                 inputs.compared)
    header = report_header(a, argv, results, time.perf_counter() - t_start, inputs)
    checklist = arch_text + train_text
    heldout_label = preset_label(a.heldout_preset, inputs.heldout) if inputs.heldout is not None else ""
    write_outputs(a, out, results, heldout, header, checklist, heldout_label)
    print_summary(out, results, heldout, checklist)
    return 2 if (a.strict and not (arch_ok and train_ok)) else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "measure":
        return cmd_measure(argv[1:])
    return cmd_run(argv)


if __name__ == "__main__":
    sys.exit(main())
