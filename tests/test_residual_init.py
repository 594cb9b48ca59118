"""prototxt/residual_init.py: the residual variant started from a paper-net snapshot."""
from __future__ import annotations


import numpy as np
import pytest

from conftest import REPO
from helpers import prototxt_script
from stem_restore import snapshots
from stem_restore.network import CONV_NAMES, PARAM_BLOBS, caffe_pb2

CHECKPOINT = next((REPO / "models" / "checkpoint").glob("adam_iter_*.solverstate"))


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    return prototxt_script("residual_init").residual_start(CHECKPOINT, tmp_path_factory.mktemp("start"))


def _blobs(model_path):
    net = caffe_pb2().NetParameter.FromString(model_path.read_bytes())
    return {layer.name: [np.array(b.data, np.float32) for b in layer.blobs] for layer in net.layer if layer.blobs}


def test_only_the_last_layer_and_its_first_moments_are_zeroed(start):
    before, after = _blobs(snapshots.weights_of(CHECKPOINT)), _blobs(snapshots.weights_of(start))
    for name in CONV_NAMES[:-1]:
        for b0, b1 in zip(before[name], after[name]):
            np.testing.assert_array_equal(b0, b1)
    assert any(b.any() for b in before[CONV_NAMES[-1]])  # there was something to zero
    assert not any(b.any() for b in after[CONV_NAMES[-1]])

    s0 = caffe_pb2().SolverState.FromString(CHECKPOINT.read_bytes())
    s1 = caffe_pb2().SolverState.FromString(start.read_bytes())
    assert s1.iter == s0.iter and snapshots.is_whole(start)
    head = range(PARAM_BLOBS - 2, PARAM_BLOBS)  # conv12 weights and bias: first moments
    for i, (h0, h1) in enumerate(zip(s0.history, s1.history)):
        h0, h1 = np.array(h0.data), np.array(h1.data)
        if i in head:
            assert h0.any() and not h1.any()
        else:  # every other first moment, and every second moment (conv12's too), kept
            np.testing.assert_array_equal(h0, h1)


def test_the_variant_from_the_start_returns_its_input_exactly(caffe, start, tmp_path):
    nets = prototxt_script("make_nets")
    deploy = tmp_path / "deploy_residual.prototxt"
    deploy.write_text(nets.deploy(residual=True, size=40))
    net = caffe.Net(str(deploy), caffe.TEST, weights=str(snapshots.weights_of(start)))
    x = np.random.default_rng(2).normal(0.5, 1.0, (1, 1, 40, 40)).astype(np.float32)  # some < 0
    net.blobs["data"].data[...] = x
    np.testing.assert_array_equal(net.forward()[nets.RESIDUAL_OUTPUT], x)
    assert np.abs(net.blobs[CONV_NAMES[-2]].data).max() > 0.1  # the trained features are alive


@pytest.fixture(scope="module")
def residual_deploy(tmp_path_factory):
    path = tmp_path_factory.mktemp("deploy") / "deploy_residual.prototxt"
    path.write_text(prototxt_script("make_nets").deploy(residual=True))
    return path


def test_network_knows_the_variant_and_the_paper_net_apart(residual_deploy):
    from stem_restore.network import is_residual, parse_net, read_net
    assert is_residual(read_net(residual_deploy))
    assert not is_residual(read_net(REPO / "prototxt" / "deploy.prototxt"))
    text = residual_deploy.read_text()
    assert not is_residual(parse_net(text.replace("operation: SUM", "operation: PROD")))
    assert not is_residual(parse_net(text.replace('bottom: "data"', 'bottom: "conv11"')))


@pytest.mark.parametrize("engine", ["layers", "net"])
def test_restore_runs_the_variant_on_both_engines(caffe, start, residual_deploy, engine):
    """From the zero-head start restore.py returns the frame itself; with a head that is not
    zero both engines agree (the layer stream adds the input the net's Eltwise adds)."""
    from restoration.api import load_model
    frame = np.random.default_rng(4).poisson(40.0, (90, 130)).astype(np.float32)
    same = load_model(residual_deploy, snapshots.weights_of(start), engine=engine)
    assert same.restorer.residual
    np.testing.assert_allclose(np.asarray(same.restore(frame)), frame, rtol=1e-5, atol=1e-3)

    paper_head = snapshots.weights_of(CHECKPOINT)  # conv12 not zero: input + the paper's output
    ours = np.asarray(load_model(residual_deploy, paper_head, engine=engine).restore(frame))
    other = np.asarray(load_model(residual_deploy, paper_head, engine={"layers": "net", "net": "layers"}[engine])
                       .restore(frame))
    assert np.abs(ours - frame).mean() > 1.0
    np.testing.assert_allclose(ours, other, rtol=1e-4, atol=1e-2)
