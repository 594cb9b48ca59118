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

Output sets
-----------
All outputs of one input file form a *set*, written under temporary names
(``.<name>.<random>.rs<pid>.<host>.<start>.tmp.<ext>``) and renamed only when
every one of them is written (:func:`output_set`).  Each file of a set carries the same
set id (TIFF ``Info["output_set"]``, PNG text ``stem-restore output set``),
so :func:`set_status` tells a complete set from one left incomplete by a
kill between two renames.  Temporary files of this tool are recognised by
:func:`is_temp_output` (never read as inputs) and those of dead processes
are removed by :class:`StaleTemps` (see :func:`temp_is_stale`).
"""
from __future__ import annotations

import json
import os
import re
import socket
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from stem_restore.atomic import atomic_path, temp_stem

from .io import PixelSize


#: PNG text key holding the output set id.
PNG_SET_KEY = "stem-restore output set"

#: Temporary output names of this tool: ``.<final>.<random>.rs<pid>.<host>.<start>.tmp.<ext>``
#: (``<start>``: the process's start time and boot id, so that a reused pid -- restore.py is
#: pid 1 in every Docker run -- is not taken for the writer), and the ``.rs<pid>`` and pid-less
#: names of earlier versions.
_TEMP_RE = re.compile(r"^\.(?P<final>.+_(?:restored|difference)\.tif|.+_figure\.png)"
                      r"\.[A-Za-z0-9_]+(?:\.rs(?P<pid>\d+)(?:\.(?P<host>[A-Za-z0-9-]+)"
                      r"\.(?P<token>[A-Za-z0-9]+))?)?\.tmp\.(?:tif|png)$")

#: A temporary file that is not provably a dead process's (written on another host, or
#: named by an earlier version without host and start token) is removed only when it has
#: not been modified for this long (seconds): a live writer on another host may be busy.
STALE_TEMP_AGE_S = 24 * 3600


def host_tag() -> str:
    """This machine's host name as it appears in temporary names (letters, digits, ``-``)."""
    name = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname()).strip("-")[:40]
    return name or "host"


