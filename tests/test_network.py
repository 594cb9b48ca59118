"""The paper's network and solver files, as Caffe itself reads them."""
from __future__ import annotations

import numpy as np
import pytest

from datagen.presets import load_preset
from datagen.writers.generate import default_shard_size
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
    from helpers import prototxt_script

    make_nets = prototxt_script("make_nets")
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


def _forward(net, image):
    net.blobs["data"].reshape(1, 1, *image.shape)
    net.reshape()
    net.blobs["data"].data[...] = image
    return net.forward()["conv12"].copy()


@pytest.mark.parametrize("h,w", [(49, 49), (63, 50), (77, 101)])
def test_output_size_equals_input_size_and_final_relu_clips(caffe, weights, h, w):
    """Same-size output, aligned with the input, and the final ReLU really acting: with the same
    random weights the deploy net's output is exactly max(0, the linear-output variant's), whose
    output has negative values to clip (so the check cannot pass vacuously)."""
    deploy = caffe.Net(str(PROTOTXT / "deploy.prototxt"), caffe.TEST, weights=str(weights))
    linear = caffe.Net(str(PROTOTXT / "deploy_linear_output.prototxt"), caffe.TEST, weights=str(weights))
    image = np.random.default_rng(0).random((h, w))
    centre = float(np.median(_forward(linear, image)))
    for net in (deploy, linear):  # output bias shifted so that the pre-ReLU output takes both signs
        net.params["conv12"][1].data[...] -= centre
    out, pre = _forward(deploy, image), _forward(linear, image)
    assert out.shape == pre.shape == (1, 1, h, w)
    assert (pre < 0).mean() > 0.05 and (pre > 0).mean() > 0.05
    np.testing.assert_allclose(out, np.maximum(pre, 0.0), rtol=1e-5, atol=1e-6 * np.abs(pre).max())
    # Same size means pixel (y, x) of the output belongs to pixel (y, x) of the input: a change
    # of one input pixel changes the output only within the 49 px receptive field around it.
    y, x = h // 2, w // 3
    poked = image.copy()
    poked[y, x] += 5.0
    changed = np.argwhere(np.abs(_forward(linear, poked) - pre)[0, 0] > 1e-6 * np.abs(pre).max())
    assert changed.size and np.abs(changed - [y, x]).max() <= 24
    assert changed[:, 0].min() <= y <= changed[:, 0].max() and changed[:, 1].min() <= x <= changed[:, 1].max()


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


@pytest.mark.parametrize("schedule", ["quick", "short", "long", "long96", "long96w", "long96d", "paper"])
def test_schedules_write_out_adam_and_sgd_settings(caffe, schedule):
    folder = REPO / "solvers" / schedule
    adam = parse_solver(caffe, folder / "adam.prototxt")
    assert adam.type == "Adam"
    assert (adam.momentum, adam.momentum2, adam.delta) == pytest.approx((0.9, 0.999, 1e-8))
    assert adam.lr_policy and adam.random_seed >= 0
    sgd = parse_solver(caffe, folder / "sgd.prototxt")
    assert sgd.type == "SGD" and sgd.momentum == pytest.approx(0.9)
    assert sgd.lr_policy and 0 < sgd.base_lr < adam.base_lr
    assert adam.max_iter > 0 and sgd.max_iter > 0
    env = dict(line.split("#")[0].strip().split("=", 1)
               for line in (folder / "run.env").read_text().splitlines()
               if "=" in line.split("#")[0])
    assert not any(key.endswith("MAX_ITER") for key in env)  # stage lengths: the solvers only
    for key in ("DATAGEN_PRESET", "HELDOUT_PRESET"):
        if key in env:
            load_preset(env[key].strip('"'))
    assert env.get("INIT", "msra") in ("msra", "identity")  # run_training.sh's two starts
    if "DRAW_PASSES" in env:  # a fresh draw begins at a whole iteration, at row 0 of its first shard
        assert int(env["TRAIN_COUNT"]) * int(env["DRAW_PASSES"]) % int(env["BATCH_SIZE"]) == 0
    # Snapshots where a resumed run reads the same batches: at an epoch end, or at a shard
    # boundary (run_training.sh rotates the shard list to it).
    batch, count = int(env["BATCH_SIZE"]), int(env["TRAIN_COUNT"])
    shard = min(int(env.get("SHARD_SIZE", 0)) or default_shard_size(int(env["PATCH_SIZE"])), count)
    for solver in (adam, sgd):
        rows = solver.snapshot * batch
        assert rows % count == 0 or (rows % shard == 0 and count % shard == 0), solver.snapshot_prefix
        # Each test pass reads the whole test set, so the next one starts where this one did.
        assert int(env["TEST_COUNT"]) == solver.test_iter[0] * batch
