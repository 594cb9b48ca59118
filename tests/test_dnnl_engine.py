"""The oneDNN convolution engine of the project's CPU Caffe build (scripts/patches/0004-*).

Caffe's own convolution tests run against it in C++ after every build
(``test_dnnl_convolution_layer.cpp``, derived by scripts/install.sh); these
tests check it from the outside, as the project uses it: chosen by default,
``engine: CAFFE`` and ``CAFFE_DNNL_MATH=off`` still give Caffe's layer, the
same values and gradients as Caffe's layer (Caffe's accumulate-into-diff
semantics included), bf16 within a stated tolerance of fp32, and the mode in
the log and in restore.py's output metadata.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from contextlib import contextmanager

import numpy as np
import pytest

from conftest import REPO

#: bf16 keeps 8 significant bits (relative rounding <= 2^-9 = 0.2 %); the
#: engine rounds activations and weights of every layer, sums in fp32. Over
#: the paper's 12 layers the output's RMS deviation from fp32, relative to
#: its RMS, stays below this.
BF16_REL_RMS = 2e-2


@contextmanager
def math_mode(mode: str | None):
    """CAFFE_DNNL_MATH for the nets created inside (read at each layer's set-up)."""
    old = os.environ.get("CAFFE_DNNL_MATH")
    if mode is None:
        os.environ.pop("CAFFE_DNNL_MATH", None)
    else:
        os.environ["CAFFE_DNNL_MATH"] = mode
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CAFFE_DNNL_MATH", None)
        else:
            os.environ["CAFFE_DNNL_MATH"] = old


def conv_net(caffe, shape, convs, force_backward=True, engine=None):
    """A net: Input of ``shape`` -> Convolution layers (dicts of convolution_param fields)."""
    lines = ["force_backward: true" if force_backward else "",
             'layer { name: "data" type: "Input" top: "data" input_param { shape { %s } } }'
             % " ".join(f"dim: {d}" for d in shape)]
    bottom = "data"
    for i, params in enumerate(convs):
        fields = " ".join(f"{k}: {v}" for k, v in params.items())
        if engine:
            fields += f" engine: {engine}"
        lines.append(f'layer {{ name: "conv{i}" type: "Convolution" bottom: "{bottom}" top: "conv{i}" '
                     f'convolution_param {{ {fields} }} }}')
        bottom = f"conv{i}"
        if i < len(convs) - 1:
            lines.append(f'layer {{ name: "relu{i}" type: "ReLU" bottom: "{bottom}" top: "{bottom}" }}')
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write("\n".join(lines))
    try:
        return caffe.Net(f.name, caffe.TEST)
    finally:
        os.unlink(f.name)


def fill(net, seed=0):
    rng = np.random.default_rng(seed)
    for name in net.params:
        for blob in net.params[name]:
            blob.data[...] = rng.normal(0, 0.1, blob.data.shape)
    net.blobs["data"].data[...] = rng.normal(0, 1, net.blobs["data"].data.shape)
    return net


def copy_params(src, dst):
    for name in src.params:
        for a, b in zip(src.params[name], dst.params[name]):
            b.data[...] = a.data
    dst.blobs["data"].data[...] = src.blobs["data"].data


def run_fwd_bwd(net, top_diff_seed=1, times=1):
    """Forward, then ``times`` backward passes from one fixed top gradient (diffs accumulate)."""
    out = net.forward()
    last = list(out)[-1]
    rng = np.random.default_rng(top_diff_seed)
    net.blobs[last].diff[...] = rng.normal(0, 1, net.blobs[last].diff.shape)
    for name in net.params:
        for b in net.params[name]:
            b.diff[...] = 0
    for _ in range(times):
        net.backward()
    grads = {name: [b.diff.copy() for b in net.params[name]] for name in net.params}
    return out[last].copy(), net.blobs["data"].diff.copy(), grads


def assert_close(a, b, rtol=2e-4):
    scale = max(np.abs(b).max(), 1e-6)
    assert np.abs(a - b).max() <= rtol * scale, (np.abs(a - b).max(), scale)


@pytest.fixture(scope="module")
def dnnl(caffe):
    info = caffe.conv_engine_info()
    assert info.startswith("dnnl "), f"the CPU build has no DNNL engine: {info!r}"
    return caffe


def test_engine_info_names_mode_isa_and_version(dnnl):
    with math_mode("fp32"):
        assert re.fullmatch(r"dnnl fp32 isa=\w+ onednn=3\.\d+\.\d+", dnnl.conv_engine_info())
    with math_mode("bf16"):  # bf16 where oneDNN has bf16 kernels (AVX-512, AMX), else fp32
        info = dnnl.conv_engine_info()
        assert info.split()[1] == ("bf16" if "avx512" in info else "fp32"), info
    with math_mode("off"):
        assert dnnl.conv_engine_info().startswith("caffe ")
    with math_mode(None):  # auto: bf16 exactly where the ISA oneDNN reports has bf16 instructions
        info = dnnl.conv_engine_info()
        native = re.search(r"isa=(avx512_core_(bf16|fp16|amx\w*))\b", info)
        assert info.split()[1] == ("bf16" if native else "fp32"), info


GEOMETRIES = {
    "paper 5x5 pad 2": ((2, 3, 17, 13), [dict(num_output=8, kernel_size=5, pad=2),
                                         dict(num_output=1, kernel_size=5, pad=2)]),
    "stride, rect pad": ((2, 4, 15, 16), [dict(num_output=6, kernel_h=3, kernel_w=5, stride=2, pad_h=0, pad_w=1)]),
    "dilation + groups": ((1, 4, 20, 18), [dict(num_output=6, kernel_size=3, dilation=2, group=2, pad=1)]),
    "no bias, 1x1": ((3, 5, 7, 9), [dict(num_output=4, kernel_size=1, bias_term="false")]),
}


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_fp32_forward_and_gradients_equal_caffes_layer(dnnl, name):
    shape, convs = GEOMETRIES[name]
    with math_mode("fp32"):
        ours = fill(conv_net(dnnl, shape, convs))
    stock = conv_net(dnnl, shape, convs, engine="CAFFE")
    copy_params(ours, stock)
    y0, dx0, g0 = run_fwd_bwd(stock, times=2)
    y1, dx1, g1 = run_fwd_bwd(ours, times=2)
    assert y1.shape == y0.shape
    assert_close(y1, y0)
    assert_close(dx1, dx0)
    for layer in g0:
        for a, b in zip(g1[layer], g0[layer]):
            assert_close(a, b)
    # Two backward passes accumulate (Caffe's semantics): twice one pass.
    _, _, once = run_fwd_bwd(ours, times=1)
    assert_close(g1["conv0"][0], 2 * once["conv0"][0])


def test_caffe_dnnl_math_off_is_caffes_layer_bit_for_bit(dnnl):
    shape, convs = GEOMETRIES["paper 5x5 pad 2"]
    with math_mode("off"):
        off = fill(conv_net(dnnl, shape, convs))
    stock = conv_net(dnnl, shape, convs, engine="CAFFE")
    copy_params(off, stock)
    np.testing.assert_array_equal(run_fwd_bwd(off)[0], run_fwd_bwd(stock)[0])


def paper_net(caffe, size):
    deploy = (REPO / "models" / "deploy.prototxt").read_text()
    deploy = re.sub(r"dim: 1 dim: 1 dim: \d+ dim: \d+", f"dim: 1 dim: 1 dim: {size} dim: {size}", deploy)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(deploy)
    try:
        return caffe.Net(f.name, caffe.TEST, weights=str(REPO / "models" / "stem_restore.caffemodel"))
    finally:
        os.unlink(f.name)


def bf16_kernels(caffe) -> bool:
    """Whether this CPU runs bf16 (oneDNN has bf16 kernels only with AVX-512 or AMX)."""
    with math_mode("bf16"):
        return caffe.conv_engine_info().startswith("dnnl bf16 ")


def test_bf16_forward_of_the_shipped_model_is_within_tolerance_of_fp32(dnnl):
    """On a CPU with bf16 kernels: within BF16_REL_RMS of fp32, and not equal to it.
    Elsewhere a bf16 request runs fp32 (and says so): bit-identical to fp32."""
    x = np.random.default_rng(3).normal(0, 1, (1, 1, 40, 40)).astype(np.float32)
    outs = {}
    for mode in ("fp32", "bf16"):
        with math_mode(mode):
            net = paper_net(dnnl, 40)
        net.blobs["data"].data[...] = x
        outs[mode] = net.forward()["conv12"].copy()
    ref, low = outs["fp32"], outs["bf16"]
    rel = np.sqrt(np.mean((low - ref) ** 2)) / np.sqrt(np.mean(ref ** 2))
    if bf16_kernels(dnnl):
        assert 0 < rel < BF16_REL_RMS, rel  # > 0: bf16 really rounded something
    else:
        assert rel == 0, rel


def test_the_log_says_which_engine_and_kernel_each_layer_runs(dnnl):
    code = ("import caffe; caffe.set_mode_cpu(); "
            f"caffe.Net({str(REPO / 'models' / 'deploy.prototxt')!r}, caffe.TEST)")
    env = {**os.environ, "GLOG_minloglevel": "0", "GLOG_logtostderr": "1", "CAFFE_DNNL_MATH": "fp32"}
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stderr
    lines = re.findall(r"Layer conv\d+: DNNL fp32 convolution, forward (\S+) \(dnnl fp32 isa=\w+", err)
    assert len(lines) == 12, err[-3000:]
    env["CAFFE_DNNL_MATH"] = "off"
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stderr
    assert "DNNL fp32" not in err and "CAFFE_DNNL_MATH=off" in err
