"""Helpers for the benchmarks' pycaffe child processes: random-filled nets and best-of timings.

Imported inside the child (after it has put the pycaffe build under test first
on ``sys.path``), so ``caffe`` is imported lazily, by the functions.
"""
from __future__ import annotations

import os
import tempfile
import time


def random_net(text: str, force_backward: bool = False):
    """A TEST-phase ``caffe.Net`` from prototxt ``text``, blobs uniform [0, 1), weights N(0, 0.03)."""
    import caffe
    import numpy as np

    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(("force_backward: true\n" if force_backward else "") + text)
    try:
        net = caffe.Net(f.name, caffe.TEST)
    finally:
        os.unlink(f.name)
    rng = np.random.default_rng(0)
    for name in net.blobs:
        net.blobs[name].data[...] = rng.random(net.blobs[name].data.shape, dtype=np.float32)
    for name in net.params:
        for blob in net.params[name]:
            blob.data[...] = rng.normal(0, 0.03, blob.data.shape)
    return net


def best_seconds(fn, reps: int) -> float:
    """Fastest of ``reps`` timed calls of ``fn`` (seconds), after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)
