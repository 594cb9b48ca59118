"""Outputs of slow methods kept on disk between evaluations.

Deciding whether a new snapshot beats the shipped model means scoring it on the
same images as before; BM3D and the ``--compare`` networks (the shipped model)
then give the same outputs again, and on a 2-core CPU they are half of a
16 × 256² evaluation (BENCHMARKS.md, "evaluate").  ``python -m evaluate --cache
DIR`` wraps every slow baseline (:attr:`evaluate.baselines.Baseline.slow`) and
every ``--compare`` network in :class:`CachedMethod`: an output is computed once
and read back afterwards.

A cached output is used only for the same method, the same parameters, the same
input bytes (dtype and shape included) and the same code: the key also holds a
tag of what else the output depends on -- for a baseline (:func:`code_tag`) the
source of the project's code it runs (its functions, the helpers they call, the
constants they read) and the installed versions of numpy, scipy and bm3d; for a network (:func:`network_tag`) its prototxt and weights, the
restoration code, the loaded Caffe/oneDNN/cuDNN libraries, the engine and its math, and
the CPU -- so editing a method, changing weights, rebuilding Caffe or upgrading a package
starts afresh instead of reusing stale outputs (a baseline's grid is not in its tag: the
parameters are in the key).  Each entry stores the seconds the output took
to compute, so ``seconds_per_image`` in results.csv stays the method's cost,
not the cache's.  Entries are written atomically (:mod:`stem_restore.atomic`);
an unreadable entry is recomputed and replaced, with a warning naming it.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import inspect
import json
import pathlib
import textwrap
import time
import warnings
import zipfile
from collections.abc import Callable

import numpy as np

from stem_restore.atomic import atomic_path
from stem_restore.machine import cpu_model, gpu_model

__all__ = ["CachedMethod", "code_tag", "network_tag"]

#: Packages whose versions are part of every key (those installed).
KEY_PACKAGES = ("numpy", "scipy", "bm3d")


#: Packages whose functions a baseline's code tag follows (the project's own).
OWN_PACKAGES = ("evaluate", "stem_restore")


#: Values whose ``repr`` stands for them in a code tag (a constant a baseline reads).
_CONSTANT_TYPES = (bool, int, float, complex, str, bytes, tuple, frozenset, type(None))


def _names(fn: Callable) -> set[str]:
    """Global names ``fn`` uses: in its code, in nested code (comprehensions, lambdas), and in
    its default arguments' expressions (evaluated once, at definition)."""
    def code_names(code) -> set[str]:
        names = set(code.co_names)
        for const in code.co_consts:
            if inspect.iscode(const):
                names |= code_names(const)
        return names

    names = code_names(fn.__code__)
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    node = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))), None)
    if node is not None:
        for default in [*node.args.defaults, *filter(None, node.args.kw_defaults)]:
            names |= {n.id for n in ast.walk(default) if isinstance(n, ast.Name)}
    return names


def _source_closure(function: Callable) -> str:
    """What a baseline's output depends on in this project's code: the source of ``function``
    and, for every global it names (nested comprehensions and default arguments included), a
    function of :data:`OWN_PACKAGES`: followed recursively; a module of theirs: its whole file;
    a constant (:data:`_CONSTANT_TYPES`): its ``repr``."""
    seen: dict[str, str] = {}
    todo = [function]
    while todo:
        fn = inspect.unwrap(todo.pop())
        name = f"{fn.__module__}.{fn.__qualname__}"
        if fn.__name__ == "<lambda>":
            name += f":{fn.__code__.co_firstlineno}"
        if name in seen or fn.__module__.split(".")[0] not in OWN_PACKAGES:
            continue
        extra = []
        for ref in sorted(_names(fn)):
            if ref not in fn.__globals__:
                continue
            obj = fn.__globals__[ref]
            if inspect.isfunction(obj):
                todo.append(obj)
            elif inspect.ismodule(obj):
                if obj.__name__.split(".")[0] in OWN_PACKAGES:
                    extra.append(pathlib.Path(obj.__file__).read_text())
            elif isinstance(obj, _CONSTANT_TYPES):
                extra.append(f"{ref}={obj!r}\n")
        seen[name] = inspect.getsource(fn) + "".join(extra)
    return "".join(seen[name] for name in sorted(seen))


def code_tag(method: Callable | None = None) -> str:
    """What a baseline's outputs depend on besides its input and parameters: the source of
    ``method`` and of the project's functions it calls, recursively (:func:`_source_closure`;
    all of :mod:`evaluate.baselines` where ``method`` is not one of its functions), and the
    versions of :data:`KEY_PACKAGES`.  A change of a grid or of another method keeps the
    entries."""
    from . import baselines

    if inspect.isfunction(method) and method.__module__ == baselines.__name__:
        source = _source_closure(method).encode()
    else:
        source = pathlib.Path(baselines.__file__).read_bytes()
    parts = [hashlib.sha256(source).hexdigest()]
    for name in KEY_PACKAGES:
        try:
            parts.append(f"{name}={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name}=absent")
    return ";".join(parts)


