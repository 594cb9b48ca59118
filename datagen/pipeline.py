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

from . import detector as det
from . import scan
from .normalize import normalize
from .params import draw
from .presets import FAMILIES, SCAN_FAMILIES, load_preset
from .specimen.scenes import Canvas, render_specimen

#: Smallest image edge: the network's receptive field (12 layers of 5x5).
MIN_SIZE = 49
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
        return scan.ScanJitter(freqs, amps, draw(sec, "y_to_x_ratio", rng))
    if family == "scan_lines":
        return scan.LineShifts(draw(sec, "std_x_angstrom", rng), draw(sec, "std_y_angstrom", rng),
                               draw(sec, "phi", rng))
    if family == "drift":
        return scan.Drift(draw(sec, "velocity_angstrom_per_s", rng), draw(sec, "direction_deg", rng),
                          draw(sec, "random_walk_angstrom_per_sqrt_s", rng))
    if family == "flyback":
        return scan.Flyback(draw(sec, "amplitude_angstrom", rng), draw(sec, "time_constant_us", rng) * 1e-6)
    raise ValueError(f"{family!r} is not a scan family")


def _detector_effects(family: str, sec: dict, rng, response: det.DetectorResponse,
                      timing: scan.ScanTiming, adc_bits: int) -> list:
    """Effects of a detector family, built from its preset section."""
    peak = response.peak_adc
    if family == "shot_noise":
        return [det.ShotNoise()]
    if family == "pmt_readout":
        return [det.PMTGainNoise(draw(sec, "gain_cv", rng)),
                det.ReadoutNoise(draw(sec, "readout_std_counts", rng) * response.gain_adc_per_count)]
    if family == "row_offsets":
        return [det.RowOffsets(draw(sec, "offset_std_of_peak", rng) * peak, draw(sec, "gain_std", rng),
                               response.dark_offset_adc)]
    if family == "detector_lag":
        return [det.DetectorLag(draw(sec, "time_constant_us", rng) * 1e-6, timing)]
    if family == "outliers":
        return [det.Zingers(draw(sec, "zinger_fraction", rng), draw(sec, "zinger_amplitude_of_peak", rng) * peak),
                det.DeadPixels(draw(sec, "dead_pixel_fraction", rng))]
    if family == "quantisation":
        return [det.Quantiser(adc_bits)]
    raise ValueError(f"{family!r} is not a detector family")


def simulate(preset, size, rng: np.random.Generator):
    """Like :func:`simulate_pair`, also returning a dict of the drawn settings."""
    preset = resolve_preset(preset)
    h, w = _shape(size)
    streams = rng.spawn(3 + len(FAMILIES))
    spec_rng, det_rng, scan_rng = streams[:3]
    fam_rng = dict(zip(FAMILIES, streams[3:]))
    spec, dsec, ssec = preset["specimen"], preset["detector"], preset["scan"]

    px = draw(spec, "pixel_size_angstrom", spec_rng)
    adc_bits = int(draw(dsec, "adc_bits", det_rng))
    response = det.DetectorResponse.from_settings(
        draw(dsec, "dose_counts", det_rng), adc_bits,
        draw(dsec, "peak_fraction_of_full_scale", det_rng),
        draw(dsec, "dark_offset_fraction_of_full_scale", det_rng))
    timing = scan.ScanTiming(draw(ssec, "dwell_time_us", scan_rng) * 1e-6,
                             draw(ssec, "flyback_time_us", scan_rng) * 1e-6)
    active = {f: bool(fam_rng[f].random() < float(preset[f]["probability"])) for f in FAMILIES}

    # scan: every family's parameters are drawn (own stream); only active ones act
    scan_effects = {f: _scan_effect(f, preset[f], fam_rng[f]) for f in SCAN_FAMILIES}
    bound = sum(e.bound_angstrom(timing, (h, w)) for e in scan_effects.values()) / px
    margin = int(min(np.ceil(bound) + 2, MAX_MARGIN_FACTOR * max(h, w)))
    dx = np.zeros((h, w))
    dy = np.zeros((h, w))
    for f, effect in scan_effects.items():
        if active[f]:
            ex, ey = effect(timing, (h, w), fam_rng[f])
            dx += ex
            dy += ey
    field = (slice(margin, margin + h), slice(margin, margin + w))
    canvas = Canvas((h + 2 * margin, w + 2 * margin), px, field)
    image = render_specimen(spec, canvas, spec_rng)
    clean = response.mean(image[field])
    seen = scan.resample(image, field, dx / px, dy / px)

    # detector chain
    effects = {f: _detector_effects(f, preset[f], fam_rng[f], response, timing, adc_bits)
               for f in FAMILIES if f not in SCAN_FAMILIES}
    counts = response.expected_counts(seen)
    for f in ("shot_noise", "pmt_readout", "detector_lag"):
        if active[f]:
            for e in effects[f]:
                if isinstance(e, det.ReadoutNoise):
                    continue  # acts on ADC levels, below
                counts = e(counts, fam_rng[f])
    signal = response.to_adc(counts)
    if active["pmt_readout"]:
        signal = [e for e in effects["pmt_readout"] if isinstance(e, det.ReadoutNoise)][0](signal, fam_rng["pmt_readout"])
    for f in ("row_offsets", "outliers", "quantisation"):
        if active[f]:
            for e in effects[f]:
                signal = e(signal, fam_rng[f])
    info = {"pixel_size_angstrom": px, "response": response, "timing": timing,
            "active": active, "margin_px": margin, "adc_bits": adc_bits}
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


def make_training_pair(distorted: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Network input and target: both normalised with the distorted input's statistics."""
    x, stats = normalize(distorted)
    y, _ = normalize(clean, stats)
    return x, y
