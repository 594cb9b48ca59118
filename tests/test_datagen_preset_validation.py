"""Issue 16, class 7: a preset is validated completely -- every section and key known, every
value of the right type and range -- before anything is written; one line naming the file,
the section and the key; exit 2.  `--size 100000` blames --size, not --shard-size."""
from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from datagen.presets import PRESET_DIR, available_presets, load_preset

REPO = PRESET_DIR.parents[1]
PAPER = (PRESET_DIR / "paper.toml").read_text()


def preset_with(tmp_path, old: str, new: str, name="bad.toml"):
    """paper.toml with the first ``old`` replaced by ``new``."""
    assert old in PAPER, old
    path = tmp_path / name
    path.write_text(PAPER.replace(old, new, 1))
    return path


# (old text, new text, expected message after "preset FILE: ")
CASES = {
    "misspelled_key": ("known_lines_scale = [0.0, 4.0]", "known_line_scale = [0.0, 4.0]",
                       r"\[scan_jitter\]: unknown key 'known_line_scale' \(did you mean 'known_lines_scale'\?\)"),
    "misspelled_subsection_key": ("facets = {int = [4, 10]}", "facet = {int = [4, 10]}",
                                  r"\[specimen.nanoparticle\]: unknown key 'facet'"),
    "unknown_section": ("[drift]\n", "[drfit]\n", r"top level: unknown section 'drfit' \(did you mean 'drift'\?\)"),
    "flag_not_boolean": ("keep_drift = false", 'keep_drift = "yes"',
                         r"\[target\] keep_drift: must be true or false, got 'yes'"),
    "string_for_number": ("dwell_time_us = {log = [1.0, 20.0]}", 'dwell_time_us = "fast"',
                          r"\[scan\] dwell_time_us: must be a number, .*got 'fast'"),
    "string_in_range": ("phi = [0.0, 0.95]", 'phi = [0.0, "0.95"]', r"\[scan_lines\] phi: must be"),
    "probability_out_of_range": ("probability = 0.5\n", "probability = 1.5\n",
                                 r"\[drift\] probability: 1.5 is out of range: must be a number in \[0, 1\]"),
    "phi_one": ("phi = [0.0, 0.95]", "phi = [0.0, 1.0]", r"\[scan_lines\] phi: 1.0 is out of range"),
    "negative_dose": ("dose_counts = {log = [20.0, 3000.0]}", "dose_counts = -5",
                      r"\[detector\] dose_counts: -5 is out of range: must be a number in \(0, inf\)"),
    "log_lo_zero": ("velocity_angstrom_per_s = {log = [0.05, 10.0]}",
                    "velocity_angstrom_per_s = {log = [0.0, 5.0]}", r"\[drift\] velocity_angstrom_per_s: a log range needs lo > 0"),
    "lo_above_hi": ("gain_cv = [0.0, 0.6]", "gain_cv = [0.6, 0.0]", r"\[pmt_readout\] gain_cv: range .* has lo > hi"),
    "float_for_integer": ("random_lines = {int = [0, 8]}", "random_lines = 2.5",
                          r"\[scan_jitter\] random_lines: must be an integer"),
    "uniform_for_integer": ("blobs = {int = [0, 6]}", "blobs = [0, 6]", r"\[specimen.low_resolution\] blobs: must be an integer"),
    "bad_weights": ("weights = [0.4, 0.2, 0.25, 0.15]", "weights = [0.4, 0.2]", r"\[specimen\] scene: weights must be 4"),
    "unknown_structure": ('"Cu-fcc", ', '"Cu-fc", ', r"\[specimen\] structures: unknown name 'Cu-fc' \(did you mean 'Cu-fcc'\?\)"),
    "unknown_scene": ('"low_resolution"], weights', '"lowres"], weights', r"\[specimen\] scene: unknown name 'lowres'"),
    "list_lengths": ("known_lines_amplitude_angstrom = [0.15, 0.10, 0.07, 0.04, 0.04, 0.04]",
                     "known_lines_amplitude_angstrom = [0.15, 0.10]", r"known_lines_amplitude_angstrom: has 2 values but known_lines_hz has 6"),
    "missing_key": ("flyback_time_us = {log = [20.0, 500.0]}", "#", r"\[scan\]: missing key\(s\) flyback_time_us"),
    "bool_for_number": ("time_constant_us = {log = [0.3, 20.0]}", "time_constant_us = true",
                        r"\[detector_lag\] time_constant_us: must be a number"),
    "adc_bits_range": ("adc_bits = {choice = [12, 14, 16]}", "adc_bits = {choice = [12, 14, 64]}",
                       r"\[detector\] adc_bits: 64 is out of range"),
}


