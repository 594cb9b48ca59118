"""The evaluation loop: conditions x methods on held-out synthetic pairs.

Splits and seeds
----------------
Training data use seeds < 1000 (project convention); evaluation refuses test
seeds below :data:`MIN_EVAL_SEED` = 1000.  For each condition the *test*
split is ``simulate_pairs(preset, count, size, seed)`` and the *validation*
split, used only to tune the classical baselines, is
``simulate_pairs(preset, val_count, size, seed + VALIDATION_SEED_OFFSET)``.
Every condition uses the same seeds (paired comparison across conditions).

Conditions
----------
Each distortion family alone (``family_preset``) at one dose
(``family_dose``, default the middle of ``doses``); then, with
``with_noise``, each family together with shot noise at that dose (a real
frame always has Poisson noise, and a network trained on noisy frames is meant
for those); then the full mix of the preset at every dose in ``doses``
(``with_dose``; dose = expected counts at the brightest clean pixel).

Held-out specimens
------------------
:func:`heldout_conditions` are the full mix at every dose again, drawn from a
second preset (e.g. datagen's ``heldout``: specimens never used in training)
with the same seeds and counts; the baselines are tuned on that preset's own
validation split.  Their labels start with ``heldout``.

Compared models
---------------
``evaluate_condition(..., compared={"cnn_shipped": fn})`` scores further networks on the
same images (e.g. the shipped model beside a new snapshot: the decision to ship).  Their
method names start with ``cnn`` (:func:`is_cnn`), so they never count as a classical
baseline.

Drift ceiling
-------------
For every full-mix condition the command line also passes the test images'
``datagen.drift_only_references``: each method is scored again on the images whose
drift is on, beside that reference, the best any single-frame method can do there
(:data:`DRIFT_CEILING`), against that reference (the error a method leaves besides the drift),
and on the images without drift by its PSNR (where drift caps no method's score) and its
column-position error (what a method does to atomic positions where no drift hides them).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .baselines import BASELINES, Baseline, edge_axes, forget_offsets, tune
from .metrics import PSNR_CAP_DB, clean_range, column_position_error, psnr, scan_shift_spread, ssim

__all__ = ["MIN_EVAL_SEED", "VALIDATION_SEED_OFFSET", "DRIFT_CEILING", "CNN", "Condition", "Score",
           "make_conditions", "heldout_conditions", "condition_preset", "score_images", "rms_column_error",
           "evaluate_condition", "is_cnn", "is_classical"]

#: Smallest seed allowed for evaluation (training uses seeds below it).
MIN_EVAL_SEED = 1000
#: Validation seed = test seed + this offset (far from any test seed range).
VALIDATION_SEED_OFFSET = 500_000
#: Label of the full-mix conditions.
MIX = "full mix"
#: The family added to single families by ``with_noise``.
NOISE_FAMILY = "shot_noise"
#: Label prefix (``Condition.split``) of the full-mix conditions on held-out specimens.
HELDOUT = "heldout"
#: Method name of the evaluated network; compared networks are named ``cnn_<label>``.
CNN = "cnn"
#: Name of the drift-only reference among ``ConditionResult.drifted_psnr``'s methods.
DRIFT_CEILING = "drift only (ceiling)"


def is_cnn(method: str) -> bool:
    """Whether ``method`` is a network (the evaluated one or a compared one), not a baseline."""
    return method == CNN or method.startswith(CNN + "_")


def is_classical(method: str) -> bool:
    """Whether ``method`` is a classical baseline (neither the raw input nor a network)."""
    return method != "raw" and not is_cnn(method)


@dataclass(frozen=True)
class Condition:
    """One evaluation setting: a single family (or the full mix) at one dose."""

    family: str | None  # None = full mix
    dose: float
    with_noise: bool = False  # the family plus shot noise
    split: str = ""  # "" = the evaluated preset; HELDOUT = the held-out specimens' preset

    @property
    def label(self) -> str:
        name = f"{self.split} {self.family or MIX}" if self.split else (self.family or MIX)
        return f"{name} + {NOISE_FAMILY} @ {self.dose:g}" if self.with_noise else f"{name} @ {self.dose:g}"


@dataclass
class Score:
    """Mean (and std) of the metrics of one method on one condition's test split."""

    condition: str
    family: str
    dose: float
    method: str
    params: str
    n: int
    psnr_mean: float
    psnr_std: float
    ssim_mean: float
    ssim_std: float
    scan_spread_px: float
    column_error_px: float  # RMS atomic-column position error (metrics.column_position_error), NaN: no columns
    target_scan_spread_px: float
    seconds_per_image: float


