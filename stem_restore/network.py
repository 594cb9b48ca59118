"""The paper's restoration network, stated once, and the one prototxt reader.

Lobato, Mueller-Caspary & Van Aert: :data:`N_CONV` = 12 convolution layers of
:data:`KERNEL` x :data:`KERNEL` = 5 x 5 px, :data:`FILTERS` = 64 filters in
every layer but the last (1), a ReLU after each, ``pad: 2`` so that the
output has the input's size.  Everything else is derived from those numbers:
the receptive field 1 + 12 x (5 - 1) = 49 px (:data:`RECEPTIVE_FIELD`), the
24 px of context a tile core needs on each side (:data:`CONTEXT`), the
parameter count and the number of blobs in a ``.caffemodel`` and a
``.solverstate``.  ``prototxt/make_nets.py`` writes the nets from these facts;
:func:`check_net` reads a prototxt back and says where it disagrees.

Prototxt files are read with Caffe's own schema (``caffe.proto.caffe_pb2``)
and protobuf's ``text_format`` (:func:`read_net`, :func:`parse_net`,
:func:`parse_solver`); Caffe is imported on the first read, not when this
module is imported.
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "N_CONV", "KERNEL", "FILTERS", "PAD", "INPUT_BLOB", "OUTPUT_BLOB", "CONV_NAMES", "LAYERS",
    "RECEPTIVE_FIELD", "CONTEXT", "N_PARAMS", "PARAM_BLOBS", "history_blobs",
    "PrototxtError", "caffe_pb2", "parse_net", "parse_solver", "read_net",
    "in_test_phase", "ConvGeometry", "conv_geometry", "conv_layers", "receptive_field", "context_of",
    "check_net",
    "RESIDUAL_OUTPUT", "is_residual_sum", "is_residual", "WEIGHT_BLOB", "is_weighted",
    "WIDE_KERNEL", "WIDE_PAD",
]

#: Convolution layers of the paper's network.
N_CONV = 12
#: Kernel edge of every convolution (px).
KERNEL = 5
#: Filters (output channels) of every convolution but the last, which has 1.
FILTERS = 64
#: Zero padding of every convolution (px): keeps the image size.
PAD = (KERNEL - 1) // 2
#: Input blob: one normalised detector channel, (N, 1, H, W).
INPUT_BLOB = "data"
#: Convolution layer names, input to output; each writes the blob of its name.
CONV_NAMES = tuple(f"conv{i}" for i in range(1, N_CONV + 1))
#: Output blob: the restored image, normalised, (N, 1, H, W).
OUTPUT_BLOB = CONV_NAMES[-1]
#: (input channels, output channels, kernel px) of each convolution, input to output.
LAYERS = tuple((1 if i == 0 else FILTERS, 1 if i == N_CONV - 1 else FILTERS, KERNEL)
               for i in range(N_CONV))
#: Receptive field (px): an output pixel depends on a 49 x 49 px neighbourhood.
RECEPTIVE_FIELD = 1 + N_CONV * (KERNEL - 1)
#: Context a tile core needs on each side for an exact result (px): 24.
CONTEXT = (RECEPTIVE_FIELD - 1) // 2
#: Learned parameters (weights + biases): 1,027,905.
N_PARAMS = sum(c_out * (c_in * k * k + 1) for c_in, c_out, k in LAYERS)
#: Parameter blobs of the net (weights and bias of each convolution): 24.
PARAM_BLOBS = 2 * N_CONV
#: Output blob of the residual *variant* (not the paper's): an ``Eltwise`` SUM of
#: :data:`INPUT_BLOB` and :data:`OUTPUT_BLOB`, so the 12 layers learn the correction
#: (Zhang et al. 2017, DnCNN).  Same parameters and ``.caffemodel`` layout as the paper's net.
RESIDUAL_OUTPUT = "restored"
#: Kernel (along y, along x) in px of every convolution of the wide *variant* (not the
#: paper's): 5 px across scan lines as in the paper, 9 px along them, so an output pixel
#: sees 49 x 97 px, twice as much of its scan line (rows at the wrong x are the largest
#: error the paper's net leaves: BENCHMARKS.md, "the error budget").  Its weights start
#: from a paper-net snapshot, zero-padded along x (``prototxt/wide_init.py``).
WIDE_KERNEL = (KERNEL, 2 * KERNEL - 1)
#: Zero padding (along y, along x) in px of the wide variant's convolutions: keeps the size.
WIDE_PAD = tuple((k - 1) // 2 for k in WIDE_KERNEL)
#: Per-pair loss weight (N) of a weighted training net, and the HDF5 dataset it is read from
#: (``HDF5Data`` reads the dataset named like its top; :mod:`datagen.weights`).
WEIGHT_BLOB = "weight"

#: History blobs per parameter blob in a ``.solverstate``, by Caffe solver type:
#: momentum (or squared-gradient) history; AdaDelta and Adam keep a second set.
_HISTORY_SETS = {"sgd": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adadelta": 2, "adam": 2}


def history_blobs(solver_type: str) -> int:
    """History blobs in a ``.solverstate`` of this net: 24 for SGD, 48 for Adam.

    ``solver_type`` is the solver's ``type`` ("SGD", "Adam", ...) or a legacy
    ``solver_type`` enum name ("ADAM"); case does not matter.
    """
    sets = _HISTORY_SETS.get(str(solver_type).lower())
    if sets is None:
        raise ValueError(f"unknown Caffe solver type {solver_type!r} "
                         f"(known: SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam)")
    return sets * PARAM_BLOBS


# --------------------------------------------------------------------------
# reading prototxt
# --------------------------------------------------------------------------
class PrototxtError(ValueError):
    """Text that does not parse as the expected Caffe message; ``str()`` names the file.

    ``source`` is the file (or ``"<text>"``), ``detail`` protobuf's reason on one line.
    """

    def __init__(self, source: str | Path, detail: str):
        self.source, self.detail = str(source), detail
        super().__init__(f"{source}: cannot parse prototxt: {detail}")


def caffe_pb2():
    """The ``caffe_pb2`` protobuf module, imported on first use.

    Uses the already imported module, else ``caffe.proto.caffe_pb2`` (imports
    pycaffe), else the generated file inside the ``caffe`` package found on
    ``sys.path``, registered under its canonical name so that a later
    ``import caffe`` reuses it (protobuf refuses to register caffe.proto twice).
    Raises ImportError when neither is there.
    """
    name = "caffe.proto.caffe_pb2"
    if name in sys.modules:
        return sys.modules[name]
    try:
        from caffe.proto import caffe_pb2 as module
        return module
    except ImportError as err:
        spec = importlib.util.find_spec("caffe")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"pycaffe is not installed ({err})") from None
        path = Path(list(spec.submodule_search_locations)[0]) / "proto" / "caffe_pb2.py"
        if not path.is_file():
            raise ImportError(f"{path} is missing ({err})") from None
        file_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[name] = module
        file_spec.loader.exec_module(module)
        return module


def _parse(text: str, message, source: str | Path):
    """Merge protobuf text ``text`` into ``message``; :class:`PrototxtError` naming ``source``."""
    from google.protobuf import text_format

    try:
        text_format.Merge(text, message)
    except text_format.ParseError as err:
        raise PrototxtError(source, " ".join(str(err).split())) from None
    return message


def parse_net(text: str, source: str | Path = "<text>"):
    """Parse text-format ``text`` as a ``caffe_pb2.NetParameter`` (``source`` names it in errors)."""
    return _parse(text, caffe_pb2().NetParameter(), source)


def parse_solver(text: str, source: str | Path = "<text>"):
    """Parse text-format ``text`` as a ``caffe_pb2.SolverParameter`` (``source`` names it in errors)."""
    return _parse(text, caffe_pb2().SolverParameter(), source)


def read_net(path: str | Path):
    """Read a prototxt file as a ``caffe_pb2.NetParameter``.

    Raises :class:`PrototxtError` (a ValueError naming ``path``) when the file
    is not UTF-8 text or does not parse as a NetParameter, OSError when it
    cannot be read.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PrototxtError(path, "not a text file") from None
    return parse_net(text, path)


