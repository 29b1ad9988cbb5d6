"""TFLite files as plain dataclasses, written with ``write_model`` and read back with ``read_model``.

The dataclasses describe the file's logical content, not its byte layout: ``buffers[0]`` is always the empty
sentinel, tensors without data use buffer 0, identical buffers (and, in the file, identical strings) are shared, and
metadata lives in a name -> bytes dict instead of in the buffer list. ``write_model`` brings any valid model to that
form (so ``read_model(write_model(m)) == m`` for a model already in it), and ``read_model`` returns every file in
it. Fields irc has no use for (debug metadata indices, the deprecated metadata_buffer) are dropped on reading.

Builtin options are frozen dataclasses generated from ``schema.OPTIONS``: ``options("CONV_2D", padding="VALID",
stride_w=2, stride_h=2, fused_activation_function="RELU")``. Enum fields hold member names. A TensorFlow op run
by the Flex delegate is a CUSTOM op with custom_code ``"Flex" + op`` and ``flex_options(op, node_def)``.

Weights past 2 GiB do not fit in a flatbuffer: then the data follows it, 16-byte aligned, and each Buffer table
holds its offset and size (TFLite's layout for large models, which the reader also accepts).
"""

from __future__ import annotations

import hashlib
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, make_dataclass
from typing import ClassVar, NamedTuple

import flatbuffers
import numpy as np
from flatbuffers import number_types

from irc.errors import InputError, TargetError
from irc.formats.tflite import schema, validate

# Beyond this many bytes of tensor data the data goes after the flatbuffer, located by Buffer.offset/size:
# a flatbuffer cannot exceed 2 GiB, and this leaves 64 MiB for everything that is not weights.
FLATBUFFER_LIMIT = 2**31 - 2**26
BUFFER_ALIGN = 16  # TFLite maps constant data in place; 16 suits every element type and SIMD loads
FLEX_PREFIX = "Flex"  # custom_code of a TensorFlow op run by the Flex delegate: "Flex" + op name


def _f32(values) -> list[float]:
    # Float fields are stored as float32: round on the way in so a model equals itself read back.
    return np.asarray(values, np.float32).reshape(-1).tolist()


@dataclass
class Quantization:
    """Affine quantization, ``real = scale * (q - zero_point)``; per channel along ``quantized_dimension``."""

    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)
    quantized_dimension: int = 0
    min: list[float] = field(default_factory=list)
    max: list[float] = field(default_factory=list)
    custom: bytes | None = None  # CustomQuantization details, opaque
    blockwise: tuple[int, int, int] | None = None  # BlockwiseQuantization: (scales tensor, zero points tensor, size)

    def __post_init__(self):
        self.scale, self.min, self.max = _f32(self.scale), _f32(self.min), _f32(self.max)
        self.zero_point = [int(z) for z in self.zero_point]


@dataclass
class Tensor:
    name: str
    shape: list[int]
    type: str | int = "FLOAT32"  # a schema.TENSOR_TYPE name (an int only for types this schema lacks)
    buffer: int = 0  # index into TFLModel.buffers; 0 = no data
    shape_signature: list[int] | None = None  # shape with -1 for dimensions unknown until run time
    quantization: Quantization | None = None
    is_variable: bool = False
    has_rank: bool = True  # False: rank unknown (then shape is [])

    def __post_init__(self):
        self.shape = [int(d) for d in self.shape]
        if self.shape_signature is not None:
            self.shape_signature = [int(d) for d in self.shape_signature]
        if isinstance(self.type, int):
            self.type = schema.TENSOR_TYPE.name_of(self.type)


class Options:
    """Base of the generated builtin-options dataclasses; ``TABLE`` is the schema table of the class."""

    TABLE: ClassVar[schema.Table]

    def __post_init__(self):
        for f in self.TABLE.fields:
            object.__setattr__(self, f.name, _normal(f, getattr(self, f.name)))


def _normal(f: schema.Field, value):
    """The canonical Python value of an options field: enum names, float32-rounded floats, tuples for vectors."""
    if f.type == "[ubyte]":
        return bytes(value)
    if f.element:
        return tuple(_normal_scalar(f, v) for v in value)
    return _normal_scalar(f, value)


def _normal_scalar(f: schema.Field, value):
    if f.enum:
        if isinstance(value, str) and value not in f.enum.codes:
            raise ValueError(f"{f.name}: {value!r} is not a {f.enum.name}")
        return f.enum.name_of(f.enum.code_of(value))
    kind = f.scalar
    if kind == "f":
        return float(np.float32(value))
    if kind == "d":
        return float(value)
    if kind == "?":
        return bool(value)
    return int(value) if kind else str(value)


