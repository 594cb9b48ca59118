"""Checklists for the paper's claims, read from the model and the training logs.

Architecture claims (seed abstract, REFERENCE.md §1): 12 convolution layers,
64 filters of 5x5 except the last with a single filter, a ReLU after every
convolution (the last included), spatial size kept (pad 2), 1,027,905
parameters with biases, receptive field 49x49 px (the numbers are
:mod:`stem_restore.network`'s).  They are checked from a *description of the
net's layers* that is built either from the loaded pycaffe net itself
(:func:`layers_from_net`: parameter blob shapes, blob shapes after a
forward-shape pass, layer order) or, without loading the net, from the deploy
prototxt (:func:`layers_from_prototxt`: the ``NetParameter`` that
:func:`stem_restore.network.read_net` parses with Caffe's protobuf schema).

Training claims (Adam stage then SGD stage, MSE loss = Caffe EuclideanLoss) are
checked from Caffe's glog output (:func:`parse_caffe_log`): the solver
parameters it prints ("Initializing solver from parameters:" followed by the
SolverParameter text, parsed as one: ``type: "Adam"`` or legacy ``solver_type:
ADAM``; no type means Caffe's default SGD), the net parameters it prints (a
NetParameter: layer ``type: "EuclideanLoss"``), "Iteration N (...), loss = L"
lines, glog timestamps and "Finetuning from W" (``caffe train --weights W``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stem_restore import network
from stem_restore.network import FILTERS, KERNEL, N_CONV, N_PARAMS, PAD, RECEPTIVE_FIELD

__all__ = [
    "CheckItem", "ConvInfo", "layers_from_prototxt", "layers_from_net",
    "check_architecture", "parse_caffe_log", "check_training_logs", "format_checklist",
]


@dataclass(frozen=True)
class CheckItem:
    """One line of a checklist."""

    claim: str
    found: str
    passed: bool


@dataclass(frozen=True)
class ConvInfo:
    """What the checks need to know about one convolution layer."""

    name: str
    in_channels: int
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    keeps_size: bool
    n_params: int
    relu_after: bool


# --------------------------------------------------------------------- prototxt

def _input_blobs(net) -> dict[str, tuple[int, int, int]]:
    """``{blob: (channels, H, W)}`` of the legacy ``input`` / ``input_shape`` / ``input_dim`` fields."""
    blobs = {}
    for i, name in enumerate(net.input):
        if i < len(net.input_shape):
            dims = list(net.input_shape[i].dim)
        else:
            dims = list(net.input_dim[4 * i:4 * i + 4])
        if len(dims) == 4:
            blobs[name] = (int(dims[1]), int(dims[2]), int(dims[3]))
    return blobs


def _conv_info(layer, blobs: dict[str, tuple[int, int, int]], relu_after: bool, path: Path) -> ConvInfo:
    """:class:`ConvInfo` of a ``Convolution`` layer; records its top's (channels, H, W) in ``blobs``."""
    cp = layer.convolution_param
    geom = network.conv_geometry(cp)
    if geom is None:
        raise ValueError(f"{path}: convolution {layer.name!r} is not a 2-D convolution with a kernel size")
    if len(layer.bottom) != 1 or len(layer.top) != 1 or layer.bottom[0] not in blobs:
        raise ValueError(f"{path}: convolution {layer.name!r} has unknown input")
    cin, h, w = blobs[layer.bottom[0]]
    cout = int(cp.num_output)
    out_size = geom.output_size(h, w)
    blobs[layer.top[0]] = (cout, *out_size)
    weights = cout * (cin // max(1, geom.group)) * geom.kernel[0] * geom.kernel[1]
    n_params = weights + (cout if cp.bias_term else 0)
    return ConvInfo(layer.name, cin, cout, geom.kernel, geom.stride, out_size == (h, w), n_params, relu_after)


def layers_from_prototxt(path: str | Path) -> tuple[list[ConvInfo], str]:
    """Describe the convolutions of a deploy prototxt without loading the net.

    Returns the convolution layers in order and the name of the last top blob
    (the net's output).  Input channel counts come from the ``Input`` layer's
    shape and the ``num_output`` of the layer producing each bottom; spatial
    size (px) is followed with Caffe's formula ``(H + 2p - extent) / s + 1``.
    ValueError naming the file if it cannot be read or parsed.
    """
    path = Path(path)
    try:
        net = network.read_net(path)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read prototxt: {exc.strerror or exc}") from exc
    layers = list(net.layer)
    blobs = _input_blobs(net)
    convs: list[ConvInfo] = []
    last_top = ""
    for i, layer in enumerate(layers):
        if layer.type == "Input":
            shape = layer.input_param.shape
            dims = [int(d) for d in shape[0].dim] if shape else []
            if len(dims) != 4:
                raise ValueError(f"{path}: Input layer needs a 4-D shape, got {dims}")
            for top in layer.top:
                blobs[top] = (dims[1], dims[2], dims[3])
        elif layer.type == "Convolution":
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            relu = nxt is not None and nxt.type == "ReLU" and list(nxt.bottom) == list(layer.top[:1])
            convs.append(_conv_info(layer, blobs, relu, path))
        elif layer.bottom and layer.top and layer.bottom[0] in blobs:  # element-wise layers keep the shape
            for top in layer.top:
                blobs[top] = blobs[layer.bottom[0]]
        if layer.top:
            last_top = layer.top[-1]
    return convs, last_top


def layers_from_net(net: Any, size: int = 64) -> tuple[list[ConvInfo], str]:
    """Describe the convolutions of a loaded pycaffe ``caffe.Net`` (the model itself).

    The net is reshaped to 1x1x``size``x``size`` so that blob shapes show
    whether each layer keeps the spatial size.  Kernel sizes and channel
    counts come from the learned parameter blobs; ReLU placement from the
    layer order and the ReLU's bottom blob.  Strides are inferred from the
    blob shapes (1 when the size is kept).
    """
    names = list(net._layer_names)
    types = [layer.type for layer in net.layers]
    net.blobs[net.inputs[0]].reshape(1, 1, size, size)
    net.reshape()
    out = []
    for i, (name, ltype) in enumerate(zip(names, types)):
        if ltype != "Convolution":
            continue
        params = net.params[name]
        w = params[0].data.shape  # (out, in/group, kh, kw)
        n = sum(int(p.data.size) for p in params)
        bottom, top = net.bottom_names[name][0], net.top_names[name][0]
        hin, hout = net.blobs[bottom].shape[2:], net.blobs[top].shape[2:]
        keeps = tuple(hin) == tuple(hout)
        stride = (1, 1) if keeps else tuple(max(1, round(a / b)) for a, b in zip(hin, hout))
        relu = (i + 1 < len(names) and types[i + 1] == "ReLU"
                and list(net.bottom_names[names[i + 1]]) == [top])
        out.append(ConvInfo(name, int(net.blobs[bottom].shape[1]), int(w[0]), (int(w[2]), int(w[3])),
                            stride, keeps, n, relu))
    return out, net.outputs[-1] if net.outputs else ""


def receptive_field(convs: list[ConvInfo]) -> int:
    """Receptive field (px, along y) of stacked convolutions: 1 + sum (k-1) * jump."""
    rf, jump = 1, 1
    for c in convs:
        rf += (c.kernel[0] - 1) * jump
        jump *= c.stride[0]
    return rf


def check_architecture(convs: list[ConvInfo], output: str = "") -> list[CheckItem]:
    """Check the paper's architecture claims (:mod:`stem_restore.network`) on a layer description."""
    items = [CheckItem(f"{N_CONV} convolution layers", f"{len(convs)}", len(convs) == N_CONV)]
    hidden, last = convs[:-1], convs[-1:] or []
    widths = sorted({c.out_channels for c in hidden})
    items.append(CheckItem(f"{FILTERS} filters in every layer but the last", f"{widths}",
                           bool(hidden) and widths == [FILTERS]))
    items.append(CheckItem("1 filter in the last layer", f"{[c.out_channels for c in last]}",
                           [c.out_channels for c in last] == [1]))
    kernels = sorted({c.kernel for c in convs})
    items.append(CheckItem(f"all kernels {KERNEL}x{KERNEL}", ", ".join(f"{a}x{b}" for a, b in kernels),
                           bool(convs) and kernels == [(KERNEL, KERNEL)]))
    keeps = sum(c.keeps_size and c.stride == (1, 1) for c in convs)
    items.append(CheckItem(f"spatial size kept (pad {PAD}, stride 1)", f"{keeps}/{len(convs)} layers",
                           bool(convs) and keeps == len(convs)))
    relus = sum(c.relu_after for c in convs)
    items.append(CheckItem("ReLU after every convolution (the last included)", f"{relus}/{len(convs)}",
                           bool(convs) and relus == len(convs)))
    total = sum(c.n_params for c in convs)
    items.append(CheckItem(f"{N_PARAMS:,} parameters (weights + biases)", f"{total:,}", total == N_PARAMS))
    rf = receptive_field(convs)
    items.append(CheckItem(f"receptive field {RECEPTIVE_FIELD}x{RECEPTIVE_FIELD} px", f"{rf}x{rf}",
                           rf == RECEPTIVE_FIELD))
    if output:
        items.append(CheckItem("single-channel output blob", f"{output!r} from {last[0].name if last else '-'}",
                               bool(last) and last[0].out_channels == 1))
    return items


# ----------------------------------------------------------------------- logs

#: glog line prefix: severity, date (MMDD, or YYYYMMDD in glog >= 0.6), time, thread, file:line].
_GLOG = re.compile(r"^([IWEF])(\d{8}|\d{4}) (\d\d:\d\d:\d\d\.\d+)\s+\S+\s+[^\]]*\]\s?(.*)$")
_ITER_LOSS = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = ([-+0-9.eE]+|nan|-?inf)")
_TEST_LOSS = re.compile(r"Test net output #\d+: (\S+) = ([-+0-9.eE]+|nan|-?inf)")
_TESTING = re.compile(r"Iteration (\d+), Testing net")
_LEGACY_TYPES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad", "RMSPROP": "RMSProp",
                 "ADADELTA": "AdaDelta", "ADAM": "Adam"}


