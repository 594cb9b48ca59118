"""scripts/patches/cuda/: the GPU build's patches apply, in install.sh's order, to the pinned
Caffe source after the common ones (CI has no CUDA compiler: the GPU build itself is compiled
by `install.sh --cuda` on a machine with nvcc, and run on a lent GPU)."""
from __future__ import annotations

import re
import subprocess
import tarfile

import pytest

from conftest import REPO

PATCHES = REPO / "scripts" / "patches"


def pinned_tarball():
    name = re.search(r"^ORIG_TARBALL=(\S+)", (REPO / "scripts" / "install.sh").read_text(), re.M).group(1)
    path = REPO / ".caffe" / "downloads" / name
    if not path.is_file():  # the README's set-up fetches it; a bare checkout has none
        pytest.fail(f"{path} missing: run 'bash scripts/install.sh' (or --fetch-source) first")
    return path


@pytest.fixture(scope="module")
def cuda_tree(tmp_path_factory):
    tree = tmp_path_factory.mktemp("caffe-src")
    with tarfile.open(pinned_tarball()) as tar:
        tar.extractall(tree, filter="tar")
    for patch in sorted(PATCHES.glob("*.patch")) + sorted((PATCHES / "cuda").glob("*.patch")):
        run = subprocess.run(["patch", "-p1", "--forward", "--silent", "-i", str(patch)], cwd=tree,
                             capture_output=True, text=True)
        assert run.returncode == 0, f"{patch.name} does not apply: {run.stdout}{run.stderr}"
    return tree


def test_cudnn_layers_choose_algorithms_through_the_v7_heuristics_on_cudnn_8_and_newer(cuda_tree):
    """0103: each of the three removed cudnnGetConvolution*Algorithm calls in the conv and deconv
    layers is kept for cuDNN < 8 and replaced by the _v7-based choice from 8 on."""
    for layer in ("cudnn_conv_layer.cpp", "cudnn_deconv_layer.cpp"):
        text = (cuda_tree / "src" / "caffe" / "layers" / layer).read_text()
        for old, new in (("cudnnGetConvolutionForwardAlgorithm(", "cudnn::chooseFwdAlgo("),
                         ("cudnnGetConvolutionBackwardFilterAlgorithm(", "cudnn::chooseBwdFilterAlgo("),
                         ("cudnnGetConvolutionBackwardDataAlgorithm(", "cudnn::chooseBwdDataAlgo(")):
            blocks = re.findall(r"#if CUDNN_VERSION_MIN\(8, 0, 0\)\n(.*?)#else\n(.*?)#endif", text, re.S)
            assert any(new in b[0] and old in b[1] for b in blocks), (layer, old)
    header = (cuda_tree / "include" / "caffe" / "util" / "cudnn.hpp").read_text()
    for fn in ("GetConvolutionForwardAlgorithm_v7", "GetConvolutionBackwardFilterAlgorithm_v7",
               "GetConvolutionBackwardDataAlgorithm_v7", "SetConvolutionMathType"):
        assert f"cudnn{fn}(" in header


def test_cudnn_version_is_read_from_cudnn_version_h(cuda_tree):
    cmake = (cuda_tree / "cmake" / "Cuda.cmake").read_text()
    assert "cudnn_version.h" in cmake


def test_every_default_cudnn_engine_yields_to_caffe_cudnn_0(cuda_tree):
    """CAFFE_CUDNN=0 gives Caffe's own engine wherever the factory would pick cuDNN by default."""
    lines = (cuda_tree / "src" / "caffe" / "layer_factory.cpp").read_text().splitlines()
    picks = [i for i, line in enumerate(lines) if re.search(r"engine = .*_Engine_CUDNN", line)]
    assert len(picks) == 8  # convolution, deconvolution, pooling, LRN, ReLU, sigmoid, softmax, tanh
    for i in picks:
        assert "CudnnByDefault()" in lines[i] or "CudnnByDefault()" in lines[i - 1], lines[i - 1:i + 1]
