"""The TFLite frontend: any ``.tflite`` file (irc's or TensorFlow's converter's) into irc's IR.

``read_tflite(path)`` parses the file with the flatbuffer layer (which rejects truncated and corrupt files and
out-of-range indices with one-line InputErrors), then turns each operator into irc ops through a table keyed by
TFLite builtin, filled by ``@reads("CONV_2D")``: the inverse of the backend's emitters. Filters go back to
TensorFlow's layouts (OHWI -> HWIO, [1, kh, kw, in * m] -> [kh, kw, in, m]), an operator with a fused activation
to the ``tfl`` dialect's form (``tfl.conv2d {fused_activation = "relu"}``, as the TFLite target's ``tfl-fuse``
writes it; without one, the core op), FULLY_CONNECTED to ``matmul`` with ``transpose_b``, float16 weights with their
DEQUANTIZE to a ``cast``, Flex custom ops to opaque ``tf.<Op>`` nodes with their NodeDef.

Names: graph inputs and outputs take their SignatureDef names (the tensor names when there is none); every node
is located at its output tensor's name, split at ``;`` (TensorFlow joins the names of fused nodes that way).

Shapes: a dimension the file marks unknown (-1 in ``shape_signature``) is the symbolic ``batch`` as an input's
first dimension, unknown elsewhere; result types are inferred by irc, with quantization parameters taken from the
file. Shape-like operands that TensorFlow computes at run time (SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE) are
evaluated at the file's stored shapes and keep -1 where the result's dimension is unknown; the shape arithmetic
then has no user and is dropped. Every operator irc cannot read is reported at once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from irc.errors import InputError, UnsupportedOpError
from irc.formats.tflite import opnames, schema
from irc.formats.tflite.flatbuffer import (
    FLEX_PREFIX,
    Operator,
    TFLModel,
    options,
    parse_flex_options,
    read_model,
)
from irc.ir.graph import Graph, Location, Node, Value
from irc.ir.liveness import remove_dead
from irc.ir.types import DType, QuantParams, SymDim, TensorType

BATCH = SymDim("batch")
DTYPES = {
    "FLOAT32": DType.f32, "FLOAT16": DType.f16, "BFLOAT16": DType.bf16, "FLOAT64": DType.f64, "INT8": DType.i8,
    "INT4": DType.i4,
    "UINT8": DType.u8, "INT16": DType.i16, "INT32": DType.i32, "INT64": DType.i64, "BOOL": DType.bool,
    "STRING": DType.str, "COMPLEX64": DType.c64,
}
# Shape arithmetic is evaluated as the file is read only while it is the size of shapes, axes and paddings (which
# is all the importers read of it): a larger integer result, or more of them in all, stays a node of the graph,
# so a 1 KB file cannot make the reader TILE a constant into gigabytes.
EVALUATE_AT_MOST = 1 << 12  # elements of one result
EVALUATE_IN_ALL = 16 << 20  # bytes of all evaluated results
# What the writer fuses, and TANH, which TensorFlow's converter also fuses.
ACTIVATIONS = {**opnames.inverse(opnames.FUSED), "TANH": "tanh"}

Importer = Callable[["Reader", Operator], "list[Value] | Value"]
IMPORTERS: dict[str, Importer] = {}


class CannotRead(Exception):
    """An operator this reader cannot turn into irc ops; the message says why."""


def reads(*codes: str):
    """Registers the importer of TFLite builtins ``codes``."""

    def register(fn: Importer) -> Importer:
        for code in codes:
            if code in IMPORTERS:
                raise ValueError(f"two importers for {code}")
            IMPORTERS[code] = fn
        return fn

    return register


def read_tflite(path: str | os.PathLike) -> Graph:
    """The irc graph of a .tflite file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read the file: {e.strerror or e}", where=str(path)) from None
    return graph_of(read_model(data, str(path)), str(path), _graph_name(path))


def graph_of(model: TFLModel, source: str = "model", name: str = "main") -> Graph:
    """The irc graph of the main subgraph of a parsed TFLite model."""
    return Reader(model, source, name).read()


def _graph_name(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c == "_" else "_" for c in path.stem)
    return stem if stem and not stem[0].isdigit() else f"m_{stem}"


