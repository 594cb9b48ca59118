"""Architecture checklist (from prototxt and from the loaded net) and Caffe log parsing."""
import os
from pathlib import Path

import pytest

from evaluate import checks

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "prototxt" / "deploy.prototxt"


def _failed(items):
    return [i.claim for i in items if not i.passed]


def test_architecture_passes_on_deploy_prototxt():
    convs, output = checks.layers_from_prototxt(DEPLOY)
    items = checks.check_architecture(convs, output)
    assert _failed(items) == []
    assert output == "conv12"
    assert sum(c.n_params for c in convs) == 1_027_905


def test_architecture_fails_on_3x3_kernels(tmp_path):
    text = DEPLOY.read_text().replace("kernel_size: 5", "kernel_size: 3").replace("pad: 2", "pad: 1")
    bad = tmp_path / "deploy_3x3.prototxt"
    bad.write_text(text)
    failed = _failed(checks.check_architecture(*checks.layers_from_prototxt(bad)))
    assert "all kernels 5x5" in failed
    assert any("parameters" in f for f in failed)
    assert any("receptive field" in f for f in failed)


def test_architecture_fails_on_missing_pad_and_last_relu(tmp_path):
    text = DEPLOY.read_text().replace("pad: 2", "pad: 0")
    bad = tmp_path / "deploy_nopad.prototxt"
    bad.write_text(text)
    assert "spatial size kept (pad 2, stride 1)" in _failed(checks.check_architecture(*checks.layers_from_prototxt(bad)))
    linear = REPO / "prototxt" / "deploy_linear_output.prototxt"
    if linear.exists():
        failed = _failed(checks.check_architecture(*checks.layers_from_prototxt(linear)))
        assert failed == ["ReLU after every convolution (the last included)"]


def test_unreadable_prototxt_is_a_value_error_naming_the_file(tmp_path):
    broken = tmp_path / "broken.prototxt"
    broken.write_text("layer { name: 'a' ")
    with pytest.raises(ValueError, match="broken.prototxt"):
        checks.layers_from_prototxt(broken)
    with pytest.raises(ValueError, match="missing.prototxt"):
        checks.layers_from_prototxt(tmp_path / "missing.prototxt")


def test_architecture_fails_on_stride_2(tmp_path):
    """Stride and output size come from the parsed ConvolutionParameter (Caffe's defaults included)."""
    bad = tmp_path / "deploy_stride.prototxt"
    bad.write_text(DEPLOY.read_text().replace("stride: 1", "stride: 2", 1))
    convs, _ = checks.layers_from_prototxt(bad)
    assert convs[0].stride == (2, 2) and not convs[0].keeps_size and convs[1].keeps_size
    failed = _failed(checks.check_architecture(*checks.layers_from_prototxt(bad)))
    assert "spatial size kept (pad 2, stride 1)" in failed
    assert any("receptive field" in f for f in failed)  # 1 + 4 + 11 * 4 * 2 = 93 px


def test_architecture_from_loaded_caffe_net():
    import caffe  # real pycaffe, no skip: fails until the build lands
    caffe.set_mode_cpu()
    net = caffe.Net(str(DEPLOY), caffe.TEST)
    convs, output = checks.layers_from_net(net, size=64)
    assert _failed(checks.check_architecture(convs, output)) == []


# ------------------------------------------------------------------ logs

_NET_BLOCK = """I0612 10:00:01.000300 4242 net.cpp:53] Initializing net from parameters: 
name: "StemRestore12"
state {
  phase: TRAIN
  level: 0
  stage: ""
}
layer {
  name: "data"
  type: "HDF5Data"
  top: "data"
  top: "label"
  include {
    phase: TRAIN
  }
  hdf5_data_param {
    source: "data/train/list.txt"
    batch_size: 16
    shuffle: true
  }
}
layer {
  name: "conv1"
  type: "Convolution"
  bottom: "data"
  top: "conv1"
  convolution_param {
    num_output: 64
    pad: 2
    kernel_size: 5
    weight_filler {
      type: "msra"
    }
  }
}
layer {
  name: "loss"
  type: "{loss}"
  bottom: "conv12"
  bottom: "label"
  top: "loss"
}
I0612 10:00:01.000400 4242 layer_factory.hpp:77] Creating layer data
"""


