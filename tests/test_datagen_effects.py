"""Statistical tests of each physical effect in datagen (scan and detector)."""
import numpy as np
import pytest

from datagen import detector as det
from datagen import scan
from datagen.scan.lines import ar1


def rng(seed=0):
    return np.random.default_rng(seed)


# --- detector chain -----------------------------------------------------------

@pytest.mark.parametrize("dose", [3.0, 50.0, 800.0])
def test_shot_noise_poisson_mean_and_variance(dose):
    lam = np.full((200, 200), dose)
    counts = det.ShotNoise()(lam, rng(1))
    assert np.all(counts == np.round(counts))  # integer electrons
    se = np.sqrt(dose / counts.size)
    assert abs(counts.mean() - dose) < 5 * se
    assert abs(counts.var() / dose - 1) < 0.05


def test_pmt_gain_noise_excess_variance():
    n = np.full((300, 300), 40.0)
    out = det.PMTGainNoise(0.5)(n, rng(2))
    assert abs(out.mean() / 40 - 1) < 0.01
    assert abs(out.var() / (40 * 0.25) - 1) < 0.05  # n cv^2 on top of fixed n


def test_readout_noise_std():
    out = det.ReadoutNoise(7.0)(np.full((300, 300), 100.0), rng(3))
    assert abs(out.mean() - 100) < 0.1 and abs(out.std() / 7 - 1) < 0.02


def test_row_offsets_constant_along_rows_with_set_std():
    img = np.full((2000, 32), 500.0)
    out = det.RowOffsets(offset_std_adc=4.0, gain_std=0.0, dark_offset_adc=100.0)(img, rng(4))
    assert np.allclose(out.std(axis=1), 0)  # one offset per line
    assert abs(out[:, 0].std() / 4 - 1) < 0.06


def test_detector_lag_exponential_along_fast_scan():
    timing = scan.ScanTiming(dwell_time_s=2e-6, flyback_time_s=1.0)  # long flyback: no carry-over
    img = np.zeros((4, 64))
    img[:, 10] = 1.0
    out = det.DetectorLag(time_constant_s=6e-6, timing=timing)(img)
    a = np.exp(-2 / 6)
    assert np.allclose(out[0, :10], 0)
    assert np.allclose(out[0, 10:20], (1 - a) * a ** np.arange(10))
    flat = det.DetectorLag(6e-6, timing)(np.full((5, 40), 3.0))
    assert np.allclose(flat, 3.0)  # mean preserving


def test_detector_lag_carries_over_flyback():
    timing = scan.ScanTiming(dwell_time_s=1e-6, flyback_time_s=2e-6)
    img = np.zeros((2, 8))
    img[0, -1] = 1.0
    out = det.DetectorLag(4e-6, timing)(img)
    a = np.exp(-1 / 4)
    m = 1 / 8  # the flyback retraces row 0: memory relaxes towards its mean
    state = m + ((1 - a) - m) * np.exp(-2 / 4)
    assert np.isclose(out[1, 0], a * state)


def test_outlier_fractions():
    img = np.full((400, 400), 100.0)
    z = det.Zingers(fraction=0.01, amplitude_adc=1000)(img, rng(5))
    hit = z > 100
    assert abs(hit.mean() - 0.01) < 0.002
    assert z[hit].min() >= 600 and z[hit].max() <= 1600
    d = det.DeadPixels(fraction=0.005)(img, rng(6))
    assert abs((d == 0).mean() - 0.005) < 0.0015


def test_quantiser_clips_and_rounds():
    q = det.Quantiser(8)
    out = q(np.array([-5.0, 0.4, 12.6, 254.5, 1e6]))
    assert out.tolist() == [0.0, 0.0, 13.0, 254.0, 255.0]


def test_response_gain_from_full_scale():
    r = det.DetectorResponse.from_settings(dose_counts=200, adc_bits=12, peak_fraction=0.5, dark_fraction=0.1)
    assert r.full_scale_adc == 4095
    assert np.isclose(r.mean(np.array(1.0)), 0.1 * 4095 + 0.5 * (4095 - 409.5))
    assert np.isclose(r.peak_adc, r.gain_adc_per_count * 200)


