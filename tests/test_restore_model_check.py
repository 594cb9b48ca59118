"""Issue 16, classes 1-2: a bad or unusable model is refused in Python, before any image is
touched, with one line naming the file and the problem (exit 2) -- never a Caffe abort
(exit 134) and never a run with weights left at their random filler values."""
from __future__ import annotations

import os
import re
import subprocess

import numpy as np
import pytest

from helpers import PYTHON, RESTORE_PY, REPO, micrograph, write_tiff
from restoration.validate import (ModelError, caffe_pb2, net_layers, parse_prototxt,
                                 trial_load, validate_model)

MODEL = REPO / "models" / "deploy.prototxt"
WEIGHTS = REPO / "models" / "stem_restore.caffemodel"


def _load_weights():
    net = caffe_pb2().NetParameter()
    net.ParseFromString(WEIGHTS.read_bytes())
    return net


def _save(net, path):
    path.write_bytes(net.SerializeToString())
    return path


# Each maker writes a bad (model, weights) pair into tmp and returns it with the expected message.
def bad_truncated_weights(d):
    raw = WEIGHTS.read_bytes()
    (d / "trunc.caffemodel").write_bytes(raw[: len(raw) // 2])
    return MODEL, d / "trunc.caffemodel", r"weights .*trunc\.caffemodel: .*(truncated|no weights)"


def bad_random_weights(d):
    rng = np.random.default_rng(3)
    (d / "random.caffemodel").write_bytes(rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    return MODEL, d / "random.caffemodel", r"weights .*random\.caffemodel: "


def bad_empty_weights(d):
    (d / "empty.caffemodel").write_bytes(b"")
    return MODEL, d / "empty.caffemodel", r"weights .*empty\.caffemodel: empty file \(0 bytes\)"


def bad_prototxt_not_a_net(d):
    (d / "notes.prototxt").write_text("this is a shopping list\nmilk: 2\n")
    return d / "notes.prototxt", WEIGHTS, r"model .*notes\.prototxt: not a Caffe net definition"


def bad_prototxt_binary(d):
    return WEIGHTS, WEIGHTS, r"model .*stem_restore\.caffemodel: not a text file"


def bad_prototxt_no_layers(d):
    (d / "empty.prototxt").write_text('name: "nothing"\n')
    return d / "empty.prototxt", WEIGHTS, r"model .*empty\.prototxt: has no layers"


def bad_layer_names_match_nothing(d):
    text = re.sub(r'name: "conv(\d+)"', r'name: "layer\1"', MODEL.read_text())
    (d / "renamed.prototxt").write_text(text)
    return d / "renamed.prototxt", WEIGHTS, r"layer 'layer1' \(Convolution\): no weights of this name"


def bad_shape_mismatch(d):
    text = MODEL.read_text().replace("num_output: 64", "num_output: 32", 1)
    (d / "narrow.prototxt").write_text(text)
    return d / "narrow.prototxt", WEIGHTS, r"layer 'conv1'.*blob 0 has shape \[64, 1, 5, 5\], the model needs \[32, 1, 5, 5\]"


def bad_kernel_mismatch(d):
    text = MODEL.read_text().replace("kernel_size: 5", "kernel_size: 3", 1)
    (d / "k3.prototxt").write_text(text)
    return d / "k3.prototxt", WEIGHTS, r"needs \[64, 1, 3, 3\]"


def bad_missing_bias_blob(d):
    net = _load_weights()
    layer = next(la for la in net.layer if la.name == "conv5")
    del layer.blobs[1]
    return MODEL, _save(net, d / "nobias.caffemodel"), r"layer 'conv5'.*1 weight blobs, the model needs 2"


def bad_one_layer_missing(d):
    net = _load_weights()
    next(la for la in net.layer if la.name == "conv7").name = "other"
    return MODEL, _save(net, d / "gap.caffemodel"), r"layer 'conv7'.*no weights of this name"


def bad_short_data(d):
    net = _load_weights()
    blob = next(la for la in net.layer if la.name == "conv3").blobs[0]
    del blob.data[100:]
    return MODEL, _save(net, d / "short.caffemodel"), r"conv3.*holds 100 values"


def bad_nan_weight(d):
    net = _load_weights()
    next(la for la in net.layer if la.name == "conv2").blobs[0].data[7] = float("nan")
    return MODEL, _save(net, d / "nan.caffemodel"), r"conv2.*NaN or infinite"


def bad_train_net(d):
    return REPO / "prototxt" / "train_hdf5.prototxt", WEIGHTS, r"reads training data"


def bad_three_channel_input(d):
    text = MODEL.read_text().replace("dim: 1 dim: 1 dim: 256", "dim: 1 dim: 3 dim: 256", 1)
    (d / "rgb.prototxt").write_text(text)
    return d / "rgb.prototxt", WEIGHTS, r"input blob 'data' has shape \[1, 3, 256, 256\]"


def bad_unknown_bottom(d):
    text = MODEL.read_text().replace('bottom: "conv3"', 'bottom: "conv33"', 1)
    (d / "bottom.prototxt").write_text(text)
    return d / "bottom.prototxt", WEIGHTS, r"bottom blob 'conv33' is produced by no earlier layer"


def bad_unknown_type(d):
    text = MODEL.read_text().replace('type: "ReLU"', 'type: "ReLu"', 1)
    (d / "type.prototxt").write_text(text)
    return d / "type.prototxt", WEIGHTS, r"unknown layer type 'ReLu'"


def bad_missing_weights_file(d):
    return MODEL, d / "nope.caffemodel", r"weights .*nope\.caffemodel: no such file"


def bad_blobs_for_relu(d):
    """Caffe copies every source layer whose name is in the net: blobs for a plain ReLU abort."""
    net = _load_weights()
    relu = next(la for la in net.layer if la.name == "relu1")
    relu.blobs.add().CopyFrom(next(la for la in net.layer if la.name == "conv1").blobs[1])
    return MODEL, _save(net, d / "relu.caffemodel"), r"layer 'relu1' .*ReLU layer\): 1 weight blobs, the model needs 0"


def bad_second_same_named_layer(d):
    """Two source layers named conv4: Caffe copies both, so the second one must fit too."""
    net = _load_weights()
    extra = net.layer.add()
    extra.CopyFrom(next(la for la in net.layer if la.name == "conv3"))
    extra.name = "conv4"
    extra.blobs[0].shape.dim[1] = 32
    return MODEL, _save(net, d / "twice.caffemodel"), \
        r"layer 'conv4' \(entry \d+ of the file.*blob 0 has shape \[64, 32, 5, 5\]"


def bad_v1_and_v2_layers(d):
    net = _load_weights()
    net.layers.add().name = "old"
    return MODEL, _save(net, d / "both.caffemodel"), r"has both 'layer' and V1 'layers'"


BAD_MODELS = [bad_truncated_weights, bad_random_weights, bad_empty_weights, bad_prototxt_not_a_net,
              bad_prototxt_binary, bad_prototxt_no_layers, bad_layer_names_match_nothing,
              bad_shape_mismatch, bad_kernel_mismatch, bad_missing_bias_blob, bad_one_layer_missing,
              bad_short_data, bad_nan_weight, bad_train_net, bad_three_channel_input,
              bad_unknown_bottom, bad_unknown_type, bad_missing_weights_file, bad_blobs_for_relu,
              bad_second_same_named_layer, bad_v1_and_v2_layers]


def test_shipped_model_passes():
    layers = validate_model(MODEL, WEIGHTS)
    assert [la.name for la in layers] == [f"conv{i}" for i in range(1, 13)]
    assert layers[0].shapes == [(64, 1, 5, 5), (64,)]
    assert layers[-1].shapes == [(1, 64, 5, 5), (1,)]


def test_linear_output_prototxt_passes():
    validate_model(REPO / "prototxt" / "deploy_linear_output.prototxt", WEIGHTS)


def test_legacy_blob_shapes_accepted(tmp_path):
    """Old .caffemodels store num/channels/height/width instead of `shape`."""
    net = _load_weights()
    for layer in net.layer:
        for blob in layer.blobs:
            dims = list(blob.shape.dim)
            blob.ClearField("shape")
            blob.num, blob.channels, blob.height, blob.width = [1] * (4 - len(dims)) + dims
    validate_model(MODEL, _save(net, tmp_path / "legacy.caffemodel"))


@pytest.mark.parametrize("maker", BAD_MODELS, ids=lambda f: f.__name__[4:])
def test_bad_model_is_refused(tmp_path, maker):
    model, weights, pattern = maker(tmp_path)
    with pytest.raises(ModelError) as info:
        validate_model(model, weights)
    msg = str(info.value)
    assert "\n" not in msg
    assert re.search(pattern, msg), msg


@pytest.mark.parametrize("maker", [bad_truncated_weights, bad_random_weights, bad_empty_weights,
                                   bad_prototxt_not_a_net, bad_layer_names_match_nothing,
                                   bad_shape_mismatch, bad_blobs_for_relu,
                                   bad_second_same_named_layer],
                         ids=lambda f: f.__name__[4:])
def test_restore_py_refuses_bad_model(tmp_path, maker):
    """The CLI: exit 2, one error line naming the file, no outputs, no Caffe abort."""
    model, weights, pattern = maker(tmp_path)
    write_tiff(tmp_path / "img.tif", micrograph((60, 60)))
    out = tmp_path / "out"
    env = dict(os.environ, GLOG_minloglevel="0")
    r = subprocess.run([str(PYTHON), str(RESTORE_PY), str(tmp_path / "img.tif"), "-o", str(out),
                        "--model", str(model), "--weights", str(weights)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), r.stderr
    assert "Check failed" not in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() or not any(out.rglob("*"))


# ------------------------------------------------------------------ what only Caffe checks
def _with_layer(d, name: str, layer_text: str):
    """The shipped deploy prototxt plus one more layer (text format)."""
    path = d / name
    path.write_text(MODEL.read_text() + "\n" + layer_text + "\n")
    return path


def unchecked_pooling_kernel_zero(d):
    return _with_layer(d, "pool0.prototxt", 'layer { name: "pool" type: "Pooling" bottom: "conv12" '
                       'top: "pooled" pooling_param { pool: MAX kernel_size: 0 } }'), \
        r"pool0\.prototxt with weights .*: Caffe cannot load it: .*Filter dimensions cannot be zero"


def unchecked_unknown_filler(d):
    text = MODEL.read_text().replace('weight_filler { type: "msra" }', 'weight_filler { type: "msraa" }', 1)
    (d / "filler.prototxt").write_text(text)
    return d / "filler.prototxt", r"filler\.prototxt with weights .*: Caffe cannot load it: .*Unknown filler name: msraa"


@pytest.mark.parametrize("maker", [unchecked_pooling_kernel_zero, unchecked_unknown_filler],
                         ids=lambda f: f.__name__[10:])
def test_caffe_checks_the_python_check_does_not_model(tmp_path, maker, caffe):
    """Settings only Caffe checks pass validate_model but are caught by the trial load in a
    child process: restore.py exits 2 with one line naming the files, never 134."""
    model, pattern = maker(tmp_path)
    validate_model(model, WEIGHTS)  # not modelled in Python ...
    with pytest.raises(ModelError, match=pattern):
        trial_load(model, WEIGHTS)  # ... but Caffe's own CHECK, in a child
    write_tiff(tmp_path / "img.tif", micrograph((60, 60)))
    out = tmp_path / "out"
    r = subprocess.run([str(PYTHON), str(RESTORE_PY), str(tmp_path / "img.tif"), "-o", str(out),
                        "--model", str(model), "--weights", str(WEIGHTS)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), r.stderr
    assert "stack trace" not in r.stderr and "Traceback" not in r.stderr
    assert not any(out.rglob("*"))


def test_trial_load_accepts_the_shipped_model(caffe):
    trial_load(MODEL, WEIGHTS)


def test_split_layers_are_targets(tmp_path):
    """A blob read twice gets a Caffe Split layer; weights of that name would abort Caffe."""
    text = MODEL.read_text() + ('\nlayer { name: "extra" type: "ReLU" bottom: "conv11" '
                                'top: "extra" }\n')
    (tmp_path / "split.prototxt").write_text(text)
    names = {la.name for la in net_layers(parse_prototxt(tmp_path / "split.prototxt"), tmp_path)}
    assert "conv11_relu11_0_split" in names
    net = _load_weights()
    split = net.layer.add()
    split.name = "conv11_relu11_0_split"
    conv1 = next(layer for layer in net.layer if layer.name == "conv1")
    split.blobs.add().CopyFrom(conv1.blobs[1])
    with pytest.raises(ModelError, match=r"'conv11_relu11_0_split' .*Split layer\): 1 weight blobs"):
        validate_model(tmp_path / "split.prototxt", _save(net, tmp_path / "split.caffemodel"))
