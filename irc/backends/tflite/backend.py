"""The TFLite backend: irc writes ``.tflite`` flatbuffers from its own IR, after its own passes.

``emit(graph)`` runs the ``tflite`` pipeline (unless ``passes`` says otherwise), legalizes the graph (every op
TFLite cannot take is reported at once, see ``legalize.py``), then walks the nodes an output depends on in
topological order. Each node's emitter (``ops.py``, a table keyed by irc op) adds TFLite tensors and operators
to a ``ModelBuilder``, which ``flatbuffer.write_model`` serializes.

The builder keeps one TFLite tensor per irc value. Constants become tensors when first used, so a constant an
emitter rewrites (a conv filter transposed to OHWI) is written only in its rewritten form; constants with the
same content and type share a tensor (weights a model uses twice too), and the flatbuffer layer shares identical
buffers. Unknown dimensions are
written as 1 in ``shape`` and -1 in ``shape_signature``, as TensorFlow's converter does. With ``float16``, every
float32 constant is stored as float16 and widened by a DEQUANTIZE at the start of the graph (TFLite's float16
weight quantization). Quantized values carry their parameters into the tensor's quantization table, per axis
where the type says so, so quantized graphs need no special emitters.

The model gets a ``serving_default`` SignatureDef with the graph's own input and output names, and metadata
naming its producer (``irc_producer``: irc and its version) and the oldest TFLite runtime that runs it.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from irc import __version__
from irc.backends import register_backend
from irc.backends.base import Backend
from irc.backends.tflite import legalize as _legalize  # noqa: F401  (registers the tflite-idioms pass)
from irc.errors import TargetError, UsageError
from irc.formats.tflite import schema
from irc.formats.tflite.flatbuffer import (
    Buffer,
    Operator,
    OperatorCode,
    Options,
    Quantization,
    SignatureDef,
    SubGraph,
    Tensor,
    TFLModel,
    options,
    write_model,
)
from irc.ir.graph import Graph, Node, Value
from irc.ir.liveness import live_nodes
from irc.ir.types import DType, QuantParams, TensorType
from irc.ir.verify import require_data

# The tflite pipeline (folding, batch-norm folding, NHWC layout, fusion, cleanup), then TFLite's idioms (legalize.py)
DEFAULT_PIPELINE = "tflite,tflite-idioms"
SIGNATURE_KEY = "serving_default"
QUANTIZE_MODES = ("float16",)  # handled here; the integer modes go to irc's quantizer
QUANTIZE_OPTIONS = ("calibration", "observer", "int8_io", "keep_float", "granularity", "block_size")

TFL_TYPES = {
    DType.f32: "FLOAT32", DType.f16: "FLOAT16", DType.bf16: "BFLOAT16", DType.f64: "FLOAT64",
    DType.i8: "INT8", DType.i4: "INT4", DType.u8: "UINT8", DType.i16: "INT16", DType.i32: "INT32", DType.i64: "INT64",
    DType.bool: "BOOL", DType.str: "STRING", DType.c64: "COMPLEX64",
}
_CALL_PREFIX = re.compile(r"^(?:Stateful)?PartitionedCall(?:_\d+)?/")
_SHARE_LIMIT = 256  # constants up to this many bytes are keyed by their bytes, larger ones by a digest of them


def emit(graph: Graph, *, output=None, passes=None, quantize: str | None = None, allow_tf_ops: bool = False,
         signature_key: str = SIGNATURE_KEY, force: bool = False, **options) -> bytes:
    """The .tflite bytes of ``graph`` after the backend's pipeline (or ``passes``; ``"O0"`` runs none).

    ``quantize="float16"`` stores float weights as float16; ``dynamic-int8``, ``int8`` and ``int16x8`` run irc's
    quantizer first, which takes ``calibration``, ``observer``, ``int8_io`` and ``keep_float`` (see
    ``irc.passes.quantize.quantize_graph``). ``allow_tf_ops`` writes opaque ``tf.<Op>`` nodes as Flex custom ops.
    ``output``, when given, is written atomically (``force`` lets it replace a directory; see irc/outputs.py).
    The caller's graph is not changed.
    """
    unknown = sorted(set(options) - set(QUANTIZE_OPTIONS))
    if unknown:
        raise UsageError(f"the tflite target has no option {unknown[0]!r}",
                         hint="options: passes, quantize, allow_tf_ops, signature_key, " + ", ".join(QUANTIZE_OPTIONS))
    if options and quantize in (None, *QUANTIZE_MODES):
        raise UsageError(f"{', '.join(sorted(options))} go with quantize='dynamic-int8', 'int8' or 'int16x8'")
    graph = prepare(graph, passes=passes, quantize=quantize, **options)
    from irc.backends.tflite.legalize import legalize, rewrite_idioms

    rewrite_idioms(graph)
    legalize(graph, allow_tf_ops=allow_tf_ops)
    model = build_model(graph, float16=quantize == "float16", signature_key=signature_key)
    data = write_model(model)
    if output is not None:
        from irc.outputs import write_atomic

        write_atomic(output, data, force=force)
    return data


def prepare(graph: Graph, *, passes=None, quantize: str | None = None, **quantize_options) -> Graph:
    """A copy of ``graph`` after the backend's pipeline (or ``passes``) and irc's quantizer (integer modes)."""
    from irc.passes import run_pipeline

    graph = graph.copy()
    pipeline = DEFAULT_PIPELINE if passes is None else passes
    if pipeline and pipeline != "O0":
        run_pipeline(graph, pipeline)
    require_data(graph, "emitting tflite")
    if quantize and quantize not in QUANTIZE_MODES:
        from irc.passes.quantize import quantize_graph

        quantize_graph(graph, quantize, **quantize_options)
    return graph


def check(graph: Graph) -> list:
    """For every node: ``(node, status, reason)``, status native, fallback (a Flex op) or unsupported."""
    from irc.backends.tflite.legalize import check as check_nodes

    return check_nodes(graph, allow_tf_ops=True)


def build_model(graph: Graph, *, float16: bool = False, signature_key: str = SIGNATURE_KEY) -> TFLModel:
    """The TFLite model of a legal graph (see ``legalize``): subgraph 0 is the graph, then one subgraph per
    region (a ``while``'s cond and body, an ``if``'s branches), in the order their ops are written."""
    builder = ModelBuilder(graph, float16=float16)
    builder.emit_nodes()
    return builder.finish(signature_key)


def tensor_shape(t: TensorType) -> tuple[list[int], list[int] | None, bool]:
    """(shape, shape_signature, has_rank): unknown dims are 1 in the shape and -1 in the signature."""
    if t.shape is None:
        return [], None, False
    shape = [d if isinstance(d, int) else 1 for d in t.shape]
    if all(isinstance(d, int) for d in t.shape):
        return shape, None, True
    return shape, [d if isinstance(d, int) else -1 for d in t.shape], True


def quantization(q: QuantParams | None) -> Quantization | None:
    if q is None:
        return None
    return Quantization(scale=list(q.scale), zero_point=list(q.zero_point), quantized_dimension=q.axis or 0)


def pack_int4(array: np.ndarray) -> np.ndarray:
    """TFLite's INT4 layout: two values a byte, the first in the low nibble (an odd count leaves 4 bits spare)."""
    flat = np.asarray(array, np.int8).reshape(-1).astype(np.uint8) & 0x0F
    if flat.size % 2:
        flat = np.append(flat, np.uint8(0))
    return flat[0::2] | (flat[1::2] << 4)