# --------------------------------------------------------------------------
# what a parsed net says
# --------------------------------------------------------------------------
def _state_meets_rule(rule) -> bool:
    """Caffe's ``Net::StateMeetsRule`` for the TEST phase, level 0, no stages."""
    if rule.HasField("phase") and rule.phase != caffe_pb2().TEST:
        return False
    if rule.HasField("min_level") and 0 < rule.min_level:
        return False
    if rule.HasField("max_level") and 0 > rule.max_level:
        return False
    return not len(rule.stage)


def in_test_phase(layer) -> bool:
    """Caffe's ``Net::FilterNet``: is ``layer`` part of the TEST-phase (deploy) net?"""
    if len(layer.include):
        return any(_state_meets_rule(r) for r in layer.include)
    return not any(_state_meets_rule(r) for r in layer.exclude)


@dataclass(frozen=True)
class ConvGeometry:
    """Spatial settings of a 2-D convolution, each (along y, along x) in px."""

    kernel: tuple[int, int]
    pad: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    group: int

    @property
    def extent(self) -> tuple[int, int]:
        """Input span of one output pixel (px): ``dilation * (kernel - 1) + 1``."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Output size (px) for an ``h x w`` input, Caffe's ``(H + 2p - extent) / s + 1``."""
        return tuple((n + 2 * p - e) // s + 1
                     for n, p, e, s in zip((h, w), self.pad, self.extent, self.stride))

    @property
    def keeps_size(self) -> bool:
        """True when the output has the input's size for every input size."""
        return self.stride == (1, 1) and all(e - 1 == 2 * p for e, p in zip(self.extent, self.pad))


