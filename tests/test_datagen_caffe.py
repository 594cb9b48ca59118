"""Real Caffe reads what datagen writes (HDF5Data and two LMDB Data layers).

Needs ``import caffe`` (pycaffe built by scripts/install.sh); no mocks.
"""
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _generate(out, fmt, count, shard):
    r = subprocess.run([sys.executable, "-m", "datagen", "--preset", "quick", "--count", str(count),
                        "--size", "64", "--out", str(out), "--format", fmt, "--seed", "3",
                        "--shard-size", str(shard), "--workers", "2", "--quiet"],
                       cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr


def _net(tmp_path, text):
    import caffe

    caffe.set_mode_cpu()
    proto = tmp_path / "net.prototxt"
    proto.write_text(text)
    return caffe.Net(str(proto), caffe.TEST)


def test_caffe_hdf5data_returns_exactly_the_written_arrays(tmp_path):
    out = tmp_path / "h5"
    _generate(out, "hdf5", count=20, shard=8)  # 3 shards: 8 + 8 + 4
    data, label = [], []
    for line in (out / "list.txt").read_text().splitlines():
        with h5py.File(line, "r") as f:
            data.append(f["data"][...])
            label.append(f["label"][...])
    data, label = np.concatenate(data), np.concatenate(label)
    net = _net(tmp_path, f"""
name: "read_hdf5"
layer {{ name: "d" type: "HDF5Data" top: "data" top: "label"
  hdf5_data_param {{ source: "{out / 'list.txt'}" batch_size: 20 shuffle: false }} }}
""")
    res = net.forward()
    assert res["data"].shape == (20, 1, 64, 64)
    assert np.array_equal(res["data"], data)
    assert np.array_equal(res["label"], label)


def test_caffe_two_lmdb_data_layers_return_exactly_the_written_arrays(tmp_path):
    from datagen.writers import decode_datum
    import lmdb

    out = tmp_path / "lm"
    _generate(out, "lmdb", count=12, shard=5)
    expected = {}
    for db in ("input_lmdb", "target_lmdb"):
        env = lmdb.open(str(out / db), readonly=True, lock=False)
        with env.begin() as txn:
            expected[db] = np.stack([decode_datum(v) for _, v in txn.cursor()])
        env.close()
    net = _net(tmp_path, f"""
name: "read_lmdb"
layer {{ name: "data" type: "Data" top: "data"
  data_param {{ source: "{out / 'input_lmdb'}" backend: LMDB batch_size: 12 }} }}
layer {{ name: "label" type: "Data" top: "label"
  data_param {{ source: "{out / 'target_lmdb'}" backend: LMDB batch_size: 12 }} }}
""")
    res = net.forward()
    assert res["data"].shape == (12, 1, 64, 64)
    assert np.array_equal(res["data"], expected["input_lmdb"])
    assert np.array_equal(res["label"], expected["target_lmdb"])
    assert not np.array_equal(res["data"], res["label"])
