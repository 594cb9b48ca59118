"""Per-pair loss weights (datagen/weights.py) and the weighted training net, with real Caffe."""
from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import REPO
from datagen.weights import loss_weights, relative_error, weight_mismatch_db, weight_scale, weight_shards
from datagen.writers.hdf5 import write_hdf5_shard
from helpers import make_weights

sys.path.insert(0, str(REPO / "prototxt"))
import make_nets  # noqa: E402


def _pairs(n=4, size=52, seed=0):
    """n pairs: a perfect frame, then inputs with noise of growing size."""
    rng = np.random.default_rng(seed)
    label = rng.uniform(0.0, 2.0, (n, 1, size, size)).astype(np.float32)
    data = label.copy()
    for i in range(1, n):
        data[i] += rng.normal(0.0, 0.05 * 4 ** i, (1, size, size)).astype(np.float32)
    return data, label


def test_weights_fall_with_the_raw_error_and_cap_at_the_floor():
    data, label = _pairs()
    w = loss_weights(data, label, floor_db=35.0, scale=2.0)
    assert w.dtype == np.float32 and w.shape == (4,)
    # a perfect frame weighs like a raw input at the floor: w^2 = scale / 10^(-35/10)
    assert w[0] == pytest.approx(np.sqrt(2.0 * 10 ** 3.5), rel=1e-6)
    assert np.all(np.diff(w) < 0)
    # far above the floor, w^2 * raw relative error -> scale: the loss in units of the raw error
    e = relative_error(data, label)
    assert w[-1] ** 2 * e[-1] == pytest.approx(2.0, rel=1e-2)


def test_weight_scale_makes_the_weighted_loss_the_plain_loss():
    data, label = _pairs()
    sq = np.array([3.0, 10.0, 40.0, 900.0])
    c = weight_scale(sq, relative_error(data, label), floor_db=30.0)
    w = loss_weights(data, label, floor_db=30.0, scale=c).astype(np.float64)
    assert (w ** 2 * sq).sum() == pytest.approx(sq.sum(), rel=1e-5)


def test_weight_mismatch_is_zero_when_the_model_error_follows_the_weights():
    raw = np.array([0.0, 1e-3, 1e-2, 1e-1])
    floor = 10 ** -3.5
    # a model whose error is a fixed fraction of (raw + floor): the weights are what mean PSNR asks
    assert weight_mismatch_db(0.2 * (raw + floor), raw, 35.0) == pytest.approx(np.zeros(4), abs=1e-9)
    # the same model, 10x better on the perfect frame only: that pair weighs 10 dB too little
    out = 0.2 * (raw + floor)
    out[0] /= 10.0
    m = weight_mismatch_db(out, raw, 35.0)
    assert m[0] - m[1] == pytest.approx(10.0) and m.mean() == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="> 0"):
        weight_mismatch_db(np.zeros(4), raw, 35.0)


@pytest.mark.parametrize("floor, scale", [(float("nan"), 1.0), (30.0, 0.0), (30.0, -1.0)])
def test_bad_settings_are_refused(floor, scale):
    data, label = _pairs()
    with pytest.raises(ValueError):
        loss_weights(data, label, floor, scale)


def test_weight_shards_copy_adds_weights_and_refuses_other_settings(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    data, label = _pairs(6)
    paths = [write_hdf5_shard(src / f"shard-{i:05d}.h5", data[3 * i:3 * i + 3], label[3 * i:3 * i + 3])
             for i in range(2)]
    (src / "list.txt").write_text("".join(f"{p}\n" for p in paths))
    listing = weight_shards(src, tmp_path / "out", floor_db=35.0, scale=1.5)
    lines = listing.read_text().splitlines()
    assert [os.path.basename(p) for p in lines] == ["shard-00000.h5", "shard-00001.h5"]
    got = []
    for line in lines:
        with h5py.File(line, "r") as f:
            assert set(f) == {"data", "label", "weight"}
            got.append(f["weight"][...])
    assert np.array_equal(np.concatenate(got), loss_weights(data, label, 35.0, 1.5))
    assert not list((tmp_path / "out").glob("*.tmp*"))
    # the same call again is a no-op; other settings into the same folder are refused
    assert weight_shards(src, tmp_path / "out", floor_db=35.0, scale=1.5) == listing
    with pytest.raises(ValueError, match="weights.txt.*other settings"):
        weight_shards(src, tmp_path / "out", floor_db=30.0, scale=1.5)
    with pytest.raises(ValueError, match="no such list file"):
        weight_shards(tmp_path / "nowhere", tmp_path / "out2", floor_db=35.0, scale=1.0)


def test_datagen_weight_command_line(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    data, label = _pairs(2)
    p = write_hdf5_shard(src / "shard-00000.h5", data, label)
    (src / "list.txt").write_text(f"{p}\n")
    run = [sys.executable, "-m", "datagen", "weight", str(src), "--out", str(tmp_path / "w"),
           "--floor-db", "35", "--scale", "2"]
    r = subprocess.run(run, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "w" / "shard-00000.h5", "r") as f:
        assert np.array_equal(f["weight"][...], loss_weights(data, label, 35.0, 2.0))
    r = subprocess.run(run[:-4] + ["--floor-db", "30", "--scale", "2"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "weights.txt" in r.stderr and "Traceback" not in r.stderr


def test_caffe_weighted_net_trains_on_the_weighted_loss_and_tests_on_the_plain_one(caffe, tmp_path):
    """The two Scale layers give sum_i w_i^2 |y_i - t_i|^2 / 2N in TRAIN, the plain loss in TEST."""
    data, label = _pairs(4)
    weight = np.array([3.0, 1.0, 0.5, 0.25], dtype=np.float32)
    shard = write_hdf5_shard(tmp_path / "shard.h5", data, label, weight=weight)
    (tmp_path / "list.txt").write_text(f"{shard}\n")
    text = make_nets.train_hdf5(batch=4, weighted=True)
    text = text.replace('"data/train/list.txt"', f'"{tmp_path / "list.txt"}"')
    text = text.replace('"data/test/list.txt"', f'"{tmp_path / "list.txt"}"')
    proto = tmp_path / "train.prototxt"
    proto.write_text(text)
    model = make_weights(caffe, tmp_path / "w.caffemodel")
    train = caffe.Net(str(proto), caffe.TRAIN, weights=str(model))
    test = caffe.Net(str(proto), caffe.TEST, weights=str(model))
    loss_train = float(train.forward()["loss"])
    out = train.blobs["conv12"].data.astype(np.float64)
    sq = ((out - label) ** 2).reshape(4, -1).sum(axis=1)
    assert loss_train == pytest.approx((weight.astype(np.float64) ** 2 * sq).sum() / 8, rel=1e-4)
    assert float(test.forward()["loss"]) == pytest.approx(sq.sum() / 8, rel=1e-4)
    # the weights reach the gradient: conv12's is w_i^2 (y_i - t_i) / N where its ReLU passes
    train.backward()
    grad = train.blobs["conv12"].diff.astype(np.float64)
    want = weight[:, None, None, None].astype(np.float64) ** 2 * (out - label) / 4 * (out > 0)
    assert (out > 0).mean() > 0.2  # most of the check is on pixels the ReLU passes
    assert np.allclose(grad, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())
