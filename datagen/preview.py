"""Preview PNG: clean target, each distortion family alone, then all of them.

Every panel of a row uses the same sample generator, so the specimen (and each
family's realisation) is the same in all panels of that row.  Panels are shown
in the shared ADC units with one grey scale per row (the clean image's 0.5th
to 99.5th percentile), so intensity changes are visible too.
"""
from __future__ import annotations

import os
import pathlib

import numpy as np

from stem_restore.figures import save_png

from .pipeline import resolve_preset, sample_rng, simulate_pair
from .presets import FAMILIES, family_preset


def preview_panels(preset, size: int, seed: int, index: int = 0) -> list[tuple[str, np.ndarray]]:
    """(title, image) panels for sample ``index``: clean, each family, all."""
    base = resolve_preset(preset)
    _, clean = simulate_pair(family_preset(base, None), size, sample_rng(seed, index))
    panels = [("clean target", clean)]
    for fam in FAMILIES:
        distorted, _ = simulate_pair(family_preset(base, fam), size, sample_rng(seed, index))
        panels.append((fam, distorted))
    everything = family_preset(base, None)
    for fam in FAMILIES:
        everything[fam]["probability"] = 1.0
    distorted, _ = simulate_pair(everything, size, sample_rng(seed, index))
    panels.append(("all families", distorted))
    return panels


def write_preview(preset, out: str | os.PathLike, seed: int = 0, size: int = 128,
                  samples: int = 3) -> pathlib.Path:
    """Write the preview PNG atomically to ``out``; return its path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = pathlib.Path(out)
    ncol = len(FAMILIES) + 2
    fig, axes = plt.subplots(samples, ncol, figsize=(1.6 * ncol, 1.75 * samples), squeeze=False)
    for r in range(samples):
        panels = preview_panels(preset, size, seed, r)
        lo, hi = np.percentile(panels[0][1], [0.5, 99.5])
        for c, (title, img) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title.replace("_", " "), fontsize=7)
    name = resolve_preset(preset).get("name", str(preset))
    fig.suptitle(f"datagen preview: preset {name}, seed {seed}, {size} px", fontsize=8)
    fig.tight_layout()
    save_png(fig, out, dpi=110)
    return out
