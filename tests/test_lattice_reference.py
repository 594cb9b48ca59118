"""benchmarks/lattice_reference.py: row offsets against the frame's own Bragg-filtered lattice."""
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))

from lattice_reference import LATTICE_DEFAULT, lattice_fit, lattice_offsets, parse_lattice  # noqa: E402


def lattice(wander: np.ndarray, size: int = 256, period: float = 12.0, angle: float = 0.2) -> np.ndarray:
    """A 2-D lattice of Gaussian columns (sigma 2 px), row ``y`` moved by ``wander[y]`` px along x."""
    y, x = np.mgrid[:size, :size].astype(float)
    x = x - wander[:, None]
    c, s = np.cos(angle), np.sin(angle)
    u, v = (c * x + s * y) / period, (-s * x + c * y) / period
    du, dv = (u - np.round(u)) * period, (v - np.round(v)) * period
    return np.exp(-(du ** 2 + dv ** 2) / (2 * 2.0 ** 2))


def test_offsets_follow_a_wander_of_tens_of_rows():
    rows = np.arange(256)
    wander = 1.2 * np.sin(2 * np.pi * rows / 35.0)
    found = lattice_offsets(lattice(wander), **parse_lattice(LATTICE_DEFAULT))
    truth = wander - np.median(wander)
    assert np.corrcoef(found, truth)[0, 1] > 0.95
    assert np.sqrt(np.mean((found - truth) ** 2)) < 0.25


def test_a_straight_lattice_has_no_offsets():
    found = lattice_offsets(lattice(np.zeros(256)), **parse_lattice(LATTICE_DEFAULT))
    assert np.abs(found).max() < 0.12  # a Fourier mask (Bragg filter) gave 0.5 px here


def test_fringes_and_noise_are_left_alone():
    y, x = np.mgrid[:256, :256].astype(float)
    wander = 1.2 * np.sin(2 * np.pi * y[:, 0] / 35.0)
    fringes = np.cos(2 * np.pi * ((x - wander[:, None]) * 0.7 + y * 0.7) / 14.0)
    assert len(lattice_fit(fringes).frequencies) == 1  # one reflection: a bend may be the specimen's
    assert not lattice_offsets(fringes).any()
    noise = np.random.default_rng(0).normal(size=(256, 256))
    assert lattice_fit(noise).share < 0.2
    assert not lattice_offsets(noise).any()


def test_parse_lattice_names_the_bad_item():
    assert parse_lattice("rel=0.5,min_share=0.3") == {"rel": 0.5, "min_share": 0.3}
    with pytest.raises(ValueError, match=r"lattice alignment option 'sigma=2'"):
        parse_lattice("rel=0.5,sigma=2")
