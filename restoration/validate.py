"""Check a deploy prototxt and a .caffemodel in Python before Caffe sees them.

BVLC Caffe answers a bad model with a glog ``Check failed`` and ``abort()``
(exit 134, C++ stack trace), and silently leaves a layer at its filler
(random or zero weights) when the .caffemodel has no layer of that name.
:func:`validate_model` finds those problems first, with protobuf alone
(``caffe_pb2`` + ``google.protobuf.text_format``), and raises
:class:`ModelError` with one line naming the file and the problem:

* the prototxt parses as a ``NetParameter`` (text format), uses the current
  ``layer`` syntax, has only known layer types, no data-source layers, every
  bottom blob exists, the input blob ``data`` is ``(N, 1, H, W)`` and the
  output blob ``conv12`` exists;
* the .caffemodel is non-empty and parses as a binary ``NetParameter``;
* every layer of the prototxt that has parameters finds a layer of the same
  name in the .caffemodel (so nothing is left at its filler), and -- as in
  Caffe's ``Net::CopyTrainedLayersFrom`` -- every layer of the .caffemodel
  whose name is a layer of the net (parameter-free ones included, each of
  several same-named ones) has that layer's number of blobs, each of the
  shape the prototxt implies (propagated from the input shape), the data
  length matching the shape, and only finite values.

Settings Caffe checks that this module does not model (fillers, engines,
pooling kernels, ...) are caught by :func:`trial_load`: one load of the net
in a child process, whose abort becomes a :class:`ModelError`.
"""
from __future__ import annotations

import math
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stem_restore import network
from stem_restore.network import INPUT_BLOB, OUTPUT_BLOB, in_test_phase

#: Layer types of BVLC Caffe 1.0 (Debian's source), as registered in its layer factory.
KNOWN_LAYER_TYPES = frozenset("""
AbsVal Accuracy ArgMax BNLL BatchNorm BatchReindex Bias Clip Concat ContrastiveLoss
Convolution Crop Data Deconvolution Dropout DummyData ELU Eltwise Embed EuclideanLoss Exp
Filter Flatten HDF5Data HDF5Output HingeLoss Im2col ImageData InfogainLoss InnerProduct Input
LRN LSTM LSTMUnit Log MVN MemoryData MultinomialLogisticLoss PReLU Parameter Pooling Power
Python RNN ReLU Reduction Reshape SPP Scale Sigmoid SigmoidCrossEntropyLoss Silence Slice
Softmax SoftmaxWithLoss Split Swish TanH Threshold Tile WindowData
""".split())

#: Layers that read training data from disk: not usable in a deploy net.
DATA_LAYER_TYPES = frozenset({"Data", "HDF5Data", "ImageData", "MemoryData", "WindowData",
                              "DummyData", "Python"})

#: Layers whose top has the shape of their (first) bottom.
SHAPE_PRESERVING = frozenset({"ReLU", "TanH", "Sigmoid", "AbsVal", "BNLL", "ELU", "Power", "Exp",
                              "Log", "Dropout", "Clip", "Swish", "Threshold", "Split", "PReLU",
                              "BatchNorm", "MVN", "LRN", "Softmax", "Eltwise", "Bias", "Scale"})

#: Layer types whose parameter shapes this module can derive.
PARAM_LAYERS = frozenset({"Convolution", "Deconvolution", "InnerProduct", "BatchNorm", "PReLU",
                          "Scale", "Bias"})


class ModelError(Exception):
    """The model cannot be used; ``str(err)`` is one line naming the file and the problem."""


def caffe_pb2():
    """The ``caffe_pb2`` protobuf module (:func:`stem_restore.network.caffe_pb2`: without
    starting Caffe if possible); :class:`ModelError` if pycaffe is not installed."""
    try:
        return network.caffe_pb2()
    except ImportError as err:
        raise ModelError(f"cannot check the model: {err}") from None


@dataclass
class ParamLayer:
    """A layer of the prototxt with parameters, and the blob shapes it expects."""

    name: str
    type: str
    shapes: list[tuple[int, ...]]