class Reader:
    """Turns the operators of one subgraph (0, the main graph, unless ``subgraph`` says) into irc nodes, in order.

    WHILE and IF read the subgraphs they name with readers of their own, as regions; ``parent`` is the reader of
    the enclosing subgraph, through which a subgraph that refers to itself (directly or not) is refused, and the
    operators read in all subgraphs are counted against the node limit (a subgraph used by many WHILEs is read
    for each).
    """

    def __init__(self, model: TFLModel, source: str, name: str, subgraph: int = 0, parent: Reader | None = None):
        self.model = model
        self.source = source
        self.graph = Graph(name)
        self.index = subgraph
        self.sg = model.subgraphs[subgraph]
        self.parent = parent
        self.operators_read = parent.operators_read if parent is not None else [0]  # shared by the whole tree
        self.values: dict[int, Value] = {}  # tensor index -> irc value
        self.stored: dict[Value, list[int]] = {}  # value -> the shape its tensor has in the file
        self.known: dict[Value, np.ndarray] = {}  # integer values evaluated at the stored shapes (shape arithmetic)
        self.known_bytes = 0
        self.codes = model.operator_codes
        self.op: Operator | None = None
        self.loc = Location()

    # ----- the walk ------------------------------------------------------------------------------------------------
    def read(self) -> Graph:
        from irc import limits

        self.operators_read[0] += len(self.sg.operators)
        limits.check_nodes(self.operators_read[0], "reading every use of the model's subgraphs", where=self.source)
        self._inputs()
        failures: dict[str, list[str]] = {}
        for k, op in enumerate(self.sg.operators):
            code = self._code_name(op)
            self.op = op
            self.loc = Location(tuple(self._name(op.outputs[0]).split(";"))) if op.outputs else Location()
            if op.builtin_options is None and code != "CUSTOM" and schema.options_table(code) is not None:
                op.builtin_options = options(code)  # an absent table means every option at its default
            try:
                importer = IMPORTERS.get(self._importer_key(op))
                if importer is None:
                    raise CannotRead("irc has no reading of this operator")
                results = importer(self, op)
                self._bind(op, [results] if isinstance(results, Value) else results)
            except CannotRead as e:
                where = self._name(op.outputs[0]) if op.outputs else "?"
                failures.setdefault(code, []).append(f"{e} (operator {k}, {where})")
                self._bind_unknown(op)
            except InputError:
                raise
            except (ValueError, KeyError, IndexError, TypeError, AttributeError, ArithmeticError) as e:
                # a well-formed flatbuffer whose operators make no sense: say which one
                raise InputError(f"operator {k} ({code}): {e}", where=self.source) from None
        if failures:
            parts = [f"{code} x{len(items)}: {items[0]}" for code, items in sorted(failures.items())]
            raise UnsupportedOpError(f"cannot read {len(failures)} TFLite operator type(s): " + "; ".join(parts),
                                     where=self.source)
        try:
            self._outputs()
        except ValueError as e:
            raise InputError(f"graph output: {e}", where=self.source) from None
        remove_dead(self.graph, keep=lambda node: node.is_opaque)  # the shape arithmetic now in attributes
        return self.graph

    def _code_name(self, op: Operator) -> str:
        oc = self.codes[op.opcode_index]
        return oc.custom_code if oc.builtin_code == "CUSTOM" else str(oc.builtin_code)

    def _importer_key(self, op: Operator) -> str:
        oc = self.codes[op.opcode_index]
        if oc.builtin_code == "CUSTOM" and (oc.custom_code or "").startswith(FLEX_PREFIX):
            return "FLEX"
        return str(oc.builtin_code)

    def region(self, index: int, role: str) -> Graph:
        """Subgraph ``index`` read as a region (``role``: cond, body, then, else)."""
        if not 0 <= index < len(self.model.subgraphs):
            raise ValueError(f"its {role} subgraph {index} does not exist ({len(self.model.subgraphs)} subgraphs)")
        reader = self
        while reader is not None:
            if reader.index == index:
                raise InputError(f"subgraph {index} runs itself through a WHILE or IF (recursion TFLite does not "
                                 f"allow)", where=self.source)
            reader = reader.parent
        return Reader(self.model, self.source, role, index, parent=self).read()

    def _signature(self):
        if self.parent is not None:  # a region's arguments and results are named by its tensors
            return None
        for sig in self.model.signature_defs:
            if sig.subgraph_index == 0:
                return sig
        return None

    def _inputs(self) -> None:
        sig = self._signature()
        names = {i: name for name, i in sig.inputs.items()} if sig else {}
        taken, tries = set(), {}
        for index in self.sg.inputs:
            t = self.sg.tensors[index]
            type_ = self._file_type(index, batch=self.parent is None)
            name = _unique(names.get(index) or t.name or f"input_{index}", index, taken, tries)
            self.values[index] = self.graph.add_input(name, type_)
            self.stored[self.values[index]] = t.shape

    def open_past_batch(self) -> bool:
        """Whether an input of the model has a dim unknown until run time other than the first (the batch): then
        shape arithmetic evaluated at the stored shapes would fix it (TF's converter marks more dims -1 than vary
        with the batch alone, so a -1 past the first of an intermediate tensor says nothing)."""
        top = self
        while top.parent is not None:
            top = top.parent
        return any(d is None for v in top.graph.inputs for d in (v.type.shape or ()))

    def _outputs(self) -> None:
        sig = self._signature()
        names = {i: name for name, i in sig.outputs.items()} if sig else {}
        taken, tries = set(), {}
        for index in self.sg.outputs:
            name = _unique(names.get(index) or self.sg.tensors[index].name or f"output_{index}", index, taken, tries)
            self.graph.set_output(name, self.value(index))

    def _bind(self, op: Operator, results: list[Value]) -> None:
        if len(results) != len(op.outputs):
            raise ValueError(f"gives {len(results)} results for {len(op.outputs)} output tensors")
        for index, value in zip(op.outputs, results):
            self.values[index] = value
            self.stored.setdefault(value, self.sg.tensors[index].shape)
            self._evaluate(value)

    def _bind_unknown(self, op: Operator) -> None:
        """Placeholders for the outputs of an operator that could not be read, so reading goes on."""
        for index in op.outputs:
            self.values[index] = Value(self._file_type(index))

    # ----- tensors -------------------------------------------------------------------------------------------------
    def _name(self, index: int) -> str:
        return self.sg.tensors[index].name

    def _file_type(self, index: int, batch: bool = False) -> TensorType:
        t = self.sg.tensors[index]
        if t.type not in DTYPES:
            raise InputError(f"tensor {index} ({t.name!r}) has type {t.type}, which irc does not support",
                             where=self.source)
        quant = self._blockwise(index) if t.quantization is not None and t.quantization.blockwise else _quant(t)
        if not t.has_rank and not t.shape:
            return TensorType(DTYPES[t.type], None, quant)
        dims = t.shape_signature if t.shape_signature is not None else t.shape
        shape = tuple((BATCH if batch and i == 0 else None) if d < 0 else d for i, d in enumerate(dims))
        return TensorType(DTYPES[t.type], shape, quant)

    def _blockwise(self, index: int) -> QuantParams:
        """LiteRT's blockwise parameters: a [out, in / block] float tensor of scales, no zero points."""
        from irc.ir.parser import _blockwise_problem

        t = self.sg.tensors[index]
        scales_at, zero_points_at, size = t.quantization.blockwise
        scales = self.data(scales_at) if 0 <= scales_at < len(self.sg.tensors) and scales_at != index else None
        if scales is None or zero_points_at != -1 or size < 1 or t.quantization.quantized_dimension != 0:
            raise CannotRead(f"tensor {index} ({t.name!r}) has blockwise parameters irc does not read")
        q = QuantParams(tuple(float(v) for v in np.asarray(scales, np.float64).reshape(-1)), (0,) * scales.size, 0,
                        size)
        why = _blockwise_problem(tuple(t.shape), q)
        if why or not np.all(np.asarray(q.scale) > 0):
            raise CannotRead(f"tensor {index} ({t.name!r}): {why or 'block scales must be positive'}")
        return q

    def value(self, index: int) -> Value:
        """The irc value of tensor ``index``: a constant for tensors with data."""
        if index in self.values:
            return self.values[index]
        t = self.sg.tensors[index]
        if t.is_variable:
            raise CannotRead(f"tensor {index} ({t.name!r}) is a variable, which irc does not read")
        array = self.data(index)
        if array is None:
            raise ValueError(f"reads tensor {index} ({t.name!r}) before any operator writes it")
        type_ = self._file_type(index)
        node = self.graph.add("const", (), {"value": array}, types=[TensorType(type_.dtype, array.shape, type_.quant)],
                              loc=Location.of(t.name))
        self.values[index] = node.result
        return node.result

    def data(self, index: int) -> np.ndarray | None:
        """The constant data of tensor ``index``, or None when it has none."""
        t = self.sg.tensors[index]
        buffer = self.model.buffers[t.buffer]
        if not t.buffer or not buffer.nbytes:
            return None
        raw = buffer.view()
        if t.type == "STRING":
            return _strings(raw, t.name)
        if t.type == "INT4":
            return _int4(np.frombuffer(raw, np.uint8), t.shape)
        if t.type not in schema.NUMPY_DTYPES:
            raise CannotRead(f"tensor {index} holds {t.type} data, which irc does not read")
        return np.frombuffer(raw, schema.NUMPY_DTYPES[t.type]).reshape(t.shape)

    def input(self, k: int) -> Value | None:
        """Operand ``k`` of the current operator (None when omitted)."""
        inputs = self.op.inputs
        if k >= len(inputs) or inputs[k] < 0:
            return None
        return self.value(inputs[k])

    def operands(self) -> list[Value]:
        return [self.value(i) for i in self.op.inputs if i >= 0]

    def ints(self, k: int, what: str) -> list[int]:
        """Operand ``k`` as a constant list of ints: stored data, or shape arithmetic evaluated at stored shapes."""
        index = self.op.inputs[k] if k < len(self.op.inputs) else -1
        if index < 0:
            raise ValueError(f"{what} is missing")
        array = self.data(index)
        if array is None and index in self.values:
            array = self.known.get(self.values[index])
        if array is None:
            raise CannotRead(f"its {what} is computed from data at run time")
        array = np.asarray(array)
        if array.size > EVALUATE_AT_MOST:  # a shape, axes or paddings: never thousands of values
            raise ValueError(f"its {what} has {array.size:,} values")
        return [int(v) for v in array.reshape(-1)]

    def int_scalar(self, k: int, what: str) -> int:
        values = self.ints(k, what)
        if len(values) != 1:
            raise ValueError(f"{what} must be a single value, got {values}")
        return values[0]

    def out_type(self, k: int = 0) -> TensorType:
        return self._file_type(self.op.outputs[k])

    def dynamic_dims(self, values: list[int], k: int = 0) -> list[int]:
        """``values`` (a shape evaluated at stored sizes) with -1 where output ``k``'s dimension is unknown.

        Only the first unknown dimension becomes -1 (a reshape allows one); it absorbs the batch.
        """
        t = self.sg.tensors[self.op.outputs[k]]
        if t.shape_signature is None or len(t.shape_signature) != len(values):
            return values
        out, seen = list(values), False
        for i, d in enumerate(t.shape_signature):
            if d < 0 and not seen:
                out[i], seen = -1, True
        return out

    # ----- building ------------------------------------------------------------------------------------------------
    def add(self, op: str, operands, attrs: dict | None = None, *, quant_from: int | None = 0,
            count: int | None = None) -> Node:
        """Adds an irc node at the operator's location; results take the file's quantization of output
        ``quant_from`` (None: inferred types as they are)."""
        operands = list(operands)
        if attrs and "activation" in attrs:  # the operator's fused activation: its tfl form, or the core op
            attrs = dict(attrs)
            activation = attrs.pop("activation")
            if activation != "none":
                from irc.ops.tfl import fused_name

                op, attrs["fused_activation"] = fused_name(op), activation
        try:
            from irc.ops import infer_types

            types = infer_types(op, [v.type for v in operands], dict(attrs or {}), [v.constant for v in operands])
        except ValueError as e:
            raise ValueError(f"as irc {op}: {e}") from None
        if quant_from is not None and quant_from < len(self.op.outputs):
            file_t = self._file_type(self.op.outputs[quant_from])
            if file_t.quant is not None or any(t.quant for t in types):
                types = [TensorType(file_t.dtype, t.shape, file_t.quant) for t in types]
        return self.graph.add(op, operands, attrs or {}, types=types, loc=self.loc)

    def emit(self, op: str, *operands: Value, quant_from: int | None = 0, **attrs) -> Value:
        return self.add(op, operands, attrs, quant_from=quant_from).result

    def temp(self, op: str, *operands: Value, **attrs) -> Value:
        """An intermediate node of a multi-node reading: its type is inferred, never quantized from the file."""
        return self.add(op, operands, attrs, quant_from=None).result

    def const(self, array) -> Value:
        return self.graph.add("const", (), {"value": np.asarray(array)},
                              types=[TensorType(DType.from_numpy(np.asarray(array).dtype), np.shape(array))],
                              loc=self.loc).result

    def activation(self, value: Value, opts) -> str:
        """The irc name of the options' fused activation (``add`` turns an ``activation`` attribute into the
        ``tfl`` form's ``fused_activation``)."""
        name = getattr(opts, "fused_activation_function", "NONE") if opts is not None else "NONE"
        if name not in ACTIVATIONS:
            raise CannotRead(f"fused activation {name} has no irc equivalent")
        return ACTIVATIONS[name]

    # ----- shape arithmetic ----------------------------------------------------------------------------------------
    def _evaluate(self, value: Value) -> None:
        """Records the value of an integer result when it can be computed from stored data and shapes."""
        node = value.producer
        if value.type.dtype not in (DType.i32, DType.i64) or node is None or node.op == "const":
            return
        if node.op == "shape":
            stored = self.stored.get(node.operands[0])
            if stored is not None:
                self.known[value] = np.asarray(stored, value.type.dtype.numpy)
            return
        args = []
        for v in node.operands:
            array = v.constant if v.is_constant else self.known.get(v)
            if array is None:
                return
            args.append(array)
        from irc.ops import infer_types, run_kernel

        with contextlib.suppress(Exception):  # shape arithmetic that does not evaluate stays unknown
            # sized from the arguments' real shapes before anything is computed
            types = infer_types(node.op, [TensorType(DType.from_numpy(a.dtype), a.shape) for a in args], node.attrs)
            size = types[value.index].num_elements
            if size is None or size > EVALUATE_AT_MOST or self.known_bytes > EVALUATE_IN_ALL:
                return
            result = np.asarray(run_kernel(node.op, args, node.attrs)[value.index])
            self.known[value] = result
            self.known_bytes += result.nbytes


