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
