"""Output files of restore.py, written atomically.

For an input ``<dir>/<stem>.<ext>`` restore.py writes, under the output folder
(mirroring the input folder structure):

``<stem>_restored.tif``
    float32, the restored image in the input's intensity units.
``<stem>_difference.tif``
    float32, raw - restored (what the network removed).
``<stem>_figure.png`` (``--figure``)
    raw | restored | difference panel, as in the paper's Figure 1.

Stacks stay stacks: an input with N frames gives N-page TIFFs (ImageJ
hyperstack, axes ``TYX``); the figure shows the first frame.  A file with
several image signals (e.g. a Velox file with HAADF and DF images) gives one
set of outputs per signal, named ``<stem>_<k>_<title>_...``.

The TIFFs are ImageJ-flavoured: pixel size in the resolution tags with its
unit in the ImageJ description (Fiji shows it), and a JSON ``Info`` property
with the source path, model, weights and their SHA-256, and all parameters.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from datagen.writers.atomic import atomic_path as _atomic_path

from .io import PixelSize


@contextmanager
def atomic_path(final: Path):
    """Yield a temporary path in ``final``'s folder; rename it over ``final`` on success.

    The temporary file keeps the final suffix (libraries pick formats by it)
    and starts with a dot; on error it is removed and ``final`` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_path(final, suffix=".tmp" + final.suffix) as tmp:
        yield Path(tmp)


def write_tiff(path: Path, frames: np.ndarray, stack_shape: tuple[int, ...],
               pixel_size: PixelSize | None, info: dict) -> None:
    """Write a float32 (multi-page) ImageJ TIFF atomically.

    Parameters
    ----------
    path : Path
        Final file name.
    frames : ndarray, shape (N, H, W)
    stack_shape : tuple
        Original leading shape of the stack (``()`` for one image).
    pixel_size : PixelSize or None
        Written as resolution (px per unit) and ImageJ ``unit``.
    info : dict
        JSON-serialisable provenance, stored as the ImageJ ``Info`` property.
    """
    import tifffile

    data = np.asarray(frames, dtype=np.float32)
    single = len(stack_shape) == 0
    if single:
        data = data[0]
    metadata = {"axes": "YX" if single else "TYX", "Info": json.dumps(info, sort_keys=True)}
    kwargs = {}
    if pixel_size is not None and pixel_size.unit.isascii():
        kwargs["resolution"] = (1.0 / pixel_size.x, 1.0 / pixel_size.y)
        metadata["unit"] = pixel_size.unit
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, imagej=True, metadata=metadata, **kwargs)


def read_info(path: Path) -> dict:
    """Read back the JSON ``Info`` written by :func:`write_tiff`."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return json.loads(tif.imagej_metadata["Info"])


#: Longest edge (px) of the images drawn in the figure: a 1200-px-wide PNG of
#: three panels cannot show more, and drawing an 8192^2 frame at full size
#: costs matplotlib several GB.  Larger frames are block-averaged first.
FIGURE_MAX_PX = 1024


def _binned(a: np.ndarray, factor: int) -> np.ndarray:
    """``a`` averaged over ``factor x factor`` blocks (float32; edge rows/columns that do
    not fill a block are dropped)."""
    if factor <= 1:
        return np.asarray(a, dtype=np.float32)
    h, w = (n // factor * factor for n in a.shape)
    blocks = a[:h, :w].reshape(h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def _display_range(a: np.ndarray, lo: float = 0.5, hi: float = 99.5) -> tuple[float, float]:
    vmin, vmax = (float(v) for v in np.percentile(a, [lo, hi]))
    if vmax <= vmin:
        vmax = vmin + 1.0
    return vmin, vmax


def write_figure(path: Path, raw: np.ndarray, restored: np.ndarray, title: str = "",
                 pixel_size: PixelSize | None = None) -> None:
    """Write the raw | restored | difference PNG panel atomically.

    Raw and restored share one grey scale (0.5-99.5 % of the raw image), so
    their contrast can be compared; the difference uses a symmetric scale.
    Frames larger than :data:`FIGURE_MAX_PX` are shown block-averaged (said
    in the title), so the figure's memory does not grow with the frame.
    """
    from matplotlib.figure import Figure

    factor = -(-max(raw.shape) // FIGURE_MAX_PX)
    raw, restored = _binned(raw, factor), _binned(restored, factor)
    diff = raw - restored
    h, w = raw.shape
    vmin, vmax = _display_range(raw)
    dlim = float(np.percentile(np.abs(diff), 99.5)) or 1.0
    fig = Figure(figsize=(12, 4.4 * h / w + 0.6), dpi=100)
    axes = fig.subplots(1, 3)
    panels = [("raw", raw, vmin, vmax), ("restored", restored, vmin, vmax),
              ("difference (raw - restored)", diff, -dlim, dlim)]
    for ax, (name, img, lo, hi) in zip(axes, panels):
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_axis_off()
    if pixel_size is not None:
        title = f"{title}   pixel {pixel_size.x:.4g} x {pixel_size.y:.4g} {pixel_size.unit}".strip()
    if factor > 1:
        title = f"{title}   (shown {factor}x{factor} block-averaged)".strip()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