# --------------------------------------------------------------------------
# prototxt
# --------------------------------------------------------------------------
def parse_prototxt(path: Path):
    """Parse a text-format ``NetParameter`` (:func:`stem_restore.network.parse_net`);
    :class:`ModelError` on any problem."""
    caffe_pb2()  # ModelError without pycaffe
    data = _read_bytes(path, "model")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"model {path}: not a text file (is it a .caffemodel? --model takes the "
                         f"deploy .prototxt, --weights the .caffemodel)") from None
    try:
        net = network.parse_net(text, path)
    except network.PrototxtError as err:
        raise ModelError(f"model {path}: not a Caffe net definition: {_one_line(err.detail)}") from None
    if len(net.layers) and not len(net.layer):
        raise ModelError(f"model {path}: uses Caffe's old V1 'layers' syntax; convert it with "
                         f"caffe's upgrade_net_proto_text")
    if not len(net.layer):
        raise ModelError(f"model {path}: has no layers: not a Caffe net definition")
    return net


def _spatial(values, single_h, single_w, n_spatial: int, default: int | None, what: str,
             where: str) -> list[int]:
    """Caffe's repeated-or-_h/_w convention for kernel/stride/pad/dilation."""
    if single_h or single_w:
        return [int(single_h), int(single_w)]
    vals = [int(v) for v in values]
    if not vals:
        if default is None:
            raise ModelError(f"{where}: {what} is required")
        vals = [default]
    if len(vals) == 1:
        vals = vals * n_spatial
    if len(vals) != n_spatial:
        raise ModelError(f"{where}: {what} has {len(vals)} values for {n_spatial} spatial axes")
    return vals


