"""prototxt/wide_init.py: the wide variant (5 x 9 kernels) started from a paper-net snapshot."""
from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import REPO
from helpers import prototxt_script
from stem_restore import snapshots
from stem_restore.network import (CONV_NAMES, KERNEL, PARAM_BLOBS, WEIGHT_BLOB, WIDE_KERNEL, WIDE_PAD,
                                  caffe_pb2, read_net, receptive_field)

CHECKPOINT = next((REPO / "models" / "checkpoint").glob("adam_iter_*.solverstate"))
LEFT = (WIDE_KERNEL[1] - KERNEL) // 2  # new columns on each side


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    return prototxt_script("wide_init").wide_start(CHECKPOINT, tmp_path_factory.mktemp("start"))


def _arrays(blobs):
    return [np.asarray(b.data, np.float32).reshape(tuple(b.shape.dim)) for b in blobs]


def _weights(model_path):
    net = caffe_pb2().NetParameter.FromString(model_path.read_bytes())
    return {layer.name: _arrays(layer.blobs) for layer in net.layer if layer.blobs}


def test_kernels_sit_in_the_middle_columns_and_the_new_ones_are_zero(start):
    before, after = _weights(snapshots.weights_of(CHECKPOINT)), _weights(snapshots.weights_of(start))
    for name in CONV_NAMES:
        (k0, b0), (k1, b1) = before[name], after[name]
        assert k1.shape == k0.shape[:2] + WIDE_KERNEL
        np.testing.assert_array_equal(k1[..., LEFT:LEFT + KERNEL], k0)
        assert not k1[..., :LEFT].any() and not k1[..., LEFT + KERNEL:].any()
        np.testing.assert_array_equal(b1, b0)


def test_adam_moments_of_the_new_columns_are_zero_the_others_kept(start):
    s0 = caffe_pb2().SolverState.FromString(CHECKPOINT.read_bytes())
    s1 = caffe_pb2().SolverState.FromString(start.read_bytes())
    assert s1.iter == s0.iter and snapshots.is_whole(start)
    h0, h1 = _arrays(s0.history), _arrays(s1.history)
    for i in range(PARAM_BLOBS):
        m0, m1, v0, v1 = h0[i], h1[i], h0[PARAM_BLOBS + i], h1[PARAM_BLOBS + i]
        if i % 2:  # a bias: its moments are kept
            np.testing.assert_array_equal(m1, m0)
            np.testing.assert_array_equal(v1, v0)
            continue
        np.testing.assert_array_equal(m1[..., LEFT:LEFT + KERNEL], m0)
        np.testing.assert_array_equal(v1[..., LEFT:LEFT + KERNEL], v0)
        assert m0.any() and v0.any()
        for new in (m1[..., :LEFT], m1[..., LEFT + KERNEL:], v1[..., :LEFT], v1[..., LEFT + KERNEL:]):
            assert not new.any()


def test_the_wide_start_computes_the_paper_nets_output(caffe, start, tmp_path):
    nets = prototxt_script("make_nets")
    paper, wide = tmp_path / "paper.prototxt", tmp_path / "wide.prototxt"
    paper.write_text(nets.deploy(size=56))
    wide.write_text(nets.deploy(size=56, wide=True))
    x = np.random.default_rng(3).normal(0.0, 1.0, (1, 1, 56, 72)).astype(np.float32)
    outputs = []
    for prototxt, weights in ((paper, snapshots.weights_of(CHECKPOINT)), (wide, snapshots.weights_of(start))):
        net = caffe.Net(str(prototxt), caffe.TEST, weights=str(weights))
        net.blobs["data"].reshape(*x.shape)
        net.blobs["data"].data[...] = x
        outputs.append(net.forward()[CONV_NAMES[-1]].copy())
    assert outputs[0].shape == x.shape and np.abs(outputs[0]).max() > 0.1
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-4, atol=1e-4)


def test_the_variants_nets_see_97_px_along_x(tmp_path):
    nets = prototxt_script("make_nets")
    path = tmp_path / "wide.prototxt"
    path.write_text(nets.train_hdf5(wide=True, weighted=True))
    net = read_net(path)
    from stem_restore.network import conv_geometry, conv_layers
    geoms = [conv_geometry(c.convolution_param) for c in conv_layers(net)]
    assert {g.kernel for g in geoms} == {WIDE_KERNEL} and {g.pad for g in geoms} == {WIDE_PAD}
    assert all(g.keeps_size for g in geoms)
    assert receptive_field(net) == 49  # along y, as the paper's
    assert 1 + sum(g.extent[1] - 1 for g in geoms) == 97
    assert nets.train_hdf5(weighted=True) == nets.train_hdf5(weighted=True, wide=False)


