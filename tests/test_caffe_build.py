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


def _im2col_index(c, h, w, kh, kw, ph, pw, sh, sw, dh, dw):
    """Flat input index of every im2col element (-1 in the zero padding), Caffe's layout:
    rows (channel, kernel row, kernel col), columns (output row, output col)."""
    oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    ch, ki, kj, oi, oj = np.meshgrid(np.arange(c), np.arange(kh), np.arange(kw), np.arange(oh), np.arange(ow),
                                     indexing="ij")
    r, q = oi * sh - ph + ki * dh, oj * sw - pw + kj * dw
    inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
    return np.where(inside, (ch * h + r) * w + q, -1).reshape(c * kh * kw, oh * ow)


# (channels, height, width, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation)
IM2COL_CASES = [
    (64, 9, 37, 5, 5, 0, 0, 1, 1, 1),    # a restore block: no padding
    (3, 12, 11, 5, 5, 2, 2, 1, 1, 1),    # the training net's same-size convolution
    (2, 10, 13, 3, 5, 1, 4, 2, 3, 1),    # strides, padding wider than the kernel reach
    (2, 15, 16, 3, 3, 2, 2, 1, 1, 2),    # dilation
    (1, 4, 3, 5, 5, 2, 2, 1, 1, 1),      # image narrower than the kernel
]


def test_patched_im2col_and_col2im_equal_numpy(caffe, tmp_path):
    """scripts/patches/0003 rewrote im2col_cpu/col2im_cpu: forward (im2col) and backward
    (col2im, the adjoint) of Caffe's Im2col layer equal an index-map reference exactly."""
    rng = np.random.default_rng(3)
    for c, h, w, kh, kw, ph, pw, sh, sw, d in IM2COL_CASES:
        path = tmp_path / "im2col.prototxt"
        path.write_text(
            "force_backward: true\n"
            f'layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ dim: 2 dim: {c} dim: {h} dim: {w} }} }} }}\n'
            f'layer {{ name: "col" type: "Im2col" bottom: "x" top: "col" convolution_param {{ kernel_h: {kh} '
            f"kernel_w: {kw} pad_h: {ph} pad_w: {pw} stride_h: {sh} stride_w: {sw} dilation: {d} }} }}\n")
        net = caffe.Net(str(path), caffe.TEST)
        x = rng.standard_normal((2, c, h, w)).astype(np.float32)
        net.blobs["x"].data[...] = x
        net.forward()
        idx = _im2col_index(c, h, w, kh, kw, ph, pw, sh, sw, d, d)
        for n in range(2):
            want = np.where(idx >= 0, x[n].ravel()[np.maximum(idx, 0)], 0)
            np.testing.assert_array_equal(net.blobs["col"].data[n].reshape(idx.shape), want)
        g = rng.standard_normal(net.blobs["col"].data.shape).astype(np.float32)
        net.blobs["col"].diff[...] = g
        net.backward()
        for n in range(2):
            flat = g[n].reshape(idx.shape)
            want = np.bincount(idx[idx >= 0], weights=flat[idx >= 0].astype(np.float64), minlength=c * h * w)
            np.testing.assert_allclose(net.blobs["x"].diff[n].ravel(), want, rtol=1e-5, atol=1e-5)
