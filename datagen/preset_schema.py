"""Every key a preset may have, its value syntax and its range, checked before anything is written.

:func:`check_preset` walks a loaded preset against :data:`SCHEMA` and raises
``ValueError("preset FILE: [section] key: problem")`` for the first unknown
section or key (with the closest known name), missing key, wrong type
(a string where a number belongs, a float where an integer belongs, a
malformed range) or value out of range.  Value syntax (see
:mod:`datagen.params`): a fixed value, ``[lo, hi]``, ``{log = [lo, hi]}``,
``{int = [lo, hi]}``, ``{choice = [...], weights = [...]}``; every value such
a spec can produce must lie in the key's range.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from .presets import FAMILIES


@dataclass(frozen=True)
class Real:
    """A real-valued key: any value syntax; all values in [lo, hi] (open ends if ``*_open``)."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False   # only fixed ints, {int = [...]} and choices of ints
    bounds_only: bool = False  # only a number or [lo, hi] (a per-column range)

    def describe(self) -> str:
        left = "(" if self.lo_open or self.lo == -math.inf else "["  # contains() takes no infinity
        right = ")" if self.hi_open or self.hi == math.inf else "]"
        kind = "an integer" if self.integer else "a number"
        if self.lo == -math.inf and self.hi == math.inf:
            return kind
        return f"{kind} in {left}{_fmt(self.lo)}, {_fmt(self.hi)}{right}"

    def contains(self, v: float) -> bool:
        if not math.isfinite(v):
            return False
        above = v > self.lo if self.lo_open else v >= self.lo
        below = v < self.hi if self.hi_open else v <= self.hi
        return above and below


@dataclass(frozen=True)
class Names:
    """A string key drawn from a fixed set of names (fixed or ``{choice = [...]}``)."""

    known: tuple[str, ...]


@dataclass(frozen=True)
class NumberList:
    """A plain list of numbers (all in ``item``'s range), the same length as key ``same_length_as``."""

    item: Real
    same_length_as: str | None = None


def _fmt(x: float) -> str:
    return "inf" if x == math.inf else "-inf" if x == -math.inf else f"{x:g}"


POSITIVE = Real(0.0, lo_open=True)
NON_NEGATIVE = Real(0.0)
FRACTION = Real(0.0, 1.0)
PROBABILITY = Real(0.0, 1.0)
ANY = Real()


def _scenes() -> tuple[str, ...]:
    from .specimen.scenes import SCENES
    return tuple(SCENES)


def _structures() -> tuple[str, ...]:
    from .specimen.structures import LIBRARY
    return tuple(LIBRARY)


def schema() -> dict[str, dict]:
    """Section -> key -> rule (a nested dict for sub-sections); top level under ``""``."""
    fam = {"probability": PROBABILITY}
    return {
        "": {"name": str, "description": str},
        "specimen": {
            "scene": Names(_scenes()),
            "structures": Names(_structures()),
            "pixel_size_angstrom": POSITIVE,
            "rotation_deg": ANY,
            "scale": POSITIVE,
            "thickness_angstrom": POSITIVE,
            "thickness_gradient_per_field": NON_NEGATIVE,
            "probe_fwhm_angstrom": POSITIVE,
            "probe_tail_fraction": FRACTION,
            "probe_tail_fwhm_angstrom": POSITIVE,
            "vacancy_column_fraction": FRACTION,
            "vacancy_occupancy": Real(0.0, 1.0, bounds_only=True),
            "substitution_column_fraction": FRACTION,
            "substitution_intensity_ratio": Real(0.0, lo_open=True, bounds_only=True),
            "empty_column_fraction": FRACTION,
            "static_displacement_angstrom": NON_NEGATIVE,
            "vacuum_probability": PROBABILITY,
            "background_level": NON_NEGATIVE,
            "background_gradient_per_field": NON_NEGATIVE,
            "interface": {"same_structure_probability": PROBABILITY},
            "nanoparticle": {"radius_fraction_of_field": Real(0.0, 1.0, lo_open=True),
                             "facets": Real(3, 1000, integer=True)},
            "support": {"thickness_angstrom": NON_NEGATIVE,
                        "atom_density_per_cubic_angstrom": NON_NEGATIVE,
                        "atomic_number": Real(1, 118, integer=True)},
            "low_resolution": {"feature_size_px": POSITIVE,
                               "blobs": Real(0, 1000, integer=True),
                               "contrast": NON_NEGATIVE},
        },
        "detector": {
            "dose_counts": POSITIVE,
            "adc_bits": Real(1, 32, integer=True),
            "peak_fraction_of_full_scale": POSITIVE,
            "dark_offset_fraction_of_full_scale": Real(0.0, 1.0, hi_open=True),
        },
        "scan": {"dwell_time_us": POSITIVE, "flyback_time_us": NON_NEGATIVE},
        "sparse": {"fraction": PROBABILITY, "family_probability": PROBABILITY},
        "target": {"keep_drift": bool},
    } | {family: dict(fam, **FAMILY_KEYS.get(family, {})) for family in FAMILIES}