def _conv_shapes(layer, bottom: tuple[int, ...], where: str) -> tuple[list, tuple[int, ...]]:
    """Parameter shapes and top shape of a (De)Convolution layer."""
    p = layer.convolution_param
    if len(bottom) != 4:
        raise ModelError(f"{where}: input has {len(bottom)} axes, a 2-D convolution needs 4")
    n, c, h, w = bottom
    k = _spatial(p.kernel_size, p.kernel_h, p.kernel_w, 2, None, "kernel_size", where)
    s = _spatial(p.stride, p.stride_h, p.stride_w, 2, 1, "stride", where)
    d = _spatial(p.dilation, 0, 0, 2, 1, "dilation", where)
    pad = [p.pad_h, p.pad_w] if (p.pad_h or p.pad_w) else _spatial(p.pad, 0, 0, 2, 0, "pad", where)
    if min(k) < 1 or min(s) < 1 or min(d) < 1:
        raise ModelError(f"{where}: kernel, stride and dilation must be >= 1")
    out, group = int(p.num_output), int(p.group)
    if out < 1:
        raise ModelError(f"{where}: num_output must be >= 1 (got {out})")
    if group < 1 or c % group or out % group:
        raise ModelError(f"{where}: group {group} must divide the input channels ({c}) "
                         f"and num_output ({out})")
    ext = [d[i] * (k[i] - 1) + 1 for i in range(2)]
    if layer.type == "Convolution":
        weights = (out, c // group, k[0], k[1])
        size = [(x + 2 * pad[i] - ext[i]) // s[i] + 1 for i, x in enumerate((h, w))]
    else:
        weights = (c, out // group, k[0], k[1])
        size = [s[i] * (x - 1) + ext[i] - 2 * pad[i] for i, x in enumerate((h, w))]
    if min(size) < 1:
        raise ModelError(f"{where}: output would be {size[0]} x {size[1]} px for a "
                         f"{h} x {w} px input (kernel {k}, pad {pad}, stride {s})")
    shapes = [weights] + ([(out,)] if p.bias_term else [])
    return shapes, (n, out, size[0], size[1])


def _axis(axis: int, ndim: int, where: str) -> int:
    """Caffe's CanonicalAxisIndex."""
    if not -ndim <= axis < ndim:
        raise ModelError(f"{where}: axis {axis} out of range for a {ndim}-axis input")
    return axis % ndim


def _param_shapes(layer, bottom: tuple[int, ...], where: str) -> tuple[list, tuple[int, ...]]:
    """Parameter shapes and top shape of a layer of :data:`PARAM_LAYERS`."""
    t = layer.type
    if t in ("Convolution", "Deconvolution"):
        return _conv_shapes(layer, bottom, where)
    if t == "InnerProduct":
        p = layer.inner_product_param
        ax = _axis(p.axis, len(bottom), where)
        k, out = int(np.prod(bottom[ax:], dtype=np.int64)), int(p.num_output)
        if out < 1:
            raise ModelError(f"{where}: num_output must be >= 1 (got {out})")
        w = (k, out) if p.transpose else (out, k)
        return [w] + ([(out,)] if p.bias_term else []), bottom[:ax] + (out,)
    channels = bottom[1] if len(bottom) > 1 else 1
    if t == "BatchNorm":
        return [(channels,), (channels,), (1,)], bottom
    if t == "PReLU":
        return [(1,) if layer.prelu_param.channel_shared else (channels,)], bottom
    # Scale / Bias with one bottom: the parameter covers axes [axis, axis + num_axes).
    p = layer.scale_param if t == "Scale" else layer.bias_param
    ax = _axis(p.axis, len(bottom), where)
    stop = len(bottom) if p.num_axes == -1 else ax + p.num_axes
    shapes = [tuple(bottom[ax:stop])]
    if t == "Scale" and p.bias_term:
        shapes.append(shapes[0])
    return shapes, bottom


def _input_shapes(net, path: Path) -> dict[str, tuple[int, ...] | None]:
    """Blobs declared by NetParameter's ``input`` / ``input_shape`` / ``input_dim``."""
    blobs: dict[str, tuple[int, ...] | None] = {}
    names = list(net.input)
    if len(net.input_shape):
        if len(net.input_shape) not in (1, len(names)):
            raise ModelError(f"model {path}: {len(names)} inputs but {len(net.input_shape)} input_shape")
        for i, name in enumerate(names):
            shape = net.input_shape[min(i, len(net.input_shape) - 1)]
            blobs[name] = tuple(int(d) for d in shape.dim)
    elif len(net.input_dim):
        dims = [int(d) for d in net.input_dim]
        if len(dims) != 4 * len(names):
            raise ModelError(f"model {path}: input_dim needs 4 values per input")
        for i, name in enumerate(names):
            blobs[name] = tuple(dims[4 * i:4 * i + 4])
    elif names:
        raise ModelError(f"model {path}: input {names[0]!r} has no input_shape")
    return blobs


def net_param_layers(net, path: Path) -> list[ParamLayer]:
    """The layers of the TEST-phase net that have parameters (see :func:`net_layers`)."""
    return [layer for layer in net_layers(net, path) if layer.shapes]


def net_layers(net, path: Path) -> list[ParamLayer]:
    """Walk the TEST-phase net, check its structure, return every layer Caffe will create.

    That is every TEST-phase layer (parameter-free ones with no shapes) and the
    ``Split`` layers Caffe inserts for a blob read by several layers: the
    targets of Caffe's ``CopyTrainedLayersFrom`` (:func:`check_weights`).
    Shapes are propagated from the input through shape-preserving layers and
    the layers of :data:`PARAM_LAYERS`; a layer with parameters after a layer
    whose output shape is not derived here is refused (its weights cannot be
    checked, and a mismatch would abort Caffe).
    """
    blobs = _input_shapes(net, path)
    unknown_after: dict[str, str] = {}
    found: list[ParamLayer] = []
    names: set[str] = set()
    # Caffe's UpgradeNetInput turns NetParameter inputs into an Input layer named "input".
    producer: dict[str, tuple[str, int]] = {b: ("input", i) for i, b in enumerate(blobs)}
    readers: dict[tuple[str, int, str], int] = {}
    if blobs:
        found.append(ParamLayer("input", "Input", []))
    for i, layer in enumerate(net.layer):
        if not in_test_phase(layer):
            continue
        where = f"model {path}: layer {layer.name or i!r} ({layer.type or 'no type'})"
        if layer.type not in KNOWN_LAYER_TYPES:
            raise ModelError(f"{where}: unknown layer type {layer.type!r}")
        if layer.type in DATA_LAYER_TYPES:
            raise ModelError(f"{where}: reads training data; restore.py needs a deploy net whose "
                             f"input is an Input layer (e.g. models/deploy.prototxt)")
        if layer.name in names:
            raise ModelError(f"{where}: a second layer with this name")
        names.add(layer.name)
        for b in layer.bottom:
            if b not in blobs:
                raise ModelError(f"{where}: bottom blob {b!r} is produced by no earlier layer")
            key = producer[b] + (b,)
            readers[key] = readers.get(key, 0) + 1
        for k, top in enumerate(layer.top):
            producer[top] = (layer.name, k)
        bottom = blobs[layer.bottom[0]] if len(layer.bottom) else None
        if layer.type == "Input":
            shapes = [tuple(int(d) for d in s.dim) for s in layer.input_param.shape]
            if len(shapes) not in (1, len(layer.top)):
                raise ModelError(f"{where}: needs one shape per top (or one for all)")
            for k, top in enumerate(layer.top):
                blobs[top] = shapes[min(k, len(shapes) - 1)]
            found.append(ParamLayer(layer.name, layer.type, []))
            continue
        top_shape = None
        found.append(ParamLayer(layer.name, layer.type, []))
        if layer.type in PARAM_LAYERS and (layer.type not in ("Scale", "Bias") or len(layer.bottom) == 1):
            if bottom is None:
                why = unknown_after.get(layer.bottom[0], "it has no bottom") if len(layer.bottom) else \
                    "it has no bottom"
                raise ModelError(f"{where}: cannot check its weights: the input shape is not known "
                                 f"({why})")
            shapes, top_shape = _param_shapes(layer, bottom, where)
            found[-1].shapes = [tuple(map(int, s)) for s in shapes]
        elif layer.type in ("Embed", "LSTM", "RNN", "Parameter"):
            raise ModelError(f"{where}: layers of this type are not supported by restore.py")
        elif layer.type in SHAPE_PRESERVING:
            top_shape = bottom
        for top in layer.top:
            blobs[top] = top_shape
            if top_shape is None:
                unknown_after[top] = f"after {layer.type} layer {layer.name!r}"
    _check_io_blobs(blobs, path)
    # Caffe's InsertSplits: a top read by several bottoms gets a Split layer (no blobs).
    for (layer_name, k, blob), n in readers.items():
        if n > 1:
            found.append(ParamLayer(f"{blob}_{layer_name}_{k}_split", "Split", []))
    return found


def _check_io_blobs(blobs: dict, path: Path) -> None:
    """restore.py feeds :data:`INPUT_BLOB` as (1, 1, H, W) and reads :data:`OUTPUT_BLOB`."""
    if INPUT_BLOB not in blobs:
        raise ModelError(f"model {path}: the net has no input blob {INPUT_BLOB!r}")
    shape = blobs[INPUT_BLOB]
    if shape is not None and (len(shape) != 4 or shape[1] != 1):
        raise ModelError(f"model {path}: input blob {INPUT_BLOB!r} has shape {list(shape)}; "
                         f"restore.py needs (N, 1, H, W): one detector channel")
    if OUTPUT_BLOB not in blobs:
        raise ModelError(f"model {path}: the net has no blob {OUTPUT_BLOB!r} (restore.py's output)")


# --------------------------------------------------------------------------
# caffemodel
# --------------------------------------------------------------------------
def parse_caffemodel(path: Path) -> list[tuple[str, list]]:
    """Parse a binary ``NetParameter``; return its layers as (name, list of BlobProto), in
    file order, as Caffe's ``CopyTrainedLayersFrom`` reads them (V1 ``layers`` if the file
    has only those; a file with both is refused, as Caffe's upgrade aborts on it)."""
    from google.protobuf.message import DecodeError

    data = _read_bytes(path, "weights")
    if not data:
        raise ModelError(f"weights {path}: empty file (0 bytes): not a trained .caffemodel")
    if path.suffix.lower() in (".h5", ".hdf5"):
        raise ModelError(f"weights {path}: HDF5 weights are not supported; pass a binary .caffemodel")
    net = caffe_pb2().NetParameter()
    try:
        net.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise ModelError(f"weights {path}: not a Caffe .caffemodel (truncated or corrupt?): "
                         f"{_one_line(err) or 'protobuf cannot parse it'}") from None
    if len(net.layer) and len(net.layers):
        raise ModelError(f"weights {path}: has both 'layer' and V1 'layers' entries: "
                         f"corrupt or not a Caffe .caffemodel")
    layers = [(layer.name, list(layer.blobs)) for layer in (net.layer or net.layers)]
    if not any(blobs for _, blobs in layers):
        raise ModelError(f"weights {path}: contains no trained weights (no layer has blobs): "
                         f"not a trained .caffemodel")
    return layers


def _blob_shape(blob) -> tuple[int, ...] | None:
    """Shape of a BlobProto: ``shape`` if set, else the legacy num/channels/height/width."""
    if blob.HasField("shape"):
        return tuple(int(d) for d in blob.shape.dim)
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        return (blob.num, blob.channels, blob.height, blob.width)
    return None


def _shape_matches(found: tuple[int, ...] | None, expected: tuple[int, ...], legacy: bool) -> bool:
    """Caffe's Blob::ShapeEquals (legacy 4-D shapes compare after left-padding with 1s)."""
    if found is None:
        return False
    if legacy:
        return len(expected) <= 4 and found == (1,) * (4 - len(expected)) + tuple(expected)
    return found == tuple(expected)


def check_weights(layers: list[ParamLayer], weights: list[tuple[str, list]], path: Path) -> None:
    """Check the weights as Caffe's ``Net::CopyTrainedLayersFrom`` will copy them.

    ``layers`` are every layer of the net (:func:`net_layers`), ``weights``
    every layer of the .caffemodel (:func:`parse_caffemodel`).  First, every
    layer with parameters must find weights of its name (else Caffe leaves it
    at its random filler).  Then, like Caffe, every source layer whose name
    matches a layer of the net -- each one, also a second of the same name --
    must have as many blobs as that layer (0 for a parameter-free layer), each
    of its shape, with the data length of that shape and only finite values;
    any mismatch would be a Caffe ``CHECK`` abort.
    """
    names = {name for name, _ in weights}
    for layer in layers:
        if layer.shapes and layer.name not in names:
            with_blobs = sorted({n for n, b in weights if b})
            have = ", ".join(with_blobs[:6]) + (", ..." if len(with_blobs) > 6 else "")
            raise ModelError(f"weights {path}: layer {layer.name!r} ({layer.type}): no weights of "
                             f"this name in the file (it has: {have}); the layer would keep its "
                             f"random initial values")
    targets = {}
    for layer in layers:
        targets.setdefault(layer.name, layer)
    for index, (name, blobs) in enumerate(weights):
        target = targets.get(name)
        if target is None:
            continue  # Caffe ignores source layers the net does not have
        where = f"weights {path}: layer {name!r} (entry {index + 1} of the file, for a {target.type} layer)"
        if len(blobs) != len(target.shapes):
            raise ModelError(f"{where}: {len(blobs)} weight blobs, the model needs "
                             f"{len(target.shapes)}")
        for k, (blob, expected) in enumerate(zip(blobs, target.shapes)):
            _check_blob(blob, expected, f"{where}: blob {k}")


def _check_blob(blob, expected: tuple[int, ...], where: str) -> None:
    """One BlobProto against the shape Caffe expects: ``Blob::ShapeEquals``, then the
    lengths ``Blob::FromProto`` checks (data, and diff if stored), then finite values."""
    found = _blob_shape(blob)
    legacy = not blob.HasField("shape")
    if not _shape_matches(found, expected, legacy):
        raise ModelError(f"{where} has shape {list(found or ())}, the model needs {list(expected)}")
    count = math.prod(expected)
    values = blob.double_data if len(blob.double_data) else blob.data
    if len(values) != count:
        raise ModelError(f"{where} holds {len(values)} values for shape {list(expected)} "
                         f"({count}): truncated or corrupt")
    diff = blob.double_diff if len(blob.double_diff) else blob.diff
    if len(diff) and len(diff) != count:
        raise ModelError(f"{where} holds {len(diff)} gradient values for shape {list(expected)} "
                         f"({count}): truncated or corrupt")
    if not np.isfinite(np.asarray(values, dtype=np.float64)).all():
        raise ModelError(f"{where} contains NaN or infinite values")


def validate_model(model: str | Path, weights: str | Path) -> list[ParamLayer]:
    """Check ``model`` (deploy prototxt) and ``weights`` (.caffemodel) together.

    Returns the layers with parameters (all checked); raises
    :class:`ModelError` with one line naming the file and the problem.
    """
    model, weights = Path(model), Path(weights)
    layers = net_layers(parse_prototxt(model), model)
    if not any(layer.shapes for layer in layers):
        raise ModelError(f"model {model}: has no layers with parameters: not a trained network")
    check_weights(layers, parse_caffemodel(weights), weights)
    return [layer for layer in layers if layer.shapes]


def trial_load(model: str | Path, weights: str | Path, timeout: float = 600) -> None:
    """Load ``model`` with ``weights`` once with Caffe in a child process (CPU mode).

    :func:`validate_model` checks what it models; Caffe has many more
    ``CHECK`` s (settings of any layer type, fillers, engines, blob sizes) that
    abort the whole process.  A child that aborts costs nothing; its glog
    reason becomes a :class:`ModelError` naming both files.
    """
    code = ("import os, sys; os.environ['GLOG_minloglevel'] = '2'; import caffe; "
            "caffe.set_mode_cpu(); caffe.Net(sys.argv[1], caffe.TEST, weights=sys.argv[2])")
    try:
        r = subprocess.run([sys.executable, "-c", code, str(model), str(weights)],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ModelError(f"model {model} with weights {weights}: Caffe did not load it within "
                         f"{timeout:.0f} s") from None
    if r.returncode != 0:
        raise ModelError(f"model {model} with weights {weights}: Caffe cannot load it: "
                         f"{_one_line(glog_reason(r.stderr))}")


#: A glog line: severity letter, date, time, thread, file:line] message.
_GLOG_LINE = re.compile(r"^[FEW]\d{4} [\d:.]+\s+\d+ [^\]]+\] (?P<msg>.*)$")


def glog_reason(stderr: str) -> str:
    """The message of the last glog error line in ``stderr`` (not the stack trace
    that follows it), or the last non-empty line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    reasons = [m["msg"] for m in map(_GLOG_LINE.match, lines) if m]
    if reasons:
        return reasons[-1]
    rest = [line for line in lines if not line.startswith(("***", "@ ", "@\t"))]
    return (rest or lines or ["unknown error"])[-1]


# --------------------------------------------------------------------------
def _read_bytes(path: Path, what: str) -> bytes:
    """The file's bytes; :class:`ModelError` for missing, unreadable, or non-regular files."""
    try:
        if not path.is_file():
            kind = "is a directory" if path.is_dir() else "no such file" if not path.exists() \
                else "is not a regular file"
            raise ModelError(f"{what} {path}: {kind}")
        return path.read_bytes()
    except OSError as err:
        raise ModelError(f"{what} {path}: cannot read it: {err.strerror or err}") from None


def _one_line(err: Exception | str) -> str:
    """An exception message on one line, at most 200 characters."""
    msg = " ".join(str(err).split())
    return msg if len(msg) <= 200 else msg[:197] + "..."