@dataclass
class CaffeLog:
    """What :func:`parse_caffe_log` extracts from one ``caffe train`` log."""

    path: str
    solver_type: str | None = None
    solver_params: Any = None  # caffe_pb2.SolverParameter, or None without a solver block
    loss_layer_types: tuple[str, ...] = ()
    train_losses: tuple[tuple[int, float], ...] = ()
    test_losses: tuple[tuple[int, float], ...] = ()  # (iteration, test-net loss)
    finetune_from: str | None = None
    first_time: str | None = None
    done: bool = False


def _blocks(lines: list[str], header: str) -> list[str]:
    """Texts that follow a glog line containing ``header`` up to the next glog-prefixed line."""
    out, cur = [], None
    for line in lines:
        is_glog = bool(_GLOG.match(line))
        if cur is not None and is_glog:
            out.append("\n".join(cur))
            cur = None
        if is_glog and header in line:
            cur = []
        elif cur is not None:
            cur.append(line)
    if cur is not None:
        out.append("\n".join(cur))
    return out


def _solver_type(params) -> str:
    """The solver type of a SolverParameter: ``type``, else the legacy ``solver_type`` enum,
    else Caffe's default "SGD"."""
    if params.HasField("type") and params.type:
        return params.type
    if params.HasField("solver_type"):
        legacy = type(params).SolverType.Name(params.solver_type)
        return _LEGACY_TYPES.get(legacy, legacy)
    return "SGD"