# --- scan distortions -----------------------------------------------------------

def test_pixel_times():
    t = scan.ScanTiming(dwell_time_s=2e-6, flyback_time_s=10e-6).pixel_times((3, 4))
    assert np.isclose(t[1, 0], 4 * 2e-6 + 10e-6)
    assert np.isclose(t[2, 3], 2 * (8e-6 + 10e-6) + 3 * 2e-6)


@pytest.mark.parametrize("f", [3e3, 17e3, 60e3])
def test_jitter_spectrum_peaks_at_configured_frequency(f):
    timing = scan.ScanTiming(dwell_time_s=2e-6, flyback_time_s=0.0)  # uniform sampling at 500 kHz
    dx, dy = scan.ScanJitter([f], [0.3], y_to_x_ratio=0.5)(timing, (128, 128), rng(7))
    for d, amp in ((dx, 0.3), (dy, 0.15)):
        series = d.ravel()
        spec = np.abs(np.fft.rfft(series))
        freqs = np.fft.rfftfreq(series.size, d=2e-6)
        assert abs(freqs[np.argmax(spec)] - f) <= freqs[1]
        assert abs(series.std() * np.sqrt(2) / amp - 1) < 0.02


def test_jitter_is_correlated_along_fast_scan():
    timing = scan.ScanTiming(dwell_time_s=5e-6, flyback_time_s=50e-6)
    dx, _ = scan.ScanJitter([2e3], [0.5])(timing, (64, 64), rng(8))
    along = np.mean(np.abs(np.diff(dx, axis=1)))
    across = np.mean(np.abs(np.diff(dx, axis=0)))
    assert along < across / 3


def _dwell_samples(jitter, timing, shape, seed, n=400):
    """Brute force: the jitter's sum of sinusoids at n sub-instants of every pixel's dwell, with
    the phases ScanJitter draws from ``rng(seed)``; (n, 2, ny, nx) Angstrom."""
    phases = rng(seed).uniform(0.0, 2 * np.pi, (2, jitter.frequencies_hz.size))
    t0 = timing.pixel_times(shape)
    sub = np.zeros((n, 2) + tuple(shape))
    for k in range(n):
        t = t0 + (k + 0.5) / n * timing.dwell_time_s
        for f, a, px, py in zip(jitter.frequencies_hz, jitter.amplitudes_angstrom, *phases):
            sub[k, 0] += a * np.sin(2 * np.pi * f * t + px)
            sub[k, 1] += a * jitter.y_to_x_ratio * np.sin(2 * np.pi * f * t + py)
    return sub


def test_dwell_integrated_jitter_is_the_mean_over_each_dwell():
    """integrate_dwell: (dx, dy) is the probe's mean position over each pixel's dwell, lines
    below, at and far above 1/(2 dwell) alike; without it, the position at the dwell's start."""
    timing = scan.ScanTiming(dwell_time_s=4e-6, flyback_time_s=7e-6)
    freqs, amps = [900.0, 60e3, 125e3, 250e3, 700e3], [0.3, 0.2, 0.25, 0.4, 0.1]  # f tau: 0.0036 .. 2.8
    jitter = scan.ScanJitter(freqs, amps, y_to_x_ratio=0.6, integrate_dwell=True)
    dx, dy = jitter(timing, (6, 9), rng(3))
    sub = _dwell_samples(jitter, timing, (6, 9), seed=3)
    assert np.allclose(dx, sub[:, 0].mean(0), atol=1e-5) and np.allclose(dy, sub[:, 1].mean(0), atol=1e-5)
    start = scan.ScanJitter(freqs, amps, y_to_x_ratio=0.6)(timing, (6, 9), rng(3))
    assert not np.allclose(dx, start[0], atol=0.05)  # the lines above Nyquist no longer alias


