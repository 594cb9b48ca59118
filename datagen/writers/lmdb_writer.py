"""Two LMDB databases for Caffe's ``Data`` layer (``backend: LMDB``).

``input_lmdb`` and ``target_lmdb`` hold serialized Datum records (float_data)
under identical keys ``%08d`` (sample index), so two Data layers read them in
lock step.  Each shard is one write transaction per database (atomic
commit); a shard counts as done only when all its keys are in both.
"""
from __future__ import annotations

import pathlib

import numpy as np

from .datum import encode_datum

KEY_FORMAT = "%08d"
MAX_COUNT = 10**8  # keys stay fixed width and sorted


def key(index: int) -> bytes:
    return (KEY_FORMAT % index).encode("ascii")


class LmdbPair:
    """The input and target databases of one data set folder."""

    def __init__(self, folder: str | pathlib.Path, count: int, size: tuple[int, int]):
        import lmdb

        folder = pathlib.Path(folder)
        per = 5 * size[0] * size[1] + 64  # Datum bytes per sample
        map_size = int(count * per * 1.6) + (64 << 20)
        self.envs = [lmdb.open(str(folder / name), map_size=map_size, subdir=True,
                               meminit=True, map_async=False, sync=True)
                     for name in ("input_lmdb", "target_lmdb")]

    def has_all(self, indices) -> bool:
        """True when every index has a record in both databases."""
        for env in self.envs:
            with env.begin() as txn:
                if any(txn.get(key(i)) is None for i in indices):
                    return False
        return True

    def write_shard(self, start: int, inputs: np.ndarray, targets: np.ndarray) -> None:
        """Write samples start.. (arrays N x 1 x H x W), one transaction per DB."""
        for env, arrays in zip(self.envs, (inputs, targets)):
            with env.begin(write=True) as txn:
                for j, a in enumerate(arrays):
                    txn.put(key(start + j), encode_datum(a))
            env.sync(True)

    def close(self) -> None:
        for env in self.envs:
            env.close()