# A preset that extends paper: (its text after `extends = "paper"`, expected message)
EXTENDS_CASES = {
    "empty_value": ("[detector]\ndose_counts = {}", r"\[detector\] dose_counts: must be a number, .*got \{\}"),
    "misspelt_weights": ('[specimen]\nscene = {choice = ["crystal"], wieghts = [1]}',
                         r"\[specimen\] scene: must be a name or \{choice = \[names\]\}, "
                         r"got \{'choice': \['crystal'\], 'wieghts': \[1\]\}$"),  # as written, not merged with paper's
    "choice_not_a_list": ("[specimen]\nstructures = {choice = 3}", r"\[specimen\] structures: must be a name or"),
    "choice_a_string": ('[specimen]\nscene = {choice = "crystal"}', r"\[specimen\] scene: must be a name or"),
}


@pytest.mark.parametrize("case", sorted(EXTENDS_CASES))
def test_bad_value_in_a_preset_that_extends_another(tmp_path, case):
    text, pattern = EXTENDS_CASES[case]
    path = tmp_path / "mine.toml"
    path.write_text(f'extends = "paper"\n{text}\n')
    with pytest.raises(ValueError) as info:
        load_preset(path)
    assert "\n" not in str(info.value) and re.search(pattern, str(info.value)), str(info.value)