def test_dwell_spread_is_the_phase_averaged_variance_within_a_dwell():
    timing = scan.ScanTiming(dwell_time_s=4e-6)
    jitter = scan.ScanJitter([60e3, 250e3, 700e3], [0.2, 0.4, 0.1], y_to_x_ratio=0.5, integrate_dwell=True)
    sx, sy = jitter.dwell_spread_angstrom(timing)
    sub = _dwell_samples(jitter, timing, (40, 40), seed=4, n=64)
    var = sub.var(axis=0).mean(axis=(1, 2))  # within each dwell, averaged over the pixels (phases)
    assert np.isclose(sx, np.sqrt(var[0]), rtol=0.03) and np.isclose(sy, np.sqrt(var[1]), rtol=0.03)
    assert np.isclose(sy, 0.5 * sx)
    at_rate = scan.ScanJitter([1 / 4e-6], [0.3], integrate_dwell=True)  # f tau = 1: no mean shift, all blur
    dx, _ = at_rate(timing, (8, 8), rng(5))
    assert np.abs(dx).max() < 1e-12 and np.isclose(at_rate.dwell_spread_angstrom(timing)[0], 0.3 / np.sqrt(2))
    assert scan.ScanJitter([250e3], [0.4]).dwell_spread_angstrom(timing) == (0.0, 0.0)


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_line_shifts_ar1_lag1_autocorrelation(phi):
    dx, dy = scan.LineShifts(0.2, 0.1, phi)(scan.ScanTiming(1e-6), (20000, 2), rng(9))
    assert np.all(dx[:, 0] == dx[:, 1])  # rigid per line
    for s, std in ((dx[:, 0], 0.2), (dy[:, 0], 0.1)):
        r1 = np.corrcoef(s[:-1], s[1:])[0, 1]
        assert abs(r1 - phi) < 0.03
        assert abs(s.std() / std - 1) < 0.08


def test_ar1_rejects_nonstationary():
    with pytest.raises(ValueError):
        ar1(10, 1.0, 1.0, rng())


def test_drift_linear_magnitude_and_direction():
    timing = scan.ScanTiming(dwell_time_s=10e-6, flyback_time_s=100e-6)
    shape = (100, 100)
    dx, dy = scan.Drift(2.0, 30.0, 0.0)(timing, shape, rng())
    total = timing.frame_time_s(shape) * 2.0
    assert np.isclose(np.hypot(dx[-1, -1], dy[-1, -1]), total)
    assert np.isclose(np.degrees(np.arctan2(dy[-1, -1], dx[-1, -1])), 30.0)
    assert dx[0, 0] == 0 and dy[0, 0] == 0


def test_drift_random_walk_variance():
    timing = scan.ScanTiming(dwell_time_s=20e-6, flyback_time_s=0.0)
    shape = (50, 50)
    ends = np.array([scan.Drift(0.0, 0.0, 0.5)(timing, shape, rng(s))[0][-1, -1] for s in range(400)])
    expected = 0.25 * timing.frame_time_s(shape)  # D t
    assert abs(ends.var() / expected - 1) < 0.2


def test_slow_random_walk_diffuses_like_brownian_at_long_times():
    """With a time constant tau the walk's velocity wanders (Ornstein-Uhlenbeck); over a frame
    much longer than tau the displacement spreads as <W^2> = D [t - tau (1 - exp(-t/tau))]."""
    timing = scan.ScanTiming(dwell_time_s=20e-6, flyback_time_s=0.0)
    shape = (50, 50)
    t = timing.frame_time_s(shape)
    tau = t / 20
    ends = np.array([scan.Drift(0.0, 0.0, 0.5, tau)(timing, shape, rng(s))[0][-1, -1] for s in range(400)])
    expected = 0.25 * (t - tau * (1 - np.exp(-t / tau)))
    assert abs(ends.var() / expected - 1) < 0.2