def _sha256(*paths: pathlib.Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


#: Shared libraries whose bytes a network's output depends on, by file-name prefix: Caffe's
#: Python module and library, oneDNN, cuDNN, cuBLAS.
ENGINE_LIBRARIES = ("_caffe", "libcaffe", "libdnnl", "libmkldnn", "libcudnn", "libcublas")


def engine_libraries() -> list[pathlib.Path]:
    """The :data:`ENGINE_LIBRARIES` this process has loaded (``/proc/self/maps``), sorted;
    only Caffe's Python module (``caffe._caffe``) where the map cannot be read."""
    import caffe

    found = {pathlib.Path(caffe._caffe.__file__).resolve()}
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                fields = line.split(maxsplit=5)  # address perms offset dev inode [path]
                path = fields[5].strip() if len(fields) == 6 else ""
                if path.startswith("/") and pathlib.Path(path).name.startswith(ENGINE_LIBRARIES):
                    found.add(pathlib.Path(path).resolve())
    except OSError:
        pass
    return sorted(p for p in found if p.is_file())


def network_tag(model: str | pathlib.Path, weights: str | pathlib.Path, self_ensemble: bool = False,
                align_rows: bool = False, gpu: int | None = None) -> str:
    """What a network's restored image depends on besides its input: the deploy prototxt and
    the weights (their bytes), the forward-pass code (every module of :mod:`restoration` and
    :mod:`stem_restore`), the libraries that run it (the bytes of every loaded
    :func:`engine_libraries`: Caffe, oneDNN, cuDNN), the engine and its math
    (:func:`restoration.engine.conv_engine_info` on ``gpu`` or the CPU: CPU or GPU, cuDNN or
    not, fp32/bf16/tf32, the CPU's instruction set), the CPU model, whether the net runs as the
    mirror self-ensemble (:mod:`restoration.ensemble`) and with row alignment around it
    (:mod:`restoration.prealign`, default parameters)."""
    import os

    import restoration
    import stem_restore
    from restoration.engine import conv_engine_info
    from restoration.prealign import align_option
    from stem_restore.rowalign import OUTPUT_ALIGN, OUTPUT_MIN_INPUT_JITTER

    code = sorted(p for pkg in (restoration, stem_restore) for p in pathlib.Path(pkg.__file__).parent.glob("*.py"))
    cpu = cpu_model()
    return ";".join([f"net={_sha256(pathlib.Path(model), pathlib.Path(weights))}",
                     f"code={_sha256(*code)}",
                     f"libraries={_sha256(*engine_libraries())}",
                     f"engine={conv_engine_info(gpu)}"]
                    + ([f"gpu={gpu_model(gpu)}"] if gpu is not None else [])
                    + [f"math={os.environ.get('CAFFE_DNNL_MATH', '')}", f"cpu={cpu}"]
                    + (["self_ensemble"] if self_ensemble else [])
                    + ([f"align_rows={align_option(True)};align_output={OUTPUT_ALIGN};"
                         f"min_input_jitter={OUTPUT_MIN_INPUT_JITTER}"] if align_rows else []))


class CachedMethod:
    """``method(image, **params)`` with its outputs kept in ``folder``.

    Parameters
    ----------
    name : str
        The method's name (part of the key).
    method : callable
        ``method(image, **params) -> ndarray``; deterministic.
    folder : path-like
        Where entries live (created if missing); one ``<sha256>.npz`` per output.
    tag : str, optional
        Code and package versions in the key (default :func:`code_tag` of ``method``; a
        network passes :func:`network_tag`).

    Attributes
    ----------
    compute_seconds : float
        Seconds of computation behind every output returned so far: measured for
        a miss, read from the entry for a hit.
    hits, misses : int
        Outputs read back / computed.
    """

    def __init__(self, name: str, method: Callable[..., np.ndarray], folder: str | pathlib.Path,
                 tag: str | None = None):
        self.name = name
        self.method = method
        self.folder = pathlib.Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.tag = code_tag(method) if tag is None else tag
        self.compute_seconds = 0.0
        self.hits = 0
        self.misses = 0

    def key(self, image: np.ndarray, params: dict) -> str:
        """Hex SHA-256 of method, parameters, code tag and the input's dtype, shape and bytes."""
        image = np.ascontiguousarray(image)
        h = hashlib.sha256()
        head = {"method": self.name, "params": params, "tag": self.tag,
                "dtype": image.dtype.str, "shape": list(image.shape)}
        h.update(json.dumps(head, sort_keys=True, default=str).encode())
        h.update(image.tobytes())
        return h.hexdigest()

    def _read(self, path: pathlib.Path) -> tuple[np.ndarray, float] | None:
        try:
            with np.load(path) as z:
                return np.array(z["output"]), float(z["seconds"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            warnings.warn(f"{path}: unreadable cache entry ({err}); recomputing it", stacklevel=3)
            return None

    def __call__(self, image: np.ndarray, **params) -> np.ndarray:
        path = self.folder / f"{self.key(image, params)}.npz"
        entry = self._read(path) if path.exists() else None
        if entry is not None:
            output, seconds = entry
            self.hits += 1
        else:
            t0 = time.perf_counter()
            output = np.asarray(self.method(image, **params))
            seconds = time.perf_counter() - t0
            with atomic_path(path, suffix=".tmp.npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, output=output, seconds=np.float64(seconds))
            self.misses += 1
        self.compute_seconds += seconds
        return output
