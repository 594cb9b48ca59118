"""The Python API: restore arrays and HyperSpy signals without going through files.

    >>> import restoration
    >>> restored = restoration.restore(frame)           # 2-D ndarray -> float32, input units
    >>> stack = restoration.restore(frames)             # (N, H, W) -> (N, H, W)
    >>> s_restored = restoration.restore(signal2d)      # HyperSpy Signal2D -> new Signal2D
    >>> model = restoration.load_model(weights="my.caffemodel")
    >>> for frame in frames:                            # the net is loaded once
    ...     out = model.restore(frame, progress=False)

The options are restore.py's (``--model``, ``--weights``, ``--gpu``, ``--tile``,
``--engine``, ``--align-rows``, ``--self-ensemble``) with the same defaults; the result is the array restore.py
writes to ``<name>_restored.tif`` for the same frame, bit for bit (both run
:meth:`restoration.engine.Restorer.restore` on the frame as read).

Checks reuse the CLI's: input arrays go through
:func:`restoration.io.check_signal_array` (dtype, complex, NaN/Inf, empty,
frames below 2 x 2 px, float32 range) and raise
:class:`restoration.io.InputError`; the model through
:func:`restoration.validate.validate_model` and a trial load of Caffe in a
child process (:func:`restoration.validate.trial_load`), raising
:class:`restoration.validate.ModelError` -- never a Caffe abort.
"""
from __future__ import annotations

import datetime
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np

from stem_restore.network import CONTEXT, RECEPTIVE_FIELD, context_of, read_net

from .engine import ENGINES, Restorer, conv_engine_info, file_sha256
from .ensemble import SelfEnsemble, ensemble_option
from .io import InputError, check_signal_array, to_image
from .prealign import RowAligned, align_option
from .validate import ModelError, glog_reason, trial_load, validate_model

# Caffe's INFO logs (every layer of every net it builds) off the terminal / notebook; set
# before anything imports caffe (validate_model may, through caffe.proto).
os.environ.setdefault("GLOG_minloglevel", "2")

REPO = Path(__file__).resolve().parent.parent
#: The shipped model's weights (``--weights`` default).
DEFAULT_WEIGHTS = REPO / "models" / "stem_restore.caffemodel"
#: A single frame with at least this many pixels gets a progress bar: on a 2-core CPU it takes
#: about 9 s at fp32 on AVX2 (~0.03 Mpx/s) and 1-2 s in bf16 (0.14-0.25 Mpx/s; README "From Python").
LONG_FRAME_PX = 512 * 512
#: Key of the provenance node added to a restored HyperSpy signal's metadata.
METADATA_NODE = "stem_restore"
#: The normalisation, as recorded in the provenance.
NORMALIZATION = ("stem_restore.normalize: (x - 1st percentile) / std, whole image; "
                 "output denormalised with the same statistics")


# --------------------------------------------------------------------------
# options and model checks (shared with restore.py's command line)
# --------------------------------------------------------------------------
def default_model() -> Path:
    """models/deploy.prototxt if a trained model ships one, else prototxt/deploy.prototxt."""
    shipped = REPO / "models" / "deploy.prototxt"
    return shipped if shipped.exists() else REPO / "prototxt" / "deploy.prototxt"


def model_files(model: str | Path | None = None,
                weights: str | Path | None = None) -> tuple[Path, Path]:
    """The deploy prototxt and .caffemodel to use (defaults as restore.py's), both existing.

    Raises
    ------
    ModelError
        A file is missing (the message says how to pass or make one).
    """
    model = Path(model) if model is not None else default_model()
    weights = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    if not model.is_file():
        raise ModelError(f"model {model}: {_not_a_file(model)} (pass --model deploy.prototxt, "
                         f"or model= in Python)")
    if not weights.is_file():
        raise ModelError(f"weights {weights}: {_not_a_file(weights)}. Pass --weights x.caffemodel "
                         f"(weights= in Python): a run's runs/<schedule>/final.caffemodel after "
                         f"./run_training.sh, or ship it as {DEFAULT_WEIGHTS.relative_to(REPO)} with "
                         f"scripts/ship_model.sh.")
    return model, weights


def _not_a_file(path: Path) -> str:
    return "a folder, not a file" if path.is_dir() else "no such file"