def make_log(solver_lines: str, start: str = "10:00", losses=(0.9, 0.5, 0.2), finetune: str | None = None,
             loss_type: str = "EuclideanLoss", done: bool = True, date: str = "20260612") -> str:
    """A realistic `caffe train` glog log (solver block, net block, iterations).

    ``date`` is YYYYMMDD (glog >= 0.6, as built here) or MMDD (older glog).
    """
    h, m = start.split(":")
    ts = lambda s: f"I{date} {h}:{m}:{s:02d}.000100 4242"  # noqa: E731
    out = [f"{ts(0)} caffe.cpp:197] Use CPU.",
           f"{ts(0)} solver.cpp:45] Initializing solver from parameters: ",
           solver_lines.rstrip("\n"),
           f"{ts(1)} solver.cpp:102] Creating training net from net file: prototxt/train_hdf5.prototxt",
           _NET_BLOCK.replace("{loss}", loss_type).rstrip("\n").replace("I0612 10:00:01", f"I{date} {h}:{m}:01")]
    if finetune:
        out.append(f"{ts(2)} caffe.cpp:230] Finetuning from {finetune}")
    out.append(f"{ts(2)} solver.cpp:57] Solver scaffolding done.")
    out.append(f"{ts(2)} caffe.cpp:239] Starting Optimization")
    for k, loss in enumerate(losses):
        it = 100 * k
        out.append(f"{ts(3 + k)} solver.cpp:218] Iteration {it} (9.61 iter/s, 10.4s/100 iters), loss = {loss}")
        out.append(f"{ts(3 + k)} solver.cpp:237]     Train net output #0: loss = {loss} (* 1 = {loss} loss)")
        out.append(f"{ts(3 + k)} sgd_solver.cpp:105] Iteration {it}, lr = 0.0001")
    out.append(f"{ts(9)} solver.cpp:330] Iteration 200, Testing net (#0)")
    out.append(f"{ts(9)} solver.cpp:397]     Test net output #0: loss = 0.25 (* 1 = 0.25 loss)")
    if done:
        out.append(f"{ts(9)} solver.cpp:315] Optimization Done.")
        out.append(f"{ts(9)} caffe.cpp:250] Optimization Done.")
    return "\n".join(out) + "\n"


ADAM_SOLVER = """test_iter: 10
test_interval: 200
base_lr: 0.0001
display: 100
max_iter: 200
lr_policy: "fixed"
momentum: 0.9
weight_decay: 0
snapshot: 200
snapshot_prefix: "runs/quick/snapshots/adam"
solver_mode: CPU
net: "prototxt/train_hdf5.prototxt"
train_state {
  level: 0
  stage: ""
}
momentum2: 0.999
type: "Adam"
"""
SGD_SOLVER = ADAM_SOLVER.replace('type: "Adam"', 'type: "SGD"').replace("momentum2: 0.999\n", "") \
    .replace("snapshots/adam", "snapshots/sgd")


def test_parse_adam_log():
    log = checks.parse_caffe_log(make_log(ADAM_SOLVER), "adam.log")
    assert log.solver_type == "Adam"
    assert log.loss_layer_types == ("EuclideanLoss",)
    assert log.train_losses == ((0, 0.9), (100, 0.5), (200, 0.2))
    assert log.test_losses == ((200, 0.25),)
    assert log.done and log.first_time == "20260612 10:00:00.000100"


def test_parse_old_glog_date_format():
    log = checks.parse_caffe_log(make_log(ADAM_SOLVER, date="0612"), "adam.log")
    assert log.solver_type == "Adam" and log.loss_layer_types == ("EuclideanLoss",)
    assert log.first_time == "0612 10:00:00.000100"


def test_parse_legacy_and_default_solver_types():
    legacy = ADAM_SOLVER.replace('type: "Adam"', "solver_type: ADAM")
    assert checks.parse_caffe_log(make_log(legacy)).solver_type == "Adam"
    default = ADAM_SOLVER.replace('type: "Adam"\n', "")
    assert checks.parse_caffe_log(make_log(default)).solver_type == "SGD"


def _write_run(tmp_path, adam_start="10:00", sgd_start="11:00", **sgd_kw):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "adam.log").write_text(make_log(ADAM_SOLVER, start=adam_start))
    sgd_kw.setdefault("finetune", "runs/quick/snapshots/adam_iter_200.caffemodel")
    (logs / "sgd.log").write_text(make_log(SGD_SOLVER, start=sgd_start, losses=(0.2, 0.15, 0.1), **sgd_kw))
    return logs


def test_training_checklist_adam_then_sgd(tmp_path):
    items = checks.check_training_logs(_write_run(tmp_path))
    assert _failed(items) == []
    assert items[0].found.startswith("Adam -> SGD")


