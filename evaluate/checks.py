"""Checklists for the paper's claims, read from the model and the training logs.

Architecture claims (seed abstract, REFERENCE.md §1): 12 convolution layers,
64 filters of 5x5 except the last with a single filter, a ReLU after every
convolution (the last included), spatial size kept (pad 2), 1,027,905
parameters with biases, receptive field 49x49.  They are checked from a
*description of the net's layers* that is built either from the loaded pycaffe
net itself (:func:`layers_from_net`: parameter blob shapes, blob shapes after a
forward-shape pass, layer order) or, without Caffe, from the deploy prototxt
text (:func:`layers_from_prototxt`, a small protobuf text-format reader).

Training claims (Adam stage then SGD stage, MSE loss = Caffe EuclideanLoss) are
checked from Caffe's glog output (:func:`parse_caffe_log`): the solver
parameters it prints ("Initializing solver from parameters:" followed by the
SolverParameter text, with ``type: "Adam"`` or legacy ``solver_type: ADAM``;
no type means Caffe's default SGD), the net parameters it prints (layer
``type: "EuclideanLoss"``), "Iteration N (...), loss = L" lines, glog
timestamps and "Finetuning from W" (``caffe train --weights W``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CheckItem", "ConvInfo", "parse_prototxt", "layers_from_prototxt", "layers_from_net",
    "check_architecture", "parse_caffe_log", "check_training_logs", "format_checklist",
    "PAPER_PARAMS", "PAPER_RF",
]

#: Parameter count claimed for the paper's net (weights + biases).
PAPER_PARAMS = 1_027_905
#: Receptive field (px) of 12 stacked 5x5 convolutions.
PAPER_RF = 49


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

_TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|([{}:])|([^\s{}:"\'#]+))')


def _tokens(text: str) -> list[str]:
    """Split protobuf text format into tokens (comments dropped)."""
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"cannot parse prototxt near: {text[pos:pos + 40]!r}")
        pos = m.end()
        if m.group(1):
            continue
        tok = m.group(2) or m.group(3) or m.group(4)
        if tok:
            out.append(tok)
    return out


def _value(tok: str) -> Any:
    """Convert a scalar token: quoted string, int, float, or bare enum/bool word."""
    if tok[0] in "\"'":
        return tok[1:-1]
    for conv in (int, float):
        try:
            return conv(tok)
        except ValueError:
            pass
    return tok


def parse_prototxt(text: str) -> dict[str, list]:
    """Parse protobuf text format into ``{field: [values...]}`` (messages are nested dicts).

    Every field maps to a list because any field may repeat.  Enough for
    Caffe's NetParameter text; no type checking against a schema.
    """
    toks = _tokens(text)
    pos = 0

    def message(end: str | None) -> dict[str, list]:
        nonlocal pos
        msg: dict[str, list] = {}
        while pos < len(toks):
            tok = toks[pos]
            if tok == "}":
                if end != "}":
                    raise ValueError("unbalanced '}' in prototxt")
                pos += 1
                return msg
            name = tok
            pos += 1
            if pos < len(toks) and toks[pos] == ":":
                pos += 1
            if pos >= len(toks):
                raise ValueError(f"field {name!r} has no value")
            if toks[pos] == "{":
                pos += 1
                msg.setdefault(name, []).append(message("}"))
            else:
                msg.setdefault(name, []).append(_value(toks[pos]))
                pos += 1
        if end is not None:
            raise ValueError("missing '}' at end of prototxt")
        return msg

    return message(None)


def _first(msg: dict, key: str, default: Any = None) -> Any:
    vals = msg.get(key)
    return vals[0] if vals else default


def _pair(conv: dict, key: str, key_h: str, key_w: str, default: int) -> tuple[int, int]:
    """Caffe's repeated/explicit (h, w) convention for kernel_size, pad, stride."""
    if key_h in conv or key_w in conv:
        return int(_first(conv, key_h, default)), int(_first(conv, key_w, default))
    vals = conv.get(key, [])
    if not vals:
        return default, default
    return (int(vals[0]), int(vals[0])) if len(vals) == 1 else (int(vals[0]), int(vals[1]))