def test_slow_random_walk_is_smooth_from_line_to_line():
    """Brownian drift (tau = 0) steps independently from one scan line to the next, like scan-line
    noise; the slow walk (tau = 0.1 s, ~90 line times) moves lines by a smooth curve: the rows'
    second differences are tiny against Brownian's, while the walk itself is not."""
    timing = scan.ScanTiming(dwell_time_s=10e-6, flyback_time_s=100e-6)
    shape = (128, 100)  # 1.1 ms per line, 0.14 s per frame
    curv = {}
    spread = {}
    for tau in (0.0, 0.1):
        rows = np.array([scan.Drift(0.0, 0.0, 1.0, tau)(timing, shape, rng(s))[0][:, 0] for s in range(40)])
        curv[tau] = np.diff(rows, n=2, axis=1).std()
        spread[tau] = rows[:, -1].std()
    assert curv[0.1] < 0.05 * curv[0.0]
    assert spread[0.1] > 0.1 * spread[0.0]


def test_slow_random_walk_starts_at_zero_and_repeats_with_its_seed():
    timing = scan.ScanTiming(dwell_time_s=5e-6, flyback_time_s=50e-6)
    drift = scan.Drift(1.0, 30.0, 0.8, 0.3)
    dx, dy = drift(timing, (40, 60), rng(3))
    assert dx[0, 0] == 0 and dy[0, 0] == 0
    again = drift(timing, (40, 60), rng(3))
    assert np.array_equal(dx, again[0]) and np.array_equal(dy, again[1])
    with pytest.raises(ValueError, match="random_walk_time_constant_s"):
        scan.Drift(1.0, 0.0, 0.5, -1.0)
    with pytest.raises(ValueError, match="too short for a .*-s frame"):
        scan.Drift(1.0, 0.0, 0.5, 1e-9)(timing, (40, 60), rng(3))


def test_flyback_magnitude_and_decay():
    timing = scan.ScanTiming(dwell_time_s=2e-6, flyback_time_s=50e-6)
    dx, dy = scan.Flyback(1.5, 10e-6)(timing, (8, 64), rng())
    assert np.allclose(dx[:, 0], -1.5)
    assert np.allclose(dx[:, 5], -1.5 / np.e)  # t = 5 * 2 us = tau
    assert np.all(np.diff(dx, axis=1) > 0) and np.all(dy == 0)


def test_resample_shift_matches_translation():
    img = rng(10).random((80, 80))
    field = (slice(10, 60), slice(10, 60))
    out = scan.resample(img, field, np.full((50, 50), 3.0), np.full((50, 50), -2.0))
    assert np.allclose(out, img[8:58, 13:63])


# --- zero strength = exact identity -------------------------------------------

def test_zero_strength_scan_effects_give_zero_displacement():
    timing = scan.ScanTiming(3e-6, 30e-6)
    shape = (20, 30)
    for effect in (scan.ScanJitter([100.0, 5e3], [0.0, 0.0]), scan.LineShifts(0.0, 0.0, 0.7),
                   scan.Drift(0.0, 45.0, 0.0), scan.Flyback(0.0, 5e-6)):
        dx, dy = effect(timing, shape, rng())
        assert not np.any(dx) and not np.any(dy), type(effect).__name__


def test_zero_displacement_resample_is_exact_crop():
    img = rng(11).random((70, 70))
    field = (slice(5, 65), slice(5, 65))
    out = scan.resample(img, field, np.zeros((60, 60)), np.zeros((60, 60)))
    assert out.tobytes() == img[field].tobytes()


def test_zero_strength_detector_effects_are_identity():
    timing = scan.ScanTiming(3e-6, 30e-6)
    x = rng(12).random((30, 40)) * 100
    for effect in (det.PMTGainNoise(0.0), det.ReadoutNoise(0.0), det.RowOffsets(0.0, 0.0, 10.0),
                   det.DetectorLag(0.0, timing), det.Zingers(0.0, 50.0), det.Zingers(0.01, 0.0),
                   det.DeadPixels(0.0)):
        assert effect(x, rng()).tobytes() == x.tobytes(), type(effect).__name__


# --- the detector chain as data -------------------------------------------------

DETECTOR_FAMILIES = ("shot_noise", "pmt_readout", "row_offsets", "detector_lag", "outliers", "quantisation")