def _options_class(spec: schema.Table) -> type[Options]:
    def default(f: schema.Field):
        if f.type == "[ubyte]":
            return b""
        if f.element:
            return ()
        return "" if f.type == "string" else f.default

    columns = [(f.name, object, field(default=default(f))) for f in spec.fields]
    return make_dataclass(spec.name, columns, bases=(Options,), frozen=True,
                          namespace={"TABLE": spec, "__module__": __name__})


class _OptionsClasses(Mapping):
    """Options classes by table name, each made on first use (making all ~150 at import costs ~0.1 s)."""

    def __init__(self):
        self._made: dict[str, type[Options]] = {}

    def __getitem__(self, name: str) -> type[Options]:
        if name not in self._made:
            self._made[name] = _options_class(schema.OPTIONS[name])
        return self._made[name]

    def __iter__(self):
        return iter(schema.OPTIONS)

    def __len__(self) -> int:
        return len(schema.OPTIONS)


OPTIONS: Mapping[str, type[Options]] = _OptionsClasses()


def options(name: str, **values) -> Options:
    """Options by table name (``"Conv2DOptions"``) or by builtin op (``"CONV_2D"``)."""
    table = name if name in OPTIONS else schema.options_table(name)
    if table is None:
        raise ValueError(f"{name!r} is neither a TFLite options table nor a builtin op that takes options")
    return OPTIONS[table](**values)


@dataclass
class OperatorCode:
    builtin_code: str | int  # a schema.BUILTIN_OPERATOR name, "CUSTOM" for custom ops
    custom_code: str | None = None
    version: int = 1

    def __post_init__(self):
        if isinstance(self.builtin_code, int):
            self.builtin_code = schema.BUILTIN_OPERATOR.name_of(self.builtin_code)


@dataclass
class Operator:
    opcode_index: int
    inputs: list[int]  # -1 marks an omitted optional input
    outputs: list[int]
    builtin_options: Options | None = None
    custom_options: bytes | None = None
    intermediates: list[int] = field(default_factory=list)
    mutating_variable_inputs: list[bool] = field(default_factory=list)


@dataclass
class SubGraph:
    name: str = "main"
    tensors: list[Tensor] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    operators: list[Operator] = field(default_factory=list)


def _byte_view(data) -> np.ndarray:
    """A flat little-endian uint8 view of bytes-like or array data, copying only when the layout requires it."""
    if isinstance(data, np.ndarray):
        if data.dtype.byteorder == ">":
            data = data.astype(data.dtype.newbyteorder("<"))
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return np.frombuffer(data, np.uint8)


@dataclass(eq=False)
class Buffer:
    """Constant data: bytes, or a numpy array of the tensor's element type. Read models hold read-only views."""

    data: bytes | np.ndarray = b""

    def view(self) -> np.ndarray:
        return _byte_view(self.data)

    @property
    def nbytes(self) -> int:
        return self.data.nbytes if isinstance(self.data, np.ndarray) else len(memoryview(self.data).cast("B"))

    def __eq__(self, other):
        if not isinstance(other, Buffer):
            return NotImplemented
        return self.nbytes == other.nbytes and np.array_equal(self.view(), other.view())

    __hash__ = None

    def __repr__(self):
        return f"Buffer(<{self.nbytes} bytes>)"


@dataclass
class SignatureDef:
    inputs: dict[str, int]  # signature name -> tensor index in subgraph `subgraph_index`
    outputs: dict[str, int]
    signature_key: str = "serving_default"
    subgraph_index: int = 0


@dataclass
class TFLModel:
    version: int = schema.SCHEMA_VERSION
    description: str = ""
    operator_codes: list[OperatorCode] = field(default_factory=list)
    subgraphs: list[SubGraph] = field(default_factory=list)
    buffers: list[Buffer] = field(default_factory=lambda: [Buffer()])
    metadata: dict[str, bytes] = field(default_factory=dict)  # e.g. schema.MIN_RUNTIME_VERSION
    signature_defs: list[SignatureDef] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------
# Writing