def _unique(name: str, index: int, taken: set[str], tries: dict[str, int]) -> str:
    """``name``, else ``name_INDEX``, else ``name_INDEX_2``, ...: the first not in ``taken`` (a hostile file may
    repeat any name, or list one tensor 10,000 times); ``tries`` remembers where each search stopped, so that
    naming n repeats takes linear time."""
    if name not in taken:
        taken.add(name)
        return name
    base = candidate = f"{name}_{index}"
    tried = tries.get(base, 1)
    while candidate in taken:
        tried += 1
        candidate = f"{base}_{tried}"
    tries[base] = tried
    taken.add(candidate)
    return candidate


def _int4(packed: np.ndarray, shape) -> np.ndarray:
    """TFLite's packed INT4 (two a byte, the first in the low nibble) as int8 values in [-8, 7]."""
    count = int(np.prod(shape))
    nibbles = np.stack([packed & 0x0F, packed >> 4], axis=1).reshape(-1)[:count].astype(np.int8)
    return np.where(nibbles > 7, nibbles - 16, nibbles).astype(np.int8).reshape(shape)


def _quant(t) -> QuantParams | None:
    q = t.quantization
    if q is None or not q.scale:
        return None
    zero = q.zero_point or [0] * len(q.scale)
    if len(q.scale) == 1:
        return QuantParams((q.scale[0],), (zero[0],))
    return QuantParams(tuple(q.scale), tuple(zero), q.quantized_dimension)


