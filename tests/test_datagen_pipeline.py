"""Public API of datagen: presets, identity at zero strength, determinism, dose."""
import copy

import numpy as np
import pytest

import datagen
from datagen import (FAMILIES, family_preset, load_preset, make_training_pair, simulate_pair,
                     simulate_pairs, with_dose)
from datagen.pipeline import sample_rng, simulate
from datagen.specimen.structures import LIBRARY, projected_cell
from stem_restore.normalize import normalize


def test_public_api_names():
    assert FAMILIES == ("scan_jitter", "scan_lines", "drift", "flyback", "shot_noise",
                        "pmt_readout", "row_offsets", "detector_lag", "outliers", "quantisation")
    assert set(datagen.__all__) == {"FAMILIES", "load_preset", "family_preset", "with_dose",
                                    "simulate_pair", "simulate_pairs", "make_training_pair",
                                    "drift_only_references", "scanned_references"}


@pytest.mark.parametrize("name", ["paper", "quick"])
def test_presets_load_with_all_families(name):
    p = load_preset(name)
    assert p["name"] == name
    for fam in FAMILIES:
        assert 0 < p[fam]["probability"] <= 1


def test_load_preset_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'nope'.*paper"):
        load_preset("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(ValueError, match="bad.toml"):
        load_preset(bad)
    partial = tmp_path / "partial.toml"
    partial.write_text("[specimen]\n")
    with pytest.raises(ValueError, match="missing section"):
        load_preset(partial)


def test_family_preset_switches_exactly_one_family():
    for fam in FAMILIES:
        p = family_preset("paper", fam)
        assert [p[f]["probability"] for f in FAMILIES] == [1.0 if f == fam else 0.0 for f in FAMILIES]
    with pytest.raises(ValueError, match="unknown family"):
        family_preset("paper", "gremlins")
    assert load_preset("paper")["drift"]["probability"] > 0  # base untouched


@pytest.mark.parametrize("preset", ["paper", "quick"])
def test_all_families_off_is_exact_identity(preset):
    p = family_preset(preset, None)
    for i in range(12):
        d, c = simulate_pair(p, 64, sample_rng(3, i))
        assert d.tobytes() == c.tobytes()


def _zero_strength(preset, fam):
    p = family_preset(preset, fam)
    zero = {"scan_jitter": {"known_lines_scale": 0.0, "random_lines": 0},
            "scan_lines": {"std_x_angstrom": 0.0, "std_y_angstrom": 0.0},
            "drift": {"velocity_angstrom_per_s": 0.0, "random_walk_angstrom_per_sqrt_s": 0.0},
            "flyback": {"amplitude_angstrom": 0.0},
            "pmt_readout": {"gain_cv": 0.0, "readout_std_counts": 0.0},
            "row_offsets": {"offset_std_of_peak": 0.0, "gain_std": 0.0},
            "detector_lag": {"time_constant_us": 0.0},
            "outliers": {"zinger_fraction": 0.0, "dead_pixel_fraction": 0.0}}[fam]
    p[fam].update(zero)
    return p


@pytest.mark.parametrize("fam", [f for f in FAMILIES if f not in ("shot_noise", "quantisation")])
def test_family_on_at_zero_strength_is_exact_identity(fam):
    p = _zero_strength("paper", fam)
    for i in range(4):
        d, c = simulate_pair(p, 64, sample_rng(1, i))
        assert d.tobytes() == c.tobytes()


@pytest.mark.parametrize("fam", FAMILIES)
def test_each_family_alone_changes_the_image_and_keeps_the_target(fam):
    p = family_preset("paper", fam)
    clean_ref = simulate_pair(family_preset("paper", None), 96, sample_rng(2, 0))[1]
    changed = 0
    for i in range(3):
        d, c = simulate_pair(p, 96, sample_rng(2, i))
        if i == 0:
            assert c.tobytes() == clean_ref.tobytes()  # target independent of the distortions
        changed += not np.array_equal(d, c)
    assert changed >= 2


def test_dtype_shape_and_nonsquare():
    d, c = simulate_pair("quick", (64, 96), np.random.default_rng(0))
    assert d.dtype == c.dtype == np.float32
    assert d.shape == c.shape == (64, 96)
    assert np.all(np.isfinite(d)) and np.all(c > 0)
    with pytest.raises(ValueError, match="receptive field"):
        simulate_pair("quick", 48, np.random.default_rng(0))


def test_determinism_and_seed_sequence():
    a = simulate_pairs("paper", 3, 64, seed=11)
    b = simulate_pairs("paper", 3, 64, seed=11)
    for (d1, c1), (d2, c2) in zip(a, b):
        assert d1.tobytes() == d2.tobytes() and c1.tobytes() == c2.tobytes()
    d, c = simulate_pair("paper", 64, np.random.default_rng(np.random.SeedSequence([11, 2])))
    assert d.tobytes() == a[2][0].tobytes()
    other = simulate_pairs("paper", 3, 64, seed=12)
    assert not any(np.array_equal(x[1], y[1]) for x, y in zip(a, other))


def test_with_dose_sets_counts_at_brightest_clean_pixel():
    p = with_dose("paper", 250)
    assert p["detector"]["dose_counts"] == 250.0
    for i in range(3):
        _, clean, info = simulate(p, 64, sample_rng(5, i))
        r = info["response"]
        assert np.isclose((clean.max() - r.dark_offset_adc) / r.gain_adc_per_count, 250, rtol=1e-4)
    with pytest.raises(ValueError):
        with_dose("paper", 0)


def test_shot_noise_in_pipeline_matches_poisson_at_dose():
    p = family_preset(with_dose("quick", 120.0), "shot_noise")
    means, variances = [], []
    for i in range(6):
        d, c, info = simulate(p, 96, sample_rng(8, i))
        r = info["response"]
        lam = (c.astype(np.float64) - r.dark_offset_adc) / r.gain_adc_per_count
        n = (d.astype(np.float64) - r.dark_offset_adc) / r.gain_adc_per_count
        assert np.allclose(n, np.round(n), atol=2e-2 * max(1.0, 1 / r.gain_adc_per_count))
        means.append((n - lam).mean() / lam.mean())
        variances.append(((n - lam) ** 2).mean() / lam.mean())
    assert abs(np.mean(means)) < 0.02
    assert abs(np.mean(variances) - 1) < 0.06


def test_make_training_pair_uses_input_statistics():
    d, c = simulate_pair("quick", 64, np.random.default_rng(4))
    x, y = make_training_pair(d, c)
    xr, stats = normalize(d)
    yr, _ = normalize(c, stats)
    assert x.dtype == y.dtype == np.float32
    assert x.tobytes() == xr.tobytes() and y.tobytes() == yr.tobytes()


def test_projected_columns_are_physical():
    cu = projected_cell("Cu-fcc", (0, 0, 1))
    d = np.linalg.norm(cu.positions[1:] - cu.positions[0], axis=1).min()
    assert np.isclose(d, 3.615 / 2, atol=1e-6)  # fcc [001]: columns a/2 apart
    assert np.isclose(cu.weights.sum() * 3.615, 4 * 29 ** 1.7)  # 4 atoms per cell and a
    w = projected_cell("W-bcc", (1, 1, 1))
    assert w.positions.shape == (1, 2)  # bcc [111]: one column per 2-D cell
    sto = projected_cell("SrTiO3-perovskite", (0, 0, 1))
    assert sorted(np.round(sto.weights / sto.weights.max(), 3))[-1] == 1  # Sr brightest
    assert np.isclose(sto.weights.max() / sorted(sto.weights)[-2], 38 ** 1.7 / (22 ** 1.7 + 8 ** 1.7))
    for name, (_, axes) in LIBRARY.items():
        for ax in axes:
            cell = projected_cell(name, ax)
            assert np.all(cell.weights > 0) and abs(np.linalg.det(cell.lattice)) > 1


def test_scene_types_all_render():
    p = copy.deepcopy(load_preset("paper"))
    for scene in ("crystal", "interface", "nanoparticle", "low_resolution"):
        p["specimen"]["scene"] = scene
        d, c = simulate_pair(p, 64, np.random.default_rng(0))
        assert np.isfinite(c).all() and c.std() > 0, scene


def _all_on(preset, **off):
    p = copy.deepcopy(load_preset(preset))
    for fam in FAMILIES:
        p[fam]["probability"] = 0.0 if fam in off else 1.0
    return p


def test_simulate_same_seed_same_sample_other_seed_other_sample():
    p = _all_on("paper")
    d1, c1, info1 = simulate(p, 64, sample_rng(9, 4))
    d2, c2, info2 = simulate(p, 64, sample_rng(9, 4))
    assert d1.tobytes() == d2.tobytes() and c1.tobytes() == c2.tobytes()
    assert info1["response"] == info2["response"] and info1["margin_px"] == info2["margin_px"]
    d3, c3, _ = simulate(p, 64, sample_rng(10, 4))
    assert not np.array_equal(d1, d3) and not np.array_equal(c1, c3)


def test_outliers_at_probability_zero_change_only_the_hit_pixels():
    """Each family has its own stream and the chain applies outliers per pixel after every
    other effect but the (per-pixel) quantiser: switching them off leaves every other
    pixel byte-identical."""
    p_on = _all_on("paper")
    p_on["outliers"].update(zinger_fraction=0.01, dead_pixel_fraction=0.01)
    p_off = _all_on("paper", outliers=0)
    p_off["outliers"].update(zinger_fraction=0.01, dead_pixel_fraction=0.01)
    for i in range(3):
        d_on, c_on, _ = simulate(p_on, 64, sample_rng(4, i))
        d_off, c_off, _ = simulate(p_off, 64, sample_rng(4, i))
        assert c_on.tobytes() == c_off.tobytes()
        changed = d_on != d_off
        assert 0 < changed.mean() < 0.05


def test_quantisation_alone_rounds_the_clean_target_to_adc_codes():
    p = family_preset("quick", "quantisation")
    for i in range(3):
        d, c, info = simulate(p, 64, sample_rng(6, i))
        full = 2 ** info["adc_bits"] - 1
        assert np.all(d == np.round(d)) and d.min() >= 0 and d.max() <= full
        inside = c.astype(np.float64) <= full
        assert np.all(np.abs(d - c)[inside] <= 0.5 + 1e-3)
        assert np.all(d[~inside] == full)


def test_sparse_samples_turn_families_on_with_their_own_probability():
    """[sparse]: a share ``fraction`` of samples draws every family with
    ``family_probability``; the rest are the full mix.  Good frames and single effects
    then occur (the full mix of the paper preset almost never has either)."""
    from datagen.pipeline import sample_rng, simulate

    preset = load_preset("paper")
    preset["sparse"] = {"fraction": 0.5, "family_probability": 0.1}
    info = [simulate(preset, 49, sample_rng(7, i))[2] for i in range(160)]
    sparse = [i for i in info if i["sparse"]]
    assert 50 < len(sparse) < 110
    on_sparse = np.mean([sum(i["active"].values()) for i in sparse])
    on_mix = np.mean([sum(i["active"].values()) for i in info if not i["sparse"]])
    assert on_sparse < 2.0 < on_mix  # 10 families x 0.1 vs the paper's ~6
    assert any(not any(i["active"].values()) for i in sparse)


def test_sparse_fraction_zero_leaves_the_data_bit_identical():
    """A preset without [sparse] and one with fraction 0 give the same pairs: the sparse
    draw has its own random stream."""
    preset = load_preset("paper")
    without = {k: v for k, v in preset.items() if k != "sparse"}
    off = dict(preset, sparse={"fraction": 0.0, "family_probability": 0.9})
    for a, b in zip(simulate_pairs(without, 3, 49, seed=5), simulate_pairs(off, 3, 49, seed=5)):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_family_and_full_mix_presets_have_no_sparse_samples():
    from datagen.presets import full_mix

    training = load_preset("training")
    assert training["sparse"]["fraction"] > 0
    assert full_mix(training)["sparse"]["fraction"] == 0.0
    assert family_preset(training, "drift")["sparse"]["fraction"] == 0.0


def test_drift_only_reference_is_the_clean_specimen_through_the_drift_alone():
    """drift_only=True adds info["drift_only"] and draws nothing (the pair is bit-identical);
    on a drift-only frame (every other family off) it IS the distorted input, which the clean
    target is not, and drift grows with scan time: the last rows are the furthest from clean."""
    preset = with_dose(family_preset("paper", "drift"), 1000)
    preset["drift"]["velocity_angstrom_per_s"] = 8.0  # fixed, strong: every sample drifts visibly
    for i in range(3):
        d, c, _ = simulate(preset, 128, sample_rng(3, i))
        d2, c2, info = simulate(preset, 128, sample_rng(3, i), drift_only=True)
        assert d.tobytes() == d2.tobytes() and c.tobytes() == c2.tobytes()
        ref = info["drift_only"]
        assert ref.dtype == np.float32 and ref.shape == c.shape
        np.testing.assert_allclose(ref, d, rtol=1e-5, atol=1e-3 * np.ptp(c))
        assert np.abs(c - d).max() > 0.1 * np.ptp(c)
        err = (ref.astype(float) - c) ** 2
        assert err[-16:].mean() > 4 * err[:16].mean()  # zero drift at the first pixel
    refs = datagen.drift_only_references(preset, 2, 64, seed=3)
    assert [r.tobytes() for r in refs] == [simulate(preset, 64, sample_rng(3, i), drift_only=True)[2][
        "drift_only"].tobytes() for i in range(2)]


def test_drift_only_reference_without_drift_is_the_clean_image():
    preset = family_preset("paper", "scan_jitter")  # scan distortion on, drift off
    d, c, info = simulate(preset, 64, sample_rng(4, 0), drift_only=True)
    assert info["drift_only"].tobytes() == c.tobytes() and not np.array_equal(d, c)


def test_scanned_reference_is_the_input_without_its_detector():
    """scanned=True adds info["scanned"] and draws nothing; on a frame with scan distortions and
    shot noise it is the noise-free input: the distorted frame scatters around it (Poisson:
    variance ~ mean), not around the clean target, and without any scan family it is the clean
    image."""
    preset = with_dose(family_preset("paper", "scan_jitter"), 300)
    preset["shot_noise"]["probability"] = 1.0
    d, c, _ = simulate(preset, 96, sample_rng(5, 0))
    d2, c2, info = simulate(preset, 96, sample_rng(5, 0), scanned=True)
    assert d.tobytes() == d2.tobytes() and c.tobytes() == c2.tobytes()
    ref = info["scanned"]
    assert ref.dtype == np.float32 and ref.shape == c.shape
    assert np.mean((d - ref) ** 2) < 0.5 * np.mean((d - c) ** 2)
    assert not np.array_equal(ref, c)
    refs = datagen.scanned_references(preset, 2, 64, seed=5)
    assert [r.tobytes() for r in refs] == [simulate(preset, 64, sample_rng(5, i), scanned=True)[2][
        "scanned"].tobytes() for i in range(2)]
    still = with_dose(family_preset("paper", "shot_noise"), 300)
    _, c, info = simulate(still, 64, sample_rng(6, 0), scanned=True)
    assert info["scanned"].tobytes() == c.tobytes()


def test_dwell_integration_turns_jitter_above_the_dwell_rate_into_blur():
    """A jitter line at exactly 1/dwell: sampled at one instant per pixel it shifts every scan
    line rigidly; integrated over the dwell (the bundled presets) its mean shift vanishes and the
    probe sees the specimen blurred by sigma = A / sqrt(2) in x and y.  The specimen, the target
    and the other draws are the same either way; a preset written before the key had one
    instant per pixel."""
    from scipy import ndimage

    preset = with_dose(family_preset("paper", "scan_jitter"), 300)
    assert preset["scan_jitter"]["integrate_dwell"] is True
    preset["scan"].update(dwell_time_us=4.0, flyback_time_us=0.0)
    preset["scan_jitter"].update(known_lines_hz=[250e3], known_lines_amplitude_angstrom=[0.5],
                                 known_lines_scale=1.0, random_lines=0, y_to_x_ratio=1.0)
    _, c, info = simulate(preset, 96, sample_rng(8, 0), scanned=True)
    sigma = 0.5 / np.sqrt(2) / info["pixel_size_angstrom"]
    blurred = ndimage.gaussian_filter(c.astype(np.float64), sigma, mode="nearest")
    inner = (slice(8, -8), slice(8, -8))
    err = np.abs(info["scanned"] - blurred)[inner].max() / np.ptp(c)
    assert err < 2e-3, err
    assert np.abs(info["scanned"] - c)[inner].max() / np.ptp(c) > 20 * err  # the blur is visible

    old = copy.deepcopy(preset)
    del old["scan_jitter"]["integrate_dwell"]
    _, c_old, info_old = simulate(old, 96, sample_rng(8, 0), scanned=True)
    assert c_old.tobytes() == c.tobytes()
    explicit = copy.deepcopy(old)
    explicit["scan_jitter"]["integrate_dwell"] = False
    assert simulate(explicit, 96, sample_rng(8, 0))[0].tobytes() == simulate(old, 96, sample_rng(8, 0))[0].tobytes()
    shifted = info_old["scanned"]
    assert np.abs(shifted - blurred)[inner].max() / np.ptp(c) > 10 * err


def test_keep_drift_target_is_the_drift_only_image_and_evaluation_resets_it():
    """[target] keep_drift = true: the same input, and the drift-only image as the target
    (the clean specimen where drift is off); full_mix() (evaluation) scores the true specimen."""
    from datagen.presets import full_mix, target_section

    base = with_dose(full_mix("paper"), 300)
    base["drift"].update(probability=0.5, velocity_angstrom_per_s=8.0)
    kept = copy.deepcopy(base)
    kept["target"] = {"keep_drift": True}
    drifted = 0
    for i in range(4):
        d, c, info = simulate(base, 64, sample_rng(6, i), drift_only=True)
        dk, ck, _ = simulate(kept, 64, sample_rng(6, i))
        assert dk.tobytes() == d.tobytes()
        assert ck.tobytes() == info["drift_only"].tobytes()
        drifted += info["active"]["drift"] and not np.array_equal(ck, c)
    assert drifted >= 1
    assert target_section(full_mix(kept)) == {"keep_drift": False}
    assert target_section(load_preset("paper")) == {"keep_drift": False}  # absent = the paper's pairs
