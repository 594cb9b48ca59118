"""Crystal-structure library and its projection along zone axes.

Each entry is a real crystal built with ASE (lattice constants from standard
tables, in Angstrom).  :func:`projected_cell` projects the crystal along a zone
axis [uvw] (direct-lattice indices of the ASE cell) into a 2-D periodic cell
of atomic columns:

* a lattice basis (a1, a2, t) with t = u a + v b + w c along the beam is found
  by a small search over integer vectors with det = +-1 (same lattice);
* every atom of that cell represents one column repeating with period |t|;
* atoms that project onto the same position (mod the 2-D lattice) are merged;
* the column weight is sum Z**1.7 per Angstrom of thickness, the usual
  HAADF (incoherent Z-contrast) approximation (Pennycook & Jesson 1991;
  exponent ~1.7, e.g. Hartel et al. 1996).

Results are cached per (structure, zone axis).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

#: HAADF intensity exponent: column intensity ~ sum Z**Z_EXPONENT.
Z_EXPONENT = 1.7


def _bulk(symbol, kind, **kw):
    from ase.build import bulk
    return bulk(symbol, kind, **kw)


def _spacegroup(symbols, basis, sg, a):
    from ase.spacegroup import crystal
    return crystal(symbols, basis=basis, spacegroup=sg, cellpar=[a, a, a, 90, 90, 90])


def _graphene():
    from ase.build import graphene
    return graphene(a=2.46, vacuum=5.0)


def _mos2():
    from ase.build import mx2
    return mx2("MoS2", kind="2H", a=3.18, thickness=3.19, vacuum=5.0)


CUBIC_AXES = ((0, 0, 1), (0, 1, 1), (1, 1, 1), (1, 1, 2))
HEX_AXES = ((0, 0, 1), (1, 0, 0), (1, -1, 0))

#: name -> (builder, zone axes).  Structure type in the name after the dash.
LIBRARY = {
    "Cu-fcc": (lambda: _bulk("Cu", "fcc", a=3.615, cubic=True), CUBIC_AXES),
    "Au-fcc": (lambda: _bulk("Au", "fcc", a=4.078, cubic=True), CUBIC_AXES),
    "Pt-fcc": (lambda: _bulk("Pt", "fcc", a=3.924, cubic=True), CUBIC_AXES),
    "Al-fcc": (lambda: _bulk("Al", "fcc", a=4.05, cubic=True), CUBIC_AXES),
    "Ni-fcc": (lambda: _bulk("Ni", "fcc", a=3.524, cubic=True), CUBIC_AXES),
    "Fe-bcc": (lambda: _bulk("Fe", "bcc", a=2.866, cubic=True), CUBIC_AXES),
    "W-bcc": (lambda: _bulk("W", "bcc", a=3.165, cubic=True), CUBIC_AXES),
    "Mo-bcc": (lambda: _bulk("Mo", "bcc", a=3.147, cubic=True), CUBIC_AXES),
    "Ti-hcp": (lambda: _bulk("Ti", "hcp", a=2.951, c=4.686), HEX_AXES),
    "Mg-hcp": (lambda: _bulk("Mg", "hcp", a=3.209, c=5.211), HEX_AXES),
    "Zn-hcp": (lambda: _bulk("Zn", "hcp", a=2.665, c=4.947), HEX_AXES),
    "Si-diamond": (lambda: _bulk("Si", "diamond", a=5.431, cubic=True), CUBIC_AXES),
    "Ge-diamond": (lambda: _bulk("Ge", "diamond", a=5.658, cubic=True), CUBIC_AXES),
    "GaAs-zincblende": (lambda: _bulk("GaAs", "zincblende", a=5.653, cubic=True), CUBIC_AXES),
    "InP-zincblende": (lambda: _bulk("InP", "zincblende", a=5.869, cubic=True), CUBIC_AXES),
    "CdTe-zincblende": (lambda: _bulk("CdTe", "zincblende", a=6.48, cubic=True), CUBIC_AXES),
    "NaCl-rocksalt": (lambda: _bulk("NaCl", "rocksalt", a=5.64, cubic=True), CUBIC_AXES),
    "MgO-rocksalt": (lambda: _bulk("MgO", "rocksalt", a=4.212, cubic=True), CUBIC_AXES),
    "PbTe-rocksalt": (lambda: _bulk("PbTe", "rocksalt", a=6.46, cubic=True), CUBIC_AXES),
    "GaN-wurtzite": (lambda: _bulk("GaN", "wurtzite", a=3.189, c=5.185), HEX_AXES),
    "ZnO-wurtzite": (lambda: _bulk("ZnO", "wurtzite", a=3.25, c=5.207), HEX_AXES),
    "SrTiO3-perovskite": (lambda: _spacegroup(["Sr", "Ti", "O"], [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], 221, 3.905), CUBIC_AXES),
    "BaTiO3-perovskite": (lambda: _spacegroup(["Ba", "Ti", "O"], [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], 221, 4.00), CUBIC_AXES),
    "CeO2-fluorite": (lambda: _spacegroup(["Ce", "O"], [(0, 0, 0), (0.25, 0.25, 0.25)], 225, 5.411), CUBIC_AXES),
    "graphene-2d": (_graphene, ((0, 0, 1),)),
    "MoS2-2d": (_mos2, ((0, 0, 1),)),
}


@dataclass(frozen=True)
class ProjectedCell:
    """A crystal projected along a zone axis.

    Attributes
    ----------
    lattice : ndarray (2, 2)
        Rows are the 2-D lattice vectors (Angstrom) in the projection plane.
    positions : ndarray (n, 2)
        Column positions inside one 2-D cell (Angstrom).
    weights : ndarray (n,)
        sum Z**1.7 per Angstrom of specimen thickness, per column.
    period : float
        Repeat distance along the beam (Angstrom); for a 2-D material the
        height of its (vacuum-padded) cell, i.e. one layer = ``weights*period``.
    two_d : bool
        True for single-layer materials (thickness fixed to one layer).
    """

    lattice: np.ndarray
    positions: np.ndarray
    weights: np.ndarray
    period: float
    two_d: bool


def _unimodular_completion(t: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Integer matrix with rows (a1, a2, t) and det = +-1, short projected a1, a2."""
    r = np.arange(-2, 3)
    cand = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    cand = cand[np.any(cand != 0, axis=1)]
    det = cand @ np.cross(cand, t).T  # det(a_i, b_j, t) = a_i . (b_j x t)
    beam = t @ cell
    beam = beam / np.linalg.norm(beam)
    vec = cand @ cell
    proj = vec - np.outer(vec @ beam, beam)
    length = np.linalg.norm(proj, axis=1)
    i, j = np.nonzero(np.abs(det) == 1)
    cosang = np.abs(np.einsum("ij,ij->i", proj[i], proj[j])) / (length[i] * length[j] + 1e-12)
    score = length[i] + length[j] + 1e-3 * cosang  # prefer short, then orthogonal
    k = int(np.argmin(score))
    return np.array([cand[i[k]], cand[j[k]], t])