def _strings(raw: np.ndarray, name: str) -> np.ndarray:
    data = raw.tobytes()
    if len(data) < 4:
        raise ValueError(f"string tensor {name!r} has a truncated header")
    count = int.from_bytes(data[:4], "little")
    if 4 * (count + 2) > len(data):
        raise ValueError(f"string tensor {name!r} declares {count} strings but holds {len(data)} bytes")
    offsets = np.frombuffer(data, "<i4", count + 1, 4)
    if np.any(np.diff(offsets) < 0) or offsets[-1] > len(data) or offsets[0] < 4 * (count + 2):
        raise ValueError(f"string tensor {name!r} has offsets outside its data")
    return np.array([data[offsets[i]:offsets[i + 1]] for i in range(count)], dtype=object)


# ---------------------------------------------------------------------------------------------------------------------
# The importers, by TFLite builtin. ``r`` is the Reader; each returns the irc values of the operator's outputs.

def _opts(op: Operator):
    return op.builtin_options


_ARITHMETIC = opnames.inverse(opnames.ARITHMETIC)
_BINARY = opnames.inverse(opnames.BINARY)
_UNARY = opnames.inverse(opnames.UNARY)
_REDUCE = opnames.inverse(opnames.REDUCE)


@reads(*_ARITHMETIC)
def _arithmetic(r: Reader, op: Operator):
    x, y = r.input(0), r.input(1)
    return r.emit(_ARITHMETIC[r._code_name(op)], x, y, activation=r.activation(x, _opts(op)))


@reads(*_BINARY)
def _binary(r, op):
    return r.emit(_BINARY[r._code_name(op)], r.input(0), r.input(1))


@reads(*_UNARY)
def _unary(r, op):
    return r.emit(_UNARY[r._code_name(op)], r.input(0))


@reads("SELECT", "SELECT_V2")
def _select(r, op):
    return r.emit("select", *r.operands())


@reads("RELU_N1_TO_1", "RELU_0_TO_1")
def _clip(r, op):
    x = r.input(0)
    low = -1.0 if r._code_name(op) == "RELU_N1_TO_1" else 0.0
    bounded = r.temp("maximum", x, r.const(np.asarray(low, x.type.dtype.numpy)))
    return r.emit("minimum", bounded, r.const(np.asarray(1.0, x.type.dtype.numpy)))


@reads("PRELU")
def _prelu(r, op):
    # max(x, 0) + alpha * min(x, 0)
    x, alpha = r.input(0), r.input(1)
    zero = r.const(np.asarray(0, x.type.dtype.numpy))
    negative = r.temp("mul", alpha, r.temp("minimum", x, zero))
    return r.emit("add", r.temp("maximum", x, zero), negative)


