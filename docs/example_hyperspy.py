#!/usr/bin/env python3
"""Worked example: restore a calibrated STEM frame from a notebook with HyperSpy.

    .venv/bin/python docs/example_hyperspy.py [OUTDIR]     (default: docs/example_output/)

1. Writes ``example.hspy``: the bundled simulated frame ``examples/example_1.tif``
   (detector counts) as a HyperSpy ``Signal2D`` with a pixel size of 0.02 nm
   -- standing in for your own DM4 / EMD / hspy file; any file ``hs.load``
   reads works the same way (``hs.load("session/frame.dm4")``).
2. Loads it with ``hs.load``, restores it with ``restoration.restore``: a new
   ``Signal2D`` with the same axes (scale, units, offset) and metadata, plus
   provenance under ``metadata.stem_restore``.
3. Saves the restored signal (``example_restored.hspy``) and plots
   raw | restored | raw - restored (``example_hyperspy.png``).

In a notebook the same lines apply (``%matplotlib inline``, then ``s.plot()``).
The test suite runs this script (tests/test_api.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
#: Pixel size given to the example frame (nm): a typical atomic-resolution HAADF scan.
PIXEL_NM = 0.02


def write_example(path: Path) -> Path:
    """A calibrated Signal2D file (.hspy) made from examples/example_1.tif."""
    import hyperspy.api as hs
    import tifffile

    s = hs.signals.Signal2D(tifffile.imread(REPO / "examples" / "example_1.tif"))
    s.metadata.General.title = "example_1 (simulated HAADF)"
    for axis, name in zip(s.axes_manager.signal_axes, ("x", "y")):
        axis.name, axis.scale, axis.units = name, PIXEL_NM, "nm"
    s.save(path, overwrite=True)
    return path


def plot(raw, restored, path: Path) -> Path:
    """raw | restored | raw - restored, raw and restored on one grey scale (0.5-99.5 %)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_axis, y_axis = raw.axes_manager.signal_axes
    extent = [x_axis.low_value, x_axis.high_value, y_axis.high_value, y_axis.low_value]
    vmin, vmax = np.percentile(raw.data, [0.5, 99.5])
    diff = raw.data - restored.data
    dlim = float(np.percentile(np.abs(diff), 99.5)) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, title, img, lo, hi in [(axes[0], "raw", raw.data, vmin, vmax),
                                   (axes[1], "restored", restored.data, vmin, vmax),
                                   (axes[2], "raw - restored", diff, -dlim, dlim)]:
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, extent=extent)
        ax.set_title(title)
        ax.set_xlabel(f"x ({x_axis.units})")
        ax.set_ylabel(f"y ({y_axis.units})")
    fig.suptitle(f"{raw.metadata.General.title}: {raw.axes_manager.signal_shape} px, "
                 f"{x_axis.scale:g} {x_axis.units}/px")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(outdir: Path) -> int:
    import hyperspy.api as hs

    import restoration

    outdir.mkdir(parents=True, exist_ok=True)
    raw = hs.load(write_example(outdir / "example.hspy"))
    restored = restoration.restore(raw)  # the shipped model, loaded once and cached
    print(restored.metadata.stem_restore)
    assert restored.axes_manager[0].scale == raw.axes_manager[0].scale == PIXEL_NM
    restored.save(outdir / "example_restored.hspy", overwrite=True)
    print("wrote", plot(raw, restored, outdir / "example_hyperspy.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "example_output"))