@dataclass
class ConditionResult:
    """Scores of every method on one condition, plus example images for the figure."""

    condition: Condition
    scores: list[Score] = field(default_factory=list)
    examples: dict[str, list[np.ndarray]] = field(default_factory=dict)
    #: Test images whose drift is on (full mix with ``drift_refs`` only), and each method's mean
    #: PSNR over them, with :data:`DRIFT_CEILING` = the drift-only reference itself.
    n_drifted: int = 0
    drifted_psnr: dict[str, float] = field(default_factory=dict)
    #: Each method's mean PSNR (dB) over the same images against their drift-only reference
    #: (``data_range`` the clean image's): the error it leaves *besides* the drift, which is what a
    #: net trained on drift-keeping targets (``[target] keep_drift``) is asked to remove.
    drift_residual_psnr: dict[str, float] = field(default_factory=dict)
    #: Each method's mean PSNR (dB) and column-position error (px) over the other test images,
    #: those without drift.
    undrifted_psnr: dict[str, float] = field(default_factory=dict)
    undrifted_column_error: dict[str, float] = field(default_factory=dict)
    #: Each method's PSNR (dB, capped at :data:`PSNR_CAP_DB`) on every test image, in order:
    #: for margins between methods paired image by image (:func:`paired_interval`).
    image_psnr: dict[str, list[float]] = field(default_factory=dict)
    #: Full mix only: each baseline at the fixed parameters of its grid that score best on these
    #: very test images (an upper bound on any tuning of it): its parameters (as in results.md)
    #: and its PSNR on every test image (capped), for :func:`evaluate.report.bound_verdict`.
    test_tuned_params: dict[str, str] = field(default_factory=dict)
    test_tuned_image_psnr: dict[str, list[float]] = field(default_factory=dict)