@reads("LEAKY_RELU")
def _leaky_relu(r, op):
    return r.emit("leaky_relu", r.input(0), alpha=float(_opts(op).alpha) if _opts(op) else 0.0)


@reads("FAKE_QUANT")
def _fake_quant(r, op):
    opts = _opts(op)
    if opts is None:
        raise CannotRead("FAKE_QUANT without its options (min, max, num_bits)")
    return r.emit("fake_quant", r.input(0), min=(float(opts.min),), max=(float(opts.max),),
                  num_bits=int(opts.num_bits), narrow_range=bool(opts.narrow_range))


@reads("GELU")
def _gelu(r, op):
    return r.emit("gelu", r.input(0), approximate=bool(_opts(op).approximate) if _opts(op) else False)


@reads("SOFTMAX")
def _softmax(r, op):
    beta = float(_opts(op).beta) if _opts(op) else 1.0
    return r.emit("softmax", r.input(0), axis=-1, beta=beta)


@reads("LOG_SOFTMAX")
def _log_softmax(r, op):
    return r.emit("log_softmax", r.input(0), axis=-1)


@reads("CAST")
def _cast(r, op):
    return r.emit("cast", r.input(0), to=r.out_type().dtype)


@reads("DEQUANTIZE")
def _dequantize(r, op):
    x = r.input(0)
    if x.type.quant is None:  # float16 weights widened to float32
        return r.emit("cast", x, to=DType.f32)
    return r.emit("dequantize", x)


@reads("QUANTIZE")
def _quantize(r, op):
    x, out = r.input(0), r.out_type()
    q = out.quant
    if q is None:
        raise ValueError("its output has no quantization parameters")
    attrs = {"dtype": out.dtype, "scale": q.scale, "zero_point": q.zero_point, "axis": -1 if q.axis is None else q.axis}
    return r.emit("requantize" if x.type.quant is not None else "quantize", x, **attrs)


# ----- convolutions, matmul, pools ----------------------------------------------------------------------------------
def _window(opts) -> dict:
    return {"strides": (opts.stride_h, opts.stride_w), "padding": opts.padding}


def _filter(r: Reader, f: Value, perm, shape=None, axis_of=None) -> Value:
    """A filter in TensorFlow's layout: constants rewritten, computed filters through transpose/reshape nodes."""
    if f.is_constant:
        array = np.transpose(f.constant, perm) if perm else f.constant
        if shape is not None:
            array = array.reshape(shape)
        q = f.type.quant
        if q is not None and q.axis is not None:
            q = QuantParams(q.scale, q.zero_point, axis_of(q.axis))
        return r.graph.add("const", (), {"value": np.ascontiguousarray(array)},
                           types=[TensorType(f.type.dtype, array.shape, q)], loc=f.producer.loc).result
    value = r.temp("transpose", f, perm=tuple(perm)) if perm else f
    return r.temp("reshape", value, shape=tuple(shape)) if shape is not None else value


def _bias(r: Reader, k: int) -> list[Value]:
    bias = r.input(k)
    return [] if bias is None else [bias]


@reads("CONV_2D")
def _conv2d(r, op):
    opts = _opts(op)
    x, f = r.input(0), r.input(1)
    hwio = _filter(r, f, (1, 2, 3, 0), axis_of=lambda a: (1, 2, 3, 0).index(a))
    attrs = {**_window(opts), "dilations": (opts.dilation_h_factor, opts.dilation_w_factor),
             "activation": r.activation(x, opts)}
    return r.add("conv2d", [x, hwio, *_bias(r, 2)], attrs).result


@reads("DEPTHWISE_CONV_2D")
def _depthwise(r, op):
    opts = _opts(op)
    x, f = r.input(0), r.input(1)
    channels = x.type.shape[3] if x.type.shape is not None else None
    _, kh, kw, total = f.type.shape
    if not isinstance(channels, int) or not isinstance(total, int) or total % channels:
        raise CannotRead("its input channels are unknown or do not divide the filter's")
    mult = total // channels
    hwim = _filter(r, f, None, shape=(kh, kw, channels, mult), axis_of=lambda a: 2 if mult == 1 else 3)
    attrs = {**_window(opts), "dilations": (opts.dilation_h_factor, opts.dilation_w_factor),
             "activation": r.activation(x, opts)}
    return r.add("depthwise_conv2d", [x, hwim, *_bias(r, 2)], attrs).result


@reads("TRANSPOSE_CONV")
def _transpose_conv(r, op):
    opts = _opts(op)
    shape = r.dynamic_dims(r.ints(0, "output shape"))
    x, f = r.input(2), r.input(1)
    filt = _filter(r, f, (1, 2, 0, 3), axis_of=lambda a: (1, 2, 0, 3).index(a))
    attrs = {**_window(opts), "output_shape": tuple(shape), "activation": r.activation(x, opts)}
    return r.add("conv2d_transpose", [x, filt, *_bias(r, 3)], attrs).result


@reads("FULLY_CONNECTED")
def _fully_connected(r, op):
    opts = _opts(op)
    x, w = r.input(0), r.input(1)
    if opts is not None and opts.weights_format != "DEFAULT":
        raise CannotRead(f"weights format {opts.weights_format} is not read")
    act = r.activation(x, opts)
    bias = _bias(r, 2)
    k = w.type.shape[1]
    rank = x.type.rank
    keep = bool(opts.keep_num_dims) if opts is not None else False
    if rank == 2:
        return r.add("matmul", [x, w, *bias], {"transpose_b": True, "activation": act}).result
    if keep and not bias and act == "none":
        return r.emit("batch_matmul", x, w, adj_y=True)
    if keep and rank is not None and sum(not isinstance(d, int) for d in x.type.shape[:-1]) > 1:
        # no reshape attribute holds two run-time dims: the TFLite form itself, which keeps them
        return r.add("tfl.matmul", [x, w, *bias], {"transpose_b": True, "fused_activation": act}).result
    flat = r.temp("reshape", x, shape=(-1, k))
    product = r.add("matmul", [flat, w, *bias], {"transpose_b": True, "activation": act}).result
    if not keep:
        return product
    lead = x.type.shape[:-1]
    out_shape = [d if isinstance(d, int) else -1 for d in lead] + [w.type.shape[0]]
    return r.emit("reshape", product, shape=tuple(out_shape))