def _spatial(values, default: int, hw: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """Caffe's repeated-or-``_h``/``_w`` convention: explicit (h, w), one value for both
    axes, or two values; None for more (not a 2-D convolution)."""
    if hw is not None:
        return hw
    vals = tuple(int(v) for v in values) or (default,)
    if len(vals) == 1:
        return vals * 2
    return vals if len(vals) == 2 else None


def _hw(param, name: str) -> tuple[int, int] | None:
    """``(name_h, name_w)`` if either is set, else None."""
    h, w = f"{name}_h", f"{name}_w"
    if param.HasField(h) or param.HasField(w):
        return int(getattr(param, h)), int(getattr(param, w))
    return None


def conv_geometry(param) -> ConvGeometry | None:
    """The :class:`ConvGeometry` of a ``ConvolutionParameter``, or None if it is not
    2-D (more than two values of a repeated field) or has no kernel size."""
    kernel = _spatial(param.kernel_size, 0, _hw(param, "kernel"))
    pad = _spatial(param.pad, 0, _hw(param, "pad"))
    stride = _spatial(param.stride, 1, _hw(param, "stride"))
    dilation = _spatial(param.dilation, 1)
    if None in (kernel, pad, stride, dilation) or min(kernel) < 1:
        return None
    return ConvGeometry(kernel, pad, stride, dilation, int(param.group))


def is_residual_sum(layer) -> bool:
    """True if ``layer`` is the residual variant's last layer: :data:`RESIDUAL_OUTPUT` =
    :data:`INPUT_BLOB` + :data:`OUTPUT_BLOB` (``Eltwise`` SUM, unit coefficients)."""
    if layer.type != "Eltwise" or list(layer.top) != [RESIDUAL_OUTPUT]:
        return False
    param = layer.eltwise_param
    return (sorted(layer.bottom) == sorted([INPUT_BLOB, OUTPUT_BLOB])
            and param.operation == param.SUM and all(c == 1 for c in param.coeff))


def is_residual(net) -> bool:
    """True if the parsed NetParameter is the residual variant (its TEST phase ends in
    :func:`is_residual_sum`): restore.py then reads :data:`RESIDUAL_OUTPUT`."""
    layers = [layer for layer in net.layer if in_test_phase(layer)]
    return bool(layers) and is_residual_sum(layers[-1])


def is_weighted(net) -> bool:
    """True if the parsed NetParameter trains on per-pair loss weights: a layer of its TRAIN
    phase writes :data:`WEIGHT_BLOB` (its shards must hold that dataset, :mod:`datagen.weights`)."""
    return any(WEIGHT_BLOB in layer.top for layer in net.layer)


def conv_layers(net) -> list:
    """The ``Convolution`` layers of a parsed NetParameter, input to output."""
    return [layer for layer in net.layer if layer.type == "Convolution"]


def receptive_field(net, axis: int = 0) -> int:
    """Receptive field (px) of the net's convolutions, stacked in file order, along y
    (``axis`` 0) or x (1).

    ``1 + sum (extent - 1) * jump`` with ``jump`` the product of the strides
    before each layer; ValueError if a convolution is not 2-D.
    """
    rf, jump = 1, 1
    for layer in conv_layers(net):
        geom = conv_geometry(layer.convolution_param)
        if geom is None:
            raise ValueError(f"convolution {layer.name!r} is not a 2-D convolution with a kernel size")
        rf += (geom.extent[axis] - 1) * jump
        jump *= geom.stride[axis]
    return rf


def context_of(net) -> int:
    """Context (px) a window's core needs on each side for an exact result: the larger
    receptive-field radius of the two axes (:data:`CONTEXT` = 24 for the paper's net;
    48 for the wide variant, whose field is 49 x 97 px)."""
    return (max(receptive_field(net, 0), receptive_field(net, 1)) - 1) // 2


def check_net(path: str | Path) -> list[str]:
    """Where the net in prototxt ``path`` disagrees with this module's facts.

    Compares the convolution layers' names, filters, kernels (px), padding
    (px), parameter blobs, input and output blobs and the receptive field
    (px) with :data:`CONV_NAMES`, :data:`LAYERS`, :data:`PAD`,
    :data:`PARAM_BLOBS`, :data:`INPUT_BLOB`, :data:`OUTPUT_BLOB` and
    :data:`RECEPTIVE_FIELD`.  Returns one line per disagreement (empty: it agrees).
    """
    net = read_net(path)
    convs = conv_layers(net)
    if not convs:
        return [f"{path}: no Convolution layers"]
    geoms = [conv_geometry(c.convolution_param) for c in convs]
    found = {
        "convolution layers": [c.name for c in convs],
        "filters": [int(c.convolution_param.num_output) for c in convs],
        "kernels (px)": [g.kernel if g else None for g in geoms],
        "padding (px)": [g.pad if g else None for g in geoms],
        "parameter blobs": sum(1 + bool(c.convolution_param.bias_term) for c in convs),
        "input blob": list(convs[0].bottom),
        "output blob": list(convs[-1].top),
    }
    expected = {
        "convolution layers": list(CONV_NAMES),
        "filters": [c_out for _, c_out, _ in LAYERS],
        "kernels (px)": [(k, k) for _, _, k in LAYERS],
        "padding (px)": [(PAD, PAD)] * N_CONV,
        "parameter blobs": PARAM_BLOBS,
        "input blob": [INPUT_BLOB],
        "output blob": [OUTPUT_BLOB],
    }
    problems = [f"{path}: {what} {found[what]}, expected {expected[what]}"
                for what in expected if found[what] != expected[what]]
    if None not in geoms and (rf := receptive_field(net)) != RECEPTIVE_FIELD:
        problems.append(f"{path}: receptive field {rf} px, expected {RECEPTIVE_FIELD} px")
    return problems