def start_token(pid: int) -> str | None:
    """What tells process ``pid`` from a later one with the same pid: its start time (clock
    ticks since boot, /proc/PID/stat field 22) and this boot's id; None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        start = stat[stat.rindex(")") + 2:].split()[19]
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8]
    except (OSError, ValueError, IndexError):
        return None
    return f"{start}b{boot}"


def temp_suffix(final: Path) -> str:
    """Suffix of this process's temporary files for ``final``, passed to
    :func:`stem_restore.atomic.atomic_path` (keeps the final suffix: libraries pick
    formats by it; names the writer: pid, host, start token; see :func:`is_temp_output`)."""
    pid = os.getpid()
    return f".rs{pid}.{host_tag()}.{start_token(pid) or '0'}.tmp{Path(final).suffix}"


def is_temp_output(path: str | Path) -> bool:
    """True for a temporary output file of restore.py (never an input)."""
    return _TEMP_RE.match(Path(path).name) is not None


def _pid_alive(pid: int) -> bool:
    """True if a process with this id exists (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_is_stale(name: str, mtime: float, now: float | None = None) -> bool:
    """Whether the temporary output ``name`` (modified at ``mtime``) may be removed.

    Provably dead: written on this host by a process that no longer runs (its
    pid is gone, or now belongs to a process with another start token).
    Otherwise -- another host (a shared folder), or a name of an earlier
    version without host and token -- only when older than
    :data:`STALE_TEMP_AGE_S`.  This process's own files are never stale.
    """
    m = _TEMP_RE.match(name)
    if m is None:
        return False
    now = time.time() if now is None else now
    old = now - mtime >= STALE_TEMP_AGE_S
    if m["host"] is None or m["host"] != host_tag():
        return old
    pid, token = int(m["pid"]), m["token"]
    if not _pid_alive(pid):
        return True
    current = start_token(pid)
    if current is None or token == "0":
        return old  # cannot tell the writer from a later process with its pid
    return current != token


class StaleTemps:
    """Removes temporary outputs of dead restore.py runs, scanning each folder once.

    :meth:`remove` is called for every input file; the folder is listed on
    its first call only (not once per file).  A file that cannot be removed
    (permissions, read-only share) is reported through ``warn`` and left.
    """

    def __init__(self, warn: Callable[[str], None] | None = None):
        self.warn = warn
        self._stale: dict[Path, dict[str, list[Path]]] = {}

    def _scan(self, folder: Path) -> dict[str, list[Path]]:
        """Final name -> stale temporary files of it, in ``folder`` (listed once)."""
        folder = Path(folder)
        if folder not in self._stale:
            found: dict[str, list[Path]] = {}
            now = time.time()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                entries = []
            for entry in entries:
                m = _TEMP_RE.match(entry.name)
                if not m:
                    continue
                try:
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                except OSError:
                    continue
                if temp_is_stale(entry.name, mtime, now):
                    found.setdefault(m["final"], []).append(Path(entry.path))
            self._stale[folder] = found
        return self._stale[folder]

    def remove(self, folder: Path, finals: set[str] | None = None) -> list[Path]:
        """Remove the stale temporary files of ``finals`` (all if None) in ``folder``;
        return those removed."""
        stale = self._scan(folder)
        removed = []
        wanted = None if finals is None else {temp_stem(f) for f in finals} | set(finals)
        for final in sorted(stale if wanted is None else wanted & set(stale)):
            for path in stale.pop(final):
                try:
                    path.unlink()
                    removed.append(path)
                except FileNotFoundError:
                    pass
                except OSError as err:
                    if self.warn:
                        self.warn(f"warning: cannot remove {path}, a temporary file of an "
                                  f"interrupted run: {err.strerror or err}")
        return removed


def remove_stale_temps(folder: Path, finals: set[str] | None = None,
                       warn: Callable[[str], None] | None = None) -> list[Path]:
    """Remove stale temporary outputs (:func:`temp_is_stale`) of ``finals`` (all if None)
    in ``folder``; return the removed paths.  See :class:`StaleTemps`."""
    return StaleTemps(warn).remove(folder, finals)


@contextmanager
def output_set(finals: list[Path]):
    """Yield ``{final: temporary path}`` for a set of files; rename them all on success.

    The body writes every temporary file.  On an exception (or Ctrl-C) every
    temporary file is removed and no final file is touched.  On success the
    targets are checked first (an existing folder in the way fails the whole
    set), then the files are renamed in the order of ``finals``.  Those
    renames are not one atomic step; :func:`set_status` recognises a set
    left incomplete by a kill between them.
    """
    with ExitStack() as stack:
        # ExitStack exits last-in first-out: enter in reverse so the renames run in order.
        temps = {f: stack.enter_context(atomic_path(f, suffix=temp_suffix(f), parents=True))
                 for f in reversed(list(finals))}
        yield temps
        for final in finals:
            if final.is_dir():
                raise IsADirectoryError(f"cannot write {final}: a folder of that name is in the way")


def read_set_id(path: Path) -> tuple[bool | None, str | None]:
    """``(ours, set id)`` of an output file.

    ``ours`` is True for a TIFF with our ``Info`` or a PNG with our set id,
    None for a PNG without one that matplotlib made ("Matplotlib version..."):
    a figure of an earlier version, ours only if the TIFFs beside it are
    (:func:`set_status`), and False for anything else.  The id is None for
    files written before set ids existed.
    """
    try:
        if path.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(path) as im:
                text = dict(im.text)
            set_id = text.get(PNG_SET_KEY)
            if set_id is not None:
                return True, set_id
            made_by_matplotlib = str(text.get("Software", "")).lower().startswith("matplotlib")
            return (None if made_by_matplotlib else False), None
        info = read_info(path)
        return str(info.get("software", "")).startswith("stem-restore"), info.get("output_set")
    except Exception:  # unreadable / foreign file
        return False, None


def set_status(paths: list[Path]) -> tuple[str, str]:
    """``(status, reason)`` of an output set, status one of

    ``absent`` (no file), ``complete`` (every file exists and all carry the same
    set id, or none does: written before set ids existed), ``incomplete``
    (restore.py's files with one missing or from different runs: an
    interrupted run), ``foreign`` (a file restore.py did not write: never
    replaced without --overwrite).  A matplotlib PNG without a set id counts
    as ours only when restore.py's TIFFs are beside it.
    """
    present = [p for p in paths if p.exists()]
    if not present:
        return "absent", ""
    marks = {p: read_set_id(p) for p in present}
    foreign = [p for p in present if marks[p][0] is False]
    if foreign:
        return "foreign", f"{foreign[0]} was not written by restore.py"
    if all(marks[p][0] is None for p in present):
        return "foreign", (f"{present[0]} was not written by restore.py (a matplotlib figure "
                           f"without restore.py's TIFFs beside it)")
    missing = [p for p in paths if not p.exists()]
    if missing:
        return "incomplete", f"{missing[0].name} is missing"
    ids = [marks[p][1] for p in paths]
    if len(set(ids)) == 1:
        return "complete", ""
    odd = next(p for p in paths if marks[p][1] != ids[0])
    return "incomplete", f"{odd.name} and {paths[0].name} come from different runs"


def write_tiff(path: Path, frames: np.ndarray, stack_shape: tuple[int, ...],
               pixel_size: PixelSize | None, info: dict, atomic: bool = True) -> None:
    """Write a float32 (multi-page) ImageJ TIFF (atomically unless ``atomic=False``:
    then ``path`` is itself a temporary name, as in :func:`output_set`).

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
    if not atomic:
        tifffile.imwrite(path, data, imagej=True, metadata=metadata, **kwargs)
        return
    with atomic_path(path, suffix=temp_suffix(path), parents=True) as tmp:
        tifffile.imwrite(tmp, data, imagej=True, metadata=metadata, **kwargs)


def read_info(path: Path) -> dict:
    """Read back the JSON ``Info`` written by :func:`write_tiff`."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return json.loads(tif.imagej_metadata["Info"])


#: Longest edge (px) of the images drawn in the figure: a 1200-px-wide PNG of
#: three panels cannot show more, and drawing an 8192^2 frame at full size
#: costs matplotlib several GB.  Larger frames are block-averaged first, each
#: axis by its own factor, so a very tall or narrow frame keeps >= 1 px per edge.
FIGURE_MAX_PX = 1024
#: Height range of the figure (inches, 12 inches wide): frames whose aspect
#: ratio would need more or less are drawn stretched (said in the title).
FIGURE_HEIGHT_IN = (2.0, 14.0)


def _binned(a: np.ndarray, fy: int, fx: int | None = None) -> np.ndarray:
    """``a`` averaged over ``fy x fx`` blocks (float32; edge rows/columns that do
    not fill a block are dropped).  ``fx`` defaults to ``fy``; factors larger than
    an edge are reduced to it, so the result is never empty."""
    fx = fy if fx is None else fx
    fy, fx = max(1, min(int(fy), a.shape[0])), max(1, min(int(fx), a.shape[1]))
    if fy == 1 and fx == 1:
        return np.asarray(a, dtype=np.float32)
    h, w = a.shape[0] // fy * fy, a.shape[1] // fx * fx
    blocks = a[:h, :w].reshape(h // fy, fy, w // fx, fx)
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def _display_range(a: np.ndarray, lo: float = 0.5, hi: float = 99.5) -> tuple[float, float]:
    vmin, vmax = (float(v) for v in np.percentile(a, [lo, hi]))
    if not vmax > vmin:
        vmax = vmin + 1.0
    return vmin, vmax


def safe_title(text: str) -> str:
    """``text`` as matplotlib can draw it: undecodable bytes of a file name
    (surrogate escapes) become U+FFFD, and ``$`` does not start mathtext."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text.replace("$", r"\$")


def figure_layout(shape: tuple[int, int]) -> tuple[int, int, float, bool]:
    """Block factors (rows, columns), figure height (inches) and whether the panels
    are stretched, for a frame of ``shape``."""
    h, w = (max(1, int(n)) for n in shape)
    fy, fx = -(-h // FIGURE_MAX_PX), -(-w // FIGURE_MAX_PX)
    height = 4.4 * h / w + 0.6
    lo, hi = FIGURE_HEIGHT_IN
    stretched = not lo <= height <= hi
    return fy, fx, float(min(max(height, lo), hi)), stretched


def write_figure(path: Path, raw: np.ndarray, restored: np.ndarray, title: str = "",
                 pixel_size: PixelSize | None = None, set_id: str | None = None,
                 atomic: bool = True) -> None:
    """Write the raw | restored | difference PNG panel (atomically unless ``atomic=False``).

    Raw and restored share one grey scale (0.5-99.5 % of the raw image), so
    their contrast can be compared; the difference uses a symmetric scale.
    Frames with an edge above :data:`FIGURE_MAX_PX` are shown block-averaged
    and frames too tall or too narrow for :data:`FIGURE_HEIGHT_IN` stretched
    (both said in the title), so the figure's memory does not grow with the
    frame.  ``set_id`` is stored as PNG text (see :func:`set_status`).
    """
    from matplotlib.figure import Figure

    from stem_restore.figures import save_png

    shape = raw.shape
    fy, fx, height, stretched = figure_layout(shape)
    raw, restored = _binned(raw, fy, fx), _binned(restored, fy, fx)
    diff = raw - restored
    vmin, vmax = _display_range(raw)
    dlim = float(np.percentile(np.abs(diff), 99.5)) or 1.0
    fig = Figure(figsize=(12, height), dpi=100)
    axes = fig.subplots(1, 3)
    panels = [("raw", raw, vmin, vmax), ("restored", restored, vmin, vmax),
              ("difference (raw - restored)", diff, -dlim, dlim)]
    aspect = "auto" if stretched else fy / fx
    for ax, (name, img, lo, hi) in zip(axes, panels):
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest", aspect=aspect)
        ax.set_title(name, fontsize=10)
        ax.set_axis_off()
    title = safe_title(title)
    if pixel_size is not None:
        title = f"{title}   pixel {pixel_size.x:.4g} x {pixel_size.y:.4g} {safe_title(pixel_size.unit)}".strip()
    if fy > 1 or fx > 1:
        title = f"{title}   (shown {fy}x{fx} block-averaged)".strip()
    if stretched:
        title = f"{title}   ({shape[0]} x {shape[1]} px, stretched to fit)".strip()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    metadata = {PNG_SET_KEY: set_id} if set_id else None
    if atomic:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, path, dpi=100, metadata=metadata, suffix=temp_suffix(path), atomic=atomic)
