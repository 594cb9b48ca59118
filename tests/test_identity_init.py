"""prototxt/identity_init.py: the paper's net started at the identity, loaded by real Caffe."""
from __future__ import annotations


import numpy as np
import pytest

from conftest import REPO
from helpers import DEPLOY
from stem_restore.network import CONV_NAMES, LAYERS


@pytest.fixture(scope="module")
def init():
    from helpers import prototxt_script
    return prototxt_script("identity_init")


def test_caffe_net_from_identity_start_returns_relu_of_input(caffe, init, tmp_path):
    path = init.write_caffemodel(init.identity_weights(seed=3), tmp_path / "init.caffemodel")
    net = caffe.Net(str(DEPLOY), caffe.TEST, weights=str(path))
    x = np.random.default_rng(0).normal(0.8, 1.0, (1, 1, 37, 53)).astype(np.float32)  # some < 0
    net.blobs["data"].reshape(*x.shape)
    net.reshape()
    net.blobs["data"].data[...] = x
    out = net.forward()[CONV_NAMES[-1]]
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    # the random features are alive (not all zero) though the output ignores them
    assert np.count_nonzero(net.blobs[CONV_NAMES[5]].data[0, 1:]) > 1000


def test_every_weight_of_the_net_is_set_with_caffes_shapes(caffe, init, tmp_path):
    path = init.write_caffemodel(init.identity_weights(seed=3), tmp_path / "init.caffemodel")
    net = caffe.Net(str(DEPLOY), caffe.TEST, weights=str(path))
    for name, (c_in, c_out, k) in zip(CONV_NAMES, LAYERS):
        w, b = net.params[name]
        assert w.data.shape == (c_out, c_in, k, k)
        assert not b.data.any()
    # the weights Caffe loaded are the ones computed (not fillers)
    ref = init.identity_weights(seed=3)
    np.testing.assert_array_equal(net.params["conv4"][0].data, ref["conv4"][0])


def test_random_filters_have_msra_scale_and_last_layer_reads_one_channel(init):
    params = init.identity_weights(seed=1)
    w2 = params["conv2"][0]
    assert np.std(w2[1:]) == pytest.approx(np.sqrt(2.0 / (64 * 25)), rel=0.02)
    w12 = params[CONV_NAMES[-1]][0]
    assert np.count_nonzero(w12) == 1 and w12[0, 0, 2, 2] == 1.0
    for name in CONV_NAMES[:-1]:
        w = params[name][0]
        assert np.count_nonzero(w[0]) == 1 and w[0, 0, 2, 2] == 1.0


def test_same_seed_same_bytes_other_seed_other_features(init, tmp_path):
    a = init.write_caffemodel(init.identity_weights(seed=5), tmp_path / "a.caffemodel").read_bytes()
    b = init.write_caffemodel(init.identity_weights(seed=5), tmp_path / "b.caffemodel").read_bytes()
    c = init.write_caffemodel(init.identity_weights(seed=6), tmp_path / "c.caffemodel").read_bytes()
    assert a == b and a != c


def test_restore_validator_accepts_the_start(init, tmp_path):
    from restoration.validate import validate_model

    path = init.write_caffemodel(init.identity_weights(seed=2), tmp_path / "init.caffemodel")
    layers = validate_model(DEPLOY, path)
    assert [layer.name for layer in layers] == list(CONV_NAMES)