def _acquisition():
    response = det.DetectorResponse.from_settings(dose_counts=200, adc_bits=12, peak_fraction=0.5,
                                                  dark_fraction=0.1)
    return det.Acquisition(response, scan.ScanTiming(2e-6, 30e-6), adc_bits=12)


def test_chain_order_and_signal_domains():
    assert [(f, cls.__name__, cls.acts_on) for f, cls in det.CHAIN] == [
        ("shot_noise", "ShotNoise", "counts"),
        ("pmt_readout", "PMTGainNoise", "counts"),
        ("detector_lag", "DetectorLag", "counts"),
        ("pmt_readout", "ReadoutNoise", "adc"),
        ("row_offsets", "RowOffsets", "adc"),
        ("outliers", "Zingers", "adc"),
        ("outliers", "DeadPixels", "adc"),
        ("quantisation", "Quantiser", "adc")]
    assert det.DOMAINS == (det.COUNTS, det.ADC) == ("counts", "adc")
    assert {f for f, _ in det.CHAIN} == set(DETECTOR_FAMILIES)


def test_check_chain_rejects_counts_after_adc_and_unknown_domains():
    det.check_chain(det.CHAIN)
    with pytest.raises(ValueError, match="follows one on ADC"):
        det.check_chain([("quantisation", det.Quantiser), ("shot_noise", det.ShotNoise)])

    class Photons:
        acts_on = "photons"

    with pytest.raises(ValueError, match="Photons.*photons"):
        det.check_chain([("shot_noise", Photons)])


def test_effects_build_from_preset_sections_in_physical_units():
    acq = _acquisition()
    r = acq.response
    sec = {"gain_cv": 0.4, "readout_std_counts": 2.0, "offset_std_of_peak": 0.01, "gain_std": 0.02,
           "time_constant_us": 3.0, "zinger_fraction": 1e-3, "zinger_amplitude_of_peak": 0.5,
           "dead_pixel_fraction": 2e-3}
    assert det.PMTGainNoise.from_preset(sec, rng(), acq).gain_cv == 0.4
    assert det.ReadoutNoise.from_preset(sec, rng(), acq).std_adc == 2.0 * r.gain_adc_per_count
    rows = det.RowOffsets.from_preset(sec, rng(), acq)
    assert (rows.offset_std_adc, rows.gain_std, rows.dark_offset_adc) == (0.01 * r.peak_adc, 0.02,
                                                                          r.dark_offset_adc)
    lag = det.DetectorLag.from_preset(sec, rng(), acq)
    assert lag.time_constant_s == pytest.approx(3e-6) and lag.timing is acq.timing
    z = det.Zingers.from_preset(sec, rng(), acq)
    assert (z.fraction, z.amplitude_adc) == (1e-3, 0.5 * r.peak_adc)
    assert det.DeadPixels.from_preset(sec, rng(), acq).fraction == 2e-3
    assert det.Quantiser.from_preset({}, rng(), acq).full_scale_adc == r.full_scale_adc == 4095
    assert isinstance(det.ShotNoise.from_preset({}, rng(), acq), det.ShotNoise)
    with pytest.raises(KeyError, match="gain_cv"):
        det.PMTGainNoise.from_preset({}, rng(), acq)


def test_acquisition_from_preset_units_and_draw_order():
    detector = {"adc_bits": {"choice": [12, 14, 16]}, "dose_counts": {"log": [50.0, 2000.0]},
                "peak_fraction_of_full_scale": [0.3, 1.0], "dark_offset_fraction_of_full_scale": [0.0, 0.1]}
    acq = det.Acquisition.from_preset(detector, {"dwell_time_us": 4.0, "flyback_time_us": [20.0, 500.0]},
                                      rng(1), rng(2))
    g = rng(1)  # the same draws by hand, in the documented order
    bits = [12, 14, 16][int(g.choice(3))]
    dose = float(np.exp(g.uniform(np.log(50.0), np.log(2000.0))))
    peak, dark = g.uniform(0.3, 1.0), g.uniform(0.0, 0.1)
    assert acq.adc_bits == bits and acq.response == det.DetectorResponse.from_settings(dose, bits, peak, dark)
    assert acq.timing.dwell_time_s == pytest.approx(4e-6)
    assert acq.timing.flyback_time_s == pytest.approx(rng(2).uniform(20.0, 500.0) * 1e-6)


