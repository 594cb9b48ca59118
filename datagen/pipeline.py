"""One simulated training pair: clean specimen -> scan -> detector.

The clean target is the undistorted specimen through the MEAN detector
response (``gain * dose * image + dark``, ADC levels): no scan distortion, no
noise, no row offsets, no lag, no outliers, no quantisation.  The distorted
input is in the same units, so raw-vs-clean PSNR is meaningful.

Random streams: the generator passed to :func:`simulate_pair` is split with
``rng.spawn`` into independent streams for the specimen, the detector
settings, the scan timing and each distortion family.  Switching a family on
or off therefore never changes the specimen or any other family's
realisation (previews show the same specimen in every panel).
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from stem_restore.network import RECEPTIVE_FIELD
from stem_restore.normalize import normalize

from . import detector as det
from . import scan
from .params import draw
from .preset_schema import OPTIONAL_KEYS
from .presets import FAMILIES, SCAN_FAMILIES, load_preset, sparse_section, target_section
from .specimen.scenes import Canvas, render_specimen

#: Smallest image edge (px): the network's receptive field (12 layers of 5x5).
MIN_SIZE = RECEPTIVE_FIELD
#: Largest canvas margin as a multiple of the image edge; displacements
#: beyond it sample the edge value (the field "outside" the specimen).
MAX_MARGIN_FACTOR = 1.0


@functools.lru_cache(maxsize=32)
def _named_preset(name: str) -> dict:
    return load_preset(name)


def resolve_preset(preset) -> dict:
    """Preset dict from a name, a path or a dict (dicts are used as given)."""
    if isinstance(preset, dict):
        return preset
    return _named_preset(str(preset))


def _shape(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        h, w = (int(s) for s in size)
    if h < MIN_SIZE or w < MIN_SIZE:
        raise ValueError(f"image size {h}x{w} is below the network's {MIN_SIZE}-px receptive field")
    return h, w


def _scan_effect(family: str, sec: dict, rng: np.random.Generator):
    """Build the scan-position effect of ``family`` from its preset section."""
    if family == "scan_jitter":
        freqs = list(sec["known_lines_hz"])
        scale = draw(sec, "known_lines_scale", rng)
        amps = [a * scale for a in sec["known_lines_amplitude_angstrom"]]
        if len(freqs) != len(amps):
            raise ValueError("[scan_jitter] known_lines_hz and known_lines_amplitude_angstrom differ in length")
        f_ref = draw(sec, "reference_frequency_hz", rng)
        expo = draw(sec, "spectral_exponent", rng)
        for _ in range(draw(sec, "random_lines", rng)):
            f = draw(sec, "random_line_frequency_hz", rng)
            freqs.append(f)
            amps.append(draw(sec, "random_line_amplitude_angstrom", rng) * (f_ref / f) ** expo)
        integrate = sec.get("integrate_dwell", OPTIONAL_KEYS[family]["integrate_dwell"])  # draws nothing
        return scan.ScanJitter(freqs, amps, draw(sec, "y_to_x_ratio", rng), integrate_dwell=integrate)
    if family == "scan_lines":
        return scan.LineShifts(draw(sec, "std_x_angstrom", rng), draw(sec, "std_y_angstrom", rng),
                               draw(sec, "phi", rng))
    if family == "drift":
        return scan.Drift(draw(sec, "velocity_angstrom_per_s", rng), draw(sec, "direction_deg", rng),
                          draw(sec, "random_walk_angstrom_per_sqrt_s", rng),
                          _draw_or_default(family, sec, "random_walk_time_constant_s", rng))
    if family == "flyback":
        return scan.Flyback(draw(sec, "amplitude_angstrom", rng), draw(sec, "time_constant_us", rng) * 1e-6)
    raise ValueError(f"{family!r} is not a scan family")


def _draw_or_default(family: str, sec: dict, key: str, rng: np.random.Generator):
    """``draw(sec, key, rng)``, or where the preset predates ``key`` the value that keeps its
    data as they were (:data:`datagen.preset_schema.OPTIONAL_KEYS`; draws nothing)."""
    return draw(sec, key, rng) if key in sec else OPTIONAL_KEYS[family][key]


def _is_sparse(preset: dict, regime_rng: np.random.Generator) -> bool:
    """Whether this sample is a sparse one (preset ``[sparse] fraction``)."""
    return bool(regime_rng.random() < draw(sparse_section(preset), "fraction", regime_rng))


def _active_families(preset: dict, fam_rng: dict, sparse: bool = False) -> dict[str, bool]:
    """Whether each family acts in this sample: the first draw of its stream against the
    family's ``probability``, or in a sparse sample against ``[sparse] family_probability``."""
    if sparse:
        p = float(sparse_section(preset)["family_probability"])
        return {f: bool(fam_rng[f].random() < p) for f in FAMILIES}
    return {f: bool(fam_rng[f].random() < float(preset[f]["probability"])) for f in FAMILIES}