def string_buffer(array: np.ndarray) -> bytes:
    """TFLite's string tensor layout: count, count + 1 offsets from the start, then the bytes."""
    items = [s if isinstance(s, bytes) else str(s).encode() for s in np.asarray(array, object).reshape(-1)]
    header = 4 * (len(items) + 2)
    offsets = np.cumsum([header] + [len(s) for s in items], dtype=np.int64)
    return np.asarray([len(items), *offsets], "<i4").tobytes() + b"".join(items)


class ModelBuilder:
    """A TFLite subgraph under construction: tensors, buffers, operator codes and operators.

    Emitters use ``tensor(value)`` for an operand, ``result(value)`` for a node result, ``constant(array)`` for
    a constant they compute, ``temp(type)`` for an intermediate of a multi-operator lowering, and ``op(...)``
    to append an operator. ``node`` is the irc node being emitted: new tensors are named after its location.
    """

    def __init__(self, graph: Graph, *, float16: bool = False, parent: ModelBuilder | None = None):
        self.graph = graph
        self.float16 = float16
        self.tensors: list[Tensor] = []
        self.operators: list[Operator] = []
        self.prologue: list[Operator] = []  # float16 weight DEQUANTIZEs, first in the graph as TF writes them
        self.node: Node | None = None
        self._tensor_of: dict[Value, int] = {}
        self._shared: dict[tuple, int] = {}
        if parent is None:  # the main graph: it holds what every subgraph shares
            self.buffers: list[Buffer] = [Buffer()]
            self.operator_codes: list[OperatorCode] = []
            self._codes: dict[tuple, int] = {}
            self.subgraphs: list[SubGraph | None] = [None]  # the main graph's is made last, by finish
        else:
            self.buffers, self.operator_codes = parent.buffers, parent.operator_codes
            self._codes, self.subgraphs = parent._codes, parent.subgraphs

    def emit_nodes(self) -> None:
        """Binds the graph's inputs to new tensors and writes the nodes its outputs need, in topological order."""
        from irc.backends.tflite.ops import emitter_for

        for value in self.graph.inputs:
            self.bind(value, self.new_tensor(value.type, value.name))
        live = live_nodes(self.graph)
        for node in (node for node in self.graph.topo_order() if node in live):
            if node.op == "const":
                continue
            self.node = node
            emitter_for(node)(self, node)
        self.node = None

    def region(self, graph: Graph, name: str) -> int:
        """Writes region ``graph`` as a subgraph of its own and returns its index (for WHILE's and IF's options)."""
        sub = ModelBuilder(graph, float16=self.float16, parent=self)
        index = len(self.subgraphs)
        self.subgraphs.append(None)  # the index is taken before nested regions take theirs
        sub.emit_nodes()
        inputs, outputs = sub.outputs_and_inputs(region=True)
        self.subgraphs[index] = SubGraph(name=name, tensors=sub.tensors, inputs=inputs, outputs=list(outputs.values()),
                                         operators=sub.prologue + sub.operators)
        return index

    # ----- tensors -------------------------------------------------------------------------------------------------
    def new_tensor(self, type: TensorType, name: str, buffer: int = 0) -> int:
        if type.dtype not in TFL_TYPES:
            raise TargetError(f"TFLite has no {type.dtype.value} tensors", where=name)
        shape, signature, has_rank = tensor_shape(type)
        q = quantization(type.quant)
        if type.quant is not None and type.quant.block_size is not None:
            q = self._blockwise(type, name)
        self.tensors.append(Tensor(name, shape, TFL_TYPES[type.dtype], buffer, shape_signature=signature,
                                   quantization=q, has_rank=has_rank))
        return len(self.tensors) - 1

    def _blockwise(self, type: TensorType, name: str) -> Quantization:
        """LiteRT's blockwise encoding (as ai-edge-quantizer writes it): a [channels, blocks] float16 tensor of
        scales named by the quantization details, channels along dimension 0, no zero points (symmetric)."""
        q = type.quant
        if q.axis != 0 or type.rank != 2 or any(q.zero_point):
            raise TargetError("TFLite takes blockwise weights as symmetric [out, in] matrices with blocks along "
                              "the input axis", where=name)
        scales = np.asarray(q.scale, np.float16).reshape(type.shape[0], -1)
        index = self._buffer_tensor(scales, TensorType(DType.f16, scales.shape), name + "_scales")
        return Quantization(quantized_dimension=0, blockwise=(index, -1, q.block_size))

    def variable(self, type: TensorType, suffix: str) -> int:
        """A variable tensor of the node being emitted: state an operator updates in place (an LSTM's h and c)."""
        index = self.temp(type, suffix)
        self.tensors[index].is_variable = True
        return index

    def bind(self, value: Value, index: int) -> None:
        self._tensor_of[value] = index

    def written(self, value: Value) -> int | None:
        """The tensor already holding ``value``, or None."""
        return self._tensor_of.get(value)

    def tensor(self, value: Value) -> int:
        """The tensor holding ``value``; a constant is written on first use."""
        index = self._tensor_of.get(value)
        if index is None:
            if not value.is_constant:
                raise TargetError(f"internal error: {value} is used before the node that defines it was emitted")
            index = self.constant(value.constant, type=value.type, name=self.name_of(value.producer))
            self._tensor_of[value] = index
        return index

    def result(self, value: Value) -> int:
        """A new tensor for a node result, named after the node's location."""
        name = self.name_of(value.producer)
        if value.index:
            name += f":{value.index}"
        index = self.new_tensor(value.type, name)
        self._tensor_of[value] = index
        return index

    def temp(self, type: TensorType, suffix: str) -> int:
        """An intermediate tensor of the node being emitted."""
        return self.new_tensor(type, f"{self.name_of(self.node)}/{suffix}")

    def like(self, index: int, suffix: str) -> int:
        """A new intermediate tensor with the type, shape and quantization of tensor ``index``."""
        source = self.tensors[index]
        self.tensors.append(Tensor(f"{self.name_of(self.node)}/{suffix}", list(source.shape), source.type, 0,
                                   shape_signature=source.shape_signature, quantization=source.quantization,
                                   has_rank=source.has_rank))
        return len(self.tensors) - 1

    def constant(self, array, *, type: TensorType | None = None, name: str | None = None) -> int:
        """A constant tensor holding ``array`` (its type from ``type`` or from the array)."""
        array = np.asarray(array)
        if type is None:
            type = TensorType(DType.from_numpy(array.dtype), array.shape)
        type = type.with_shape(array.shape)
        name = name or f"{self.name_of(self.node)}/const"
        key = None
        if array.dtype != object:  # one tensor per content: weights a model reuses (ALBERT's layers) too
            data = array.tobytes() if array.nbytes <= _SHARE_LIMIT else \
                hashlib.sha256(np.ascontiguousarray(array)).digest()
            key = (type, array.dtype.str, data)
            if key in self._shared:
                return self._shared[key]
        if self.float16 and type.dtype is DType.f32 and type.quant is None:
            half = self._buffer_tensor(array.astype(np.float16), type.with_dtype(DType.f16), name + "/fp16")
            index = self.new_tensor(type, name)
            self.prologue.append(self._operator("DEQUANTIZE", [half], [index]))
        else:
            index = self._buffer_tensor(array, type, name)
        if key is not None:
            self._shared[key] = index
        return index

    def _buffer_tensor(self, array: np.ndarray, type: TensorType, name: str) -> int:
        if type.dtype is DType.str:
            data = string_buffer(array)
        elif type.dtype is DType.i4:
            data = pack_int4(array)
        else:
            data = np.ascontiguousarray(array, dtype=type.dtype.numpy.newbyteorder("<"))
        self.buffers.append(Buffer(data))
        return self.new_tensor(type, name, len(self.buffers) - 1)

    def int_vector(self, values, dtype=np.int32) -> int:
        """A constant int32 vector (axes, shapes, paddings...)."""
        return self.constant(np.asarray(values, dtype).reshape(-1))

    def int_constant(self, values, dtype=np.int32) -> int:
        """A constant int32 tensor of any shape (a scalar for ``int_constant(3)``)."""
        return self.constant(np.asarray(values, dtype))

    def name_of(self, node: Node | None) -> str:
        if node is None:
            return "irc"
        if node.loc.names:
            # without the signature call's prefix, as TF's converter (which inlines the call) names them
            return ";".join(dict.fromkeys(_CALL_PREFIX.sub("", n) for n in node.loc.names))
        return f"{node.core_op}_{node.seq}"  # tfl.conv2d is named as conv2d is

    def type_of(self, index: int) -> str:
        return self.tensors[index].type

    # ----- operators -----------------------------------------------------------------------------------------------
    def opcode(self, code: str, custom_code: str | None = None, version: int = 1) -> int:
        key = (code, custom_code, version)
        if key not in self._codes:
            self._codes[key] = len(self.operator_codes)
            self.operator_codes.append(OperatorCode(code, custom_code, version))
        return self._codes[key]

    def op(self, code: str, inputs: list[int], outputs: list[int], opts: Options | dict | None = None, *,
           custom_code: str | None = None, custom_options: bytes | None = None) -> None:
        """Appends operator ``code`` (a BuiltinOperator name). ``opts`` is an Options or a dict of its fields.

        Operands beyond the rank its kernel takes are merged to fit, or refused (kernel_limits.py)."""
        from irc.backends.tflite import kernel_limits

        fitted = kernel_limits.fit(self, code, list(inputs), list(outputs))
        self.operators.append(self._operator(code, fitted.inputs, fitted.outputs, opts, custom_code, custom_options))
        kernel_limits.restore(self, fitted)

    def _operator(self, code, inputs, outputs, opts=None, custom_code=None, custom_options=None) -> Operator:
        from irc.backends.tflite.ops import op_version

        if isinstance(opts, dict):
            opts = options(code, **opts)
        version = op_version(code, [self.tensors[i] if i >= 0 else None for i in inputs],
                             [self.tensors[i] for i in outputs], opts)
        return Operator(self.opcode(code, custom_code, version), list(inputs), list(outputs), opts,
                        custom_options=custom_options)

    # ----- the model -----------------------------------------------------------------------------------------------
    def outputs_and_inputs(self, region: bool = False) -> tuple[list[int], dict[str, int]]:
        """The graph's input tensors and its output tensors by name.

        An output must be a tensor of its own, computed by an operator: a constant, an input or a repeated output
        is copied. A region may pass an argument through to its results as it is (WHILE and IF copy them).
        """
        inputs = [self._tensor_of[v] for v in self.graph.inputs]
        outputs: dict[str, int] = {}
        for name, value in self.graph.outputs.items():
            index = self.tensor(value)
            passed = region and index in inputs
            if (index in inputs and not passed) or index in outputs.values() or self.tensors[index].buffer:
                index = self._copy(index, name)
            outputs[name] = index
        for name, index in outputs.items():
            self.tensors[index].name = self.tensors[index].name or name
        return inputs, outputs

    def finish(self, signature_key: str = SIGNATURE_KEY) -> TFLModel:
        inputs, outputs = self.outputs_and_inputs()
        operators = self.prologue + self.operators
        self.subgraphs[0] = SubGraph(name="main", tensors=self.tensors, inputs=inputs, outputs=list(outputs.values()),
                                     operators=operators)
        from irc.backends.tflite.ops import min_runtime_version

        runtime = min_runtime_version(self.operator_codes)
        return TFLModel(
            description=f"irc {__version__}",
            operator_codes=self.operator_codes, subgraphs=list(self.subgraphs), buffers=self.buffers,
            metadata={schema.MIN_RUNTIME_VERSION: schema.runtime_version(runtime),
                      schema.PRODUCER: f"irc {__version__}".encode()},
            signature_defs=[SignatureDef({v.name: i for v, i in zip(self.graph.inputs, inputs)}, outputs,
                                         signature_key)],
        )

    def _copy(self, index: int, name: str) -> int:
        """A fresh tensor equal to tensor ``index`` (a RESHAPE to its own shape)."""
        source = self.tensors[index]
        copy = Tensor(name, list(source.shape), source.type, 0, shape_signature=source.shape_signature,
                      quantization=source.quantization, has_rank=source.has_rank)
        self.tensors.append(copy)
        out = len(self.tensors) - 1
        dims = source.shape_signature or source.shape
        if sum(d < 0 for d in dims) <= 1:
            shape = self.int_vector(dims)
        else:
            shape = self.new_tensor(TensorType(DType.i32, (len(dims),)), f"{name}/shape")
            self.op("SHAPE", [index], [shape], {"out_type": "INT32"})
        self.op("RESHAPE", [index, shape], [out])
        return out


@register_backend
class TFLiteBackend(Backend):
    """TFLite flatbuffers (.tflite) written by irc, float, float16 or integer-quantized."""

    name = "tflite"
    default_pipeline = DEFAULT_PIPELINE
    passes = ("tflite-idioms",)

    def emit(self, graph: Graph, options) -> bytes:
        return emit(graph, **options)

    def write(self, artifact: bytes, path, force: bool = False) -> None:
        from irc.outputs import write_output

        write_output(path, artifact, force=force)

    def check(self, graph: Graph) -> list:
        return check(graph)