def test_build_chain_draws_each_family_stream_in_chain_order():
    from datagen.presets import load_preset
    preset = load_preset("paper")
    acq = _acquisition()
    streams = {f: rng(i) for i, f in enumerate(DETECTOR_FAMILIES)}
    effects = det.build_chain(preset, streams, acq)
    assert [(f, type(e)) for f, e in effects] == list(det.CHAIN)
    built = dict((type(e).__name__, e) for _, e in effects)
    g = rng(DETECTOR_FAMILIES.index("pmt_readout"))  # gain_cv, then readout_std_counts
    assert built["PMTGainNoise"].gain_cv == g.uniform(0.0, 0.6)
    assert built["ReadoutNoise"].std_adc == g.uniform(0.0, 3.0) * acq.response.gain_adc_per_count
    g = rng(DETECTOR_FAMILIES.index("outliers"))  # zingers (fraction, amplitude), then dead pixels
    assert built["Zingers"].fraction == pytest.approx(np.exp(g.uniform(np.log(1e-4), np.log(2e-3))))
    assert built["Zingers"].amplitude_adc == pytest.approx(g.uniform(0.3, 3.0) * acq.response.peak_adc)
    assert built["DeadPixels"].fraction == pytest.approx(np.exp(g.uniform(np.log(5e-5), np.log(1e-3))))


def _chain_alone(family):
    """The chain with only ``family`` active, and the same result composed by hand."""
    from datagen.presets import load_preset
    acq = _acquisition()
    r = acq.response
    image = rng(20).random((48, 64))
    preset = load_preset("paper")
    preset["outliers"].update(zinger_fraction=0.01, dead_pixel_fraction=0.01)  # hits in 48 x 64
    effects = det.build_chain(preset, {f: rng(30) for f in DETECTOR_FAMILIES}, acq)
    active = {f: f == family for f in DETECTOR_FAMILIES}
    out = det.apply_chain(effects, image, r, active, {f: rng(40) for f in DETECTOR_FAMILIES})
    e = {type(x).__name__: x for _, x in effects}
    g = rng(40)
    counts = r.expected_counts(image)
    by_hand = {
        "shot_noise": lambda: r.to_adc(e["ShotNoise"](counts, g)),
        "pmt_readout": lambda: e["ReadoutNoise"](r.to_adc(e["PMTGainNoise"](counts, g)), g),
        "detector_lag": lambda: r.to_adc(e["DetectorLag"](counts, g)),
        "row_offsets": lambda: e["RowOffsets"](r.mean(image), g),
        "outliers": lambda: e["DeadPixels"](e["Zingers"](r.mean(image), g), g),
        "quantisation": lambda: e["Quantiser"](r.mean(image), g),
    }[family]()
    return out, by_hand, r.mean(image)


@pytest.mark.parametrize("family", DETECTOR_FAMILIES)
def test_one_active_family_acts_in_its_domain_and_the_others_are_identity(family):
    out, by_hand, mean = _chain_alone(family)
    assert out.tobytes() == by_hand.tobytes()
    assert not np.array_equal(out, mean)


def test_chain_with_every_family_off_is_the_mean_response_without_draws():
    from datagen.presets import load_preset
    acq = _acquisition()
    image = rng(21).random((20, 20))
    effects = det.build_chain(load_preset("paper"), {f: rng() for f in DETECTOR_FAMILIES}, acq)
    streams = {f: rng(5) for f in DETECTOR_FAMILIES}
    out = det.apply_chain(effects, image, acq.response, dict.fromkeys(DETECTOR_FAMILIES, False), streams)
    assert out.tobytes() == acq.response.mean(image).tobytes()
    assert all(s.random() == rng(5).random() for s in streams.values())  # no stream consumed