@functools.lru_cache(maxsize=None)
def projected_cell(name: str, zone_axis: tuple[int, int, int]) -> ProjectedCell:
    """Project structure ``name`` along ``zone_axis`` (cached)."""
    if name not in LIBRARY:
        raise ValueError(f"unknown structure {name!r}; known: {sorted(LIBRARY)}")
    atoms = LIBRARY[name][0]()
    cell = np.array(atoms.cell[:], dtype=float)
    t = np.array(zone_axis, dtype=int)
    if np.gcd.reduce(np.abs(t)) != 1:
        raise ValueError(f"zone axis {zone_axis} must be primitive")
    m = _unimodular_completion(t, cell)
    new_cell = m @ cell
    frac = np.mod(atoms.get_positions() @ np.linalg.inv(new_cell), 1.0)
    cart = frac @ new_cell
    e3 = new_cell[2] / np.linalg.norm(new_cell[2])
    a1 = new_cell[0] - (new_cell[0] @ e3) * e3
    e1 = a1 / np.linalg.norm(a1)
    e2 = np.cross(e3, e1)
    basis = np.stack([e1, e2], axis=1)  # (3, 2)
    lattice = new_cell[:2] @ basis
    pos2 = cart @ basis
    z = atoms.get_atomic_numbers().astype(float) ** Z_EXPONENT
    # merge atoms on the same column (mod the 2-D lattice), tolerance 0.05 A
    inv = np.linalg.inv(lattice)
    g = np.mod(pos2 @ inv, 1.0)
    cols_g: list[np.ndarray] = []
    cols_w: list[float] = []
    for gi, wi in zip(g, z):
        for k, gk in enumerate(cols_g):
            d = gi - gk
            d -= np.round(d)
            if np.linalg.norm(d @ lattice) < 0.05:
                cols_w[k] += wi
                break
        else:
            cols_g.append(gi)
            cols_w.append(wi)
    period = np.linalg.norm(new_cell[2])
    positions = np.array(cols_g) @ lattice
    weights = np.array(cols_w) / period
    return ProjectedCell(lattice=lattice, positions=positions, weights=weights,
                         period=float(period), two_d=name.endswith("-2d"))


def zone_axes(name: str) -> tuple[tuple[int, int, int], ...]:
    """Zone axes offered for structure ``name``."""
    return LIBRARY[name][1]