def _scan_displacements(preset: dict, shape: tuple[int, int], timing: scan.ScanTiming,
                        active: dict, fam_rng: dict) -> tuple[dict, float, tuple[float, float]]:
    """Probe displacements (x, y; angstrom) of each active scan family, the sum of every
    scan family's largest displacement (angstrom), and the (x, y) standard deviation of
    the probe within one dwell (angstrom; the active families' that model one, in
    quadrature).  Every family draws its parameters (own stream); only active ones act."""
    effects = {f: _scan_effect(f, preset[f], fam_rng[f]) for f in SCAN_FAMILIES}
    bound = sum(e.bound_angstrom(timing, shape) for e in effects.values())
    parts = {f: effect(timing, shape, fam_rng[f]) for f, effect in effects.items() if active[f]}
    spreads = [e.dwell_spread_angstrom(timing) for f, e in effects.items()
               if active[f] and hasattr(e, "dwell_spread_angstrom")]
    spread = tuple(float(np.sqrt(sum(s[i] ** 2 for s in spreads))) for i in (0, 1))
    return parts, bound, spread


def _summed(parts: dict, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The total displacement of ``parts`` (family -> (dx, dy)), summed in family order."""
    dx = np.zeros(shape)
    dy = np.zeros(shape)
    for ex, ey in parts.values():
        dx += ex
        dy += ey
    return dx, dy


def _margin_px(bound_px: float, shape: tuple[int, int]) -> int:
    """Canvas margin (px) holding the largest displacement, capped at
    :data:`MAX_MARGIN_FACTOR` times the image edge."""
    return int(min(np.ceil(bound_px) + 2, MAX_MARGIN_FACTOR * max(shape)))


def _render_and_scan(spec: dict, shape: tuple[int, int], px: float, margin: int,
                     displacements: list[tuple[np.ndarray, np.ndarray]],
                     spec_rng: np.random.Generator,
                     spread: tuple[float, float] = (0.0, 0.0)) -> tuple[np.ndarray, list[np.ndarray]]:
    """The normalised specimen image in the field of view, and the same canvas as a probe
    displaced by each of ``displacements`` sees it ((dx, dy) in angstrom, ``px`` angstrom
    per pixel).  The first probe also spreads by ``spread`` (x, y standard deviation within
    a dwell, angstrom): it sees the canvas blurred by that Gaussian."""
    h, w = shape
    field = (slice(margin, margin + h), slice(margin, margin + w))
    canvas = Canvas((h + 2 * margin, w + 2 * margin), px, field)
    image = render_specimen(spec, canvas, spec_rng)
    sigma_px = (spread[1] / px, spread[0] / px)  # (rows, columns)
    seen = ndimage.gaussian_filter(image, sigma_px, mode="nearest") if any(sigma_px) else image
    return image[field], [scan.resample(seen if i == 0 else image, field, dx / px, dy / px)
                          for i, (dx, dy) in enumerate(displacements)]


def simulate(preset, size, rng: np.random.Generator, drift_only: bool = False, scanned: bool = False):
    """Like :func:`simulate_pair`, also returning a dict of the drawn settings.

    The detector effects are :data:`datagen.detector.CHAIN`, applied by
    :func:`datagen.detector.apply_chain` (electrons, then ADC levels).  With
    ``drift_only``, ``info["drift_only"]`` is the clean image of the specimen as a probe
    displaced by the sample's drift alone sees it (no other distortion, no noise): the
    best a single-frame method can do when, as here, the drift cannot be told apart
    from the specimen (see :func:`drift_only_references`).  It draws nothing: the pair is
    the same either way.  A preset with ``[target] keep_drift = true`` returns that image
    as the clean target (same input, same draws).  With ``scanned``, ``info["scanned"]`` is
    the clean image as the distorted probe path sees it: every scan displacement, no detector
    effect, no noise (the input without its noise; :func:`scanned_references`); it draws
    nothing either.
    """
    preset = resolve_preset(preset)
    shape = _shape(size)
    spec_rng, det_rng, scan_rng, *family_streams = rng.spawn(3 + len(FAMILIES))
    fam_rng = dict(zip(FAMILIES, family_streams))
    # A second spawn: the streams above (and so the data of presets without sparse
    # samples) are the same as before it existed.
    (regime_rng,) = rng.spawn(1)
    px = draw(preset["specimen"], "pixel_size_angstrom", spec_rng)
    acq = det.Acquisition.from_preset(preset["detector"], preset["scan"], det_rng, scan_rng)
    sparse = _is_sparse(preset, regime_rng)
    active = _active_families(preset, fam_rng, sparse)

    parts, bound, spread = _scan_displacements(preset, shape, acq.timing, active, fam_rng)
    margin = _margin_px(bound / px, shape)
    keep_drift = bool(target_section(preset)["keep_drift"])
    probes = [_summed(parts, shape)]
    if (drift_only or keep_drift) and "drift" in parts:
        probes.append(parts["drift"])
    specimen, scans = _render_and_scan(preset["specimen"], shape, px, margin, probes, spec_rng, spread)
    seen = scans[0]
    clean = acq.response.mean(specimen)
    drifted = acq.response.mean(scans[1]) if len(scans) > 1 else clean
    if keep_drift:
        clean = drifted

    effects = det.build_chain(preset, fam_rng, acq)
    signal = det.apply_chain(effects, seen, acq.response, active, fam_rng)
    info = {"pixel_size_angstrom": px, "response": acq.response, "timing": acq.timing,
            "active": active, "sparse": sparse, "margin_px": margin, "adc_bits": acq.adc_bits}
    if drift_only:
        info["drift_only"] = drifted.astype(np.float32)
    if scanned:
        info["scanned"] = acq.response.mean(seen).astype(np.float32)
    return signal.astype(np.float32), clean.astype(np.float32), info


def simulate_pair(preset, size, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Simulate one (distorted, clean) pair, float32 ``size`` x ``size``, ADC units.

    Parameters
    ----------
    preset : str or dict
        Preset name, TOML path, or dict (see :mod:`datagen.presets`).
    size : int or (int, int)
        Image edge in pixels (>= 49, the receptive field), or (rows, cols).
    rng : numpy.random.Generator
        Source of all randomness.
    """
    distorted, clean, _ = simulate(preset, size, rng)
    return distorted, clean


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` in a data set with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def simulate_pairs(preset, count: int, size, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` pairs; sample i uses ``default_rng(SeedSequence([seed, i]))``."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    preset = resolve_preset(preset)
    return [simulate_pair(preset, size, sample_rng(seed, i)) for i in range(count)]


def drift_only_references(preset, count: int, size, seed: int) -> list[np.ndarray]:
    """For each pair of ``simulate_pairs(preset, count, size, seed)``: its clean image as seen
    through the sample's drift alone (the clean image itself where drift is off).

    Drift is a smooth displacement that grows with scan time (:mod:`datagen.scan.drift`).
    One frame cannot tell it from the specimen's own geometry, and a fully convolutional
    net, which sees 49 px around a pixel, cannot know the pixel's scan time; so scoring these
    images against the clean ones gives the ceiling of any single-frame method that removes
    every other distortion perfectly.
    """
    return _references(preset, count, size, seed, "drift_only")


def scanned_references(preset, count: int, size, seed: int) -> list[np.ndarray]:
    """For each pair of ``simulate_pairs(preset, count, size, seed)``: its clean image as seen
    through all of the sample's scan displacements (jitter, per-line shifts, drift, flyback)
    with no detector effect: where the distortions, not the noise, put each feature of the
    input (e.g. how far they moved each atomic column)."""
    return _references(preset, count, size, seed, "scanned")


def _references(preset, count: int, size, seed: int, key: str) -> list[np.ndarray]:
    preset = resolve_preset(preset)
    return [simulate(preset, size, sample_rng(seed, i), **{key: True})[2][key] for i in range(count)]


def make_training_pair(distorted: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Network input and target: both normalised with the distorted input's statistics."""
    x, stats = normalize(distorted)
    y, _ = normalize(clean, stats)
    return x, y
