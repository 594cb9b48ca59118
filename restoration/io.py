"""Read micrographs from the file formats microscopists have.

Every reader goes through a maintained library (no hand-written parsers):

========================  ==========================  ===========================
format                    suffixes                    library
========================  ==========================  ===========================
TIFF (8/16/32-bit int,    .tif .tiff                  tifffile
float, multi-page)
PNG / JPEG                .png .jpg .jpeg             Pillow
NumPy array               .npy                        numpy (``allow_pickle=False``)
Gatan DigitalMicrograph   .dm3 .dm4                   rosettasciio (``rsciio``)
FEI / TIA                 .ser                        rosettasciio
Velox and Berkeley EMD    .emd                        rosettasciio
MRC / MRCS                .mrc .mrcs                  mrcfile
========================  ==========================  ===========================

Conventions
-----------
* A file holds one or more *signals* (DM, Velox EMD and TIFF files can hold
  several images); each signal is an array of shape ``(*stack, H, W)``.
  Every frame of a stack (multi-page TIFF, MRC stack, 3-D NPY, Velox frame
  series, ...) is restored; stacks stay stacks in the output.
* 3-D NPY and MRC arrays are stacks of frames along the first axis, except an NPY of shape
  ``(H, W, 3 | 4)`` or ``(N, H, W, 3 | 4)`` (H, W > 4), which is RGB(A) (:func:`to_image`).
* RGB(A) images (TIFF, PNG, JPEG, DM RGB, NPY and arrays as above) are converted to luminance
  ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601), alpha dropped, with a
  warning: a STEM detector signal is one channel, and an RGB file is usually
  a rendered copy of it.
* Integer, unsigned and float data are accepted and converted to float for the
  network; the output keeps the input's intensity units.  Complex, boolean,
  string and object data are refused.
* The pixel size is kept when the file has one (DM, SER, EMD, MRC, ImageJ or
  FEI TIFF, TIFF with a centimetre resolution unit), converted to nm when its
  unit is a length.  PNG/JPEG/NPY carry none.

* Float data beyond float32's range (|x| > 3.4e38, or all non-zero values below
  1.2e-38) is refused: the network and the float32 outputs cannot hold it.
* Size limits: before any pixel array is allocated, the size a TIFF, NPY, MRC,
  PNG/JPEG, DM3/DM4 or SER header claims is checked against the bytes the file
  really holds (uncompressed data) and against :func:`memory_limit` (decoded
  bytes of one image: half the machine's RAM, or ``STEM_RESTORE_MAX_IMAGE_BYTES``).
  DM, SER and EMD files are opened lazily (rosettasciio ``lazy=True``) so the
  check runs before any data are read; in EMD (HDF5) files a large dataset with
  chunks missing, or uncompressed and larger than the file, is refused.
* Only regular files are read: FIFOs, sockets, devices, broken symbolic links
  and symbolic-link loops are named as such (:func:`path_problem`).

Errors are raised as :class:`InputError` with a one-line reason; the caller
adds the file name.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import re
import stat
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: File suffixes (lower case) -> reader name.
SUPPORTED_SUFFIXES: dict[str, str] = {
    ".tif": "tiff",
    ".tiff": "tiff",
    ".png": "pillow",
    ".jpg": "pillow",
    ".jpeg": "pillow",
    ".npy": "npy",
    ".dm3": "dm",
    ".dm4": "dm",
    ".ser": "ser",
    ".emd": "emd",
    ".mrc": "mrc",
    ".mrcs": "mrc",
}

#: Smallest accepted frame edge (px).  A 1 x N array is a line profile, not an
#: image; anything from 2 x 2 up is padded to the receptive field if needed.
MIN_EDGE = 2

#: BT.601 luma weights for RGB -> luminance.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
#: The note (warning) every RGB(A) -> luminance conversion gives.
RGB_NOTE = "RGB image converted to luminance (0.299 R + 0.587 G + 0.114 B)"

# Length units -> metres, for converting pixel sizes to nm.
_LENGTH_UNITS_M = {
    "m": 1.0,
    "cm": 1e-2,
    "mm": 1e-3,
    "um": 1e-6,
    "µm": 1e-6,
    "μm": 1e-6,
    "micron": 1e-6,
    "microns": 1e-6,
    "micrometer": 1e-6,
    "micrometre": 1e-6,
    "nm": 1e-9,
    "nanometer": 1e-9,
    "nanometre": 1e-9,
    "a": 1e-10,
    "å": 1e-10,
    "Å": 1e-10,
    "angstrom": 1e-10,
    "pm": 1e-12,
}


class InputError(Exception):
    """A file cannot be restored; ``str(err)`` is a one-line reason."""


@dataclass(frozen=True)
class PixelSize:
    """Physical size of one pixel.

    Attributes
    ----------
    x, y : float
        Pixel width (fast-scan, columns) and height (slow-scan, rows).
    unit : str
        ``"nm"`` for any length unit found in the file (converted), otherwise
        the file's own unit string (e.g. ``"1/nm"`` for a diffraction pattern).
    """

    x: float
    y: float
    unit: str

    def as_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "unit": self.unit}


@dataclass
class Signal:
    """One image (or stack of images) from a file.

    Attributes
    ----------
    data : ndarray
        Real array of shape ``(*stack, H, W)``, in the file's intensity units.
    pixel_size : PixelSize or None
    name : str
        Empty for the only signal of a file; otherwise a short label used in
        output names (e.g. ``"1_HAADF"``).
    title : str
        Title stored in the file, if any.
    """

    data: np.ndarray
    pixel_size: PixelSize | None = None
    name: str = ""
    title: str = ""

    @property
    def stack_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[:-2])

    @property
    def n_frames(self) -> int:
        return int(np.prod(self.stack_shape, dtype=np.int64)) if self.stack_shape else 1

    def frames(self) -> np.ndarray:
        """View of the data as ``(n_frames, H, W)``."""
        return self.data.reshape((self.n_frames,) + self.data.shape[-2:])


@dataclass
class ImageFile:
    """Everything read from one input file."""

    path: Path
    reader: str
    signals: list[Signal]
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------
# pixel-size helpers
# --------------------------------------------------------------------------
def normalize_length_unit(value_x: float, value_y: float, unit: str | None) -> PixelSize | None:
    """Build a :class:`PixelSize`, converting length units to nm.

    Returns None when the unit is missing / "pixel" or the values are not
    positive finite numbers.
    """
    if unit is None:
        return None
    u = str(unit).strip()
    u = u.replace("\\u00B5", "µ").replace("\\u00b5", "µ")
    if u.lower() in ("", "pixel", "pixels", "px", "<undefined>", "[]", "none"):
        return None
    try:
        vx, vy = float(value_x), float(value_y)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(vx) and math.isfinite(vy) and vx > 0 and vy > 0):
        return None
    key = u if u in _LENGTH_UNITS_M else u.lower()
    if key in _LENGTH_UNITS_M:
        f = _LENGTH_UNITS_M[key] / 1e-9
        return PixelSize(vx * f, vy * f, "nm")
    return PixelSize(vx, vy, u)


# --------------------------------------------------------------------------
# array checks shared by all readers
# --------------------------------------------------------------------------
def _to_luminance(rgb: np.ndarray) -> np.ndarray:
    """RGB(A) on the last axis -> float32 luminance (BT.601), alpha dropped."""
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    return LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b


def _structured_rgb_to_luminance(a: np.ndarray) -> np.ndarray | None:
    names = a.dtype.names or ()
    if all(c in names for c in "RGB"):
        stacked = np.stack([a["R"], a["G"], a["B"]], axis=-1)
        return _to_luminance(stacked)
    return None


def check_signal_array(a: np.ndarray) -> np.ndarray:
    """Validate an image array; return it as a real numeric ndarray.

    Raises
    ------
    InputError
        Empty, fewer than 2 dimensions, frames smaller than
        ``MIN_EDGE`` x ``MIN_EDGE``, complex / boolean / non-numeric dtype, or
        any NaN / infinite value.
    """
    a = np.asarray(a)
    if a.dtype.kind == "c":
        raise InputError(f"complex-valued data ({a.dtype}) is not a micrograph (an FFT?)")
    if a.dtype.kind == "b":
        raise InputError("boolean data is a mask, not an intensity image")
    if a.dtype.kind not in "iuf":
        raise InputError(f"unsupported data type {a.dtype}")
    if a.size == 0:
        raise InputError(f"empty image (shape {a.shape})")
    if a.ndim < 2:
        raise InputError(f"{a.ndim}-D data of shape {a.shape}: not an image")
    h, w = a.shape[-2:]
    if h < MIN_EDGE or w < MIN_EDGE:
        raise InputError(
            f"image of {h} x {w} px is too small (at least {MIN_EDGE} x {MIN_EDGE} px needed)"
        )
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            n_nan = int(np.isnan(a).sum())
            n_inf = int(a.size - finite.sum() - n_nan)
            parts = []
            if n_nan:
                parts.append(f"{n_nan} NaN")
            if n_inf:
                parts.append(f"{n_inf} infinite")
            where = ""
            if a.ndim > 2:
                bad = np.argwhere(~finite.reshape((-1,) + a.shape[-2:]).all(axis=(1, 2)))
                where = f" (first in frame {int(bad[0, 0]) + 1} of {a.size // (h * w)})"
            raise InputError(f"contains {' and '.join(parts)} value(s){where}")
        check_float32_range(a)
    return a


def check_float32_range(a: np.ndarray) -> None:
    """Refuse float data that float32 (the network and the outputs) cannot hold.

    Values above float32's largest (3.4e38) would become infinite and a
    restored image all NaN; an image whose non-zero values all lie below
    float32's smallest normal number (1.2e-38) would become zero.
    """
    if a.dtype.itemsize <= 4:
        return
    info = np.finfo(np.float32)
    largest, tiny = float(info.max), float(info.tiny)
    peak = max(abs(float(a.max())), abs(float(a.min())))
    if peak > largest:
        raise InputError(f"values up to {peak:.3g} do not fit float32 (largest {largest:.3g}); "
                         f"rescale the image (e.g. to counts) before restoring it")
    if 0 < peak < tiny:
        raise InputError(f"all values are at most {peak:.3g}, below float32's smallest normal "
                         f"number ({tiny:.3g}); rescale the image before restoring it")


# --------------------------------------------------------------------------
# size and file-type checks done before any pixel array is allocated
# --------------------------------------------------------------------------
#: Environment variable overriding :func:`memory_limit` (bytes).
MEMORY_LIMIT_ENV = "STEM_RESTORE_MAX_IMAGE_BYTES"


def memory_limit() -> int:
    """Largest decoded image (bytes, in the file's data type) a reader may allocate.

    ``STEM_RESTORE_MAX_IMAGE_BYTES`` if set, else half the machine's physical
    memory (restoring needs several image-sized arrays besides the decoded one).
    """
    env = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise InputError(f"{MEMORY_LIMIT_ENV}={env!r} is not a number of bytes") from None
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def _human_bytes(n: float) -> str:
    """``n`` bytes as B/kB/MB/GB/TB with 3 significant digits."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000.0
    return f"{n} B"  # pragma: no cover


def check_claimed_size(shape, dtype, file_bytes: int | None, what: str = "header") -> None:
    """Refuse an image whose claimed size exceeds the file's data or the memory limit.

    Parameters
    ----------
    shape, dtype
        What the file's header says the pixel array is.
    file_bytes : int or None
        Bytes the file really holds for that array (uncompressed data), or
        None when the data are compressed (only the memory limit applies).
    """
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise InputError(f"{what} claims a negative size {tuple(dims)}")
    itemsize = np.dtype(dtype).itemsize
    claimed = math.prod(dims) * itemsize
    desc = f"{' x '.join(map(str, dims))} {np.dtype(dtype).name}"
    if file_bytes is not None and claimed > file_bytes:
        fmt = what.split()[0]
        raise InputError(f"cannot read as {fmt} (truncated or corrupt?): the header claims a {desc} "
                         f"image ({_human_bytes(claimed)}) but the file holds only "
                         f"{_human_bytes(file_bytes)} of data")
    limit = memory_limit()
    if claimed > limit:
        raise InputError(f"{what} claims a {desc} image ({_human_bytes(claimed)}), more than the "
                         f"memory limit of {_human_bytes(limit)} (set {MEMORY_LIMIT_ENV} to change it)")


def path_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a readable regular file or folder, or None if it is one.

    Distinguishes a missing file, a broken symbolic link, a symbolic-link
    loop, a FIFO, a socket, a device and a permission problem.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symbolic link loop (too many levels of symbolic links)"
        if err.errno == errno.ENOENT and os.path.islink(path):
            return f"broken symbolic link (its target {os.readlink(path)!r} does not exist)"
        if err.errno == errno.ENOENT:
            return "no such file or folder"
        if err.errno == errno.ENOTDIR:
            return "a component of the path is a file, not a folder"
        if err.errno == errno.EACCES:
            return "permission denied"
        return err.strerror or str(err)
    mode = st.st_mode
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "is not a regular file"
    if not os.access(path, os.R_OK | (os.X_OK if stat.S_ISDIR(mode) else 0)):
        return "permission denied"
    return None


# --------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------
@contextlib.contextmanager
def _tifffile_log():
    """Collect what tifffile logs in this thread while a file is read: it reports a page list
    cut short (a truncated multi-page TIFF) or a broken tag in its logger, not with an
    exception.  Those records are kept (and not printed); other threads' pass as before."""
    records: list[logging.LogRecord] = []
    thread = threading.get_ident()

    def keep(record: logging.LogRecord) -> bool:
        if record.thread != thread or record.levelno < logging.WARNING:
            return True
        records.append(record)
        return False

    logger = logging.getLogger("tifffile")
    logger.addFilter(keep)
    try:
        yield records
    finally:
        logger.removeFilter(keep)


def _read_tiff(path: Path, notes: list[str]) -> list[Signal]:
    import tifffile

    with _tifffile_log() as log, tifffile.TiffFile(path) as tif:
        signals = _tiff_signals(tif, path, notes)
        n_pages = len(tif.pages)
    for record in log:
        msg = " ".join(record.getMessage().split())
        if "invalid page offset" in msg:  # "<tifffile.TiffPages @8> invalid page offset 1424"
            raise InputError(f"damaged TIFF: the list of pages breaks off after page {n_pages} "
                             f"(tifffile: {msg}); a stack with frames missing is not restored")
        notes.append(f"tifffile: {msg}")
    return signals


def _tiff_signals(tif, path: Path, notes: list[str]) -> list[Signal]:
    """The image signals of an open TIFF (one per series; RGB as luminance)."""
    signals = []
    series_list = [s for s in tif.series if s.kind != "reduced"] or list(tif.series)
    pixel_size = _tiff_pixel_size(tif)
    for k, series in enumerate(series_list):
        _check_tiff_series(series, path)
        data = series.asarray()
        axes = series.axes
        if "S" in axes:
            s_ax = axes.index("S")
            data = np.moveaxis(data, s_ax, -1)
            n_samples = data.shape[-1]
            if n_samples in (3, 4):
                notes.append(RGB_NOTE)
                data = _to_luminance(data)
            elif n_samples == 1:
                data = data[..., 0]
            elif n_samples == 2:  # grey + alpha, as PNG's LA
                notes.append("alpha channel dropped")
                data = data[..., 0]
            else:
                raise InputError(f"{n_samples} samples per pixel: not a greyscale or RGB image")
        name = "" if len(series_list) == 1 else str(k)
        signals.append(Signal(data=data, pixel_size=pixel_size, name=name))
    return signals


def _check_tiff_series(series, path: Path) -> None:
    """Claimed size of a TIFF series against the file's size (uncompressed) and the memory limit."""
    page = series.keyframe
    compressed = int(getattr(page, "compression", 1)) != 1
    file_bytes = None
    if not compressed:
        counts = getattr(page, "databytecounts", None) or ()
        offsets = getattr(page, "dataoffsets", None) or ()
        size = path.stat().st_size
        if any(o + c > size for o, c in zip(offsets, counts)):
            file_bytes = max(0, size - min(offsets, default=0))
        else:
            file_bytes = size
    check_claimed_size(series.shape, series.dtype, file_bytes, "TIFF header")


def _tiff_pixel_size(tif) -> PixelSize | None:
    page = tif.pages[0]
    tags = page.tags

    def res(tagname):
        t = tags.get(tagname)
        if t is None:
            return None
        v = t.value
        if isinstance(v, tuple):
            return v[0] / v[1] if v[1] else None
        return float(v)

    xres, yres = res("XResolution"), res("YResolution")
    ij = tif.imagej_metadata
    if ij and ij.get("unit") and xres and yres:
        return normalize_length_unit(1.0 / xres, 1.0 / yres, ij["unit"])
    fei = getattr(tif, "fei_metadata", None)
    if fei:
        scan = fei.get("Scan", {}) or {}
        if "PixelWidth" in scan:
            return normalize_length_unit(
                scan["PixelWidth"], scan.get("PixelHeight", scan["PixelWidth"]), "m"
            )
    unit_tag = tags.get("ResolutionUnit")
    if unit_tag is not None and xres and yres:
        units = {3: "cm", 4: "mm", 5: "um"}
        u = units.get(int(unit_tag.value))
        if u:
            return normalize_length_unit(1.0 / xres, 1.0 / yres, u)
    return None


def _read_pillow(path: Path, notes: list[str]) -> list[Signal]:
    from PIL import Image

    # Pillow refuses images over MAX_IMAGE_PIXELS (~179 Mpx) as "decompression bombs" when it
    # opens them; this module's guard is check_claimed_size below (the decoded size against the
    # memory limit, as for every format), so Pillow's is lifted while the header is read.
    pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        opened = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit
    with opened as im:
        bands = len(im.getbands())
        check_claimed_size((im.height, im.width, bands), np.uint16 if "16" in im.mode else
                           (np.float32 if im.mode in ("I", "F") else np.uint8), None, "PNG/JPEG header")
        im.load()  # force decoding now: truncated files fail here
        mode = im.mode
        if getattr(im, "n_frames", 1) > 1:
            notes.append(f"only the first of {im.n_frames} frames is read")
        if mode in ("1",):
            raise InputError("1-bit (black/white) image is not an intensity image")
        if mode in ("P", "PA"):
            im = im.convert("RGBA" if mode == "PA" else "RGB")
            mode = im.mode
        if mode in ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
            if mode != "RGB" and mode != "RGBA":
                im = im.convert("RGB")
            notes.append(RGB_NOTE)
            data = _to_luminance(np.asarray(im))
        elif mode == "LA":
            notes.append("alpha channel dropped")
            data = np.asarray(im)[..., 0]
        else:  # L, I, I;16*, F
            data = np.asarray(im)
    return [Signal(data=np.array(data))]


def is_channels_last_rgb(shape) -> bool:
    """Whether an array of ``shape`` is RGB(A) with the colour on the last axis,
    ``(..., H, W, 3 | 4)`` with H and W above 4 px: read as a stack, it would be frames 3 or 4 px
    wide, which no micrograph is."""
    return len(shape) >= 3 and shape[-1] in (3, 4) and min(shape[-3], shape[-2]) > 4


def is_channels_last_grey(shape) -> bool:
    """Whether an array of ``shape`` is grey (+ alpha) with a channel axis last, ``(..., H, W, 1 | 2)``
    with H and W above 4 px (a ``(H, W, 1)`` array from an image library): read as a stack, it
    would be frames 1 or 2 px wide."""
    return len(shape) >= 3 and shape[-1] in (1, 2) and min(shape[-3], shape[-2]) > 4


def to_image(data: np.ndarray, notes: list[str], channels_last: bool = True) -> np.ndarray:
    """An array as intensities: a structured (RGB record) array or, with ``channels_last``, a
    channels-last RGB(A) array (:func:`is_channels_last_rgb`) as luminance, with a note; with
    ``channels_last``, a grey array with a channel axis last (:func:`is_channels_last_grey`)
    without it (alpha dropped, with a note); other arrays unchanged.  (A HyperSpy signal
    names its image axes: only its records are colour.)"""
    if data.dtype.names:
        lum = _structured_rgb_to_luminance(data)
        if lum is None:
            raise InputError(f"structured dtype {data.dtype} is not an image")
    elif channels_last and data.dtype.kind in "iuf" and is_channels_last_rgb(data.shape):
        lum = _to_luminance(data)
    elif channels_last and is_channels_last_grey(data.shape):
        if data.shape[-1] == 2:
            notes.append("alpha channel dropped")
        return data[..., 0]
    else:
        return data
    notes.append(RGB_NOTE)
    return lum


def _check_npy_header(path: Path) -> None:
    """The shape an NPY header claims against the bytes after the header and the memory limit."""
    fmt = np.lib.format
    with open(path, "rb") as fh:
        try:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(fh)
            else:
                shape, _, dtype = fmt._read_array_header(fh, version)
        except ValueError as err:
            raise InputError(f"not a valid NPY file: {' '.join(str(err).split())[:160]}") from None
        if dtype.hasobject:
            raise InputError("NPY holds Python objects (pickled data): refused for safety")
        data_bytes = path.stat().st_size - fh.tell()
    check_claimed_size(shape, dtype, data_bytes, "NPY header")


def _read_npy(path: Path, notes: list[str]) -> list[Signal]:
    _check_npy_header(path)
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as err:
        msg = str(err)
        if "allow_pickle" in msg or "pickle" in msg.lower():
            raise InputError("NPY holds Python objects (pickled data): refused for safety") from err
        raise
    if isinstance(data, np.lib.npyio.NpzFile):  # pragma: no cover - .npz not listed
        raise InputError("NPZ archives are not supported")
    return [Signal(data=to_image(data, notes))]


MRC_NO_MAP_ID = "Map ID string not found"  # mrcfile's words for a header without "MAP "
MRC_NO_STAMP = "Unrecognised machine stamp"  # ... and without a byte-order stamp


def _open_mrc(path: Path, notes: list[str], **kw):
    """``mrcfile.open`` (read-only, strict).  A header whose only faults are a missing ``MAP ``
    ID (zeros or blanks where it goes, not other bytes) and machine stamp, both new in MRC2000
    and left out by older writers, is read anyway, in this machine's byte order, with a note
    (a header of the other byte order claims sizes that :func:`check_claimed_size` refuses)."""
    import mrcfile

    try:
        return mrcfile.open(path, mode="r", permissive=False, **kw)
    except ValueError as err:
        with open(path, "rb") as fh:
            fh.seek(208)  # header word 53, "MAP " since MRC2000; zeros (or blanks) before
            blank = fh.read(4) in (bytes(4), b"    ")
        if MRC_NO_MAP_ID not in str(err) or not blank:
            raise
        fault = " ".join(str(err).split())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mrc = mrcfile.open(path, mode="r", permissive=True, **kw)
    faults = sorted(m for m in {" ".join(str(w.message).split()) for w in caught} - {fault}
                    if not m.startswith(MRC_NO_STAMP))
    if faults:
        mrc.close()
        raise InputError(f"not a valid MRC file: {'; '.join([fault] + faults)}")
    note = "MRC header without the 'MAP ' ID (a writer older than MRC2000?): read as its header says"
    if note not in notes:
        notes.append(note)
    return mrc


def _read_mrc(path: Path, notes: list[str]) -> list[Signal]:
    import mrcfile

    with _open_mrc(path, notes, header_only=True) as mrc:
        h = mrc.header
        dtype = mrcfile.utils.data_dtype_from_header(h)
        shape = (int(h.nz), int(h.ny), int(h.nx))
        data_bytes = path.stat().st_size - h.nbytes - int(h.nsymbt)
    check_claimed_size(shape, dtype, data_bytes, "MRC header")
    with _open_mrc(path, notes) as mrc:
        if mrc.data is None:
            raise InputError("MRC file has no data block")
        data = np.array(mrc.data)
        vs = mrc.voxel_size
        pixel_size = normalize_length_unit(float(vs.x), float(vs.y), "Å")
    return [Signal(data=data, pixel_size=pixel_size)]


def _rsciio_signals(dicts: list[dict], notes: list[str], fmt: str,
                    file_bytes: int | None) -> list[Signal]:
    """Turn rosettasciio's signal dictionaries (read lazily) into image :class:`Signal` s.

    Each image's claimed size is checked with :func:`check_claimed_size`
    (against ``file_bytes`` and the memory limit) before its data are read.
    """
    images = []
    skipped = []
    for d in dicts:
        lazy = d["data"]
        axes = d.get("axes", [])
        title = str(d.get("metadata", {}).get("General", {}).get("title", "") or "")
        sig_axes = [a for a in axes if not a.get("navigate", False)]
        if len(sig_axes) != 2 or len(lazy.shape) < 2:
            kind = {0: "scalar", 1: "1-D spectrum/profile"}.get(len(sig_axes), f"{len(sig_axes)}-D")
            skipped.append(f"{kind} signal{(' ' + repr(title)) if title else ''} of shape {lazy.shape}")
            continue
        check_claimed_size(lazy.shape, lazy.dtype, file_bytes, f"{fmt} header")
        data = to_image(np.asarray(lazy), notes, channels_last=False)  # its axes name the image
        ay, ax = sig_axes[0], sig_axes[1]
        unit = ax.get("units") or None
        pixel_size = normalize_length_unit(ax.get("scale", 1.0), ay.get("scale", 1.0), unit)
        images.append(Signal(data=data, pixel_size=pixel_size, title=title))
    if not images:
        found = "; ".join(skipped) if skipped else "no signal"
        raise InputError(f"no 2-D image in file (found: {found})")
    if skipped:
        notes.append("ignored non-image signals: " + "; ".join(skipped))
    if len(images) > 1:
        for k, s in enumerate(images):
            label = re.sub(r"[^A-Za-z0-9.-]+", "-", s.title).strip("-")[:40]
            s.name = f"{k}_{label}" if label else str(k)
    return images


def _check_dm_headers(path: Path) -> None:
    """The size each image of a DM file claims, from its tags alone (rosettasciio's parser)."""
    from rsciio.digitalmicrograph._api import DigitalMicrographReader, ImageObject

    with open(path, "rb") as fh:
        dm = DigitalMicrographReader(fh)
        dm.parse_file()
        for imdict in dm.get_image_dictionaries():
            image = ImageObject(imdict, fh)
            check_claimed_size(image.shape, image.dtype, path.stat().st_size, "DM3/DM4 header")


def _read_dm(path: Path, notes: list[str]) -> list[Signal]:
    from rsciio.digitalmicrograph import file_reader

    # uncompressed: an image cannot hold more bytes than the file
    try:
        dicts = file_reader(str(path), lazy=True)
    except ValueError as err:
        if "RGBA" not in str(err):
            raise
        _check_dm_headers(path)  # RGB(A) images cannot be read lazily: check the tags first
        dicts = file_reader(str(path))
    return _rsciio_signals(dicts, notes, "DM3/DM4", path.stat().st_size)


def _read_ser(path: Path, notes: list[str]) -> list[Signal]:
    from rsciio.tia import file_reader

    return _rsciio_signals(file_reader(str(path), lazy=True), notes, "SER", path.stat().st_size)


def _check_hdf5_storage(path: Path) -> None:
    """Every large dataset of an HDF5 file really holds its data.

    A dataset's header may claim any shape: chunks that were never written
    read as fill values (a 40 GB array of zeros from a 10 kB file).  Refused:
    a chunked dataset with chunks missing, and an uncompressed one claiming
    more bytes than the file has.  (Compressed datasets may hold more than
    the file; the memory limit applies to them when they are read.)
    """
    import h5py

    file_bytes = path.stat().st_size
    problems: list[str] = []

    def visit(name, obj):
        if problems or not isinstance(obj, h5py.Dataset) or obj.shape is None:
            return
        claimed = math.prod(obj.shape) * obj.dtype.itemsize
        if claimed <= max(file_bytes, 1 << 20):
            return
        desc = f"dataset /{name} claims {' x '.join(map(str, obj.shape))} {obj.dtype} " \
               f"({_human_bytes(claimed)})"
        if obj.chunks is not None:
            expected = math.prod(-(-n // c) for n, c in zip(obj.shape, obj.chunks))
            stored = obj.id.get_num_chunks()
            if stored < expected:
                problems.append(f"{desc} but only {stored} of its {expected} chunks are stored")
                return
        if obj.id.get_create_plist().get_nfilters() == 0 and claimed > file_bytes:
            problems.append(f"{desc} but the file holds only {_human_bytes(file_bytes)}")

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    if problems:
        raise InputError(f"cannot read as EMD (truncated or corrupt?): {problems[0]}")


def _read_emd(path: Path, notes: list[str]) -> list[Signal]:
    import h5py
    from rsciio.emd import file_reader

    if not h5py.is_hdf5(path):
        raise InputError("not an HDF5 file (EMD files are HDF5)")
    _check_hdf5_storage(path)
    # datasets may be compressed: only the memory limit bounds the claimed size
    return _rsciio_signals(file_reader(str(path), lazy=True), notes, "EMD", None)


FORMAT_NAMES = {
    "tiff": "TIFF",
    "pillow": "PNG/JPEG",
    "npy": "NPY",
    "dm": "DM3/DM4",
    "ser": "TIA SER",
    "emd": "EMD",
    "mrc": "MRC",
}

_READERS = {
    "tiff": _read_tiff,
    "pillow": _read_pillow,
    "npy": _read_npy,
    "dm": _read_dm,
    "ser": _read_ser,
    "emd": _read_emd,
    "mrc": _read_mrc,
}


def is_supported(path: str | Path) -> bool:
    """True if the suffix of ``path`` names a readable format."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def read_image(path: str | Path) -> ImageFile:
    """Read every image signal of a micrograph file.

    Parameters
    ----------
    path : str or Path
        File with one of :data:`SUPPORTED_SUFFIXES`.

    Returns
    -------
    ImageFile
        Signals with arrays of shape ``(*stack, H, W)``, validated by
        :func:`check_signal_array`, and notes (warnings) for the user.

    Raises
    ------
    InputError
        One-line reason: missing, empty, unsupported, unreadable/truncated,
        not an image, NaN-containing, ...
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"unsupported file type {suffix or '(no suffix)'!r} "
            f"(supported: {' '.join(sorted(SUPPORTED_SUFFIXES))})"
        )
    problem = path_problem(path)
    if problem:
        raise InputError("no such file" if problem == "no such file or folder" else problem)
    if path.is_dir():
        raise InputError("is a directory, not a file")
    size = path.stat().st_size
    if size == 0:
        raise InputError("empty file (0 bytes)")
    reader_name = SUPPORTED_SUFFIXES[suffix]
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # Library chatter (e.g. rsciio's tag parsing) must not hide our one-line errors.
            warnings.simplefilter("ignore")
            signals = _READERS[reader_name](path, notes)
    except InputError:
        raise
    except MemoryError as err:
        raise InputError("not enough memory to read it") from err
    except Exception as err:  # library errors: truncated / corrupt / wrong content
        msg = " ".join(str(err).split()) or type(err).__name__
        if len(msg) > 160:
            msg = msg[:157] + "..."
        raise InputError(
            f"cannot read as {FORMAT_NAMES[reader_name]} (truncated or corrupt?): "
            f"{type(err).__name__}: {msg}"
        ) from err
    checked = []
    for s in signals:
        try:
            s.data = check_signal_array(s.data)
        except InputError as err:
            label = f"signal {s.name}: " if s.name else ""
            raise InputError(f"{label}{err}") from None
        checked.append(s)
    return ImageFile(path=path, reader=reader_name, signals=checked, warnings=notes)