def _dedup(views: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """Distinct non-empty contents after an empty sentinel, and where each view went (empty ones go to 0)."""
    sizes = Counter(v.nbytes for v in views)
    unique, where, seen = [np.empty(0, np.uint8)], [], {}
    for v in views:
        if v.nbytes == 0:
            where.append(0)
            continue
        # Only hash when the size is shared: most weights have a size of their own.
        key = (v.nbytes, hashlib.sha256(v).digest()) if sizes[v.nbytes] > 1 else (v.nbytes,)
        if key not in seen:
            seen[key] = len(unique)
            unique.append(v)
        where.append(seen[key])
    return unique, where


_FLAGS = {"?": number_types.BoolFlags, "b": number_types.Int8Flags, "B": number_types.Uint8Flags,
          "h": number_types.Int16Flags, "H": number_types.Uint16Flags, "i": number_types.Int32Flags,
          "I": number_types.Uint32Flags, "q": number_types.Int64Flags, "Q": number_types.Uint64Flags,
          "f": number_types.Float32Flags, "d": number_types.Float64Flags}


def _size_of(f: schema.Field) -> int:
    return struct.calcsize(f.scalar) if f.scalar and not f.element else 4


class _Writer:
    """Builds one flatbuffer. Children are written before their parents, as flatbuffers requires."""

    def __init__(self, size_hint: int):
        self.b = flatbuffers.Builder(min(size_hint, flatbuffers.Builder.MAX_BUFFER_SIZE))

    def string(self, text: str | None) -> int | None:
        # Written once per content: the tensors an op expands into share its name, signatures repeat tensor names.
        return self.b.CreateSharedString(text) if text else None

    def vector(self, values, kind: str) -> int:
        return self.b.CreateNumpyVector(np.asarray(values, np.dtype("<" + kind)).reshape(-1))

    def data(self, view: np.ndarray, align: int = BUFFER_ALIGN) -> int:
        """A [ubyte] vector placed with one slice copy, its first byte aligned to `align`."""
        b, n = self.b, view.nbytes
        b.StartVector(1, n, align)
        b.head = b.Head() - n
        b.Bytes[b.head:b.head + n] = memoryview(view)
        return b.EndVector()

    def tables(self, offsets: list[int]) -> int:
        self.b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            self.b.PrependUOffsetTRelative(off)
        return self.b.EndVector()

    def table(self, spec: schema.Table, values: dict) -> int:
        """A table from field name -> scalar (enum names allowed) or offset of an already written child."""
        b = self.b
        b.StartObject(spec.size)
        # Widest fields first, so little padding goes between them.
        present = [(spec[name], v) for name, v in values.items() if v is not None]
        for f, value in sorted(present, key=lambda item: -_size_of(item[0])):
            if f.scalar and not f.element:
                enum = f.enum
                code, default = (enum.code_of(value), enum.code_of(f.default)) if enum else (value, f.default)
                b.PrependSlot(_FLAGS[f.scalar], f.slot, code, default)
            else:
                b.PrependUOffsetTRelativeSlot(f.slot, value, 0)
        return b.EndObject()

    def options(self, opts: Options) -> int:
        values = {}
        for f in opts.TABLE.fields:
            value = getattr(opts, f.name)
            if f.type == "string":
                value = self.string(value)
            elif f.type == "[ubyte]":
                value = self.data(np.frombuffer(value, np.uint8), 4) if value else None
            elif f.element:
                codes = [f.enum.code_of(v) for v in value] if f.enum else value
                value = self.vector(codes, f.scalar) if value else None
            values[f.name] = value
        return self.table(opts.TABLE, values)

    def quantization(self, q: Quantization) -> int:
        details, kind = None, 0
        if q.custom is not None:
            data = self.data(np.frombuffer(q.custom, np.uint8))
            details, kind = self.table(schema.CUSTOM_QUANTIZATION, {"custom": data}), schema.DETAILS_CUSTOM
        elif q.blockwise is not None:
            scales, zero_points, size = q.blockwise
            details = self.table(schema.BLOCKWISE_QUANTIZATION,
                                 {"scales": scales, "zero_points": zero_points, "block_size": size})
            kind = schema.DETAILS_BLOCKWISE
        return self.table(schema.QUANTIZATION, {
            "min": self.vector(q.min, "f") if q.min else None,
            "max": self.vector(q.max, "f") if q.max else None,
            "scale": self.vector(q.scale, "f") if q.scale else None,
            "zero_point": self.vector(q.zero_point, "q") if q.zero_point else None,
            "details_type": kind, "details": details,
            "quantized_dimension": q.quantized_dimension,
        })

    def tensor(self, t: Tensor, buffer: int) -> int:
        return self.table(schema.TENSOR, {
            "shape": self.vector(t.shape, "i"),
            "shape_signature": None if t.shape_signature is None else self.vector(t.shape_signature, "i"),
            "name": self.string(t.name),
            "quantization": self.quantization(t.quantization) if t.quantization else None,
            "type": t.type, "buffer": buffer, "is_variable": t.is_variable, "has_rank": t.has_rank,
        })

    def operator(self, op: Operator) -> int:
        values = {
            "opcode_index": op.opcode_index,
            "inputs": self.vector(op.inputs, "i"), "outputs": self.vector(op.outputs, "i"),
            "intermediates": self.vector(op.intermediates, "i") if op.intermediates else None,
            "mutating_variable_inputs": (self.vector(op.mutating_variable_inputs, "?")
                                         if op.mutating_variable_inputs else None),
        }
        if op.custom_options is not None:
            values["custom_options"] = self.data(np.frombuffer(op.custom_options, np.uint8), 4)
        if op.builtin_options is not None:
            union, code = schema.UNION_OF[op.builtin_options.TABLE.name]
            values[union + "_type"] = code
            values[union] = self.options(op.builtin_options)
        return self.table(schema.OPERATOR, values)

    def operator_code(self, oc: OperatorCode) -> int:
        code = schema.BUILTIN_OPERATOR.code_of(oc.builtin_code)
        return self.table(schema.OPERATOR_CODE, {
            "custom_code": None if oc.custom_code is None else self.b.CreateString(oc.custom_code),
            # Readers older than the int32 field read the byte; it saturates at the placeholder code.
            "deprecated_builtin_code": min(code, schema.DEPRECATED_CODE_LIMIT),
            "builtin_code": code, "version": oc.version,
        })

    def subgraph(self, sg: SubGraph, buffer_of: list[int]) -> int:
        tensors = [self.tensor(t, buffer_of[t.buffer]) for t in sg.tensors]
        operators = [self.operator(op) for op in sg.operators]
        return self.table(schema.SUBGRAPH, {
            "tensors": self.tables(tensors), "operators": self.tables(operators),
            "inputs": self.vector(sg.inputs, "i"), "outputs": self.vector(sg.outputs, "i"),
            "name": self.string(sg.name),
        })

    def signature(self, sig: SignatureDef) -> int:
        def tensor_maps(names: dict[str, int]) -> int:
            return self.tables([self.table(schema.TENSOR_MAP, {"name": self.b.CreateSharedString(name), "tensor_index": i})
                                for name, i in names.items()])

        return self.table(schema.SIGNATURE_DEF, {
            "inputs": tensor_maps(sig.inputs), "outputs": tensor_maps(sig.outputs),
            "signature_key": self.string(sig.signature_key), "subgraph_index": sig.subgraph_index,
        })

    def model(self, model: TFLModel, plan: _Plan, offsets: list[int] | None) -> bytes:
        """The flatbuffer; with `offsets`, buffers 1.. of the plan are only located (they follow the file)."""
        buffers = [self.table(schema.BUFFER, {})]
        for i, view in enumerate(plan.unique[1:], 1):
            if offsets is not None and i < plan.first_metadata:
                buffers.append(self.table(schema.BUFFER, {"offset": offsets[i], "size": view.nbytes}))
            else:
                buffers.append(self.table(schema.BUFFER, {"data": self.data(view)}))
        codes = [self.operator_code(oc) for oc in model.operator_codes]
        subgraphs = [self.subgraph(sg, plan.buffer_of) for sg in model.subgraphs]
        signatures = [self.signature(sig) for sig in model.signature_defs]
        metadata = [self.table(schema.METADATA, {"name": self.b.CreateString(name), "buffer": i})
                    for name, i in plan.metadata.items()]
        root = self.table(schema.MODEL, {
            "version": model.version, "description": self.string(model.description),
            "operator_codes": self.tables(codes), "subgraphs": self.tables(subgraphs),
            "buffers": self.tables(buffers), "metadata": self.tables(metadata) if metadata else None,
            "signature_defs": self.tables(signatures) if signatures else None,
        })
        self.b.Finish(root, file_identifier=schema.FILE_IDENTIFIER)
        return bytes(memoryview(self.b.Bytes)[self.b.Head():])


@dataclass
class _Plan:
    """Where each buffer goes in the file: model buffer i -> file buffer buffer_of[i]."""

    unique: list[np.ndarray]  # file buffers: sentinel, tensor data, then metadata
    buffer_of: list[int]
    first_metadata: int
    metadata: dict[str, int]  # metadata name -> file buffer

    @classmethod
    def of(cls, model: TFLModel) -> _Plan:
        unique, buffer_of = _dedup([b.view() for b in model.buffers])
        first = len(unique)
        metadata = {}
        for name, data in model.metadata.items():
            metadata[name] = len(unique)
            unique.append(np.frombuffer(data, np.uint8))
        return cls(unique, buffer_of, first, metadata)

    @property
    def data_bytes(self) -> int:
        return sum(v.nbytes + BUFFER_ALIGN for v in self.unique)


def _align(n: int, to: int = BUFFER_ALIGN) -> int:
    return -(-n // to) * to


def write_model(model: TFLModel) -> bytes:
    """The .tflite bytes of `model`. Data beyond ``FLATBUFFER_LIMIT`` is stored after the flatbuffer."""
    problems = validate.problems(model)
    if problems:
        raise TargetError(f"cannot write an invalid TFLite model: {validate.summary(problems)}")
    plan = _Plan.of(model)
    tables = 4096 + 512 * sum(len(sg.tensors) + len(sg.operators) for sg in model.subgraphs)
    try:
        if plan.data_bytes <= FLATBUFFER_LIMIT:
            return _Writer(plan.data_bytes + tables).model(model, plan, None)
        # Two passes: the layout does not depend on offset values, so the first fixes where the data starts.
        blobs = plan.unique[1:plan.first_metadata]
        size_hint = tables + sum(v.nbytes + BUFFER_ALIGN for v in plan.unique[plan.first_metadata:])
        head = _Writer(size_hint).model(model, plan, [0] + [1] * len(blobs))
        offsets, pos = [0], _align(len(head))
        for view in blobs:
            offsets.append(pos)
            pos = _align(pos + view.nbytes)
        head = _Writer(len(head)).model(model, plan, offsets)
    except flatbuffers.builder.BuilderSizeError:
        raise TargetError(f"the TFLite model is too large: its tensors, operators and metadata exceed the 2 GiB "
                          f"flatbuffer limit ({plan.data_bytes} bytes of buffers)") from None
    parts, end = [head], len(head)
    for view, offset in zip(blobs, offsets[1:]):
        parts += [bytes(offset - end), view]
        end = offset + view.nbytes
    return b"".join(parts)


# ---------------------------------------------------------------------------------------------------------
# Reading

_I32, _U32, _U16X2 = struct.Struct("<i"), struct.Struct("<I"), struct.Struct("<HH")


class _Table(NamedTuple):
    pos: int
    vtable: int
    vtable_size: int
    size: int
    what: str  # for messages: "tensor 3", "operator 5 Conv2DOptions"...


class _Reader:
    """Bounds-checked access to flatbuffer tables. Every failure is an InputError naming the file."""

    def __init__(self, data, source: str):
        self.mem = memoryview(data).cast("B")
        self.size = len(self.mem)
        self.source = source
        # Work allowance in ~4-byte units: a real file stores each table, element and byte once, so it never
        # runs out; a hostile one that points many tables at the same data stops here instead of hanging.
        self.budget = self.size // 2 + 4096

    def fail(self, message: str):
        raise InputError(message, where=self.source)

    def spend(self, units: int, what: str):
        self.budget -= units
        if self.budget < 0:
            self.fail(f"{what}: the file reuses the same bytes far more often than a TFLite model can "
                      "(corrupt flatbuffer)")

    def need(self, pos: int, n: int, what: str):
        if pos < 0 or pos + n > self.size:
            self.fail(f"{what} at byte {pos} lies outside the file ({self.size} bytes): truncated or corrupt")

    def u32(self, pos: int, what: str) -> int:
        self.need(pos, 4, what)
        return _U32.unpack_from(self.mem, pos)[0]

    def table(self, pos: int, what: str) -> _Table:
        self.spend(1, what)
        self.need(pos, 4, what)
        vtable = pos - _I32.unpack_from(self.mem, pos)[0]
        self.need(vtable, 4, what + " vtable")
        vtable_size, size = _U16X2.unpack_from(self.mem, vtable)
        if vtable_size < 4 or vtable_size % 2 or size < 4:
            self.fail(f"{what} has a malformed vtable at byte {vtable}")
        self.need(vtable, vtable_size, what + " vtable")
        self.need(pos, size, what)
        return _Table(pos, vtable, vtable_size, size, what)

    def field(self, t: _Table, f: schema.Field) -> int:
        """The absolute position of a field's value, 0 when absent."""
        at = 4 + 2 * f.slot
        if at >= t.vtable_size:
            return 0
        offset = struct.unpack_from("<H", self.mem, t.vtable + at)[0]
        if offset and offset + _size_of(f) > t.size:
            self.fail(f"{t.what} field {f.name} lies outside its table")
        return t.pos + offset if offset else 0

    def scalar(self, t: _Table, f: schema.Field):
        pos = self.field(t, f)
        if not pos:
            return f.default
        value = struct.unpack_from("<" + f.scalar, self.mem, pos)[0]
        return f.enum.name_of(value) if f.enum else value

    def ref(self, t: _Table, f: schema.Field) -> int:
        """The position a reference field points at, 0 when absent."""
        pos = self.field(t, f)
        return pos + self.u32(pos, f"{t.what} {f.name}") if pos else 0

    def vector(self, t: _Table, f: schema.Field, item_size: int) -> tuple[int, int] | None:
        """(start, length) of a vector field, None when absent."""
        pos = self.ref(t, f)
        if not pos:
            return None
        n = self.u32(pos, f"{t.what} {f.name}")
        if n * item_size > self.size - pos - 4:
            self.fail(f"{t.what} {f.name}: a vector of {n} items at byte {pos} runs past the end of the file "
                      f"({self.size} bytes)")
        return pos + 4, n

    def array(self, t: _Table, f: schema.Field) -> np.ndarray | None:
        """A scalar vector as a zero-copy numpy view."""
        dtype = np.dtype("<" + f.scalar)
        span = self.vector(t, f, dtype.itemsize)
        return None if span is None else np.frombuffer(self.mem, dtype, span[1], span[0])

    def values(self, t: _Table, f: schema.Field) -> list | None:
        a = self.array(t, f)
        if a is None:
            return None
        self.spend(len(a), t.what)
        return a.tolist()

    def blob(self, t: _Table, f: schema.Field) -> bytes | None:
        a = self.array(t, f)
        if a is None:
            return None
        self.spend(len(a) // 4, t.what)
        return a.tobytes()

    def string(self, t: _Table, f: schema.Field) -> str | None:
        span = self.vector(t, f, 1)
        if span is None:
            return None
        start, n = span
        self.spend(n // 4, t.what)
        return str(self.mem[start:start + n], "utf-8", "replace")

    def tables(self, t: _Table, f: schema.Field, name: str) -> list[_Table]:
        span = self.vector(t, f, 4)
        if span is None:
            return []
        start, n = span
        self.spend(n, t.what)
        offsets = np.frombuffer(self.mem, "<u4", n, start).tolist()
        return [self.table(start + 4 * i + off, f"{name} {i}") for i, off in enumerate(offsets)]

    def union(self, t: _Table, name: str, members: list[schema.Table]) -> Options | None:
        code = self.scalar(t, schema.OPERATOR[name + "_type"])
        if code == 0:
            return None
        if code > len(members):
            self.fail(f"{t.what} has {name} of type {code}, which this schema does not know")
        spec = members[code - 1]
        pos = self.ref(t, schema.OPERATOR[name])
        if not pos:
            self.fail(f"{t.what} declares {spec.name} but stores none")
        return self.options(self.table(pos, f"{t.what} {spec.name}"), spec)

    def options(self, t: _Table, spec: schema.Table) -> Options:
        values = {}
        for f in spec.fields:
            if f.type == "string":
                values[f.name] = self.string(t, f) or ""
            elif f.type == "[ubyte]":
                values[f.name] = self.blob(t, f) or b""
            elif f.element:
                values[f.name] = self.values(t, f) or ()
            else:
                values[f.name] = self.scalar(t, f)
        return OPTIONS[spec.name](**values)


def _read_quantization(r: _Reader, t: _Table) -> Quantization | None:
    Q = schema.QUANTIZATION
    custom = blockwise = None
    kind = r.scalar(t, Q["details_type"])
    if kind == schema.DETAILS_CUSTOM and r.ref(t, Q["details"]):
        details = r.table(r.ref(t, Q["details"]), t.what + " details")
        custom = r.blob(details, schema.CUSTOM_QUANTIZATION["custom"]) or b""
    elif kind == schema.DETAILS_BLOCKWISE and r.ref(t, Q["details"]):
        details = r.table(r.ref(t, Q["details"]), t.what + " details")
        B = schema.BLOCKWISE_QUANTIZATION
        blockwise = (r.scalar(details, B["scales"]), r.scalar(details, B["zero_points"]),
                     r.scalar(details, B["block_size"]))
    q = Quantization(scale=r.values(t, Q["scale"]) or [], zero_point=r.values(t, Q["zero_point"]) or [],
                     quantized_dimension=r.scalar(t, Q["quantized_dimension"]),
                     min=r.values(t, Q["min"]) or [], max=r.values(t, Q["max"]) or [], custom=custom,
                     blockwise=blockwise)
    return None if q == Quantization() else q  # TF writes an empty table for unquantized tensors


def _read_tensor(r: _Reader, t: _Table) -> Tensor:
    T = schema.TENSOR
    for name, what in [("sparsity", "is sparse"), ("variant_tensors", "has VARIANT sub-types"),
                       ("external_buffer", "keeps its data in an external file")]:
        if r.field(t, T[name]):
            r.fail(f"{t.what} {what}, which irc does not read")
    quantization = r.ref(t, T["quantization"])
    return Tensor(
        name=r.string(t, T["name"]) or "", shape=r.values(t, T["shape"]) or [], type=r.scalar(t, T["type"]),
        buffer=r.scalar(t, T["buffer"]), shape_signature=r.values(t, T["shape_signature"]),
        quantization=_read_quantization(r, r.table(quantization, t.what + " quantization")) if quantization else None,
        is_variable=r.scalar(t, T["is_variable"]), has_rank=r.scalar(t, T["has_rank"]),
    )


def _read_operator(r: _Reader, t: _Table) -> Operator:
    O = schema.OPERATOR
    first = r.union(t, "builtin_options", schema.BUILTIN_OPTIONS)
    second = r.union(t, "builtin_options_2", schema.BUILTIN_OPTIONS_2)
    if first and second:
        r.fail(f"{t.what} has both builtin_options and builtin_options_2")
    custom = r.blob(t, O["custom_options"])
    offset, size = r.scalar(t, O["large_custom_options_offset"]), r.scalar(t, O["large_custom_options_size"])
    if offset > 1:  # custom options of a >2 GiB model, stored after the flatbuffer
        r.need(offset, size, t.what + " custom options")
        r.spend(size // 4, t.what)
        custom = bytes(r.mem[offset:offset + size])
    return Operator(
        opcode_index=r.scalar(t, O["opcode_index"]), inputs=r.values(t, O["inputs"]) or [],
        outputs=r.values(t, O["outputs"]) or [], builtin_options=first or second, custom_options=custom,
        intermediates=r.values(t, O["intermediates"]) or [],
        mutating_variable_inputs=r.values(t, O["mutating_variable_inputs"]) or [],
    )


def _read_subgraph(r: _Reader, t: _Table) -> SubGraph:
    S = schema.SUBGRAPH
    prefix = t.what + " " if t.what != "subgraph 0" else ""  # messages say "tensor 3" for the main graph
    return SubGraph(
        name=r.string(t, S["name"]) or "",
        tensors=[_read_tensor(r, x) for x in r.tables(t, S["tensors"], prefix + "tensor")],
        inputs=r.values(t, S["inputs"]) or [], outputs=r.values(t, S["outputs"]) or [],
        operators=[_read_operator(r, x) for x in r.tables(t, S["operators"], prefix + "operator")],
    )


def _read_operator_code(r: _Reader, t: _Table) -> OperatorCode:
    C = schema.OPERATOR_CODE
    # As TFLite does: the larger of the two fields, since old writers fill only the byte.
    code = schema.BUILTIN_OPERATOR.code_of(r.scalar(t, C["builtin_code"]))
    code = max(code, r.scalar(t, C["deprecated_builtin_code"]))
    return OperatorCode(code, r.string(t, C["custom_code"]), r.scalar(t, C["version"]))


def _read_signature(r: _Reader, t: _Table) -> SignatureDef:
    D, M = schema.SIGNATURE_DEF, schema.TENSOR_MAP

    def tensor_maps(name: str) -> dict[str, int]:
        maps = r.tables(t, D[name], f"{t.what} {name[:-1]}")
        return {r.string(m, M["name"]) or "": r.scalar(m, M["tensor_index"]) for m in maps}

    return SignatureDef(inputs=tensor_maps("inputs"), outputs=tensor_maps("outputs"),
                        signature_key=r.string(t, D["signature_key"]) or "",
                        subgraph_index=r.scalar(t, D["subgraph_index"]))


def _read_buffer(r: _Reader, t: _Table) -> np.ndarray:
    B = schema.BUFFER
    offset, size = r.scalar(t, B["offset"]), r.scalar(t, B["size"])
    if offset > 1:  # data of a >2 GiB model, stored after the flatbuffer
        r.need(offset, size, t.what + " data")
        r.spend(size // 4, t.what)
        return np.frombuffer(r.mem, np.uint8, size, offset)
    data = r.array(t, B["data"])
    if data is None:
        return np.empty(0, np.uint8)
    r.spend(len(data) // 4, t.what)
    return data


def read_model(data, source: str = "model") -> TFLModel:
    """Parse .tflite bytes (from irc or TF's converter). Buffers are zero-copy views into `data`.

    Raises InputError naming `source` for anything that is not a well-formed TFLite model.
    """
    r = _Reader(data, source)
    if r.size < 8:
        r.fail(f"too short to be a TFLite file ({r.size} bytes)")
    identifier = bytes(r.mem[4:8])
    if identifier != schema.FILE_IDENTIFIER:
        r.fail(f"not a TFLite file: file identifier {identifier!r}, expected {schema.FILE_IDENTIFIER!r}")
    M = schema.MODEL
    root = r.table(r.u32(0, "root offset"), "model")
    raw = [_read_buffer(r, t) for t in r.tables(root, M["buffers"], "buffer")]
    metadata = {}
    for t in r.tables(root, M["metadata"], "metadata"):
        name, index = r.string(t, schema.METADATA["name"]) or "", r.scalar(t, schema.METADATA["buffer"])
        if index >= len(raw):
            r.fail(f"metadata {name!r} refers to buffer {index} but the model has {len(raw)} buffers")
        metadata[name] = index
    model = TFLModel(
        version=r.scalar(root, M["version"]), description=r.string(root, M["description"]) or "",
        operator_codes=[_read_operator_code(r, t) for t in r.tables(root, M["operator_codes"], "operator code")],
        subgraphs=[_read_subgraph(r, t) for t in r.tables(root, M["subgraphs"], "subgraph")],
        buffers=[Buffer(v) for v in raw],
        metadata={name: raw[i].tobytes() for name, i in metadata.items()},
        signature_defs=[_read_signature(r, t) for t in r.tables(root, M["signature_defs"], "signature")],
    )
    validate.check(model, source)
    _canonicalize_buffers(model, set(metadata.values()))
    return model


def _canonicalize_buffers(model: TFLModel, metadata_buffers: set[int]):
    """Drop buffers only metadata uses, fold empty and duplicate buffers, and renumber tensors to match."""
    used = {t.buffer for sg in model.subgraphs for t in sg.tensors}
    keep = [i for i in range(len(model.buffers)) if i == 0 or i in used or i not in metadata_buffers]
    unique, where = _dedup([model.buffers[i].data for i in keep])
    new_index = dict(zip(keep, where))
    for sg in model.subgraphs:
        for t in sg.tensors:
            t.buffer = new_index[t.buffer]
    model.buffers = [Buffer(v) for v in unique]


# ---------------------------------------------------------------------------------------------------------
# Flex ops: custom options are a flexbuffer vector [op name, serialized NodeDef], both as strings.

_FLEX_STRING, _FLEX_VECTOR = 5, 10  # flexbuffer type codes


def _width(n: int) -> int:
    """The narrowest flexbuffer width (1, 2, 4 or 8 bytes) holding unsigned `n`."""
    return next(w for w in (1, 2, 4, 8) if n < 1 << (8 * w))


def _log2(width: int) -> int:
    return width.bit_length() - 1


def flex_options(op_name: str, node_def: bytes) -> bytes:
    """The custom_options of a Flex op (custom_code ``FLEX_PREFIX + op_name``)."""
    out, strings = bytearray(), []
    for s in (op_name.encode(), bytes(node_def)):
        w = _width(len(s))
        out += bytes(-len(out) % w) + len(s).to_bytes(w, "little")
        strings.append((len(out), w))
        out += s + b"\0"
    # The vector's slots hold offsets back to the strings: use the narrowest width that fits them all.
    for w in (1, 2, 4, 8):
        first = _align(len(out), w) + w
        if all(first + i * w - pos < 1 << (8 * w) for i, (pos, _) in enumerate(strings)):
            break
    out += bytes(first - w - len(out)) + len(strings).to_bytes(w, "little")
    for i, (pos, _) in enumerate(strings):
        out += (first + i * w - pos).to_bytes(w, "little")
    out += bytes((_FLEX_STRING << 2) | _log2(sw) for _, sw in strings)
    # The root: an offset back to the vector, its packed type, and the root's own width.
    for rw in (1, 2, 4, 8):
        root = _align(len(out), rw)
        if root - first < 1 << (8 * rw):
            break
    out += bytes(root - len(out)) + (root - first).to_bytes(rw, "little")
    out += bytes([(_FLEX_VECTOR << 2) | _log2(w), rw])
    return bytes(out)


def parse_flex_options(data: bytes, source: str = "custom options") -> tuple[str, bytes]:
    """The (op name, serialized NodeDef) of a Flex op's custom options; InputError when malformed."""
    buf = bytes(data)

    def fail(problem: str):
        raise InputError(f"malformed Flex custom options: {problem}", where=source)

    def uint(pos: int, w: int) -> int:
        if pos < 0 or pos + w > len(buf):
            fail("an offset points outside the flexbuffer")
        return int.from_bytes(buf[pos:pos + w], "little")

    rw = uint(len(buf) - 1, 1)
    root_type = uint(len(buf) - 2, 1)
    if root_type >> 2 != _FLEX_VECTOR or rw not in (1, 2, 4, 8):
        fail("the root is not a flexbuffer vector")
    root, w = len(buf) - 2 - rw, 1 << (root_type & 3)
    first = root - uint(root, rw)
    if uint(first - w, w) != 2:
        fail("expected a vector of two strings")
    parts = []
    for i in range(2):
        item_type = uint(first + 2 * w + i, 1)
        if item_type >> 2 != _FLEX_STRING:
            fail(f"item {i} is not a string")
        pos = first + i * w - uint(first + i * w, w)
        size = uint(pos - (1 << (item_type & 3)), 1 << (item_type & 3))
        if pos + size > len(buf):
            fail(f"item {i} runs past the end")
        parts.append(buf[pos:pos + size])
    return parts[0].decode("utf-8", "replace"), parts[1]
