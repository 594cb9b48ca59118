"""Preset files that extend another one, and presets written out whole (what a run keeps)."""
from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from conftest import REPO
from datagen.presets import available_presets, dump_preset, load_preset


def test_training_is_paper_without_the_held_out_specimens():
    paper, training, heldout = (load_preset(n) for n in ("paper", "training", "heldout"))
    held = {"Mo-bcc", "InP-zincblende", "BaTiO3-perovskite"}
    assert set(paper["specimen"]["structures"]["choice"]) - set(training["specimen"]["structures"]["choice"]) == held
    assert "interface" not in training["specimen"]["scene"]["choice"]
    assert set(heldout["specimen"]["structures"]["choice"]) == held
    assert "interface" in heldout["specimen"]["scene"]["choice"]
    # Everything training.toml does not set is paper.toml's, section by section.
    assert training["scan_jitter"] == paper["scan_jitter"]
    assert training["detector"]["adc_bits"] == paper["detector"]["adc_bits"]
    assert training["detector"]["dose_counts"] == {"log": [5.0, 30000.0]}
    assert training["specimen"]["pixel_size_angstrom"] == paper["specimen"]["pixel_size_angstrom"]
    assert heldout["detector"] == training["detector"] and heldout["name"] == "heldout"


def test_extends_a_file_beside_it_and_overrides_single_keys(tmp_path):
    (tmp_path / "base.toml").write_text((REPO / "datagen" / "presets" / "quick.toml").read_text())
    (tmp_path / "mine.toml").write_text('extends = "base.toml"\nname = "mine"\n\n'
                                        '[detector]\ndose_counts = 7.0\n\n[drift]\nprobability = 0.0\n')
    mine, quick = load_preset(tmp_path / "mine.toml"), load_preset("quick")
    assert mine["detector"]["dose_counts"] == 7.0 and mine["drift"]["probability"] == 0.0
    assert mine["detector"]["adc_bits"] == quick["detector"]["adc_bits"]
    assert mine["drift"]["velocity_angstrom_per_s"] == quick["drift"]["velocity_angstrom_per_s"]
    assert "extends" not in mine


def test_a_value_table_replaces_rather_than_merges(tmp_path):
    """{log = [...]} over {choice = [...]} is a new value, not a section to merge into."""
    (tmp_path / "p.toml").write_text('extends = "paper"\n[detector]\nadc_bits = {int = [10, 12]}\n')
    assert load_preset(tmp_path / "p.toml")["detector"]["adc_bits"] == {"int": [10, 12]}


@pytest.mark.parametrize("text, problem", [
    ('extends = "nope"\n', "extends 'nope', but there is no file"),
    ('extends = 3\n', "'extends' must be a preset name"),
    ('extends = "a.toml"\n', "'extends' loops"),
    ('extends = "paper"\n[detector]\ndose_count = 5.0\n', "unknown key 'dose_count'"),
])
def test_bad_extends_is_one_line_naming_the_file(tmp_path, text, problem):
    (tmp_path / "a.toml").write_text(text)
    with pytest.raises(ValueError) as err:
        load_preset(tmp_path / "a.toml")
    assert problem in str(err.value) and "a.toml" in str(err.value)


@pytest.mark.parametrize("name", available_presets())
def test_dump_reads_back_equal(name):
    preset = load_preset(name)
    text = dump_preset(preset)
    assert "extends" not in text
    assert tomllib.loads(text) == preset


def test_resolve_cli_writes_the_preset_whole_and_data_are_the_same(tmp_path):
    out = tmp_path / "datagen.toml"
    run = subprocess.run([sys.executable, "-m", "datagen", "resolve", "training", "-o", str(out)],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert load_preset(out) == load_preset("training")
    bad = subprocess.run([sys.executable, "-m", "datagen", "resolve", "no_such_preset"],
                         capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "unknown preset 'no_such_preset'" in bad.stderr
    from datagen.pipeline import sample_rng, simulate_pair

    a = simulate_pair(load_preset("training"), 64, sample_rng(7, 0))
    b = simulate_pair(load_preset(out), 64, sample_rng(7, 0))
    for x, y in zip(a, b):
        assert (x == y).all()