def test_caffe_resumes_the_start_and_the_new_columns_learn(caffe_bin, start, tmp_path):
    """Real `caffe train --snapshot` from the wide start: Caffe accepts the 5 x 9 weights and
    Adam moments, and two iterations later the new columns are no longer zero."""
    nets = prototxt_script("make_nets")
    rng = np.random.default_rng(5)
    shard = tmp_path / "pairs.h5"
    with h5py.File(shard, "w") as f:
        clean = rng.normal(0.0, 1.0, (4, 1, 32, 32)).astype(np.float32)
        f["data"] = np.roll(clean, 2, axis=3) + rng.normal(0.0, 0.3, clean.shape).astype(np.float32)
        f["label"] = clean
        f[WEIGHT_BLOB] = np.ones(4, np.float32)
    (tmp_path / "list.txt").write_text(f"{shard}\n")
    net = nets.train_hdf5(batch=2, weighted=True, wide=True)
    net = net.replace('"data/train/list.txt"', '"list.txt"').replace('"data/test/list.txt"', '"list.txt"')
    (tmp_path / "train.prototxt").write_text(net)
    it = caffe_pb2().SolverState.FromString(start.read_bytes()).iter
    (tmp_path / "solver.prototxt").write_text(
        f'net: "train.prototxt"\ntype: "Adam"\nbase_lr: 1e-4\nmomentum: 0.9\nmomentum2: 0.999\n'
        f'lr_policy: "fixed"\nmax_iter: {it + 2}\nsnapshot_prefix: "snap"\ntest_iter: 1\n'
        f'test_interval: 1000000\ntest_initialization: false\nrandom_seed: 1\n')
    run = subprocess.run([str(caffe_bin), "train", "--solver=solver.prototxt", f"--snapshot={start}"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    after = _weights(tmp_path / f"snap_iter_{it + 2}.caffemodel")
    for name in CONV_NAMES:
        kernel = after[name][0]
        assert kernel.shape[2:] == WIDE_KERNEL
        assert np.abs(kernel[..., :LEFT]).max() > 0 and np.abs(kernel[..., LEFT + KERNEL:]).max() > 0


@pytest.mark.parametrize("script", ["wide_init", "residual_init"])
def test_a_broken_pair_is_refused_naming_the_file(tmp_path, script):
    """Both variants' start scripts (one command line, snapshots.start_main)."""
    broken = tmp_path / CHECKPOINT.name
    broken.write_bytes(CHECKPOINT.read_bytes())  # its .caffemodel is not beside it
    run = subprocess.run([sys.executable, str(REPO / "prototxt" / f"{script}.py"), str(broken),
                          "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert run.returncode == 2 and str(broken) in run.stderr
    assert not (tmp_path / "out").exists()


def test_restore_windows_the_variant_with_its_own_radius(caffe, start, tmp_path):
    """A net that sees 97 px along x needs 48 px of overlap, not the paper's 24: with weights
    in the new columns, windowed and whole-frame results agree; from the start (new columns
    zero) the variant restores exactly as the paper net does."""
    from restoration.api import load_model
    nets = prototxt_script("make_nets")
    deploy = tmp_path / "deploy_wide.prototxt"
    deploy.write_text(nets.deploy(wide=True))
    frame = np.random.default_rng(6).poisson(30.0, (150, 260)).astype(np.float32)

    net = caffe.Net(str(deploy), caffe.TEST, weights=str(snapshots.weights_of(start)))
    rng = np.random.default_rng(7)
    for name in CONV_NAMES:  # the outer columns as trained ones might be
        kernel = net.params[name][0].data
        for cols in (slice(0, LEFT), slice(LEFT + KERNEL, None)):
            kernel[..., cols] = rng.normal(0.0, 0.02, kernel[..., cols].shape)
    trained = tmp_path / "wide_trained.caffemodel"
    net.save(str(trained))
    windowed = load_model(deploy, trained, engine="net", tile=160)
    assert windowed.engine == "net" and windowed.provenance()["parameters"]["context"] == 48
    whole = np.asarray(load_model(deploy, trained, engine="net", tile=0).restore(frame))
    np.testing.assert_allclose(np.asarray(windowed.restore(frame)), whole, rtol=1e-4, atol=1e-3)

    paper = load_model(REPO / "prototxt" / "deploy.prototxt", snapshots.weights_of(CHECKPOINT))
    assert paper.provenance()["parameters"]["context"] == 24
    start_whole = load_model(deploy, snapshots.weights_of(start), engine="net", tile=0).restore(frame)
    np.testing.assert_allclose(np.asarray(paper.restore(frame)), np.asarray(start_whole), rtol=1e-4, atol=1e-2)
    assert np.abs(whole - np.asarray(start_whole)).mean() > 0.1  # the new columns do change it


def test_a_wide_pair_is_not_widened_again(start, tmp_path):
    """Only the paper net's shapes start a variant: a wide pair is refused naming its weights."""
    with pytest.raises(ValueError, match=r"conv1 has blobs of shape .*\(64, 1, 5, 9\)") as err:
        prototxt_script("wide_init").wide_start(start, tmp_path / "again")
    assert str(snapshots.weights_of(start)) in str(err.value) and not (tmp_path / "again").exists()


def test_a_wide_tile_too_small_for_its_context_is_refused_before_loading(start, tmp_path):
    from restoration.api import load_model
    deploy = tmp_path / "deploy_wide.prototxt"
    deploy.write_text(prototxt_script("make_nets").deploy(wide=True))
    with pytest.raises(ValueError, match="larger than 96 px"):
        load_model(deploy, snapshots.weights_of(start), engine="net", tile=80)


def test_a_start_never_replaces_the_snapshot_it_comes_from(tmp_path):
    pair = snapshots.copy_pair(CHECKPOINT, tmp_path / "pair")
    before = {f.name: f.read_bytes() for f in pair.parent.iterdir()}
    with pytest.raises(ValueError, match="another folder"):
        prototxt_script("wide_init").wide_start(pair, pair.parent)
    assert {f.name: f.read_bytes() for f in pair.parent.iterdir()} == before
