"""Clean HAADF-STEM specimen images (the training targets before detection).

A scene is drawn from the ``[specimen]`` preset section and rendered on a
canvas larger than the scanned field, so that scan distortions sample real
specimen content.  Coordinates: x along the fast-scan direction (columns),
y along the slow-scan direction (rows), Angstrom, origin at the canvas centre.

Scenes (``scene`` key): ``crystal`` (one crystal, optional vacuum edge),
``interface`` (grain boundary or hetero-interface between two crystals),
``nanoparticle`` (faceted crystal on an amorphous support, optional hole),
``low_resolution`` (no lattice: amorphous support and smooth blobs, so the
network does not learn to hallucinate columns).  All crystal scenes get
thickness gradients, column-occupancy defects (vacancies, substitutions) and
static displacements; every scene gets a smooth background with a gradient.

The returned image is normalised to 1 at its brightest pixel inside the scanned
field (so ``dose`` is the expected count there).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..params import draw
from .render import Probe, splat
from .structures import ProjectedCell, projected_cell, zone_axes


class Canvas:
    """Pixel grid of the specimen canvas.

    Parameters
    ----------
    shape : (int, int)
        Canvas size in pixels (rows, columns).
    pixel_size_angstrom : float
        Sampling, Angstrom per pixel (same in x and y).
    field : tuple of slices
        The scanned field inside the canvas (used for normalisation).
    """

    def __init__(self, shape, pixel_size_angstrom, field):
        self.shape = tuple(int(s) for s in shape)
        self.pixel_size = float(pixel_size_angstrom)
        self.field = field
        self.cy = (self.shape[0] - 1) / 2.0
        self.cx = (self.shape[1] - 1) / 2.0

    @property
    def half_diagonal_angstrom(self) -> float:
        return 0.5 * float(np.hypot(*self.shape)) * self.pixel_size

    @property
    def field_size_angstrom(self) -> float:
        """Edge length of the scanned field (largest side), Angstrom."""
        return max(s.stop - s.start for s in self.field) * self.pixel_size

    def to_pixels(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Angstrom (x, y) -> (row, col) pixel coordinates."""
        return xy[:, 1] / self.pixel_size + self.cy, xy[:, 0] / self.pixel_size + self.cx

    def grid_angstrom(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of every pixel centre, Angstrom."""
        y = (np.arange(self.shape[0]) - self.cy) * self.pixel_size
        x = (np.arange(self.shape[1]) - self.cx) * self.pixel_size
        return x[None, :], y[:, None]


def _rotation(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def lattice_columns(cell: ProjectedCell, canvas: Canvas, rotation_deg: float,
                    scale: float, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All columns of a rotated/scaled crystal that fall on the canvas.

    Returns positions (n, 2) in Angstrom and weights (n,) (sum Z^1.7 per A).
    """
    lat = cell.lattice * scale
    rot = _rotation(rotation_deg)
    radius = canvas.half_diagonal_angstrom + np.linalg.norm(origin) + 2 * np.abs(lat).sum()
    minv = np.linalg.inv(lat.T)  # crystal-frame x -> (n1, n2)
    n1max = int(np.ceil(np.linalg.norm(minv[0]) * radius)) + 1
    n2max = int(np.ceil(np.linalg.norm(minv[1]) * radius)) + 1
    n1, n2 = np.meshgrid(np.arange(-n1max, n1max + 1), np.arange(-n2max, n2max + 1), indexing="ij")
    nodes = np.stack([n1.ravel(), n2.ravel()], axis=1) @ lat  # (m, 2)
    pos = (nodes[:, None, :] + cell.positions[None, :, :] * scale).reshape(-1, 2)
    w = np.broadcast_to(cell.weights, (nodes.shape[0], cell.weights.size)).reshape(-1)
    pos = pos @ rot.T + origin
    half = 0.5 * np.array([canvas.shape[1], canvas.shape[0]]) * canvas.pixel_size + 1.0
    keep = (np.abs(pos[:, 0]) < half[0]) & (np.abs(pos[:, 1]) < half[1])
    return pos[keep], w[keep].copy()


def _random_crystal(spec: dict, canvas: Canvas, rng: np.random.Generator, name=None):
    """Draw a structure, zone axis, rotation, scale, sub-pixel origin -> columns."""
    if name is None:
        name = draw(spec, "structures", rng)
    axes = zone_axes(name)
    zone = axes[int(rng.integers(len(axes)))]
    cell = projected_cell(name, zone)
    rotation = draw(spec, "rotation_deg", rng)
    scale = draw(spec, "scale", rng)
    origin = rng.uniform(-0.5, 0.5, 2) * np.abs(cell.lattice).sum() * scale  # sub-cell shift
    pos, w = lattice_columns(cell, canvas, rotation, scale, origin)
    if cell.two_d:
        w = w * cell.period  # one layer
    else:
        w = w * draw(spec, "thickness_angstrom", rng)
    return name, pos, w


def _bounds(spec: dict, key: str) -> tuple[float, float]:
    """(lo, hi) of a per-column range given as [lo, hi] or a fixed number."""
    v = spec[key]
    if isinstance(v, (int, float)):
        return float(v), float(v)
    if isinstance(v, (list, tuple)) and len(v) == 2 and v[0] <= v[1]:
        return float(v[0]), float(v[1])
    raise ValueError(f"preset key {key!r}: expected [lo, hi] or a number, got {v!r}")


def _defects(spec: dict, pos: np.ndarray, w: np.ndarray, rng: np.random.Generator):
    """Column occupancy defects and static displacements (in place on copies)."""
    n = w.size
    w = w.copy()
    u = rng.random(n)
    f_vac = draw(spec, "vacancy_column_fraction", rng)
    f_sub = draw(spec, "substitution_column_fraction", rng)
    f_empty = draw(spec, "empty_column_fraction", rng)
    vac = u < f_vac
    lo, hi = _bounds(spec, "vacancy_occupancy")
    w[vac] *= rng.uniform(lo, hi, size=int(vac.sum()))
    sub = (u >= f_vac) & (u < f_vac + f_sub)
    lo, hi = _bounds(spec, "substitution_intensity_ratio")  # log-uniform per column
    w[sub] *= np.exp(rng.uniform(np.log(lo), np.log(hi), size=int(sub.sum())))
    w[rng.random(n) < f_empty] = 0.0
    sigma = draw(spec, "static_displacement_angstrom", rng)
    pos = pos + rng.normal(0.0, 1.0, pos.shape) * sigma
    return pos, w


def _thickness_gradient(spec, pos, canvas, rng):
    """Relative thickness factor 1 + g.r (clipped at 0) for each column."""
    g = draw(spec, "thickness_gradient_per_field", rng)
    d = rng.normal(size=2)
    d /= np.linalg.norm(d)
    return np.clip(1.0 + g * (pos @ d) / canvas.field_size_angstrom, 0.0, None)


def _half_plane(canvas: Canvas, rng: np.random.Generator):
    """Random straight boundary through the scanned field: (normal, offset)."""
    a = rng.uniform(0, 2 * np.pi)
    n = np.array([np.cos(a), np.sin(a)])
    c = rng.uniform(-0.35, 0.35) * canvas.field_size_angstrom
    return n, c


def _support(spec: dict, canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
    """Amorphous support film as projected atoms per pixel (times Z^1.7).

    Atoms at uniformly random positions, counted per pixel: Poisson with mean
    density * thickness * pixel area.
    """
    sup = spec["support"]
    t = draw(sup, "thickness_angstrom", rng)
    rho = draw(sup, "atom_density_per_cubic_angstrom", rng)
    z = draw(sup, "atomic_number", rng)
    lam = rho * t * canvas.pixel_size ** 2
    return rng.poisson(lam, canvas.shape).astype(np.float64) * float(z) ** 1.7


def _polygon_radius(theta, n_facets, phase):
    """Radius (relative) of a regular polygon with unit inradius at angle theta."""
    sector = 2 * np.pi / n_facets
    return 1.0 / np.cos(np.mod(theta - phase, sector) - sector / 2)


def _scene_crystal(spec, canvas, rng):
    _, pos, w = _random_crystal(spec, canvas, rng)
    w *= _thickness_gradient(spec, pos, canvas, rng)
    if rng.random() < draw(spec, "vacuum_probability", rng):
        n, c = _half_plane(canvas, rng)
        w[pos @ n > c] = 0.0
    return pos, w, None


def _scene_interface(spec, canvas, rng):
    name_a, pos_a, w_a = _random_crystal(spec, canvas, rng)
    same = rng.random() < draw(spec["interface"], "same_structure_probability", rng)
    _, pos_b, w_b = _random_crystal(spec, canvas, rng, name=name_a if same else None)
    n, c = _half_plane(canvas, rng)
    w_a[pos_a @ n > c] = 0.0
    w_b[pos_b @ n <= c] = 0.0
    pos = np.concatenate([pos_a, pos_b])
    w = np.concatenate([w_a, w_b])
    w *= _thickness_gradient(spec, pos, canvas, rng)
    return pos, w, None


def _scene_nanoparticle(spec, canvas, rng):
    npsec = spec["nanoparticle"]
    _, pos, w = _random_crystal(spec, canvas, rng)
    r0 = draw(npsec, "radius_fraction_of_field", rng) * canvas.field_size_angstrom
    centre = rng.uniform(-0.25, 0.25, 2) * canvas.field_size_angstrom
    facets = draw(npsec, "facets", rng)
    d = pos - centre
    r = np.hypot(d[:, 0], d[:, 1])
    rmax = r0 * _polygon_radius(np.arctan2(d[:, 1], d[:, 0]), facets, rng.uniform(0, 2 * np.pi))
    inside = r < rmax
    w = np.where(inside, w * np.sqrt(np.clip(1 - (r / rmax) ** 2, 0, 1)), 0.0)  # ~sphere thickness
    support = _support(spec, canvas, rng)
    if rng.random() < draw(spec, "vacuum_probability", rng):
        n, c = _half_plane(canvas, rng)
        x, y = canvas.grid_angstrom()
        support[(x * n[0] + y * n[1]) > c] = 0.0
    return pos, w, support


def _scene_low_resolution(spec, canvas, rng):
    lr = spec["low_resolution"]
    support = _support(spec, canvas, rng)
    size_px = draw(lr, "feature_size_px", rng)
    field = ndimage.gaussian_filter(rng.normal(size=canvas.shape), size_px, mode="wrap")
    field = np.clip(field / (field.std() + 1e-12), 0, None)
    x, y = canvas.grid_angstrom()
    blobs = np.zeros(canvas.shape)
    for _ in range(draw(lr, "blobs", rng)):
        cx, cy = rng.uniform(-0.5, 0.5, 2) * canvas.field_size_angstrom
        rad = rng.uniform(0.05, 0.3) * canvas.field_size_angstrom
        blobs += rng.uniform(0.5, 2.0) * (np.hypot(x - cx, y - cy) < rad)
    blobs = ndimage.gaussian_filter(blobs, max(size_px / 2, 1.0))
    level = max(float(support.mean()), 1.0)
    img = support + level * draw(lr, "contrast", rng) * (field + blobs)
    return np.zeros((0, 2)), np.zeros(0), img


SCENES = {
    "crystal": _scene_crystal,
    "interface": _scene_interface,
    "nanoparticle": _scene_nanoparticle,
    "low_resolution": _scene_low_resolution,
}


def render_specimen(spec: dict, canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
    """Draw and render one clean specimen image on ``canvas`` (float64).

    Normalised so the brightest pixel inside ``canvas.field`` is 1.
    """
    scene = draw(spec, "scene", rng)
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; known: {sorted(SCENES)}")
    probe = Probe(draw(spec, "probe_fwhm_angstrom", rng), draw(spec, "probe_tail_fraction", rng),
                  draw(spec, "probe_tail_fwhm_angstrom", rng))
    # render on a canvas padded by the probe's reach, so edges are not dimmed
    pad = probe.reach_px(canvas.pixel_size)
    outer = canvas
    canvas = Canvas((outer.shape[0] + 2 * pad, outer.shape[1] + 2 * pad), outer.pixel_size,
                    tuple(slice(s.start + pad, s.stop + pad) for s in outer.field))
    pos, w, extra = SCENES[scene](spec, canvas, rng)
    if w.size:
        pos, w = _defects(spec, pos, w, rng)
    rows, cols = canvas.to_pixels(pos)
    points = splat(canvas.shape, rows, cols, w)
    if extra is not None:
        points += extra
    img = probe(points, canvas.pixel_size)[pad:pad + outer.shape[0], pad:pad + outer.shape[1]]
    canvas = outer
    peak = float(img[canvas.field].max())
    img = img / peak if peak > 0 else np.zeros_like(img)
    x, y = canvas.grid_angstrom()
    g = draw(spec, "background_gradient_per_field", rng)
    d = rng.normal(size=2)
    d /= np.linalg.norm(d)
    img = img + draw(spec, "background_level", rng) * np.clip(
        1.0 + g * (x * d[0] + y * d[1]) / canvas.field_size_angstrom, 0.0, None)
    peak = float(img[canvas.field].max())
    if peak <= 0:  # empty field: flat unit image
        return np.ones(canvas.shape)
    return img / peak