def test_training_checklist_fails_on_wrong_order_or_loss(tmp_path):
    items = checks.check_training_logs(_write_run(tmp_path, adam_start="12:00", sgd_start="11:00", finetune=None))
    failed = _failed(items)
    assert "Adam stage, then SGD stage" in failed
    assert "SGD starts from the Adam stage's weights" in failed


def test_training_checklist_fails_on_l1_loss(tmp_path):
    items = checks.check_training_logs(_write_run(tmp_path, loss_type="L1Loss"))
    assert "MSE loss (Caffe EuclideanLoss)" in _failed(items)


def test_training_checklist_without_logs(tmp_path):
    assert _failed(checks.check_training_logs(tmp_path / "nothing")) == ["training logs present"]


def test_losscurve_plots_both_stages(tmp_path):
    from evaluate.losscurve import plot_loss_curves

    logs = _write_run(tmp_path)
    out = tmp_path / "loss.png"
    assert plot_loss_curves(logs, out) == 2
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_training_checklist_on_real_caffe_logs(tmp_path):
    """Two tiny real `caffe train` stages (Adam, then SGD from Adam's weights) on the project's train net."""
    import subprocess

    import h5py
    import numpy as np

    caffe_bin = REPO / ".venv" / "bin" / "caffe"
    assert caffe_bin.exists(), "Caffe is not built yet (scripts/install.sh)"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        d = tmp_path / "data" / split
        d.mkdir(parents=True)
        with h5py.File(d / "shard0.h5", "w") as f:
            f["data"] = rng.random((4, 1, 16, 16), dtype=np.float32)
            f["label"] = rng.random((4, 1, 16, 16), dtype=np.float32)
        (d / "list.txt").write_text(f"{d / 'shard0.h5'}\n")
    net = (REPO / "prototxt" / "train_hdf5.prototxt").read_text()
    (tmp_path / "train.prototxt").write_text(net.replace("batch_size: 16", "batch_size: 2"))
    common = ('net: "train.prototxt"\ntest_iter: 1\ntest_interval: 3\ndisplay: 1\nmax_iter: 3\n'
              'lr_policy: "fixed"\nweight_decay: 0\nsnapshot: 3\nsolver_mode: CPU\n')
    (tmp_path / "adam.prototxt").write_text(common + 'type: "Adam"\nbase_lr: 1e-5\nmomentum: 0.9\n'
                                            'snapshot_prefix: "snapshots/adam"\n')
    (tmp_path / "sgd.prototxt").write_text(common + 'type: "SGD"\nbase_lr: 1e-7\nmomentum: 0.9\n'
                                           'snapshot_prefix: "snapshots/sgd"\n')
    (tmp_path / "snapshots").mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    for name, extra in (("adam", []), ("sgd", ["--weights=snapshots/adam_iter_3.caffemodel"])):
        with open(logs / f"{name}.log", "w") as log:
            subprocess.run([str(caffe_bin), "train", f"--solver={name}.prototxt", *extra], cwd=tmp_path,
                           stderr=log, stdout=subprocess.DEVNULL, check=True, timeout=120,
                           env={**os.environ, "GLOG_minloglevel": "0"})  # pycaffe users set it to 2
    items = {i.claim: i for i in checks.check_training_logs(logs)}
    assert items["Adam stage, then SGD stage"].passed, items["Adam stage, then SGD stage"].found
    assert items["SGD starts from the Adam stage's weights"].passed
    assert items["MSE loss (Caffe EuclideanLoss)"].passed
    assert items["Adam beta1 (momentum) set"].passed
    assert items["Adam stage finished"].passed and items["SGD stage finished"].passed
    adam = checks.parse_caffe_log((logs / "adam.log").read_text())
    assert [i for i, _ in adam.train_losses] == [0, 1, 2, 3]  # caffe also logs the final iteration


def test_a_finished_run_resumed_in_the_same_log_is_not_finished():
    """'Optimization Done' counts only after the log's last `caffe train` start: a stage that
    finished once (e.g. a benchmark arm) and was continued in the same log is running again."""
    finished = make_log(ADAM_SOLVER)
    resumed = finished + make_log(ADAM_SOLVER, start="11:00", done=False)
    assert checks.parse_caffe_log(finished).done
    assert not checks.parse_caffe_log(resumed).done
    assert checks.parse_caffe_log(resumed + make_log(ADAM_SOLVER, start="12:00")).done