#: Keys of the distortion-family sections besides ``probability``; every family of
#: :data:`datagen.presets.FAMILIES` has a section, those not listed here only ``probability``.
FAMILY_KEYS: dict[str, dict] = {
    "scan_jitter": {
        "known_lines_hz": NumberList(POSITIVE),
        "known_lines_amplitude_angstrom": NumberList(NON_NEGATIVE, "known_lines_hz"),
        "known_lines_scale": NON_NEGATIVE,
        "random_lines": Real(0, 10_000, integer=True),
        "random_line_frequency_hz": POSITIVE,
        "random_line_amplitude_angstrom": NON_NEGATIVE,
        "reference_frequency_hz": POSITIVE,
        "spectral_exponent": ANY,
        "y_to_x_ratio": NON_NEGATIVE,
        "integrate_dwell": bool,
    },
    "scan_lines": dict(std_x_angstrom=NON_NEGATIVE, std_y_angstrom=NON_NEGATIVE,
                       phi=Real(-1.0, 1.0, lo_open=True, hi_open=True)),
    "drift": dict(velocity_angstrom_per_s=NON_NEGATIVE, direction_deg=ANY,
                  random_walk_angstrom_per_sqrt_s=NON_NEGATIVE, random_walk_time_constant_s=NON_NEGATIVE),
    "flyback": dict(amplitude_angstrom=ANY, time_constant_us=POSITIVE),
    "pmt_readout": dict(gain_cv=NON_NEGATIVE, readout_std_counts=NON_NEGATIVE),
    "row_offsets": dict(offset_std_of_peak=NON_NEGATIVE, gain_std=NON_NEGATIVE),
    "detector_lag": dict(time_constant_us=POSITIVE),
    "outliers": dict(zinger_fraction=FRACTION, zinger_amplitude_of_peak=NON_NEGATIVE,
                     dead_pixel_fraction=FRACTION),
}
assert set(FAMILY_KEYS) <= set(FAMILIES), set(FAMILY_KEYS) - set(FAMILIES)


#: Sections a preset may leave out (presets written before they existed): read as
#: :data:`datagen.presets.SPARSE_OFF` and :data:`datagen.presets.TARGET_DEFAULT`.
OPTIONAL = ("sparse", "target")

#: Keys a section may leave out (presets written before they existed), and the value read
#: then: the behaviour of the simulator before the key existed.
OPTIONAL_KEYS: dict[str, dict[str, Any]] = {
    "drift": {"random_walk_time_constant_s": 0.0},  # 0: the walk is Brownian (datagen.scan.drift)
    "scan_jitter": {"integrate_dwell": False},  # one instant per pixel (datagen.scan.jitter)
}


class PresetError(ValueError):
    """A preset problem: one line naming the file, the section and the key."""


def check_preset(preset: dict, where: str) -> None:
    """Check every section and key of ``preset`` against :func:`schema` (see module docstring)."""
    rules = schema()
    _check_table(preset, rules[""] | {k: v for k, v in rules.items() if k}, where, "")


