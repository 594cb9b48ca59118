"""The paper's network and solver files, as Caffe itself reads them."""
from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from conftest import REPO

PROTOTXT = REPO / "prototxt"


def conv_layers(net):
    return [layer for layer in net.layer if layer.type == "Convolution"]


def parse_net(caffe, path):
    from caffe.proto import caffe_pb2

    return text_format.Parse(path.read_text(), caffe_pb2.NetParameter())


def parse_solver(caffe, path):
    from caffe.proto import caffe_pb2

    return text_format.Parse(path.read_text(), caffe_pb2.SolverParameter())


def test_committed_prototxt_match_their_generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_nets", PROTOTXT / "make_nets.py")
    make_nets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_nets)
    for name, text in make_nets.all_nets().items():
        assert (PROTOTXT / name).read_text() == text, f"{name} is stale: run python prototxt/make_nets.py"


def test_deploy_net_is_the_papers_architecture(caffe):
    net = caffe.Net(str(PROTOTXT / "deploy.prototxt"), caffe.TEST)
    spec = parse_net(caffe, PROTOTXT / "deploy.prototxt")
    convs = conv_layers(spec)
    assert len(convs) == 12
    assert [c.convolution_param.num_output for c in convs] == [64] * 11 + [1]
    for c in convs:
        assert list(c.convolution_param.kernel_size) == [5]
        assert list(c.convolution_param.pad) == [2]
        assert c.convolution_param.weight_filler.type == "msra"
    # A ReLU right after every convolution, the last included (seed abstract).
    types = [layer.type for layer in spec.layer]
    assert types[1:] == ["Convolution", "ReLU"] * 12
    assert sum(p.data.size for blobs in net.params.values() for p in blobs) == 1_027_905
    assert net.params["conv1"][0].data.shape == (64, 1, 5, 5)
    assert net.params["conv12"][0].data.shape == (1, 64, 5, 5)


def test_linear_output_variant_only_drops_the_last_relu(caffe):
    spec = parse_net(caffe, PROTOTXT / "deploy_linear_output.prototxt")
    types = [layer.type for layer in spec.layer]
    assert types[1:] == ["Convolution", "ReLU"] * 11 + ["Convolution"]


@pytest.mark.parametrize("h,w", [(49, 49), (63, 50), (77, 101)])
def test_output_size_equals_input_size(caffe, h, w):
    net = caffe.Net(str(PROTOTXT / "deploy.prototxt"), caffe.TEST)
    net.blobs["data"].reshape(1, 1, h, w)
    net.reshape()
    net.blobs["data"].data[...] = np.random.default_rng(0).random((1, 1, h, w))
    out = net.forward()["conv12"]
    assert out.shape == (1, 1, h, w)
    assert np.all(out >= 0)  # final ReLU


def test_train_nets_feed_euclidean_loss_from_both_data_formats(caffe):
    hdf5 = parse_net(caffe, PROTOTXT / "train_hdf5.prototxt")
    assert [layer.type for layer in hdf5.layer[:2]] == ["HDF5Data", "HDF5Data"]
    assert list(hdf5.layer[0].top) == ["data", "label"]
    loss = hdf5.layer[-1]
    assert loss.type == "EuclideanLoss" and list(loss.bottom) == ["conv12", "label"]
    lmdb = parse_net(caffe, PROTOTXT / "train_lmdb.prototxt")
    data_layers = [layer for layer in lmdb.layer if layer.type == "Data"]
    assert len(data_layers) == 4  # input and target, TRAIN and TEST
    assert all(layer.data_param.backend == 1 for layer in data_layers)  # LMDB
    assert not any(layer.HasField("transform_param") for layer in data_layers)


@pytest.mark.parametrize("preset", ["quick", "cpu", "paper"])
def test_solvers_write_out_adam_and_sgd_settings(caffe, preset):
    adam = parse_solver(caffe, REPO / "solvers" / preset / "adam.prototxt")
    assert adam.type == "Adam"
    assert (adam.momentum, adam.momentum2, adam.delta) == pytest.approx((0.9, 0.999, 1e-8))
    assert adam.lr_policy and adam.random_seed >= 0
    sgd = parse_solver(caffe, REPO / "solvers" / preset / "sgd.prototxt")
    assert sgd.type == "SGD" and sgd.momentum == pytest.approx(0.9)
    assert sgd.lr_policy and 0 < sgd.base_lr < adam.base_lr
    env = dict(line.split("#")[0].strip().split("=", 1)
               for line in (REPO / "solvers" / preset / "run.env").read_text().splitlines()
               if "=" in line.split("#")[0])
    assert int(env["ADAM_MAX_ITER"]) == adam.max_iter and int(env["SGD_MAX_ITER"]) == sgd.max_iter
    # Snapshots on epoch ends make a resumed run read the same batches.
    epoch = int(env["TRAIN_COUNT"]) // int(env["BATCH_SIZE"])
    assert adam.snapshot % epoch == 0 and sgd.snapshot % epoch == 0
    assert int(env["TEST_COUNT"]) == adam.test_iter[0] * int(env["BATCH_SIZE"])
