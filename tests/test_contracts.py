"""stem_restore: the shared contracts (network facts, prototxt reader, atomic writer,
normalisation) agree with the committed nets, with Caffe, and with what their callers need."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from stem_restore import network
from stem_restore.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from stem_restore.normalize import LOW_PERCENTILE, denormalize, norm_stats, normalize

PROTOTXT = REPO / "prototxt"


# ------------------------------------------------------------------ network facts

def test_derived_facts_are_the_papers_numbers():
    assert network.RECEPTIVE_FIELD == 1 + network.N_CONV * (network.KERNEL - 1) == 49
    assert network.CONTEXT == 24 and 2 * network.CONTEXT + 1 == network.RECEPTIVE_FIELD
    assert network.N_PARAMS == 1_027_905  # the paper's count, weights + biases
    assert network.CONV_NAMES == tuple(f"conv{i}" for i in range(1, 13))
    assert network.OUTPUT_BLOB == "conv12" and network.INPUT_BLOB == "data"
    assert network.LAYERS[0] == (1, 64, 5) and network.LAYERS[-1] == (64, 1, 5)
    assert set(network.LAYERS[1:-1]) == {(64, 64, 5)}


def test_history_blobs_per_solver_type():
    assert network.PARAM_BLOBS == 24
    assert network.history_blobs("SGD") == 24
    assert network.history_blobs("Adam") == network.history_blobs("ADAM") == 48
    with pytest.raises(ValueError, match="Adamax"):
        network.history_blobs("Adamax")


@pytest.mark.parametrize("name", ["deploy.prototxt", "train_hdf5.prototxt", "train_lmdb.prototxt"])
def test_facts_agree_with_the_committed_nets(caffe, name):
    path = PROTOTXT / name
    assert network.check_net(path) == []
    net = network.read_net(path)
    convs = network.conv_layers(net)
    assert tuple(c.name for c in convs) == network.CONV_NAMES
    assert [network.conv_geometry(c.convolution_param).kernel for c in convs] == [(5, 5)] * 12
    assert network.receptive_field(net) == network.RECEPTIVE_FIELD


def test_facts_agree_with_the_net_caffe_builds(caffe):
    net = caffe.Net(str(PROTOTXT / "deploy.prototxt"), caffe.TEST)
    blobs = [b for name in network.CONV_NAMES for b in net.params[name]]
    assert len(blobs) == sum(len(v) for v in net.params.values()) == network.PARAM_BLOBS
    assert sum(b.data.size for b in blobs) == network.N_PARAMS
    assert list(net.inputs) == [network.INPUT_BLOB] and list(net.outputs) == [network.OUTPUT_BLOB]
    assert [tuple(net.params[n][0].data.shape) for n in network.CONV_NAMES] == \
        [(co, ci, k, k) for ci, co, k in network.LAYERS]


def test_check_net_reports_a_drifted_net(caffe, tmp_path):
    drifted = tmp_path / "deploy_3x3.prototxt"
    text = (PROTOTXT / "deploy.prototxt").read_text()
    drifted.write_text(text.replace("kernel_size: 5", "kernel_size: 3").replace("pad: 2 ", "pad: 1 "))
    problems = network.check_net(drifted)
    assert any("kernels" in p for p in problems)
    assert any("receptive field 25 px, expected 49 px" in p for p in problems)
    assert all(str(drifted) in p for p in problems)


def test_receptive_field_counts_stride_and_dilation(caffe):
    net = network.parse_net(
        'layer { name: "a" type: "Convolution" convolution_param { kernel_size: 3 stride: 2 } }\n'
        'layer { name: "b" type: "Convolution" convolution_param { kernel_size: 3 dilation: 2 } }\n')
    # a: 1 + 2 = 3 px; b: extent 5, jump 2 -> 3 + 4 * 2 = 11 px
    assert network.receptive_field(net) == 11
    geom = network.conv_geometry(network.conv_layers(net)[1].convolution_param)
    assert geom.extent == (5, 5) and geom.output_size(20, 30) == (16, 26) and not geom.keeps_size


@pytest.mark.parametrize("text", ["layer { name: 'a' ", "layer { nme: 'a' }", "layer { name: 'a' } }"])
def test_read_net_names_the_file_it_cannot_parse(caffe, tmp_path, text):
    broken = tmp_path / "broken.prototxt"
    broken.write_text(text)
    with pytest.raises(ValueError, match="broken.prototxt: cannot parse prototxt") as err:
        network.read_net(broken)
    assert isinstance(err.value, network.PrototxtError) and err.value.detail


def test_read_net_refuses_a_binary_file(caffe, tmp_path):
    binary = tmp_path / "weights.caffemodel"
    binary.write_bytes(b"\x0a\xff\xfe\x00\x81")
    with pytest.raises(ValueError, match="weights.caffemodel: cannot parse prototxt: not a text file"):
        network.read_net(binary)


def test_contracts_and_the_restore_engine_load_neither_caffe_nor_datagen():
    code = ("import sys, stem_restore.network, stem_restore.atomic, stem_restore.normalize, "
            "restoration.engine; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'caffe', 'datagen', 'scipy'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------ atomic writer

def test_atomic_path_writes_via_a_dot_temp_in_the_target_folder(tmp_path):
    target = tmp_path / "out" / "table.csv"
    with atomic_path(target, suffix=".tmp.csv", parents=True) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".table.csv.")
        assert tmp.name.endswith(".tmp.csv") and not target.exists()
        tmp.write_text("a,b\n")
    assert target.read_text() == "a,b\n"
    assert os.listdir(target.parent) == ["table.csv"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0o600


@pytest.mark.parametrize("existing", [True, False])
def test_atomic_path_leaves_the_target_untouched_on_an_exception(tmp_path, existing):
    target = tmp_path / "shard.h5"
    if existing:
        target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half-written")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == (["shard.h5"] if existing else [])
    if existing:
        assert target.read_bytes() == b"old"


def test_atomic_write_text_and_bytes_replace_the_file(tmp_path):
    target = tmp_path / "COMPLETE"
    atomic_write_text(target, "3 pairs\n")
    assert target.read_text() == "3 pairs\n"
    atomic_write_bytes(target, b"\x89PNG")
    assert target.read_bytes() == b"\x89PNG" and os.listdir(tmp_path) == ["COMPLETE"]


def test_restore_temp_names_come_from_the_shared_writer(tmp_path):
    from restoration.outputs import is_temp_output, temp_suffix

    final = tmp_path / "img_restored.tif"
    with atomic_path(final, suffix=temp_suffix(final)) as tmp:
        assert is_temp_output(tmp) and tmp.suffix == ".tif"
        tmp.write_bytes(b"II*\x00")
    assert final.exists() and not is_temp_output(final)


# ------------------------------------------------------------------ normalisation

def test_normalisation_round_trip_and_formula():
    rng = np.random.default_rng(5)
    noisy = rng.poisson(40.0, (64, 80)).astype(np.uint16)
    original = noisy.copy()
    xn, stats = normalize(noisy)
    assert stats == norm_stats(noisy)
    assert stats.offset == np.percentile(noisy.astype(np.float32), LOW_PERCENTILE)
    assert stats.scale == pytest.approx(float(noisy.std()), rel=1e-12)
    expected = (noisy.astype(np.float32) - np.float32(stats.offset)) / np.float32(stats.scale)
    assert xn.dtype == np.float32 and np.array_equal(xn, expected)  # bit-identical formula
    np.testing.assert_allclose(denormalize(xn, stats), noisy, rtol=0, atol=1e-4 * noisy.max())
    assert np.array_equal(noisy, original)  # the input is never modified
    target = rng.poisson(40.0, (64, 80)).astype(np.float64)
    tn, same = normalize(target, stats)  # a clean target takes the input's statistics
    assert same is stats
    np.testing.assert_allclose(denormalize(tn, stats), target, rtol=0, atol=1e-4 * target.max())


def test_datagen_has_no_normalisation_of_its_own():
    import importlib.util

    assert importlib.util.find_spec("datagen.normalize") is None
    assert importlib.util.find_spec("datagen.writers.atomic") is None
