"""The one PNG figure writer: restore.py's ``--figure``, evaluate's figure and loss
curve, and datagen's preview all save through :func:`save_png`."""
from __future__ import annotations

import os
import sys

from .atomic import atomic_path

__all__ = ["save_png"]


def save_png(fig, path: str | os.PathLike, *, dpi: float | None = 100, metadata: dict | None = None,
             suffix: str = ".tmp.png", atomic: bool = True) -> None:
    """Save the matplotlib figure ``fig`` as a PNG at ``path``, then close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        A pyplot figure or a bare ``Figure``.
    path : path-like
        The final file.  Written atomically (:func:`stem_restore.atomic.atomic_path`:
        a temporary file in the same folder, renamed over ``path`` once complete), so a
        reader never sees a half-written PNG and an error leaves ``path`` untouched.
    dpi : float or None
        Resolution; None keeps the figure's own.
    metadata : dict, optional
        PNG text chunks (``{"key": "text"}``), as matplotlib's ``savefig(metadata=...)``.
    suffix : str
        Suffix of the temporary name (callers that recognise their own temporary files
        pass theirs).
    atomic : bool
        False writes ``path`` directly: for callers that already write to a temporary
        name of their own and rename it later.

    The figure is closed even when saving fails (pyplot figures are removed from
    pyplot's registry; a bare ``Figure`` holds no registry entry).
    """
    try:
        kwargs = {"format": "png", "metadata": metadata}
        if dpi is not None:
            kwargs["dpi"] = dpi
        if not atomic:
            fig.savefig(path, **kwargs)
            return
        with atomic_path(path, suffix=suffix) as tmp:
            fig.savefig(tmp, **kwargs)
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")  # a pyplot figure needs pyplot imported
        if pyplot is not None:
            pyplot.close(fig)
