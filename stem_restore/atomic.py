"""The one atomic file writer: write a temporary file in the target folder, then rename it.

Used by datagen (shards, manifests), restore.py (:mod:`restoration.outputs`, which
passes its own temporary-name suffix), evaluate (tables, figures) and
:mod:`stem_restore.figures`.  A reader never sees a half-written file: the
temporary name starts with a dot, the data is fsync'ed before ``os.replace``
puts it in place, and on an error the temporary file is removed and the target
is left untouched.  Files get the mode a plain ``open(path, "w")`` would give
(0o666 less the umask), not ``mkstemp``'s 0o600.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import tempfile
from collections.abc import Iterator

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_bytes", "temp_stem"]


def _default_mode() -> int:
    """Permission bits of a newly created file under the current umask (e.g. 0o644)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


#: Longest final name (bytes, UTF-8) a temporary name repeats whole; a folder's entries may
#: be 255 bytes long, and the temporary name adds a dot, a random part and its suffix.
TEMP_STEM_BYTES = 120


def temp_stem(name: str) -> str:
    """``name`` as it appears in its temporary file's name: itself, or where longer than
    :data:`TEMP_STEM_BYTES`, its first 70 and last 30 bytes around a hash of the whole, so
    that a legal final name never gives an illegal (too long) temporary one, and the end
    of the name (which says what kind of file it is) stays readable."""
    raw = os.fsencode(name)
    if len(raw) <= TEMP_STEM_BYTES:
        return name
    digest = hashlib.sha1(raw).hexdigest()[:10]
    head = raw[:70].decode("utf-8", "ignore")
    tail = raw[-30:].decode("utf-8", "ignore")
    return f"{head}~{digest}~{tail}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp",
                parents: bool = False) -> Iterator[pathlib.Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    Parameters
    ----------
    path : path-like
        The final file.
    suffix : str
        End of the temporary name ``.<name>.<random><suffix>`` (``<name>``:
        :func:`temp_stem` of the final name); callers that pick
        file formats by extension, or recognise their own temporary files, pass
        their own (e.g. ``".tmp.png"``).
    parents : bool
        Create missing parent folders of ``path`` first (like ``mkdir -p``).

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = pathlib.Path(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{temp_stem(path.name)}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, _default_mode())
        yield pathlib.Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (in the locale's encoding, as ``open`` writes it)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