def parse_caffe_log(text: str, path: str = "<log>") -> CaffeLog:
    """Extract solver type, loss layers, losses and timing facts from a Caffe glog log.

    The solver and net blocks are parsed as ``caffe_pb2`` SolverParameter and
    NetParameter (:mod:`stem_restore.network`); ValueError naming ``path`` if
    one does not parse.
    """
    lines = text.splitlines()
    log = CaffeLog(path=path)
    chunk = False
    for line in lines:
        m = _GLOG.match(line)
        if m and log.first_time is None:
            log.first_time = f"{m.group(2)} {m.group(3)}"
        if line.startswith("### run_training.sh"):
            # run_training.sh's DRAW_PASSES: a chunk of the stage (<stage>.chunk.prototxt) ends
            # where a draw of the training pairs does, not where the stage does.
            chunk = ".chunk.prototxt" in line
        if "Initializing solver from parameters" in line:
            log.done = False  # a later `caffe train` in the same log (a resume): done only if it finished
        if "Optimization Done" in line:
            log.done = not chunk
        fm = re.search(r"Finetuning from (\S+)", line)
        if fm:
            log.finetune_from = fm.group(1)
    log.train_losses = tuple((int(a), float(b)) for a, b in _ITER_LOSS.findall(text))
    tests, it = [], 0
    for line in lines:
        t = _TESTING.search(line)
        if t:
            it = int(t.group(1))
        v = _TEST_LOSS.search(line)
        if v and v.group(1) == "loss":
            tests.append((it, float(v.group(2))))
    log.test_losses = tuple(tests)
    solver = _blocks(lines, "Initializing solver from parameters")
    if solver:
        log.solver_params = network.parse_solver(solver[0], f"{path} (solver parameters)")
        log.solver_type = _solver_type(log.solver_params)
    types = []
    for block in _blocks(lines, "Initializing net from parameters"):
        for layer in network.parse_net(block, f"{path} (net parameters)").layer:
            if layer.type.endswith("Loss"):
                types.append(layer.type)
    log.loss_layer_types = tuple(dict.fromkeys(types))
    return log