def _check_table(table: dict, rules: dict, where: str, section: str) -> None:
    """Unknown keys, missing keys, then each value, of one (sub-)section."""
    label = f"[{section}]" if section else "top level"
    for key in table:
        if key not in rules:
            near = difflib.get_close_matches(key, list(rules), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            what = "section" if isinstance(table[key], dict) and not section else "key"
            raise PresetError(f"preset {where}: {label}: unknown {what} {key!r}{hint}")
    optional = OPTIONAL_KEYS.get(section, {})
    missing = [k for k in rules if k not in table and k not in optional
               and (section or (rules[k] is not str and k not in OPTIONAL))]
    if missing:
        kind = "section(s)" if not section and isinstance(rules[missing[0]], dict) else "key(s)"
        raise PresetError(f"preset {where}: {label}: missing {kind} {', '.join(missing)}")
    for key, rule in rules.items():
        if key not in table:
            continue
        value = table[key]
        if isinstance(rule, dict):
            if not isinstance(value, dict):
                raise PresetError(f"preset {where}: {label}: {key!r} must be a section [..{key}], "
                                  f"got {value!r}")
            _check_table(value, rule, where, f"{section}.{key}" if section else key)
            continue
        problem = _value_problem(value, rule, table)
        if problem:
            raise PresetError(f"preset {where}: {label} {key}: {problem}")


def _value_problem(value, rule, table: dict) -> str | None:
    """Why ``value`` does not satisfy ``rule``, or None."""
    if rule is str:
        return None if isinstance(value, str) else f"must be a string, got {value!r}"
    if rule is bool:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if isinstance(rule, Names):
        options = value.get("choice") if isinstance(value, dict) else [value]
        if (isinstance(value, dict) and set(value) - {"choice", "weights"}) or not isinstance(options, list) \
                or not options or not all(isinstance(o, str) for o in options):
            return f"must be a name or {{choice = [names]}}, got {value!r}"
        bad = [o for o in options if o not in rule.known]
        if bad:
            near = difflib.get_close_matches(str(bad[0]), rule.known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            return f"unknown name {bad[0]!r}{hint}; known: {', '.join(rule.known)}"
        return _weights_problem(value)
    if isinstance(rule, NumberList):
        if not isinstance(value, list) or not all(_is_number(v) for v in value):
            return f"must be a list of numbers, got {value!r}"
        bad = [v for v in value if not rule.item.contains(float(v))]
        if bad:
            return f"{bad[0]!r} is not {rule.item.describe()}"
        other = table.get(rule.same_length_as) if rule.same_length_as else None
        if isinstance(other, list) and len(other) != len(value):
            return f"has {len(value)} values but {rule.same_length_as} has {len(other)}"
        return None
    return _range_problem(value, rule)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pair(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v)


def _range_problem(value, rule: Real) -> str | None:
    """Value syntax and range of a numeric key (see the module docstring)."""
    syntax = ("a number or [lo, hi]" if rule.bounds_only else
              "an integer, {int = [lo, hi]} or {choice = [...]}" if rule.integer else
              "a number, [lo, hi], {log = [lo, hi]}, {int = [lo, hi]} or {choice = [...]}")
    if _is_number(value):
        candidates = [value]
    elif _pair(value) and not rule.integer:
        candidates = list(value)
    elif isinstance(value, dict) and len(value) == 1 and "log" in value and not (
            rule.integer or rule.bounds_only) and _pair(value["log"]):
        candidates = list(value["log"])
        if not candidates[0] > 0:
            return f"a log range needs lo > 0, got {value!r}"
    elif isinstance(value, dict) and len(value) == 1 and "int" in value and not rule.bounds_only \
            and _pair(value["int"]) and all(isinstance(x, int) for x in value["int"]):
        candidates = list(value["int"])
    elif isinstance(value, dict) and "choice" in value and not rule.bounds_only and \
            set(value) <= {"choice", "weights"} and isinstance(value["choice"], list) and \
            value["choice"] and all(_is_number(x) for x in value["choice"]):
        candidates = list(value["choice"])
        problem = _weights_problem(value)
        if problem:
            return problem
    else:
        return f"must be {syntax}, got {value!r}"
    if rule.integer and not all(isinstance(x, int) for x in candidates):
        return f"must be {syntax} (integers), got {value!r}"
    if len(candidates) == 2 and not isinstance(value, dict) or (
            isinstance(value, dict) and ("log" in value or "int" in value)):
        if candidates[0] > candidates[1]:
            return f"range {value!r} has lo > hi"
    bad = [x for x in candidates if not rule.contains(float(x))]
    if bad:
        return f"{bad[0]!r} is out of range: must be {rule.describe()}"
    return None


def _weights_problem(value) -> str | None:
    """``weights`` of a choice: as many non-negative numbers as options, not all zero."""
    if not isinstance(value, dict) or "weights" not in value:
        return None
    w = value["weights"]
    if not isinstance(w, list) or len(w) != len(value["choice"]) or not all(_is_number(x) for x in w) \
            or any(x < 0 for x in w) or sum(w) <= 0:
        return f"weights must be {len(value['choice'])} non-negative numbers, not all 0, got {w!r}"
    return None
