"""The project's own Caffe build is real and works: pycaffe and the caffe tool."""
from __future__ import annotations

import os
import re
import subprocess

import h5py
import numpy as np

TINY_NET = """\
name: "tiny"
layer {{ name: "data" type: "HDF5Data" top: "data" top: "label"
  hdf5_data_param {{ source: "{source}" batch_size: 8 }} }}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param {{ num_output: 1 kernel_size: 3 pad: 1
    weight_filler {{ type: "gaussian" std: 0.01 }} bias_filler {{ type: "constant" }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "conv" bottom: "label" top: "loss" }}
"""

TINY_SOLVER = """\
net: "{net}"
type: "Adam"
base_lr: 0.01
momentum: 0.9
momentum2: 0.999
delta: 1e-8
lr_policy: "fixed"
max_iter: 60
display: 1
random_seed: 7
snapshot_prefix: "{prefix}"
solver_mode: CPU
"""


def test_pycaffe_imports_from_the_project_build(caffe):
    assert ".caffe" in caffe.__file__, caffe.__file__
    from caffe.proto import caffe_pb2

    datum = caffe_pb2.Datum(channels=1, height=2, width=2, float_data=[1, 2, 3, 4])
    assert caffe_pb2.Datum.FromString(datum.SerializeToString()).float_data[3] == 4


def test_caffe_tool_trains_a_tiny_net_and_loss_falls(tmp_path, caffe_bin):
    # Target: a fixed 3x3 blur of the input, learnable exactly by one 3x3 conv.
    rng = np.random.default_rng(0)
    x = rng.random((64, 1, 12, 12), dtype=np.float32)
    k = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 16
    pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    y = sum(k[i, j] * pad[:, :, i:i + 12, j:j + 12] for i in range(3) for j in range(3))
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["data"], f["label"] = x, y.astype(np.float32)
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'd.h5'}\n")
    (tmp_path / "net.prototxt").write_text(TINY_NET.format(source=tmp_path / "list.txt"))
    (tmp_path / "solver.prototxt").write_text(
        TINY_SOLVER.format(net=tmp_path / "net.prototxt", prefix=tmp_path / "tiny"))

    run = subprocess.run([str(caffe_bin), "train", f"--solver={tmp_path / 'solver.prototxt'}"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "GLOG_minloglevel": "0", "GLOG_logtostderr": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    losses = [float(v) for v in re.findall(r"Iteration \d+ .*loss = ([0-9.e+-]+)", run.stderr)]
    assert len(losses) >= 50
    assert losses[-1] < 0.05 * losses[0], losses
    assert (tmp_path / "tiny_iter_60.caffemodel").exists()
    assert (tmp_path / "tiny_iter_60.solverstate").exists()