def test_a_folder_named_as_preset_is_one_line(tmp_path):
    (tmp_path / "dir.toml").mkdir()
    r = run_datagen("--preset", tmp_path / "dir.toml", "--count", 2, "--size", 49, "--out", tmp_path / "o", "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "cannot read it" in r.stderr, r.stderr


def test_a_preset_without_the_walk_time_constant_keeps_its_brownian_data(tmp_path):
    """`[drift] random_walk_time_constant_s` came after runs froze their presets: a preset
    without it loads, and its pairs are those of tau = 0 (Brownian walk), draw for draw, where
    the shipped presets' slow walk (tau > 0) gives other pairs."""
    import datagen
    from datagen.presets import full_mix, with_dose

    text = PAPER.replace("random_walk_time_constant_s", "#", 1)
    assert "random_walk_time_constant_s" in PAPER and text != PAPER
    (tmp_path / "old.toml").write_text(text)
    old = with_dose(full_mix(load_preset(tmp_path / "old.toml")), 300)
    zero = with_dose(full_mix("paper"), 300)
    zero["drift"]["random_walk_time_constant_s"] = 0.0
    slow = with_dose(full_mix("paper"), 300)
    for preset in (old, zero, slow):
        preset["drift"].update(probability=1.0, random_walk_angstrom_per_sqrt_s=1.0)
    pairs = {name: datagen.simulate_pairs(p, 2, 64, 7) for name, p in (("old", old), ("zero", zero), ("slow", slow))}
    for (a, b), (c, d) in zip(pairs["old"], pairs["zero"]):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    assert not all(np.array_equal(a, c) for (a, _), (c, _) in zip(pairs["old"], pairs["slow"]))
    bad = tmp_path / "negative.toml"
    bad.write_text(PAPER.replace("random_walk_time_constant_s = {log = [0.1, 10.0]}", "random_walk_time_constant_s = -1", 1))
    with pytest.raises(ValueError, match=r"\[drift\] random_walk_time_constant_s: -1 is out of range"):
        load_preset(bad)


@pytest.mark.parametrize("name", available_presets())
def test_shipped_presets_pass(name):
    load_preset(name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_preset_one_line_with_file_section_key(tmp_path, case):
    old, new, pattern = CASES[case]
    path = preset_with(tmp_path, old, new)
    with pytest.raises(ValueError) as info:
        load_preset(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"preset {path}: "), msg
    assert re.search(pattern, msg), msg


def run_datagen(*args):
    return subprocess.run([sys.executable, "-m", "datagen", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=REPO)


@pytest.mark.parametrize("case", ["misspelled_key", "string_for_number", "phi_one", "log_lo_zero"])
def test_cli_refuses_before_writing_and_accepts_the_fix(tmp_path, case):
    old, new, pattern = CASES[case]
    bad = preset_with(tmp_path, old, new)
    out = tmp_path / "data"
    r = run_datagen("--preset", bad, "--count", 2, "--size", 49, "--out", out, "--quiet")
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert str(bad) in r.stderr and re.search(pattern, r.stderr), r.stderr
    assert not out.exists()  # no manifest.json, no shard
    good = preset_with(tmp_path, old, old, name="good.toml")
    r = run_datagen("--preset", good, "--count", 2, "--size", 49, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "manifest.json").exists()


def test_huge_size_blames_size_not_shard_size(tmp_path):
    r = run_datagen("--preset", "quick", "--count", 1, "--size", 100000, "--out", tmp_path / "d")
    assert r.returncode == 2
    assert "--size 100000 is too large" in r.stderr and "--shard-size" not in r.stderr, r.stderr
    assert not (tmp_path / "d").exists()


def test_explicit_shard_size_still_blamed(tmp_path):
    r = run_datagen("--preset", "quick", "--count", 1, "--size", 4096, "--shard-size", 200,
                    "--out", tmp_path / "d")
    assert r.returncode == 2 and "--shard-size 200" in r.stderr, r.stderr


def _children(pid: int) -> list[int]:
    """Ids of the processes whose parent is ``pid`` (from /proc)."""
    kids = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _ignores_sigint(pid: int) -> bool:
    """Whether process ``pid`` has SIGINT set to SIG_IGN (/proc/PID/status SigIgn mask)."""
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except OSError:
        pass
    return False


def test_ctrl_c_while_the_pool_starts_is_raised_after_it_exists():
    """A Ctrl-C that comes while datagen builds its worker pool is held until the pool exists
    (then raised, so the pool is terminated): one arriving mid-construction once left both
    workers running after datagen had exited."""
    from datagen.writers.generate import _sigint_deferred

    before = signal.getsignal(signal.SIGINT)
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with _sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            reached.append(True)
    assert reached and signal.getsignal(signal.SIGINT) is before
    with _sigint_deferred():
        pass  # no signal: nothing raised


def test_ctrl_c_with_workers_no_traceback(tmp_path):
    """Ctrl-C (SIGINT to the whole process group) during a 2-worker run: the pool workers
    ignore it, the main process exits 130 with one line, no worker prints a traceback."""
    out = tmp_path / "d"
    proc = subprocess.Popen([sys.executable, "-m", "datagen", "--preset", "quick", "--count",
                             "100000", "--size", "49", "--workers", "2", "--out", str(out),
                             "--quiet"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120  # only reached if the workers never ignore SIGINT
        workers: list[int] = []
        while time.monotonic() < deadline and proc.poll() is None:
            workers = _children(proc.pid)
            if len(workers) == 2 and all(_ignores_sigint(w) for w in workers):
                break
            time.sleep(0.05)
        assert len(workers) == 2 and all(_ignores_sigint(w) for w in workers), \
            f"pool workers {workers} do not ignore SIGINT"
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.strip().splitlines() == ["datagen: interrupted (Ctrl-C); finished shards are kept, "
                                           "rerun the same command to resume"], stderr


def test_schema_sections_follow_families(monkeypatch):
    """The distortion-family sections come from datagen's FAMILIES, not a second list."""
    from datagen import preset_schema, presets

    assert set(preset_schema.schema()) - {"", "specimen", "detector", "scan", "sparse", "target"} == set(presets.FAMILIES)
    monkeypatch.setattr(preset_schema, "FAMILIES", presets.FAMILIES + ("new_family",))
    assert preset_schema.schema()["new_family"] == {"probability": preset_schema.PROBABILITY}
    assert not hasattr(presets, "REQUIRED_SECTIONS")
