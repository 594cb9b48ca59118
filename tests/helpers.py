"""Shared helpers of the tests (imported explicitly: ``from helpers import ...``).

* :func:`make_weights` builds a real .caffemodel with random weights (NumPy RNG)
  from prototxt/deploy.prototxt through pycaffe (``net.save``); the shared
  ``weights`` and ``net`` fixtures of tests/conftest.py use it.
* ``write_*`` functions write real files with each format's own library.
* :func:`micrograph` makes a small synthetic atomic-lattice image in detector counts
  (restore.py's tests); :func:`lattice` a noise-free one (evaluate's tests).
"""
from __future__ import annotations

import importlib.util
import os
import pathlib

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
DEPLOY = REPO / "prototxt" / "deploy.prototxt"
DEPLOY_LINEAR = REPO / "prototxt" / "deploy_linear_output.prototxt"
RSCIIO_DATA = REPO / "tests" / "data" / "rosettasciio"
RESTORE_PY = REPO / "restore.py"
PYTHON = REPO / ".venv" / "bin" / "python"


def prototxt_script(name: str):
    """The module ``prototxt/<name>.py`` (a folder of scripts, not a package), loaded by path."""
    spec = importlib.util.spec_from_file_location(name, REPO / "prototxt" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def conv_names(net) -> list[str]:
    return [n for n in net.params if n.startswith("conv")]


def make_weights(caffe, path: pathlib.Path, seed: int = 0, proto: pathlib.Path = DEPLOY) -> pathlib.Path:
    """Save a .caffemodel of ``proto`` with He-normal weights and small positive biases.

    pycaffe has no RNG seed call, so the weights come from a NumPy generator
    (deterministic).  The last bias is positive so the final ReLU does not
    zero most of the output.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    rng = np.random.default_rng(seed)
    net = caffe.Net(str(proto), caffe.TEST)
    names = conv_names(net)
    for i, name in enumerate(names):
        w, b = net.params[name]
        fan_in = int(np.prod(w.data.shape[1:]))
        w.data[...] = rng.normal(0.0, np.sqrt(2.0 / fan_in) * 0.9, w.data.shape)
        b.data[...] = rng.uniform(0.0, 0.05, b.data.shape)
        if i == len(names) - 1:
            b.data[...] = 0.5
    net.save(str(path))
    return path


def net_layers(net) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(net.params[n][0].data.copy(), net.params[n][1].data.copy()) for n in conv_names(net)]


def rel_err(a, b) -> float:
    """Largest absolute difference relative to the largest magnitude of ``b``."""
    return float(np.abs(a - b).max() / np.abs(b).max())


def micrograph(shape=(72, 80), seed=0, counts=1000.0, dtype=np.float32) -> np.ndarray:
    """Small noisy lattice image (Gaussian columns on a background), in counts."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    img = np.zeros(shape)
    for cy in np.arange(3.0, shape[0], 7.3):
        for cx in np.arange(2.0, shape[1], 6.9):
            img += np.exp(-((y - cy) ** 2 + (x - cx + 0.4 * np.sin(cy)) ** 2) / (2 * 1.4**2))
    img = 20 + counts * img / img.max()
    img = rng.poisson(img).astype(np.float64)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        img = np.clip(img * (info.max / max(img.max(), 1) if info.max < 1000 else 1), info.min, info.max)
    return img.astype(dtype)


def lattice(n: int = 64, period: float = 12.0, sigma: float = 1.8, angle: float = 0.0,
            peak: float = 100.0, background: float = 10.0) -> np.ndarray:
    """A square lattice of Gaussian 'atomic columns' (float64), rotated by ``angle`` rad."""
    y, x = np.mgrid[0:n, 0:n].astype(float)
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * x + s * y, -s * x + c * y
    du = (u + period / 2) % period - period / 2
    dv = (v + period / 2) % period - period / 2
    return background + peak * np.exp(-(du**2 + dv**2) / (2 * sigma**2))


# ---------------------------------------------------------------- writers
def write_tiff(path, data, **kw):
    import tifffile

    tifffile.imwrite(path, data, **kw)
    return path


def write_png(path, data, mode=None):
    from PIL import Image

    Image.fromarray(data, mode=mode).save(path) if mode else Image.fromarray(data).save(path)
    return path


def write_mrc(path, data, voxel_size=None):
    import mrcfile

    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        if voxel_size is not None:
            mrc.voxel_size = voxel_size
    return path


def write_emd_rsciio(path, data, scale_nm):
    """Berkeley EMD through rosettasciio's own writer."""
    from rsciio.emd import file_writer

    axes = [
        {"name": n, "size": s, "scale": scale_nm, "offset": 0.0, "units": "nm", "navigate": False}
        for n, s in zip(("y", "x"), data.shape)
    ]
    file_writer(str(path), {"data": data, "axes": axes, "metadata": {"General": {"title": "img"}, "Signal": {}},
                            "original_metadata": {}})
    return path


def write_emd_h5py(path, data, scale_nm):
    """Berkeley EMD v0.2 written with h5py directly from the format description:
    root attributes version_major/minor, a group with emd_group_type = 1 holding
    ``data`` and one ``dimN`` vector (with ``name`` and ``units``) per HDF5 axis.

    Like rosettasciio's writer (and its reader's expectation), the image is
    stored x-first (transposed): ``dim1`` is x, ``dim2`` is y."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["version_major"] = 0
        f.attrs["version_minor"] = 2
        g = f.create_group("data/haadf")
        g.attrs["emd_group_type"] = 1
        g.create_dataset("data", data=data.T)
        for k, n in enumerate(data.T.shape, start=1):
            d = g.create_dataset(f"dim{k}", data=np.arange(n) * scale_nm)
            d.attrs["name"] = ("x", "y")[k - 1]
            d.attrs["units"] = "[n_m]"
    return path