@reads("BATCH_MATMUL")
def _batch_matmul(r, op):
    opts = _opts(op)
    return r.emit("batch_matmul", r.input(0), r.input(1), adj_x=bool(opts and opts.adj_x),
                  adj_y=bool(opts and opts.adj_y))


def _pool(kind: str):
    def read(r, op):
        opts = _opts(op)
        x = r.input(0)
        attrs = {**_window(opts), "ksize": (opts.filter_height, opts.filter_width), "activation": r.activation(x, opts)}
        return r.emit(kind, x, **attrs)

    return read


reads("MAX_POOL_2D")(_pool("max_pool"))
reads("AVERAGE_POOL_2D")(_pool("avg_pool"))


@reads(*_REDUCE)
def _reduce(r, op):
    keep = bool(_opts(op).keep_dims) if _opts(op) else False
    return r.emit(_REDUCE[r._code_name(op)], r.input(0), axes=tuple(r.ints(1, "axes")), keepdims=keep)


# ----- shapes -------------------------------------------------------------------------------------------------------
@reads("RESHAPE")
def _reshape(r, op):
    x = r.input(0)
    signature = r.sg.tensors[op.outputs[0]].shape_signature
    if len(op.inputs) > 1 and op.inputs[1] >= 0 and r.data(op.inputs[1]) is None and signature is not None \
            and sum(d < 0 for d in signature) > 1 and r.open_past_batch():
        # more than one dim read at run time, and the model has one beside the batch: no attribute holds it
        result = r.emit("dynamic_reshape", x, r.input(1))
        stated = r.out_type().shape  # the file's static dims, which the shape vector's values do not show
        if stated is not None and result.type.rank == len(stated):
            known = tuple(s if s is not None else d for s, d in zip(stated, result.type.shape))
            r.graph.set_type(result, result.type.with_shape(known))
        return result
    if len(op.inputs) > 1 and op.inputs[1] >= 0:
        shape = r.ints(1, "new shape")
    elif _opts(op) is not None and _opts(op).new_shape:
        shape = list(_opts(op).new_shape)
    else:
        shape = r.sg.tensors[op.outputs[0]].shape_signature or r.sg.tensors[op.outputs[0]].shape
    return r.emit("reshape", x, shape=tuple(r.dynamic_dims(shape)))


@reads("SQUEEZE")
def _squeeze(r, op):
    axes = tuple(_opts(op).squeeze_dims) if _opts(op) else ()
    return r.emit("squeeze", r.input(0), axes=axes)


@reads("EXPAND_DIMS")
def _expand_dims(r, op):
    return r.emit("expand_dims", r.input(0), axis=r.int_scalar(1, "axis"))


@reads("TRANSPOSE")
def _transpose(r, op):
    return r.emit("transpose", r.input(0), perm=tuple(r.ints(1, "permutation")))


@reads("CONCATENATION")
def _concat(r, op):
    opts = _opts(op)
    xs = r.operands()
    return r.add("concat", xs, {"axis": opts.axis, "activation": r.activation(xs[0], opts)}).result


def _split_results(r: Reader, x: Value, axis: int, sizes: list[int]) -> list[Value]:
    node = r.add("split", [x], {"axis": axis, "sizes": tuple(sizes)})
    return node.results


