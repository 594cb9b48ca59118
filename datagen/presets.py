"""Presets: every parameter range of the simulator, in one TOML file each.

Files live in ``datagen/presets/<name>.toml``.  Top-level sections:
``[specimen]`` (clean image), ``[detector]`` (dose and mean response, always
on), ``[scan]`` (timing, always on) and one section per distortion family
(:data:`FAMILIES`), each with a ``probability`` that the family is active in
a sample.

A preset may start from another one: ``extends = "paper"`` (a preset name, or
a .toml path relative to the extending file) takes every section of that
preset and replaces only the keys the extending file sets, so a variant
states just what differs (e.g. ``training.toml``: the paper mix without the
held-out specimens).
"""
from __future__ import annotations

import copy
import json
import pathlib
import tomllib
from typing import Any

#: Distortion families, in the order they are listed in previews and reports.
FAMILIES = ("scan_jitter", "scan_lines", "drift", "flyback", "shot_noise",
            "pmt_readout", "row_offsets", "detector_lag", "outliers", "quantisation")

#: Families that displace the probe (evaluated on the scan timing).
SCAN_FAMILIES = FAMILIES[:4]

PRESET_DIR = pathlib.Path(__file__).resolve().parent / "presets"

def available_presets() -> list[str]:
    """Names of the preset files shipped in ``datagen/presets``."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_preset(name_or_path: str | pathlib.Path | dict) -> dict:
    """Load a preset by name (``datagen/presets/<name>.toml``) or file path.

    A dict is validated and returned as a deep copy.  Raises ValueError with
    the file and the problem if the preset is unknown or malformed.
    """
    if isinstance(name_or_path, dict):
        preset = copy.deepcopy(name_or_path)
        validate_preset(preset, "<dict>")
        return preset
    text = str(name_or_path)
    path = pathlib.Path(text)
    if not (text.endswith(".toml") or path.is_file()):
        path = PRESET_DIR / f"{text}.toml"
        if not path.is_file():
            raise ValueError(f"unknown preset {text!r}: no file {path}; "
                             f"available: {', '.join(available_presets())}")
    preset = _read_toml(path, chain=())
    preset.setdefault("name", path.stem)
    validate_preset(preset, str(path))
    return preset


def _read_toml(path: pathlib.Path, chain: tuple[pathlib.Path, ...]) -> dict:
    """One preset file with its ``extends`` chain resolved (not yet validated)."""
    if path.resolve() in chain:
        loop = " -> ".join(str(p) for p in (*chain, path.resolve()))
        raise ValueError(f"preset file {path}: 'extends' loops: {loop}")
    try:
        with open(path, "rb") as fh:
            preset = tomllib.load(fh)
    except FileNotFoundError:
        raise ValueError(f"preset file {path} does not exist") from None
    except OSError as exc:  # a folder, no permission, ...
        raise ValueError(f"preset file {path}: cannot read it: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"preset file {path}: invalid TOML: {exc}") from None
    parent = preset.pop("extends", None)
    if parent is None:
        return preset
    if not isinstance(parent, str):
        raise ValueError(f"preset file {path}: 'extends' must be a preset name or a .toml path, "
                         f"got {parent!r}")
    base_path = path.parent / parent if parent.endswith(".toml") else PRESET_DIR / f"{parent}.toml"
    if not base_path.is_file():
        raise ValueError(f"preset file {path}: extends {parent!r}, but there is no file {base_path}")
    base = _read_toml(base_path, (*chain, path.resolve()))
    base.pop("name", None)
    base.pop("description", None)
    return _merged(base, preset)


def _merged(base: dict, override: dict) -> dict:
    """``base`` with ``override``'s keys replacing its own; sections merged key by key.  A value
    written as a table replaces the base's value whole, as written (a malformed one, e.g. ``{}``
    or a misspelt key, is then refused by the validation, not filled in from the base)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not _is_value_spec(value) \
                and not _is_value_spec(out[key]):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _is_value_spec(table: dict) -> bool:
    """A value written as a table ({log = ...}, {int = ...}, {choice = ...}), not a section."""
    return bool(table) and set(table) <= {"log", "int", "choice", "weights"}