def make_conditions(families: Sequence[str], doses: Sequence[float], family_dose: float | None = None,
                    with_noise: bool = False) -> list[Condition]:
    """Each family alone at ``family_dose`` (default: the middle dose), with
    ``with_noise`` each family (but shot noise itself) plus shot noise, then the
    full mix at every dose."""
    if not doses:
        raise ValueError("need at least one dose")
    if any(d <= 0 for d in doses):
        raise ValueError(f"doses must be positive, got {list(doses)}")
    fd = float(family_dose) if family_dose is not None else float(sorted(doses)[len(doses) // 2])
    noisy = [Condition(f, fd, True) for f in families if f != NOISE_FAMILY] if with_noise else []
    return [Condition(f, fd) for f in families] + noisy + [Condition(None, float(d)) for d in doses]


def heldout_conditions(doses: Sequence[float]) -> list[Condition]:
    """The full mix at every dose, labelled as held-out specimens (``heldout full mix @ D``);
    simulate them from the held-out preset."""
    if not doses:
        raise ValueError("need at least one dose")
    if any(d <= 0 for d in doses):
        raise ValueError(f"doses must be positive, got {list(doses)}")
    return [Condition(None, float(d), split=HELDOUT) for d in doses]


def condition_preset(base: Any, cond: Condition) -> Any:
    """The datagen preset of a condition: ``with_dose(family_preset(base, family), dose)``,
    with shot noise switched on too for ``with_noise`` conditions; the full mix is
    ``full_mix(base)`` (a training preset's sparse samples are not a condition)."""
    from datagen.presets import family_preset, full_mix, with_dose

    preset = full_mix(base) if cond.family is None else family_preset(base, cond.family)
    if cond.with_noise:
        preset[NOISE_FAMILY]["probability"] = 1.0
        preset["name"] += f"+{NOISE_FAMILY}"
    return with_dose(preset, cond.dose)


def image_psnrs(restored: Sequence[np.ndarray], clean: Sequence[np.ndarray]) -> np.ndarray:
    """Each image's PSNR (dB), capped at :data:`PSNR_CAP_DB` (a perfect image would be infinite)."""
    return np.minimum([psnr(r, c) for r, c in zip(restored, clean)], PSNR_CAP_DB)


def score_images(restored: Sequence[np.ndarray], clean: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean/std of PSNR (:func:`image_psnrs`) and SSIM, mean scan spread, and the
    quadratic mean of the images' RMS column-position errors (images without columns left out;
    NaN if none has any)."""
    p = image_psnrs(restored, clean)
    s = np.array([ssim(r, c) for r, c in zip(restored, clean)])
    return dict(psnr_mean=float(p.mean()), psnr_std=float(p.std()), ssim_mean=float(s.mean()),
                ssim_std=float(s.std()), scan_spread_px=mean_scan_spread(restored),
                column_error_px=rms_column_error(restored, clean))


def mean_scan_spread(images: Sequence[np.ndarray]) -> float:
    """Mean :func:`~evaluate.metrics.scan_shift_spread` (px) of the images that have one (a flat
    image has no line position); NaN if none has."""
    spread = np.array([scan_shift_spread(im) for im in images])
    spread = spread[np.isfinite(spread)]
    return float(spread.mean()) if spread.size else float("nan")


def paired_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean of ``a - b`` (paired: the same test images) and the half-width of its ``level``
    confidence interval from Student's t with n - 1 degrees of freedom (NaN for fewer than 2
    pairs).  Pairing removes the spread between images that both methods share (a hard image is
    hard for both), so the interval is that of the margin, not of either mean."""
    from scipy.stats import t

    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if d.size < 2:
        return float(d.mean()) if d.size else float("nan"), float("nan")
    return float(d.mean()), float(t.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))


def rms_column_error(restored: Sequence[np.ndarray], clean: Sequence[np.ndarray]) -> float:
    """Quadratic mean of the images' RMS column-position errors (px; images without columns
    left out; NaN if none has any)."""
    col = np.array([column_position_error(r, c) for r, c in zip(restored, clean)])
    return float(np.sqrt(np.nanmean(col**2))) if np.isfinite(col).any() else float("nan")


#: Marks a tuned value at the end of its grid (:func:`evaluate.baselines.edge_axes`) in results.md.
GRID_END = "†"


def _params_text(params: dict, at_grid_end: Sequence[str] = ()) -> str:
    return " ".join((f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}")
                    + (GRID_END if k in at_grid_end else "") for k, v in params.items())


def _apply_timed(fn: Callable[..., np.ndarray], images: Sequence[np.ndarray],
                 params: dict | None = None) -> tuple[list[np.ndarray], float]:
    """``fn``'s outputs on ``images`` and its seconds per image; a method read from
    :mod:`evaluate.cache` reports the seconds its outputs took when they were computed."""
    before = getattr(fn, "compute_seconds", None)
    t0 = time.perf_counter()
    outs = [fn(d, **(params or {})) for d in images]
    spent = time.perf_counter() - t0 if before is None else fn.compute_seconds - before
    return outs, spent / len(outs)


def evaluate_condition(cond: Condition, test: Sequence[tuple[np.ndarray, np.ndarray]],
                       val: Sequence[tuple[np.ndarray, np.ndarray]], baselines: Sequence[Baseline],
                       cnn: Callable[[np.ndarray], np.ndarray] | None = None,
                       n_examples: int = 3,
                       drift_refs: Sequence[np.ndarray] | None = None,
                       compared: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None) -> ConditionResult:
    """Score raw input, each baseline (tuned on ``val``) and the CNN on ``test``; on the full mix
    also each baseline at its best fixed parameters on ``test`` itself (``test_tuned_*``).

    Parameters
    ----------
    cond : Condition
        The setting the pairs were drawn for (labels only).
    test, val : sequences of (distorted, clean)
        Held-out test split and separate validation split.
    baselines : sequence of Baseline
        Methods to tune and score.
    cnn : callable, optional
        ``cnn(distorted) -> restored`` (e.g. ``lambda im: Restorer(net).restore(im).restored``).
    n_examples : int
        How many test images to keep (raw, clean, each method) for the figure.
    drift_refs : sequence of arrays, optional
        ``datagen.drift_only_references`` of ``test``: each method is also scored on the
        images with drift (``n_drifted``, ``drifted_psnr``), beside the drift-only reference,
        against that reference (``drift_residual_psnr``), and on the images without drift by
        its PSNR and column-position error (``undrifted_psnr``, ``undrifted_column_error``).
    compared : mapping of method name -> callable, optional
        Further networks scored like ``cnn`` (names ``cnn_<label>``, see :func:`is_cnn`).
    """
    res = ConditionResult(cond)
    distorted = [d for d, _ in test]
    clean = [c for _, c in test]
    drifted = [] if drift_refs is None else [
        i for i, (r, c) in enumerate(zip(drift_refs, clean)) if not np.array_equal(r, c)]
    res.n_drifted = len(drifted)

    undrifted = [i for i in range(len(clean)) if i not in drifted]

    def mean_psnr(outputs: Sequence[np.ndarray], which: Sequence[int]) -> float:
        return float(image_psnrs([outputs[i] for i in which], [clean[i] for i in which]).mean())

    target_spread = mean_scan_spread(clean)
    res.examples["raw"] = distorted[:n_examples]
    res.examples["clean"] = clean[:n_examples]

    def add(method: str, params: str, outputs: list[np.ndarray], secs: float) -> None:
        stats = score_images(outputs, clean)
        res.image_psnr[method] = image_psnrs(outputs, clean).tolist()
        res.scores.append(Score(cond.label, cond.family or MIX, cond.dose, method, params, len(outputs),
                                target_scan_spread_px=target_spread, seconds_per_image=secs, **stats))
        res.examples[method] = outputs[:n_examples]
        if drifted:
            res.drifted_psnr[method] = mean_psnr(outputs, drifted)
            res.drift_residual_psnr[method] = float(np.mean(
                [min(psnr(outputs[i], drift_refs[i], clean_range(clean[i])), PSNR_CAP_DB) for i in drifted]))
            if undrifted:
                res.undrifted_psnr[method] = mean_psnr(outputs, undrifted)
                res.undrifted_column_error[method] = rms_column_error([outputs[i] for i in undrifted],
                                                                      [clean[i] for i in undrifted])

    if drifted:
        res.drifted_psnr[DRIFT_CEILING] = mean_psnr(drift_refs, drifted)

    add("raw", "", distorted, 0.0)
    for b in baselines:
        best, _ = tune(b.apply, b.grid, val[: b.max_tune_pairs] if b.max_tune_pairs else val)
        forget_offsets()  # the seconds per image include the alignment a grid search remembered
        outs, secs = _apply_timed(b.apply, distorted, best)
        add(b.name, _params_text(best, edge_axes(b, best)), outs, secs)
        if cond.family is None:  # the full mix, where the margin is the claim: no tuning luck in it
            top, _ = tune(b.apply, b.grid, test)
            res.test_tuned_params[b.name] = _params_text(top, edge_axes(b, top))
            res.test_tuned_image_psnr[b.name] = image_psnrs(
                outs if top == best else [b.apply(d, **top) for d in distorted], clean).tolist()
    nets = {CNN: cnn} if cnn is not None else {}
    for name, fn in {**nets, **(compared or {})}.items():
        if not is_cnn(name):
            raise ValueError(f"compared network {name!r}: its method name must start with '{CNN}_'")
        outs, secs = _apply_timed(fn, distorted)
        add(name, "", outs, secs)
    return res


def select_baselines(names: Sequence[str] | None = None) -> list[Baseline]:
    """Baselines by name (default: all in :data:`evaluate.baselines.BASELINES`)."""
    names = list(BASELINES) if names is None else list(names)
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; known: {list(BASELINES)}")
    return [BASELINES[n] for n in names]
