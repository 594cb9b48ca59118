"""Writers for the evaluation: Markdown and CSV tables, the Figure-1-style PNG.

All files are written atomically: to a temporary name in the target folder,
then ``os.replace``.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, fields
from pathlib import Path
from typing import Sequence

import numpy as np

from stem_restore.atomic import atomic_write_bytes
from stem_restore.figures import save_png

from .metrics import PEAK_RADIUS, PSNR_CAP_DB
from .run import CNN, DRIFT_CEILING, GRID_END, ConditionResult, Score, is_classical, is_cnn, paired_interval

__all__ = ["write_csv", "markdown_report", "drift_section", "write_figure", "cnn_verdict", "bound_verdict",
           "cnn_vs_compared"]


def write_csv(path: str | Path, scores: Sequence[Score]) -> None:
    """One row per (condition, method) with every :class:`Score` field."""
    buf = io.StringIO()
    names = [f.name for f in fields(Score)]
    w = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    w.writeheader()
    for s in scores:
        row = asdict(s)
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_bytes(path, buf.getvalue().encode())


def _methods(results: Sequence[ConditionResult]) -> list[str]:
    seen: dict[str, None] = {}
    for r in results:
        for s in r.scores:
            seen.setdefault(s.method, None)
    return list(seen)


def _table(results: Sequence[ConditionResult], key: str, fmt: str, higher_better: bool | None) -> str:
    """Markdown table: rows = conditions, columns = methods; best value in bold."""
    methods = _methods(results)
    lines = ["| condition | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for r in results:
        vals = {s.method: getattr(s, key) for s in r.scores}
        finite = [v for m, v in vals.items() if m != "raw" and math.isfinite(v)]
        best = None
        if higher_better is not None and finite:
            best = max(finite) if higher_better else min(finite)
        cells = []
        for m in methods:
            if m not in vals:
                cells.append("–")
                continue
            text = format(vals[m], fmt)
            cells.append(f"**{text}**" if best is not None and m != "raw" and vals[m] == best else text)
        lines.append(f"| {r.condition.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _spread_table(results: Sequence[ConditionResult]) -> str:
    methods = _methods(results)
    lines = ["| condition | clean target | " + " | ".join(methods) + " |", "|---|---:|" + "---:|" * len(methods)]
    for r in results:
        vals = {s.method: s.scan_spread_px for s in r.scores}
        target = r.scores[0].target_scan_spread_px if r.scores else float("nan")
        cells = [f"{vals[m]:.3f}" if m in vals else "–" for m in methods]
        lines.append(f"| {r.condition.label} | {target:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _params_table(results: Sequence[ConditionResult]) -> str:
    methods = [m for m in _methods(results) if is_classical(m)]
    lines = ["| condition | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for r in results:
        vals = {s.method: s.params for s in r.scores}
        lines.append(f"| {r.condition.label} | " + " | ".join(vals.get(m, "–") or "–" for m in methods) + " |")
    if any(GRID_END in (s.params or "") for r in results for s in r.scores):
        lines += ["", f"{GRID_END} the value picked is the end of its grid (evaluate/baselines.py `BASELINES`): "
                      "the method's best may lie beyond it, so its scores may understate it."]
    return "\n".join(lines) + "\n"


def cnn_verdict(results: Sequence[ConditionResult]) -> list[tuple[str, float, str, float, float, float]]:
    """For each full-mix condition: (label, CNN PSNR, best baseline, its PSNR, margin dB, half-width
    of the margin's 95 % interval, paired over the test images (:func:`evaluate.run.paired_interval`;
    NaN where the per-image values are not known))."""
    out = []
    for r in results:
        if r.condition.family is not None:
            continue
        vals = {s.method: s.psnr_mean for s in r.scores}
        if CNN not in vals:
            continue
        others = {m: v for m, v in vals.items() if is_classical(m)}
        if not others:
            continue
        best = max(others, key=others.get)
        half = float("nan")
        if CNN in r.image_psnr and best in r.image_psnr:
            half = paired_interval(r.image_psnr[CNN], r.image_psnr[best])[1]
        out.append((r.condition.label, vals[CNN], best, others[best], vals[CNN] - others[best], half))
    return out


def bound_verdict(results: Sequence[ConditionResult]) -> list[tuple[str, float, str, str, float, float, float]]:
    """For each full-mix condition: (label, CNN PSNR, the baseline best at its best fixed parameters
    on the test images themselves, those parameters, its PSNR, margin dB, half-width of the
    margin's paired 95 % interval).  No choice of fixed parameters gives a baseline more on
    these images, so a margin here owes nothing to how the validation split tuned it."""
    out = []
    for r in results:
        if r.condition.family is not None or CNN not in r.image_psnr or not r.test_tuned_image_psnr:
            continue
        means = {m: float(np.mean(v)) for m, v in r.test_tuned_image_psnr.items()}
        best = max(means, key=means.get)
        cnn = float(np.mean(r.image_psnr[CNN]))
        half = paired_interval(r.image_psnr[CNN], r.test_tuned_image_psnr[best])[1]
        out.append((r.condition.label, cnn, best, r.test_tuned_params[best], means[best], cnn - means[best], half))
    return out


def cnn_vs_compared(results: Sequence[ConditionResult]) -> list[tuple[str, str, float, float]]:
    """For each full-mix condition and compared network: (label, its method name, CNN PSNR, its PSNR)."""
    out = []
    for r in results:
        if r.condition.family is not None:
            continue
        vals = {s.method: s.psnr_mean for s in r.scores}
        if CNN in vals:
            out += [(r.condition.label, m, vals[CNN], v) for m, v in vals.items() if is_cnn(m) and m != CNN]
    return out


def cnn_vs_raw(results: Sequence[ConditionResult]) -> list[tuple[str, float, float]]:
    """For each single-family condition: (label, CNN PSNR, raw PSNR)."""
    out = []
    for r in results:
        vals = {s.method: s.psnr_mean for s in r.scores}
        if r.condition.family is not None and CNN in vals and "raw" in vals:
            out.append((r.condition.label, vals[CNN], vals["raw"]))
    return out


def _metric_sections(results: Sequence[ConditionResult], level: str = "##") -> list[str]:
    """PSNR, SSIM and column-position-error tables of ``results``, each under a ``level`` heading."""
    n = results[0].scores[0].n if results and results[0].scores else 0
    return [f"{level} PSNR (dB, mean over {n} held-out test images; data_range = clean target's max - min; "
            f"per-image cap {PSNR_CAP_DB:g} dB)", "",
            _table(results, "psnr_mean", ".2f", True), "",
            f"{level} SSIM (scikit-image, 7x7 window, same data_range)", "",
            _table(results, "ssim_mean", ".3f", True), "",
            f"{level} Atomic-column position error (px; lower is better; the RMS over each image's columns, "
            "then the quadratic mean over images, so every image weighs the same (pooled over all columns "
            "instead: benchmarks/column_reach.py); columns located in the clean "
            f"target, then in each image by the same sub-pixel peak search within {PEAK_RADIUS} px, so a column "
            f"the scan moved farther counts {PEAK_RADIUS}-{(PEAK_RADIUS + 1) * 2 ** 0.5:.1f} px (its window's rim, "
            "plus up to 0.5 px of sub-pixel offset in each image) whatever the method; × pixel size = pm)", "",
            _table(results, "column_error_px", ".3f", False), ""]


def heldout_section(heldout: Sequence[ConditionResult], preset: str) -> list[str]:
    """Markdown lines of the held-out-specimens section: the full mix drawn from ``preset``."""
    return [f"## Held-out specimens (preset {preset})", "",
            f"The full mix drawn from preset `{preset}` (specimens never used in training) at every dose, "
            "with the same seeds and counts as above; the baselines are tuned on this preset's own "
            "validation images.", "",
            *_metric_sections(heldout, "###"),
            f"### Baseline parameters chosen on the validation split of `{preset}`", "",
            _params_table(heldout), ""]


def drift_section(results: Sequence[ConditionResult]) -> list[str]:
    """Markdown lines: each method's PSNR on the full-mix test images that have drift, beside
    the drift-only reference, then its PSNR and column error on the images without drift
    (nothing when no result has drifting images)."""
    rows = [r for r in results if r.n_drifted]
    if not rows:
        return []
    lines = ["## Frames with drift: the single-frame ceiling (full mix)", "",
             "Drift is a smooth displacement that grows with scan time. One frame cannot tell it from the "
             "specimen's own geometry, and a fully convolutional net sees 49 px around a pixel, not its "
             "scan time, so no method here is expected to undo it. *Ceiling* = the clean specimen scanned "
             "with the frame's own drift and nothing else (`datagen.drift_only_references`): what a method "
             "that removed every other distortion perfectly would score. Mean PSNR (dB) over the test "
             "images whose drift is on.", ""]
    methods = [m for m in _methods(rows) if m != "raw"]
    lines += ["| condition | images with drift | ceiling | raw | " + " | ".join(methods) + " |",
              "|---|---:|---:|---:|" + "---:|" * len(methods)]
    for r in rows:
        cells = [f"{r.drifted_psnr[m]:.2f}" if m in r.drifted_psnr else "–" for m in methods]
        lines.append(f"| {r.condition.label} | {r.n_drifted} of {r.scores[0].n} | "
                     f"{r.drifted_psnr[DRIFT_CEILING]:.2f} | {r.drifted_psnr['raw']:.2f} | "
                     + " | ".join(cells) + " |")
    lines.append("")
    lines += _split_table(rows, "drift_residual_psnr", ".2f",
                          "Mean PSNR (dB) on the same images against their drift-only reference instead of the "
                          "clean specimen: the error a method leaves *besides* the drift, what a net trained on "
                          "drift-keeping targets (`[target] keep_drift`) is asked to remove. Against the clean "
                          "specimen a misplaced image scores better blurred, so the table above rewards smoothing "
                          "on these frames; this one does not.", drifted=True)
    rows = [r for r in rows if r.undrifted_psnr]
    lines += _split_table(rows, "undrifted_psnr", ".2f",
                          "Mean PSNR (dB) on the other test images, those *without* drift: how far "
                          "each method gets where drift caps no score.")
    lines += _split_table(rows, "undrifted_column_error", ".3f",
                          "Atomic-column position error (RMS, px) on the test images *without* drift: "
                          "what each method does to atomic positions where no drift hides them.")
    return lines


def _split_table(rows: Sequence[ConditionResult], attribute: str, fmt: str, caption: str,
                 drifted: bool = False) -> list[str]:
    """One table of the drift section: ``attribute`` (a method -> value dict of each result) on the
    images without drift, or with ``drifted`` on those with drift."""
    rows = [r for r in rows if getattr(r, attribute)]
    if not rows:
        return []
    methods = _methods(rows)
    which = "with" if drifted else "without"
    lines = [caption, "", f"| condition | images {which} drift | " + " | ".join(methods) + " |",
             "|---|---:|" + "---:|" * len(methods)]
    for r in rows:
        vals = getattr(r, attribute)
        cells = [format(vals[m], fmt) if m in vals else "–" for m in methods]
        count = r.n_drifted if drifted else r.scores[0].n - r.n_drifted
        lines.append(f"| {r.condition.label} | {count} of {r.scores[0].n} | " + " | ".join(cells) + " |")
    return lines + [""]


def markdown_report(results: Sequence[ConditionResult], header: str, checklists: str,
                    heldout: Sequence[ConditionResult] = (), heldout_preset: str = "heldout") -> str:
    """The whole results.md text; ``heldout`` (full-mix results on the held-out specimens of
    ``heldout_preset``) gets a section of its own."""
    parts = [header, "",
             *_metric_sections(results),
             "## Scan-distortion measure (std of line-to-line x shifts, px; no ground truth needed)", "",
             _spread_table(results), "",
             "## Baseline parameters chosen on the validation split (grid search, mean PSNR)", "",
             _params_table(results), ""]
    if heldout:
        parts += heldout_section(heldout, heldout_preset)
    parts += drift_section(list(results) + list(heldout))
    verdict = cnn_verdict(list(results) + list(heldout))
    if verdict:
        parts += ["## CNN vs the best classical baseline on the full mix", "",
                  "Margin = the mean of the CNN's PSNR minus the baseline's over the same test images; "
                  "± = half-width of its 95 % interval (Student's t on the per-image differences): how "
                  "far another draw of as many images could move it.", ""]
        for label, c, best, b, margin, half in verdict:
            if margin <= 0:
                word = "does NOT beat"
            elif not math.isfinite(half):
                word = "is ahead of (no interval: too few images)"
            else:
                word = "beats" if margin - half > 0 else "is ahead of (95 % interval includes 0)"
            spread = f" ± {half:.2f}" if math.isfinite(half) else ""
            parts.append(f"- {label}: CNN {c:.2f} dB {word} best baseline {best} {b:.2f} dB "
                         f"(margin {margin:+.2f}{spread} dB)")
        parts.append("")
    bound = bound_verdict(list(results) + list(heldout))
    if bound:
        parts += ["## CNN vs the baselines at their best on the test images themselves (full mix)", "",
                  "Each baseline at the fixed parameters of its grid that score best on these very test "
                  "images: more than any tuning on a validation split can give it (an upper bound; a "
                  f"{GRID_END} marks a value at the end of the grid). The margin over the best of them "
                  "owes nothing to the validation split's luck.", ""]
        for label, c, best, params, b, margin, half in bound:
            spread = f" ± {half:.2f}" if math.isfinite(half) else ""
            parts.append(f"- {label}: CNN {c:.2f} dB, {best} at its best ({params}) {b:.2f} dB: "
                         f"margin {margin:+.2f}{spread} dB")
        parts.append("")
    vs_raw = cnn_vs_raw(results)
    if vs_raw:
        parts += ["## CNN vs the raw input, single families", ""]
        for label, c, raw in vs_raw:
            word = "improves on" if c > raw else "does NOT improve on"
            parts.append(f"- {label}: CNN {c:.2f} dB {word} raw {raw:.2f} dB ({c - raw:+.2f} dB)")
        parts.append("")
    compared = cnn_vs_compared(list(results) + list(heldout))
    if compared:
        parts += ["## CNN vs the compared networks on the full mix (same images)", ""]
        for label, name, c, other in compared:
            parts.append(f"- {label}: CNN {c:.2f} dB vs {name} {other:.2f} dB ({c - other:+.2f} dB)")
        parts.append("")
    parts += ["## Checklist", "", checklists]
    return "\n".join(parts)


def write_figure(path: str | Path, result: ConditionResult, method: str, n: int = 3) -> None:
    """Seed Figure 1 style: raw | restored | difference (raw - restored), plus the clean target.

    Raw, restored and clean share one grey scale (the clean target's 0.5-99.5 %
    range); the difference uses a symmetric diverging scale.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    raws = result.examples.get("raw", [])[:n]
    outs = result.examples.get(method, [])[:n]
    cleans = result.examples.get("clean", [])[:n]
    rows = min(len(raws), len(outs), len(cleans))
    if rows == 0:
        raise ValueError(f"no example images for method {method!r}")
    fig, axes = plt.subplots(rows, 4, figsize=(10, 2.6 * rows), squeeze=False)
    for i in range(rows):
        raw, out, clean = (np.asarray(a, dtype=np.float64) for a in (raws[i], outs[i], cleans[i]))
        lo, hi = np.percentile(clean, [0.5, 99.5])
        diff = raw - out
        lim = float(np.percentile(np.abs(diff), 99.5)) or 1.0
        panels = [(raw, "raw", "gray", lo, hi), (out, f"restored ({method})", "gray", lo, hi),
                  (diff, "difference (raw - restored)", "RdBu_r", -lim, lim), (clean, "clean target", "gray", lo, hi)]
        for ax, (img, title, cmap, vmin, vmax) in zip(axes[i], panels):
            ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
    fig.suptitle(f"Held-out test images, {result.condition.label}", fontsize=10)
    fig.tight_layout()
    save_png(fig, path, dpi=100)