def dump_preset(preset: dict) -> str:
    """``preset`` as TOML text that :func:`load_preset` reads back equal (no ``extends``:
    every key written out), e.g. the resolved preset a training run keeps in its folder.

    Handles the preset grammar: strings, booleans, numbers, lists, value-spec inline
    tables (``{log = [...]}``) and (sub-)sections.
    """
    lines: list[str] = []
    _dump_table(preset, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _dump_table(table: dict, where: list[str], lines: list[str]) -> None:
    sections = {k: v for k, v in table.items() if isinstance(v, dict) and not _is_value_spec(v)}
    if where and (len(sections) < len(table) or not sections):
        lines += ["", f"[{'.'.join(where)}]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in table.items() if key not in sections]
    for key, sub in sections.items():
        _dump_table(sub, [*where, key], lines)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise ValueError(f"cannot write {value!r} ({type(value).__name__}) as a preset value")


def validate_preset(preset: dict, where: str = "<preset>") -> None:
    """Check the whole preset before anything is simulated or written: every section and key
    known, every value of the right syntax, type and range (:mod:`datagen.preset_schema`).

    Raises ValueError ``preset WHERE: [section] key: problem``.
    """
    from .preset_schema import check_preset

    if not isinstance(preset, dict):
        raise ValueError(f"preset {where}: must be a table of sections, got {type(preset).__name__}")
    check_preset(preset, where)


#: The ``[sparse]`` section of a preset without one: no sparse samples (the paper's mix).
SPARSE_OFF = {"fraction": 0.0, "family_probability": 0.0}


def sparse_section(preset: dict) -> dict:
    """The preset's ``[sparse]`` section: the share of *sparse* samples, in which every
    family is on with ``family_probability`` instead of its own ``probability``
    (:data:`SPARSE_OFF` when the preset has none)."""
    return preset.get("sparse", SPARSE_OFF)


#: The ``[target]`` section of a preset without one: the clean target is the specimen
#: itself, drift removed (the paper's pairs).
TARGET_DEFAULT = {"keep_drift": False}


def target_section(preset: dict) -> dict:
    """The preset's ``[target]`` section: what the clean target keeps of the distortions.
    ``keep_drift = true``: the target is the specimen scanned with the sample's drift and
    nothing else (``info["drift_only"]`` of :func:`datagen.pipeline.simulate`), so a net is
    not trained to undo what one frame cannot determine (BENCHMARKS.md, "drift")."""
    return preset.get("target", TARGET_DEFAULT)


def full_mix(base: str | dict) -> dict:
    """Copy of ``base`` as evaluation scores it: no sparse samples (every sample the full mix,
    each family on with its own ``probability``) and the true specimen as the reference
    (``[target]`` :data:`TARGET_DEFAULT`, whatever ``base`` trains on)."""
    preset = load_preset(base)
    preset["sparse"] = dict(SPARSE_OFF)
    preset["target"] = dict(TARGET_DEFAULT)
    return preset


def family_preset(base: str | dict, family: str | None) -> dict:
    """Copy of ``base`` with only ``family`` on (probability 1), all others off, in every
    sample (no sparse samples).

    ``family=None`` switches every family off: the distorted image is then
    exactly the clean target.  Off families are exact identities.
    """
    preset = full_mix(base)
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    for fam in FAMILIES:
        preset[fam]["probability"] = 1.0 if fam == family else 0.0
    preset["name"] = f"{preset.get('name', 'preset')}:{family or 'clean'}"
    return preset


def with_dose(preset: str | dict, dose: float) -> dict:
    """Copy of ``preset`` with the dose fixed (expected counts at the brightest clean pixel)."""
    if not dose > 0:
        raise ValueError(f"dose must be > 0 counts, got {dose!r}")
    out = load_preset(preset)
    out["detector"]["dose_counts"] = float(dose)
    out["name"] = f"{out.get('name', 'preset')}@dose={float(dose):g}"
    return out


def section(preset: dict, name: str) -> dict[str, Any]:
    """One section of a preset (ValueError naming it if absent)."""
    try:
        return preset[name]
    except KeyError:
        raise ValueError(f"preset has no [{name}] section") from None