def check_tile(tile: int | None, context: int = CONTEXT) -> None:
    """``tile`` (window edge, px) is None (automatic), 0 (whole image) or above 2 x ``context``.

    Raises :class:`ValueError` otherwise (windows overlap by the net's
    receptive-field radius: 24 px for the paper's net, :data:`stem_restore.network.CONTEXT`;
    a variant's own, :func:`stem_restore.network.context_of`).
    """
    if tile is None:
        return
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)):
        raise ValueError(f"tile must be an integer number of px or None (got {tile!r})")
    if tile < 0 or 0 < tile <= 2 * context:
        raise ValueError(f"--tile must be 0 or larger than {2 * context} px (got {tile})")


def check_engine(engine: str) -> None:
    """``engine`` is one of :data:`restoration.engine.ENGINES`; :class:`ValueError` otherwise."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)} (got {engine!r})")


def check_gpu(gpu: int | None) -> str | None:
    """Why Caffe cannot use GPU ``gpu``, or None (also for ``gpu=None``, the CPU).

    Tested in a child process, because a CPU-only Caffe aborts the whole process.
    """
    if gpu is None:
        return None
    if isinstance(gpu, bool) or not isinstance(gpu, (int, np.integer)) or gpu < 0:
        return f"gpu must be a GPU number >= 0 or None for the CPU (got {gpu!r})"
    code = ("import os; os.environ['GLOG_minloglevel']='2'; import caffe; "
            f"caffe.set_mode_gpu(); caffe.set_device({int(gpu)})")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if r.returncode == 0:
        return None
    reason = glog_reason(r.stderr)
    if "CPU-only" in reason:
        return (f"cannot use GPU {gpu}: this Caffe build is CPU-only (Caffe says: {reason}); "
                f"run without --gpu, or build Caffe with CUDA (bash scripts/install.sh --cuda)")
    return f"cannot use GPU {gpu}: {reason}"


# --------------------------------------------------------------------------
# progress
# --------------------------------------------------------------------------
def interactive() -> bool:
    """Whether a person is likely watching: stderr is a terminal, or an IPython/Jupyter kernel."""
    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return bool(get and get() is not None)


class _Progress:
    """A tqdm bar over frames, with a ticker that redraws the elapsed time once a second
    (a single frame runs in Caffe for seconds without an update); no-op when disabled."""

    def __init__(self, total: int, enabled: bool, desc: str = "restoring"):
        self.bar = None
        self._stop = threading.Event()
        self._thread = None
        if not enabled:
            return
        from tqdm.std import tqdm

        self.bar = tqdm(total=total, unit="frame", desc=desc, file=sys.stderr, leave=total > 1)
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self.bar.refresh()

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self._stop.set()
            self._thread.join()
            self.bar.close()

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def show_progress(progress: bool | None, n_frames: int, frame_px: int) -> bool:
    """Whether to draw a bar: ``progress`` if given, else for a stack or a frame of at
    least :data:`LONG_FRAME_PX` pixels when :func:`interactive`."""
    if progress is not None:
        return bool(progress)
    return (n_frames > 1 or frame_px >= LONG_FRAME_PX) and interactive()


# --------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------
def restore_frames(restorer, frames: np.ndarray, progress: bool | None = None,
                   out: np.ndarray | None = None) -> tuple[np.ndarray, list[dict]]:
    """Restore every frame of a checked ``(N, H, W)`` array.

    Parameters
    ----------
    restorer : Restorer
        Anything with ``restore(frame, out=...)`` returning a
        :class:`restoration.engine.FrameResult`.
    frames : ndarray, shape (N, H, W)
        Already validated (:func:`restoration.io.check_signal_array`).
    progress : bool or None
        See :func:`show_progress`.
    out : ndarray, shape (N, H, W), float32, optional

    Returns
    -------
    restored : ndarray, float32, shape (N, H, W)
        In the input's intensity units.
    stats : list of dict
        Per frame: normalisation ``offset`` and ``scale`` (input units), ``tile``, ``windows``.

    Raises
    ------
    InputError
        The network gave NaN or infinite values (input values too large for float32).
    """
    restored = np.empty(frames.shape, dtype=np.float32) if out is None else out
    stats = []
    with _Progress(len(frames), show_progress(progress, len(frames), frames[0].size)) as bar:
        for k, frame in enumerate(frames):
            res = restorer.restore(frame, out=restored[k])
            stats.append({"offset": res.stats.offset, "scale": res.stats.scale,
                          "tile": res.tile, "windows": res.n_tiles})
            bar.update()
    bad = restored.size - int(np.count_nonzero(np.isfinite(restored)))
    if bad:
        raise InputError(f"restoration gave {bad} NaN or infinite value(s) (values too large for "
                         f"float32?); nothing written")
    return restored, stats


def check_array(image) -> np.ndarray:
    """A 2-D frame or an ``(N, H, W)`` stack, checked by
    :func:`restoration.io.check_signal_array`; :class:`InputError` naming the problem.

    An RGB(A) array with the colour last (``(H, W, 3 | 4)`` or ``(N, H, W, 3 | 4)``, H and W
    above 4 px) or with RGB records (HyperSpy's ``rgb8``) becomes its luminance, with a warning
    (:func:`restoration.io.to_image`), as restore.py does with RGB files."""
    if image is None or isinstance(image, (str, bytes, os.PathLike)):
        raise InputError(f"expected an image array or a HyperSpy Signal2D, got {type(image).__name__} "
                         f"{image!r}: to restore a file, read it first (restoration.io.read_image, "
                         f"hyperspy.api.load) or use restore.py")
    if isinstance(image, np.ndarray) and image.dtype.kind == "O":
        raise InputError("unsupported data type object: pass a real numeric array")
    if np.ma.isMaskedArray(image) and np.ma.is_masked(image):
        warnings.warn(f"masked array: the mask ({int(np.ma.count_masked(image))} pixels) is ignored; "
                      f"masked pixels are restored from the values stored under them", stacklevel=3)
    try:
        a = np.asarray(image)
    except (TypeError, ValueError) as err:
        raise InputError(f"not an image array: {err}") from None
    a = _as_intensities(a)
    if a.ndim not in (2, 3) and a.size:
        raise InputError(f"expected a 2-D frame (H, W) or a stack (N, H, W), got {a.ndim}-D "
                         f"data of shape {a.shape} (use a HyperSpy Signal2D for other "
                         f"navigation shapes)")
    return check_signal_array(a)


def _as_intensities(a: np.ndarray, channels_last: bool = True) -> np.ndarray:
    """:func:`restoration.io.to_image` with its notes as warnings."""
    notes: list[str] = []
    a = to_image(a, notes, channels_last)
    for note in notes:
        warnings.warn(note, stacklevel=4)
    return a


def is_signal2d(obj) -> bool:
    """Whether ``obj`` is a HyperSpy signal (imports nothing when HyperSpy is not loaded)."""
    hs = sys.modules.get("hyperspy.signal")
    return hs is not None and isinstance(obj, hs.BaseSignal)


# --------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------
class Model:
    """A Caffe restoration net, loaded once, that restores many frames.

    Parameters
    ----------
    model, weights : path or None
        Deploy prototxt and trained ``.caffemodel`` (default: the shipped
        model, as restore.py's ``--model`` / ``--weights``).
    gpu : int or None
        GPU number, or None for the CPU (``--gpu``).
    tile : int or None
        Window edge fed to the net in px; None = automatic (bounded memory),
        0 = whole image (``--tile``).  The result does not depend on it.
    engine : {"auto", "layers", "net"}
        ``--engine``; see :mod:`restoration.engine`.
    align_rows : bool, str or None
        ``--align-rows``: align the scan lines of each frame before the net, and,
        where the frame showed line jitter, those of the net's output after it
        (:mod:`restoration.prealign`; off by default).  True: the default parameters; a ``"key=value,..."`` string:
        parameters of :func:`stem_restore.rowalign.align_rows` that override the
        defaults of the first alignment.
    self_ensemble : bool
        ``--self-ensemble``: the mean of the net's output and its output on the
        frame with its scan lines in reverse order, mirrored back
        (:mod:`restoration.ensemble`; twice the time; off by default).
    checked : bool
        The files, options and GPU were already checked (restore.py does so
        before it creates its output folder); only Caffe's trial load runs.

    Raises
    ------
    ModelError
        Missing or invalid model files (one line naming the file).
    ValueError
        Bad ``tile``, ``engine`` or ``align_rows``.
    RuntimeError
        The GPU cannot be used.
    """

    def __init__(self, model: str | Path | None = None, weights: str | Path | None = None,
                 gpu: int | None = None, tile: int | None = None, engine: str = "auto",
                 align_rows: bool | str | None = None, self_ensemble: bool = False,
                 checked: bool = False):
        self.model, self.weights = model_files(model, weights)
        self.align_rows = align_option(align_rows)
        self.self_ensemble = ensemble_option(self_ensemble)
        if not checked:
            check_tile(tile)
            check_engine(engine)
            validate_model(self.model, self.weights)
            problem = check_gpu(gpu)
            if problem:
                raise RuntimeError(problem)
        check_tile(tile, context_of(read_net(self.model)))  # a variant that sees farther needs more
        trial_load(self.model, self.weights)  # Caffe's own checks, in a child that may abort
        try:
            self.restorer = Restorer.from_files(self.model, self.weights, gpu, tile=tile, engine=engine)
        except Exception as err:
            raise ModelError(f"cannot load model {self.model} with weights {self.weights}: "
                             f"{err}") from err
        if self.self_ensemble:
            self.restorer = SelfEnsemble(self.restorer)
        if self.align_rows is not None:  # alignment first, then the (ensembled) net
            self.restorer = RowAligned(self.restorer, self.align_rows)
        self.gpu, self.tile = gpu, tile
        self.weights_sha256 = file_sha256(self.weights)
        self.conv_engine = conv_engine_info(gpu)

    @property
    def engine(self) -> str:
        """The engine that runs: ``layers`` or ``net``."""
        return self.restorer.engine

    def provenance(self, software: str = "stem-restore restoration.restore") -> dict:
        """What restored the data: model files, sha256, engine, convolution engine/math, device.

        The same keys as the ``Info`` of restore.py's TIFFs (JSON-serialisable).
        """
        return {
            "software": software,
            "model": str(self.model.resolve()),
            "weights": str(self.weights.resolve()),
            "weights_sha256": self.weights_sha256,
            "parameters": {
                "tile": "auto" if self.tile is None else self.tile, "context": self.restorer.context,
                "engine": self.engine,
                "conv_engine": self.conv_engine,
                "device": "cpu" if self.gpu is None else f"gpu:{self.gpu}",
                "normalization": NORMALIZATION,
                "small_image_padding": f"symmetric to {RECEPTIVE_FIELD} px, cropped back",
                "align_rows": self.align_rows,
                "align_output": None if self.align_rows is None else self.restorer.output,
                "align_output_min_input_jitter_px": None if self.align_rows is None else self.restorer.min_input_jitter,
                "self_ensemble": "slow-scan mirror mean" if self.self_ensemble else None,
            },
        }

    def restore(self, image, progress: bool | None = None):
        """Restore a frame, a stack or a HyperSpy signal (see :func:`restore`)."""
        if is_signal2d(image):
            return self._restore_signal(image, progress)
        frames = check_array(image)
        restored, _ = restore_frames(self.restorer, frames.reshape((-1,) + frames.shape[-2:]),
                                     progress)
        return restored.reshape(frames.shape)

    def _restore_signal(self, signal, progress: bool | None):
        """A new signal of the same class, axes and metadata, with the restored data and
        provenance under ``metadata.stem_restore``; ``signal`` is not modified.

        A lazy (dask) signal is read into memory; the result is a non-lazy signal."""
        dims = signal.axes_manager.signal_dimension
        if dims != 2:
            raise InputError(f"a HyperSpy signal with 2 signal dimensions (Signal2D) is needed, got "
                             f"{type(signal).__name__} with {dims} (use as_signal2D to pick the "
                             f"image axes)")
        if getattr(signal, "ragged", False):
            raise InputError("ragged signals are not images")
        data = check_signal_array(_as_intensities(np.asarray(signal.data), channels_last=False))
        frames = data.reshape((-1,) + data.shape[-2:])
        restored, stats = restore_frames(self.restorer, frames, progress)
        # HyperSpy's own copy (same class, axes, metadata, original_metadata), new data
        result = signal._deepcopy_with_new_data(restored.reshape(data.shape))
        if getattr(result, "_lazy", False):
            result.compute()  # a lazy input was read to restore it: the result is in memory
        info = self.provenance()
        info.update({
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "source_dtype": str(data.dtype),
            "norm_offset": [float(s["offset"]) for s in stats],
            "norm_scale": [float(s["scale"]) for s in stats],
        })
        result.metadata.set_item(METADATA_NODE, info)
        return result


_CACHE: dict[tuple, Model] = {}


def _cache_key(model, weights, gpu, tile, engine, align_rows, self_ensemble) -> tuple:
    """Resolved files with their size and modification time (a retrained file reloads)."""
    files = model_files(model, weights)
    stamps = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return stamps + (gpu, tile, engine, align_option(align_rows), ensemble_option(self_ensemble))


def load_model(model: str | Path | None = None, weights: str | Path | None = None,
               gpu: int | None = None, tile: int | None = None, engine: str = "auto",
               align_rows: bool | str | None = None, self_ensemble: bool = False) -> Model:
    """Load (and check) a :class:`Model` once; restore many frames with ``Model.restore``.

    Same options and defaults as restore.py.  Each call loads anew; :func:`restore`
    keeps the last model it loaded.
    """
    return Model(model, weights, gpu=gpu, tile=tile, engine=engine, align_rows=align_rows,
                 self_ensemble=self_ensemble)


def cached_model(model=None, weights=None, gpu=None, tile=None, engine="auto", align_rows=None,
                 self_ensemble=False) -> Model:
    """The model :func:`restore` uses: loaded on the first call, kept while the options and
    the files (size, modification time) stay the same."""
    key = _cache_key(model, weights, gpu, tile, engine, align_rows, self_ensemble)
    if key not in _CACHE:
        _CACHE.clear()  # one net at a time: each holds Caffe's buffers
        _CACHE[key] = Model(model, weights, gpu=gpu, tile=tile, engine=engine, align_rows=align_rows,
                            self_ensemble=self_ensemble)
    return _CACHE[key]


def restore(image, model: str | Path | Model | None = None, weights: str | Path | None = None,
            gpu: int | None = None, tile: int | None = None, engine: str = "auto",
            progress: bool | None = None, align_rows: bool | str | None = None,
            self_ensemble: bool = False):
    """Restore STEM frames with the CNN; results are in the input's intensity units.

    Parameters
    ----------
    image : ndarray or hyperspy Signal2D
        A 2-D frame ``(H, W)``, a stack ``(N, H, W)`` (integer or float, real,
        finite, each frame at least 2 x 2 px), or a HyperSpy ``Signal2D`` of
        any navigation shape.  RGB(A) (``(..., H, W, 3 | 4)`` or HyperSpy's
        ``rgb8`` / ``rgba8``) is restored as its luminance, with a warning.
    model : path, Model or None
        Deploy prototxt (default: the shipped one), or a loaded :class:`Model`
        (then leave the other model options at their defaults).
    weights, gpu, tile, engine, align_rows, self_ensemble
        As restore.py's ``--weights``, ``--gpu``, ``--tile``, ``--engine``,
        ``--align-rows``, ``--self-ensemble`` (see :class:`Model`).  The default model is loaded on the first call
        and cached (:func:`cached_model`).
    progress : bool or None
        A tqdm bar on stderr; None (default): for stacks and frames of at
        least :data:`LONG_FRAME_PX` px, when a terminal or a Jupyter kernel is
        attached.

    Returns
    -------
    ndarray (float32, same shape; an RGB(A) array's without the colour axis) or Signal2D
        For a signal: a new one with the same class, axes (scale, units,
        offset, names) and metadata, plus provenance under
        ``metadata.stem_restore`` (model files, sha256, engine, conv engine /
        math mode, date, normalisation statistics).  The input is not modified.

    Raises
    ------
    InputError
        Bad input: wrong number of dimensions, complex / boolean / non-numeric
        dtype, NaN or infinite values, empty, frames under 2 x 2 px, values
        beyond float32.
    ModelError, ValueError, RuntimeError
        Bad model files, options, or GPU (see :class:`Model`).
    """
    if isinstance(model, Model):
        if (weights, gpu, tile, engine, align_rows) != (None, None, None, "auto", None) or \
                ensemble_option(self_ensemble):
            raise ValueError("pass weights/gpu/tile/engine/align_rows/self_ensemble to load_model(), "
                             "not with a loaded Model")
        net = model
    else:
        if not is_signal2d(image):
            image = check_array(image)  # bad input fails before the net is loaded
        net = cached_model(model, weights, gpu, tile, engine, align_rows, self_ensemble)
    return net.restore(image, progress=progress)