def layers_from_prototxt(path: str | Path) -> tuple[list[ConvInfo], str]:
    """Describe the convolutions of a deploy prototxt without Caffe.

    Returns the convolution layers in order and the name of the last top blob
    (the net's output).  Input channel counts come from the ``Input`` layer's
    shape and the ``num_output`` of the layer producing each bottom; spatial
    size is followed with Caffe's formula ``(H + 2p - k) / s + 1``.
    """
    path = Path(path)
    try:
        net = parse_prototxt(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read prototxt: {exc}") from exc
    layers = net.get("layer", []) or net.get("layers", [])
    chans: dict[str, int] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for name in net.get("input", []):  # legacy input/input_shape fields
        shape = _first(net, "input_shape", {})
        dims = shape.get("dim", []) if shape else net.get("input_dim", [])
        if len(dims) == 4:
            chans[name], sizes[name] = int(dims[1]), (int(dims[2]), int(dims[3]))
    convs: list[dict] = []
    last_top = ""
    for i, layer in enumerate(layers):
        ltype = _first(layer, "type", "")
        bottoms, tops = layer.get("bottom", []), layer.get("top", [])
        if ltype == "Input":
            shape = _first(_first(layer, "input_param", {}), "shape", {})
            dims = shape.get("dim", [])
            if len(dims) != 4:
                raise ValueError(f"{path}: Input layer needs a 4-D shape, got {dims}")
            for t in tops:
                chans[t], sizes[t] = int(dims[1]), (int(dims[2]), int(dims[3]))
        elif ltype == "Convolution":
            cp = _first(layer, "convolution_param", {})
            if len(bottoms) != 1 or len(tops) != 1 or bottoms[0] not in chans:
                raise ValueError(f"{path}: convolution {_first(layer, 'name')!r} has unknown input")
            k = _pair(cp, "kernel_size", "kernel_h", "kernel_w", 0)
            p = _pair(cp, "pad", "pad_h", "pad_w", 0)
            s = _pair(cp, "stride", "stride_h", "stride_w", 1)
            cin, (h, w) = chans[bottoms[0]], sizes[bottoms[0]]
            cout = int(_first(cp, "num_output", 0))
            group = int(_first(cp, "group", 1))
            bias = str(_first(cp, "bias_term", "true")).lower() != "false"
            oh, ow = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
            chans[tops[0]], sizes[tops[0]] = cout, (oh, ow)
            convs.append(dict(index=i, name=_first(layer, "name", f"layer{i}"), top=tops[0],
                              cin=cin, cout=cout, k=k, s=s, keeps=(oh, ow) == (h, w),
                              n=cout * (cin // group) * k[0] * k[1] + (cout if bias else 0)))
        elif bottoms and tops and bottoms[0] in chans:  # element-wise layers keep the shape
            for t in tops:
                chans[t], sizes[t] = chans[bottoms[0]], sizes[bottoms[0]]
        if tops:
            last_top = tops[-1]
    out = []
    for c in convs:
        nxt = layers[c["index"] + 1] if c["index"] + 1 < len(layers) else {}
        relu = _first(nxt, "type", "") == "ReLU" and nxt.get("bottom", []) == [c["top"]]
        out.append(ConvInfo(c["name"], c["cin"], c["cout"], c["k"], c["s"], c["keeps"], c["n"], relu))
    return out, last_top


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
    """Check the paper's architecture claims on a layer description."""
    items = [CheckItem("12 convolution layers", f"{len(convs)}", len(convs) == 12)]
    hidden, last = convs[:-1], convs[-1:] or []
    widths = sorted({c.out_channels for c in hidden})
    items.append(CheckItem("64 filters in every layer but the last", f"{widths}", bool(hidden) and widths == [64]))
    items.append(CheckItem("1 filter in the last layer", f"{[c.out_channels for c in last]}",
                           [c.out_channels for c in last] == [1]))
    kernels = sorted({c.kernel for c in convs})
    items.append(CheckItem("all kernels 5x5", ", ".join(f"{a}x{b}" for a, b in kernels),
                           bool(convs) and kernels == [(5, 5)]))
    keeps = sum(c.keeps_size and c.stride == (1, 1) for c in convs)
    items.append(CheckItem("spatial size kept (pad 2, stride 1)", f"{keeps}/{len(convs)} layers",
                           bool(convs) and keeps == len(convs)))
    relus = sum(c.relu_after for c in convs)
    items.append(CheckItem("ReLU after every convolution (the last included)", f"{relus}/{len(convs)}",
                           bool(convs) and relus == len(convs)))
    total = sum(c.n_params for c in convs)
    items.append(CheckItem(f"{PAPER_PARAMS:,} parameters (weights + biases)", f"{total:,}", total == PAPER_PARAMS))
    rf = receptive_field(convs)
    items.append(CheckItem(f"receptive field {PAPER_RF}x{PAPER_RF} px", f"{rf}x{rf}", rf == PAPER_RF))
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
    solver_params: dict | None = None
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


def parse_caffe_log(text: str, path: str = "<log>") -> CaffeLog:
    """Extract solver type, loss layers, losses and timing facts from a Caffe glog log."""
    lines = text.splitlines()
    log = CaffeLog(path=path)
    for line in lines:
        m = _GLOG.match(line)
        if m and log.first_time is None:
            log.first_time = f"{m.group(2)} {m.group(3)}"
        if "Optimization Done" in line:
            log.done = True
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
        params = parse_prototxt(solver[0])
        log.solver_params = params
        stype = _first(params, "type")
        legacy = _first(params, "solver_type")
        if stype:
            log.solver_type = str(stype)
        elif legacy:
            log.solver_type = _LEGACY_TYPES.get(str(legacy).upper(), str(legacy))
        else:
            log.solver_type = "SGD"  # Caffe's default when no type is set
    types = []
    for block in _blocks(lines, "Initializing net from parameters"):
        for layer in parse_prototxt(block).get("layer", []):
            t = str(_first(layer, "type", ""))
            if t.endswith("Loss"):
                types.append(t)
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
        beta1 = _first(adam.solver_params, "momentum", 0)
        items.append(CheckItem("Adam beta1 (momentum) set", f"momentum: {beta1}", float(beta1) > 0))
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
