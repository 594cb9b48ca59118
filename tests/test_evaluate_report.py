"""What results.md says about margins and tuned parameters (evaluate.report), from scores alone."""
import numpy as np

from evaluate import report, run


def _result(cnn_psnr, base_psnr, params="sigma=0.75", family=None):
    cond = run.Condition(family, 300.0)
    res = run.ConditionResult(cond)
    for method, values, p in (("raw", [20.0] * len(cnn_psnr), ""), ("gaussian", base_psnr, params),
                              ("cnn", cnn_psnr, "")):
        res.scores.append(run.Score(cond.label, family or run.MIX, 300.0, method, p, len(values),
                                    float(np.mean(values)), float(np.std(values)), 0.5, 0.0, 0.1,
                                    float("nan"), 0.1, 0.0))
        res.image_psnr[method] = list(values)
    return res


def _verdict_line(result):
    md = report.markdown_report([result], "# header", "checks")
    return next(line for line in md.splitlines() if line.startswith("- full mix @ 300: CNN"))


def test_a_margin_is_called_a_win_only_when_its_interval_clears_zero():
    sure = _result([30.0, 31.0, 32.0, 33.0], [28.0, 29.1, 29.9, 31.0])     # +2.0 dB, tight
    assert " beats best baseline gaussian" in _verdict_line(sure)
    unsure = _result([30.0, 35.0, 26.0, 33.0], [29.0, 30.0, 31.0, 32.0])   # +0.5 dB, spread 4 dB
    assert "is ahead of (95 % interval includes 0) best baseline" in _verdict_line(unsure)
    behind = _result([28.0, 29.0, 30.0, 31.0], [29.0, 30.0, 31.0, 32.0])
    assert "does NOT beat" in _verdict_line(behind)
    alone = _result([30.0], [25.0])                                          # one image: no interval
    assert "is ahead of (no interval: too few images) best baseline" in _verdict_line(alone)


def test_a_tuned_value_at_the_end_of_its_grid_is_marked_and_explained():
    from evaluate.baselines import BASELINES

    top = max(g["sigma"] for g in BASELINES["gaussian"].grid)
    marked = run._params_text({"sigma": top}, ["sigma"])
    assert marked == f"sigma={top:g}{run.GRID_END}"
    md = report.markdown_report([_result([30.0] * 3, [29.0] * 3, params=marked)], "# h", "c")
    assert f"| full mix @ 300 | {marked} |" in md
    assert f"{run.GRID_END} the value picked is the end of its grid" in md
    plain = report.markdown_report([_result([30.0] * 3, [29.0] * 3)], "# h", "c")
    assert run.GRID_END not in plain


def test_on_the_full_mix_each_baseline_is_also_scored_at_its_best_on_the_test_images():
    """The bound: the grid point best on the test images themselves, never below the validation
    pick on them; results.md states the CNN's margin over the best such baseline."""
    import datagen
    from datagen.presets import family_preset, full_mix, with_dose
    from evaluate.baselines import BASELINES, grid, Baseline, gaussian

    preset = with_dose(full_mix("paper"), 300)
    test = datagen.simulate_pairs(preset, 3, 64, 1000)
    val = datagen.simulate_pairs(preset, 1, 64, 1000 + run.VALIDATION_SEED_OFFSET)
    coarse = Baseline("gaussian", gaussian, grid(sigma=(0.2, 1.0, 3.0)))
    smooth = lambda image: gaussian(image, 0.75)                                   # noqa: E731
    res = run.evaluate_condition(run.Condition(None, 300.0), test, val, [coarse, BASELINES["median"]],
                                 cnn=smooth, n_examples=0)
    assert set(res.test_tuned_params) == {"gaussian", "median"}
    on_test = {s.method: s.psnr_mean for s in res.scores}
    for name, values in res.test_tuned_image_psnr.items():
        assert len(values) == 3 and np.mean(values) >= on_test[name] - 1e-9
    scores = [np.mean([min(run.psnr(gaussian(d, s), c), run.PSNR_CAP_DB) for d, c in test]) for s in (0.2, 1.0, 3.0)]
    assert np.mean(res.test_tuned_image_psnr["gaussian"]) == max(scores)
    (label, cnn, best, params, value, margin, _), = report.bound_verdict([res])
    assert best in ("gaussian", "median") and margin == cnn - value
    md = report.markdown_report([res], "# h", "c")
    assert f"- full mix @ 300: CNN {cnn:.2f} dB, {best} at its best ({params}) {value:.2f} dB" in md
    single = run.evaluate_condition(run.Condition("shot_noise", 300.0), datagen.simulate_pairs(
        with_dose(family_preset("paper", "shot_noise"), 300), 2, 64, 1000), val, [coarse], n_examples=0)
    assert single.test_tuned_params == {}                       # single families: validation only