@reads("SPLIT")
def _split(r, op):
    axis, x = r.int_scalar(0, "axis"), r.input(1)
    count = len(op.outputs)
    dim = x.type.shape[axis] if x.type.shape is not None else None
    if not isinstance(dim, int):
        raise CannotRead("it splits a dimension of unknown size")
    return _split_results(r, x, axis, [dim // count] * count)


@reads("SPLIT_V")
def _split_v(r, op):
    x, sizes, axis = r.input(0), r.ints(1, "sizes"), r.int_scalar(2, "axis")
    if -1 in sizes:
        dim = x.type.shape[axis] if x.type.shape is not None else None
        if not isinstance(dim, int):
            raise CannotRead("it splits a dimension of unknown size")
        sizes[sizes.index(-1)] = dim - sum(s for s in sizes if s != -1)
    return _split_results(r, x, axis, sizes)


@reads("PACK")
def _pack(r, op):
    return r.emit("pack", *r.operands(), axis=_opts(op).axis if _opts(op) else 0)


@reads("UNPACK")
def _unpack(r, op):
    return r.add("unpack", [r.input(0)], {"axis": _opts(op).axis if _opts(op) else 0}).results


@reads("SLICE")
def _slice(r, op):
    size = tuple(r.ints(2, "size"))
    try:
        begin = tuple(r.ints(1, "begin"))
    except CannotRead:  # offsets computed at run time: within bounds (TFLite refuses the others), a dynamic_slice
        if -1 in size:
            raise CannotRead("it slices to the end of a dimension at offsets computed at run time") from None
        return r.emit("dynamic_slice", r.input(0), r.input(1), size=size)
    return r.emit("slice", r.input(0), begin=begin, size=size)


@reads("STRIDED_SLICE")
def _strided_slice(r, op):
    opts = _opts(op)
    if opts is not None and opts.offset:
        raise CannotRead("offset strided slices are not read")
    masks = {k: getattr(opts, k) if opts else 0 for k in
             ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    return r.emit("strided_slice", r.input(0), begin=tuple(r.ints(1, "begin")), end=tuple(r.ints(2, "end")),
                  strides=tuple(r.ints(3, "strides")), **masks)


@reads("GATHER")
def _gather(r, op):
    opts = _opts(op)
    return r.emit("gather", r.input(0), r.input(1), axis=opts.axis if opts else 0,
                  batch_dims=opts.batch_dims if opts else 0)


# ----- indexing -----------------------------------------------------------------------------------------------------
@reads("CUMSUM")
def _cumsum(r, op):
    opts = _opts(op)
    return r.emit("cumsum", r.input(0), axis=r.int_scalar(1, "axis"), exclusive=bool(opts and opts.exclusive),
                  reverse=bool(opts and opts.reverse))


@reads("DYNAMIC_UPDATE_SLICE")
def _dynamic_update_slice(r, op):
    return r.emit("dynamic_update_slice", r.input(0), r.input(1), r.input(2))


@reads("TOPK_V2")
def _top_k(r, op):
    return r.add("top_k", [r.input(0)], {"k": r.int_scalar(1, "k")}).results


@reads("GATHER_ND")
def _gather_nd(r, op):
    return r.emit("gather_nd", r.input(0), r.input(1))


@reads("SCATTER_ND")
def _scatter_nd(r, op):
    return r.emit("scatter_nd", r.input(0), r.input(1), shape=tuple(r.ints(2, "shape")))


@reads("TILE")
def _tile(r, op):
    return r.emit("tile", r.input(0), multiples=tuple(r.ints(1, "multiples")))


@reads("BROADCAST_TO")
def _broadcast_to(r, op):
    return r.emit("broadcast_to", r.input(0), shape=tuple(r.ints(1, "shape")))


@reads("SHAPE")
def _shape(r, op):
    dtype = DType.i64 if _opts(op) is not None and _opts(op).out_type == "INT64" else DType.i32
    return r.emit("shape", r.input(0), dtype=dtype)


@reads("ARG_MAX", "ARG_MIN")
def _argmax(r, op):
    x = r.input(0)
    dtype = DType.i64 if _opts(op) is not None and _opts(op).output_type == "INT64" else DType.i32
    if r._code_name(op) == "ARG_MIN":
        x = r.temp("neg", x)  # the first minimum is the first maximum of -x
    return r.emit("argmax", x, axis=r.int_scalar(1, "axis"), dtype=dtype)


@reads("ONE_HOT")
def _one_hot(r, op):
    on, off = (r.data(op.inputs[k]) for k in (2, 3))
    if on is None or off is None:
        raise CannotRead("its on/off values are computed at run time")
    return r.emit("one_hot", r.input(0), depth=r.int_scalar(1, "depth"), axis=_opts(op).axis if _opts(op) else -1,
                  on_value=float(on.reshape(-1)[0]), off_value=float(off.reshape(-1)[0]), dtype=r.out_type().dtype)


# ----- pad, resize --------------------------------------------------------------------------------------------------
def _paddings(r: Reader) -> tuple:
    flat = r.ints(1, "paddings")
    return tuple((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))


@reads("PAD")
def _pad(r, op):
    return r.emit("pad", r.input(0), paddings=_paddings(r))


@reads("PADV2")
def _padv2(r, op):
    x = r.input(0)
    value = r.data(op.inputs[2])
    if value is None:
        raise CannotRead("its padding value is computed at run time")
    value = float(value.reshape(-1)[0])
    if x.type.quant is not None:
        value = (value - x.type.quant.zero_point[0]) * x.type.quant.scale[0]
    return r.emit("pad", x, paddings=_paddings(r), constant_value=value)


@reads("MIRROR_PAD")
def _mirror_pad(r, op):
    mode = _opts(op).mode.lower() if _opts(op) else "reflect"
    return r.emit("pad", r.input(0), paddings=_paddings(r), mode=mode)


@reads("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")
def _resize(r, op):
    opts = _opts(op)
    method = "bilinear" if r._code_name(op) == "RESIZE_BILINEAR" else "nearest"
    return r.emit("resize", r.input(0), size=tuple(r.ints(1, "size")), method=method,
                  align_corners=bool(opts and opts.align_corners), half_pixel_centers=bool(opts and opts.half_pixel_centers))


# ----- 3-D convolutions, complex numbers ---------------------------------------------------------------------------
def _same_3d(r, x: Value, k, strides, dilations, padding: str) -> tuple[Value, str]:
    """TFLite's 3-D SAME padding is never negative (TensorFlow's 3-D kernels' is, where a window is narrower than
    its stride, and irc's conv3d follows those): such a window is read as an explicit pad and a VALID one."""
    effective = [(kk - 1) * d + 1 for kk, d in zip(k, dilations)]
    if padding != "SAME" or all(e >= s for e, s in zip(effective, strides)):
        return x, padding
    spatial = x.type.shape[1:4] if x.type.rank == 5 else (None,) * 3
    if not all(isinstance(n, int) for n in spatial):
        raise CannotRead("a SAME window narrower than its stride over a spatial size known only at run time")
    pads = []
    for n, e, s in zip(spatial, effective, strides):
        total = max((-(-n // s) - 1) * s + e - n, 0)
        pads.append((total // 2, total - total // 2))
    return r.temp("pad", x, paddings=((0, 0), *pads, (0, 0))), "VALID"


def _fields_3d(opts) -> tuple:
    return ((opts.stride_d, opts.stride_h, opts.stride_w),
            (opts.dilation_d_factor, opts.dilation_h_factor, opts.dilation_w_factor))


@reads("CONV_3D")
def _conv3d(r, op):
    opts = _opts(op)
    x, f = r.input(0), r.input(1)
    strides, dilations = _fields_3d(opts)
    x, padding = _same_3d(r, x, f.type.shape[:3], strides, dilations, opts.padding)
    attrs = {"strides": strides, "dilations": dilations, "padding": padding, "activation": r.activation(x, opts)}
    return r.add("conv3d", [x, f, *_bias(r, 2)], attrs).result


@reads("CONV_3D_TRANSPOSE")
def _conv3d_transpose(r, op):
    opts = _opts(op)
    shape = r.dynamic_dims(r.ints(0, "output shape"))
    x, f = r.input(2), r.input(1)
    strides, dilations = _fields_3d(opts)
    if dilations != (1, 1, 1):
        raise CannotRead("a dilated CONV_3D_TRANSPOSE")
    attrs = {"output_shape": tuple(shape), "strides": strides, "padding": opts.padding,
             "activation": r.activation(x, opts)}
    return r.add("conv3d_transpose", [x, f, *_bias(r, 3)], attrs).result


@reads(*opnames.COMPLEX_PARTS.values())
def _complex_part(r, op):
    return r.emit(opnames.inverse(opnames.COMPLEX_PARTS)[r._code_name(op)], r.input(0))


@reads("RFFT2D")
def _rfft2d(r, op):
    return r.emit("rfft2d", r.input(0), fft_length=tuple(r.ints(1, "fft_length")))


# ----- Flex ops -----------------------------------------------------------------------------------------------------
_FLEX_CORE = opnames.inverse(opnames.FLEX_CORE)


@reads("FLEX")
def _flex(r, op):
    name, node_def = parse_flex_options(op.custom_options or b"", f"{r.source}: operator {r._code_name(op)}")
    if name in _FLEX_CORE:  # an op irc writes as Flex (ops_complex.py): read back as the irc op
        core = _FLEX_CORE[name]
        try:
            if core.startswith(("rfft", "irfft")):
                return r.emit(core, r.input(0), fft_length=tuple(r.ints(1, "fft_length")))
            return r.emit(core, *r.operands())
        except (ValueError, CannotRead):
            pass  # complex128, a computed fft_length: kept as the TensorFlow op
    types = [r._file_type(i) for i in op.outputs]
    node = r.graph.add(f"tf.{name}", r.operands(), {"node_def": node_def}, types=types, loc=r.loc)
    return node.results


# ----- recurrent layers ---------------------------------------------------------------------------------------------
@reads("REVERSE_V2")
def _reverse(r, op):
    return r.emit("reverse", r.input(0), axes=tuple(r.ints(1, "axes")))


_LSTM_OMITTED = {9: "peephole weights", 10: "peephole weights", 11: "peephole weights", 16: "a projection",
                 17: "a projection", 20: "layer normalization", 21: "layer normalization",
                 22: "layer normalization", 23: "layer normalization"}


def _lstm_state(r: Reader, index: int, batch_units) -> Value:
    """An LSTM state operand: what an operator wrote into the variable tensor before, else TFLite's zeros."""
    if index in r.values:
        value = r.values[index]
        node = value.producer
        if node is not None and node.op == "reshape" and node.operands[0].type.shape == value.type.shape:
            return node.operands[0]  # the copy into the variable that irc's writer puts before the operator
        return value
    t = r.sg.tensors[index]
    if not t.is_variable:
        raise ValueError(f"its state tensor {index} ({t.name!r}) is not a variable tensor")
    return r.const(np.zeros(batch_units, np.float32))


@reads("UNIDIRECTIONAL_SEQUENCE_LSTM")
def _unidirectional_sequence_lstm(r, op):
    opts = _opts(op)
    if len(op.inputs) not in (20, 24):
        raise ValueError(f"takes 20 or 24 inputs, got {len(op.inputs)}")
    for k in (0, *range(1, 9), *range(12, 16), 18, 19):
        if op.inputs[k] < 0:
            raise ValueError(f"input {k} (the input, a gate's weights or bias, or a state) is missing")
    for k, what in _LSTM_OMITTED.items():
        if k < len(op.inputs) and op.inputs[k] >= 0:
            raise CannotRead(f"it has {what}, which irc's fused LSTM does not read")
    if opts.fused_activation_function != "TANH" or opts.proj_clip or opts.diagonal_recurrent_tensors:
        raise CannotRead("only the tanh LSTM without projection clipping or diagonal recurrence is read")
    parts = []
    for k in range(1, 16):
        if k in (9, 10, 11):
            continue
        array = r.data(op.inputs[k])
        if array is None:
            raise CannotRead(f"its weight tensor {op.inputs[k]} is computed at run time")
        if r.sg.tensors[op.inputs[k]].type != "FLOAT32":
            raise CannotRead("only float32 weights are read (not hybrid quantized ones)")
        parts.append(np.asarray(array, np.float32))
    kernel = np.concatenate([w.T for w in parts[0:4]], axis=1)  # four [units, features] -> [features, 4 units]
    recurrent = np.concatenate([w.T for w in parts[4:8]], axis=1)
    bias = np.concatenate(parts[8:12])
    units = recurrent.shape[0]
    x = r.input(0)
    batch = r.sg.tensors[op.inputs[18]].shape[0]
    h0 = _lstm_state(r, op.inputs[18], (batch, units))
    c0 = _lstm_state(r, op.inputs[19], (batch, units))
    return r.emit("tfl.unidirectional_sequence_lstm", x, r.const(kernel), r.const(recurrent), r.const(bias), h0, c0,
                  time_major=bool(opts.time_major), cell_clip=float(opts.cell_clip))


# ----- control flow -------------------------------------------------------------------------------------------------
@reads("WHILE")
def _while(r, op):
    opts = _opts(op)
    cond = r.region(opts.cond_subgraph_index, "cond")
    body = r.region(opts.body_subgraph_index, "body")
    return r.graph.add("while", r.operands(), {}, regions=[cond, body], loc=r.loc).results


@reads("IF")
def _if(r, op):
    opts = _opts(op)
    then = r.region(opts.then_subgraph_index, "then")
    other = r.region(opts.else_subgraph_index, "else")
    return r.graph.add("if", r.operands(), {}, regions=[then, other], loc=r.loc).results


@reads("FILL")
def _fill(r, op):
    return r.emit("fill", r.input(0), r.input(1))