def stage_order_key(log: CaffeLog) -> tuple:
    """Sort key of a training stage: first glog timestamp (logs without one last), then path."""
    return (log.first_time is None, log.first_time or "", log.path)


def check_training_logs(log_dir: str | Path) -> list[CheckItem]:
    """Check "Adam stage then SGD stage, MSE loss" from the ``*.log`` files in ``log_dir``.

    The lead's run_training.sh writes ``adam.log`` and ``sgd.log``; any
    ``*.log`` with a solver block is used.  Stages are ordered by their first
    glog timestamp (YYYYMMDD or, in older glog, MMDD without the year), and the SGD stage's
    "Finetuning from" weights are reported as supporting evidence.
    """
    log_dir = Path(log_dir)
    files = sorted(log_dir.glob("*.log")) if log_dir.is_dir() else []
    if not files:
        return [CheckItem("training logs present", f"no *.log in {log_dir}", False)]
    logs = []
    for f in files:
        try:
            lg = parse_caffe_log(f.read_text(errors="replace"), str(f))
        except ValueError as exc:
            logs.append(CaffeLog(path=f"{f} (unreadable: {exc})"))
            continue
        logs.append(lg)
    stages = sorted((lg for lg in logs if lg.solver_type), key=stage_order_key)
    seq = [lg.solver_type for lg in stages]
    names = ", ".join(f"{Path(lg.path).name}={lg.solver_type}" for lg in stages) or "none"
    items = [CheckItem("Adam stage, then SGD stage", f"{' -> '.join(seq) or 'no solver found'} ({names})",
                       seq == ["Adam", "SGD"])]
    adam = next((lg for lg in stages if lg.solver_type == "Adam"), None)
    sgd = next((lg for lg in stages if lg.solver_type == "SGD"), None)
    if sgd is not None:
        src = sgd.finetune_from or "not logged"
        items.append(CheckItem("SGD starts from the Adam stage's weights", src,
                               sgd.finetune_from is not None and "adam" in sgd.finetune_from.lower()))
    if adam is not None and adam.solver_params is not None:
        beta1 = adam.solver_params.momentum
        items.append(CheckItem("Adam beta1 (momentum) set", f"momentum: {beta1:.6g}", beta1 > 0))
    losses = sorted({t for lg in stages for t in lg.loss_layer_types})
    items.append(CheckItem("MSE loss (Caffe EuclideanLoss)", ", ".join(losses) or "no loss layer logged",
                           bool(stages) and all(lg.loss_layer_types == ("EuclideanLoss",) for lg in stages)))
    for lg in stages:
        # The held-out test loss where Caffe logged two or more tests (one
        # minibatch's training loss is too noisy to judge a short stage);
        # otherwise the mean training loss of the first vs. the last third.
        tests = sorted(dict(lg.test_losses).items())
        tl = sorted(dict(lg.train_losses).items())
        if len(tests) >= 2:
            found = f"test loss at iter {tests[0][0]}: {tests[0][1]:.4g} -> iter {tests[-1][0]}: {tests[-1][1]:.4g}"
            items.append(CheckItem(f"{lg.solver_type} stage: loss decreased", found, tests[-1][1] < tests[0][1]))
        elif len(tl) >= 3:
            k = len(tl) // 3
            first, last = (sum(v for _, v in part) / len(part) for part in (tl[:k], tl[-k:]))
            found = f"mean training loss {first:.4g} (first third) -> {last:.4g} (last third)"
            items.append(CheckItem(f"{lg.solver_type} stage: loss decreased", found, last < first))
        else:
            items.append(CheckItem(f"{lg.solver_type} stage: loss decreased",
                                   f"{len(tl)} loss line(s), {len(tests)} test(s)", False))
        items.append(CheckItem(f"{lg.solver_type} stage finished", "Optimization Done" if lg.done else "not finished",
                               lg.done))
    return items


def format_checklist(title: str, items: list[CheckItem]) -> str:
    """Render a checklist as Markdown task items: ``- [x] claim: found``."""
    lines = [f"### {title}", ""]
    lines += [f"- [{'x' if it.passed else ' '}] {'PASS' if it.passed else 'FAIL'}: {it.claim} (found: {it.found})"
              for it in items]
    return "\n".join(lines) + "\n"
