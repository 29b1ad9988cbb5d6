"""The rank and broadcast limits of TFLite's kernels, and the rewrite that keeps every operator inside them.

TFLite's kernels check some limits in ``Prepare`` (``TF_LITE_ENSURE_MSG(... NumDimensions(input) <= 5 ...)``: the
interpreter reports an error), but others only in the broadcast helpers they call at ``Eval``: a comparison whose
inputs differ in shape goes to ``BroadcastComparison4DSlow``, whose ``NdArrayDescsForElementwiseBroadcast<4>``
aborts the whole process (SIGABRT) on a 5-D shape. A converter must never write such a file, so every operator
irc writes passes through ``fit`` (called by ``ModelBuilder.op``):

- an elementwise operator whose inputs broadcast over more dimensions than its kernel takes is rewritten: adjacent
  dimensions that broadcast the same way (the same inputs are 1 there) are merged by a RESHAPE of each input, the
  operator runs on the merged shapes, and a RESHAPE restores the result's shape. ``[1,1,1,8,8] > []`` becomes
  ``[64] > [1]``. Where more than one merged dim is known only at run time (Gemma's ``[batch,1,1,seq,seq] > []``
  with an open sequence), the shapes are read at run time: SHAPE of the operands, a GATHER of their dims (times
  a group's static dims) for each merged operand and for the result. An unknown dim is taken as not broadcast,
  as irc's types state (a symbol is never a broadcast 1);
- an operator whose operands still exceed its kernel's rank is refused with a one-line TargetError naming the node
  and its Keras layer, at conversion.

``LIMITS`` has one entry per builtin irc writes (tests/test_tflite_kernel_limits.py checks that the table covers
every code the emitters use); ``None`` means no limit. The numbers are what the kernels in
tensorflow/lite/kernels/ state (file named in ``source``) and, for the operators the XNNPACK delegate takes (on by
default in TFLite's CPU interpreter), its own 6-dim limit; all were checked against TF 2.21's
``tf.lite.Interpreter`` with 6-, 7- and 8-D operands (the "no limit" entries ran at 7 and 8 dims); REVERSE_V2,
GATHER_ND and SCATTER_ND at 4 to 10 dims, the 3-D convolutions at 4 to 6 and UNIDIRECTIONAL_SEQUENCE_LSTM at 2 to 4,
each file in a child process (every over-limit case failed to prepare; none aborted).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from irc.errors import TargetError

if TYPE_CHECKING:
    from irc.backends.tflite.backend import ModelBuilder


class Limit(NamedTuple):
    rank: int | None  # the most dimensions any operand may have; None: no limit
    broadcast: int | None  # the most dimensions of a broadcast (operands of different shapes); None: none broadcast
    source: str  # where TFLite states it
    exact: bool = False  # the kernel takes exactly ``rank`` dimensions (convolutions, pools, resize)


def _elementwise(broadcast: int, source: str) -> Limit:
    return Limit(None, broadcast, source)


_FREE = Limit(None, None, "no rank check; the kernel works on the flat buffer or any rank")
_NHWC = Limit(4, None, "TF_LITE_ENSURE_EQ(NumDimensions(input), 4)", exact=True)

LIMITS: dict[str, Limit] = {
    # broadcasting elementwise kernels: the template size of their slow broadcast path
    "ADD": _elementwise(6, "add.cc: BroadcastAdd6DSlow"),
    "SUB": _elementwise(6, "sub.cc: BroadcastSubSlow (6-D NdArrayDesc)"),
    "MUL": _elementwise(6, "mul.cc: BroadcastMul6DSlow"),
    "DIV": _elementwise(6, "div.cc: BroadcastDivSlow<6>"),
    "MAXIMUM": _elementwise(6, "maximum_minimum.cc: MaximumMinimumBroadcastSlow (6-D)"),
    "MINIMUM": _elementwise(6, "maximum_minimum.cc: MaximumMinimumBroadcastSlow (6-D)"),
    "SQUARED_DIFFERENCE": _elementwise(6, "squared_difference.cc: BroadcastBinaryFunction6DSlow"),
    "POW": _elementwise(4, "pow.cc: BroadcastPow4DSlow"),
    "FLOOR_DIV": _elementwise(4, "floor_div.cc: BroadcastBinaryFunction4DSlow"),
    "FLOOR_MOD": _elementwise(4, "floor_mod.cc: BroadcastBinaryFunction4DSlow"),
    "EQUAL": _elementwise(4, "comparisons.cc: BroadcastComparison4DSlowImpl (NdArrayDescsForElementwiseBroadcast<4>)"),
    "NOT_EQUAL": _elementwise(4, "comparisons.cc: BroadcastComparison4DSlowImpl"),
    "LESS": _elementwise(4, "comparisons.cc: BroadcastComparison4DSlowImpl"),
    "LESS_EQUAL": _elementwise(4, "comparisons.cc: BroadcastComparison4DSlowImpl"),
    "GREATER": _elementwise(4, "comparisons.cc: BroadcastComparison4DSlowImpl"),
    "GREATER_EQUAL": _elementwise(4, "comparisons.cc: BroadcastComparison4DSlowImpl"),
    "LOGICAL_AND": _elementwise(4, "logical.cc: BroadcastBinaryFunction4DSlow"),
    "LOGICAL_OR": _elementwise(4, "logical.cc: BroadcastBinaryFunction4DSlow"),
    "SELECT_V2": _elementwise(5, "select.cc: BroadcastSelect5DSlow"),
    # kernels with a rank check in Prepare
    "TRANSPOSE": Limit(6, None, 'transpose.cc: "Transpose op only supports 1D-6D input arrays."'),
    "STRIDED_SLICE": Limit(5, None, 'strided_slice.cc: "StridedSlice op only supports 1D-5D input arrays."'),
    "SLICE": Limit(5, None, 'slice.cc: "Slice op only supports 1D-5D input arrays." (kMaxDim = 5)'),
    "PAD": Limit(5, None, "pad.cc: dims <= PadKernelMaxDimensionCount() (5)"),
    "PADV2": Limit(5, None, "pad.cc: dims <= PadKernelMaxDimensionCount() (5)"),
    "BATCH_MATMUL": Limit(5, None, "batch_matmul.cc: lhs and rhs rank <= 5"),
    "BROADCAST_TO": Limit(8, None, "broadcast_to.cc: kMaxDims = 8"),
    "SQUEEZE": Limit(8, None, "squeeze.cc: kMaxSqueezeDims = 8"),
    # XNNPACK (the delegate TFLite's CPU interpreter applies by default) fails "to prepare" an operator it claims
    # whose operands have more than XNN_MAX_TENSOR_DIMS = 6 dims (probed with TF 2.21: 6-D runs, 7-D fails)
    **dict.fromkeys(["CONCATENATION", "SPLIT", "SPLIT_V", "SOFTMAX", "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"],
                    Limit(6, None, "XNNPACK delegate: XNN_MAX_TENSOR_DIMS = 6")),
    "DYNAMIC_UPDATE_SLICE": Limit(8, None, "dynamic_update_slice.cc: rank <= 8"),
    # no rank check in Prepare (10-D ran); an index's last dim must not exceed the operand's rank (their emitters)
    **dict.fromkeys(["GATHER_ND", "SCATTER_ND"], Limit(None, None, "gather_nd.cc, scatter_nd.cc: no rank limit")),
    **dict.fromkeys(["CONV_3D", "CONV_3D_TRANSPOSE"],
                    Limit(5, None, "conv3d.cc, conv3d_transpose.cc: input->dims->size == 5", exact=True)),
    # past 8 dims the reverse emitter (ops_rnn.py) merges the axes around each reversed run
    "REVERSE_V2": Limit(8, None, "reverse.cc: NumDimensions(input) <= 8"),
    # the kernel checks rank > 1 only, but reads dims 0-2 as batch, time and features: only 3-D is read right
    "UNIDIRECTIONAL_SEQUENCE_LSTM": Limit(3, None, "unidirectional_sequence_lstm.cc: input dims 0-2 (3-D)",
                                          exact=True),
    "CONV_2D": _NHWC, "DEPTHWISE_CONV_2D": _NHWC, "TRANSPOSE_CONV": _NHWC, "MAX_POOL_2D": _NHWC,
    "AVERAGE_POOL_2D": _NHWC, "RESIZE_BILINEAR": _NHWC, "RESIZE_NEAREST_NEIGHBOR": _NHWC,
    # no limit: unary elementwise kernels, shape ops, reductions, gathers, casts
    **dict.fromkeys([
        "NEG", "ABS", "SQRT", "RSQRT", "EXP", "LOG", "SQUARE", "SIN", "COS", "FLOOR", "CEIL", "ROUND", "SIGN",
        "LOGICAL_NOT", "RELU", "RELU6", "RELU_N1_TO_1", "LOGISTIC", "TANH", "HARD_SWISH", "ELU", "LEAKY_RELU",
        "GELU", "LOG_SOFTMAX", "CAST", "DEQUANTIZE", "QUANTIZE", "FULLY_CONNECTED", "RESHAPE",
        "EXPAND_DIMS", "SHAPE", "PACK", "UNPACK", "GATHER", "TILE", "ONE_HOT",
        "ARG_MAX", "REDUCE_PROD", "MIRROR_PAD", "CUSTOM", "CUMSUM", "TOPK_V2", "FILL", "FAKE_QUANT",
        "RFFT2D", "REAL", "IMAG", "COMPLEX_ABS", "IF", "WHILE",
    ], _FREE),
}


class Fitted(NamedTuple):
    inputs: list[int]
    outputs: list[int]
    restore: list[tuple[int, int, int]]  # (merged result, original output, its shape vector): a RESHAPE after


def fit(b: ModelBuilder, code: str, inputs: list[int], outputs: list[int]) -> Fitted:
    """``code``'s operands made to fit its kernel's limits (RESHAPEs appended to ``b``), or a TargetError."""
    unchanged = Fitted(inputs, outputs, [])
    limit = LIMITS.get(code)
    if limit is None:  # a builtin not in the table yet: tests/test_tflite_kernel_limits.py fails until it is
        return unchanged
    shapes = [_dims(b, i) for i in inputs if i >= 0]
    if limit.broadcast is not None and len({tuple(s) for s in shapes}) > 1:
        rank = max(len(s) for s in shapes)
        if rank <= limit.broadcast:
            return unchanged
        return _merged(b, code, limit, inputs, outputs)
    if limit.rank is not None:
        for i in inputs[:1] if limit.exact else inputs:
            if i >= 0 and len(_dims(b, i)) > limit.rank:
                _refuse(b, f"TFLite's {code} takes at most {limit.rank} dimensions, this one has "
                           f"{len(_dims(b, i))}")
    return unchanged


def _dims(b: ModelBuilder, index: int) -> list[int]:
    t = b.tensors[index]
    return list(t.shape_signature or t.shape)


def _refuse(b: ModelBuilder, why: str) -> None:
    node = b.node
    where = None
    if node is not None:
        where = f"{node.op} at {b.name_of(node)}"
        if node.loc.layers:
            where += f" (layer {', '.join(node.loc.layers)})"
    raise TargetError(f"{why}, and irc cannot rewrite it to fit", where=where)


def merge_groups(shapes: list[list[int]], out: list[int]) -> list[list[int]]:
    """Adjacent dimensions of a broadcast that can be merged: each group's dims broadcast the same way.

    ``shapes`` are the operands' dims aligned to ``out`` (left-padded with 1). A dim's pattern is which operands
    are 1 there (and so are broadcast); a dim where the result is 1 joins any group.
    """
    groups: list[list[int]] = []
    patterns: list[tuple | None] = []
    for axis, size in enumerate(out):
        here = None if size == 1 else tuple(s[axis] == 1 for s in shapes)
        if groups and (here is None or patterns[-1] is None or here == patterns[-1]):
            groups[-1].append(axis)
            patterns[-1] = patterns[-1] or here
        else:
            groups.append([axis])
            patterns.append(here)
    return groups


def _merged(b: ModelBuilder, code: str, limit: Limit, inputs: list[int], outputs: list[int]) -> Fitted:
    out_dims = _dims(b, outputs[0])
    if not b.tensors[outputs[0]].has_rank:
        _refuse(b, f"TFLite's {code} broadcasts over at most {limit.broadcast} dimensions, and this one's rank "
                   "is unknown")
    rank = len(out_dims)
    aligned = {i: [1] * (rank - len(_dims(b, i))) + _dims(b, i) for i in inputs if i >= 0}
    groups = merge_groups(list(aligned.values()), out_dims)
    if sum(d < 0 for d in out_dims) > 1 and not _unknowns_agree(b, aligned):
        _refuse(b, f"TFLite's {code} broadcasts over at most {limit.broadcast} dimensions, and irc cannot tell "
                   "which of this one's unknown dimensions are broadcast")
    if len(groups) > limit.broadcast:
        _refuse(b, f"TFLite's {code} broadcasts over at most {limit.broadcast} dimensions, this one needs "
                   f"{len(groups)} after merging")
    new_inputs = [i if i < 0 else _reshaped(b, i, aligned[i], groups, code, limit)
                  for i in inputs]
    merged_out = [-1 if any(out_dims[a] < 0 for a in g) else math.prod(out_dims[a] for a in g) for g in groups]
    shape = _out_shape(b, out_dims, aligned)
    new_outputs = []
    restore = []
    for o in outputs:
        temp = _retyped(b, o, merged_out, "fit")
        new_outputs.append(temp)
        restore.append((temp, o, shape))
    return Fitted(new_inputs, new_outputs, restore)


def _unknowns_agree(b: ModelBuilder, aligned: dict[int, list[int]]) -> bool:
    """Whether no unknown dim can be a broadcast 1: where an operand's dim is unknown and another's is not 1,
    irc's types (of the node being written) give both the same symbol. irc's broadcast takes a symbol against a
    size or another symbol to be either, so only the same symbol shows that two dims agree."""
    from irc.ir import SymDim

    node = b.node
    types = {}
    if node is not None:
        for v in node.operands:
            index = b.written(v)
            if index in aligned and v.type.shape is not None and len(v.type.shape) == len(_dims(b, index)):
                types[index] = (1,) * (len(aligned[index]) - len(v.type.shape)) + tuple(v.type.shape)
    for axis in range(len(next(iter(aligned.values())))):
        sizes = {i: dims[axis] for i, dims in aligned.items() if dims[axis] != 1}
        if len(sizes) < 2 or all(d >= 0 for d in sizes.values()):
            continue
        if any(i not in types for i in sizes):
            return False
        symbols = {types[i][axis] for i in sizes}
        if len(symbols) != 1 or not isinstance(next(iter(symbols)), SymDim):
            return False
    return True


# A dim of a run-time shape vector: a constant, or (tensor, its axis, a constant factor)
Piece = int | tuple[int, int, int]


def _group_pieces(b: ModelBuilder, index: int, aligned: list[int], groups: list[list[int]]) -> list[Piece] | None:
    """Each group's size for operand ``index``: a constant, or its one unknown dim times the group's static
    dims; None when a group holds more than one unknown dim."""
    offset = len(aligned) - len(_dims(b, index))
    pieces: list[Piece] = []
    for g in groups:
        unknown = [a for a in g if aligned[a] < 0]
        static = math.prod(aligned[a] for a in g if aligned[a] >= 0)
        if len(unknown) > 1:
            return None
        pieces.append((index, unknown[0] - offset, static) if unknown else static)
    return pieces


def _reshaped(b: ModelBuilder, index: int, aligned: list[int], groups: list[list[int]], code: str,
              limit: Limit) -> int:
    """Operand ``index`` reshaped to its merged dims: a constant shape when at most one group is unknown, else
    a shape read at run time (unknown dims are never the broadcast ones: irc's types say which dims are 1)."""
    merged = [-1 if any(aligned[a] < 0 for a in g) else math.prod(aligned[a] for a in g) for g in groups]
    if sum(d < 0 for d in merged) <= 1:
        shape = b.int_vector(np.asarray(merged))
    else:
        pieces = _group_pieces(b, index, aligned, groups)
        if pieces is None:
            _refuse(b, f"TFLite's {code} broadcasts over at most {limit.broadcast} dimensions, and this one's "
                       "unknown dimensions cannot be merged")
        shape = _run_time_shape(b, pieces)
    out = _retyped(b, index, merged, "fit")
    b.op("RESHAPE", [index, shape], [out])
    return out


def _out_shape(b: ModelBuilder, out_dims: list[int], aligned: dict[int, list[int]]) -> int:
    """The broadcast result's shape vector: a constant, or each unknown dim read from an operand that has it."""
    if sum(d < 0 for d in out_dims) <= 1:
        return b.int_vector(np.asarray(out_dims))
    pieces: list[Piece] = []
    for axis, size in enumerate(out_dims):
        if size >= 0:
            pieces.append(size)
            continue
        index = next(i for i, dims in aligned.items() if dims[axis] < 0)
        pieces.append((index, axis - (len(out_dims) - len(_dims(b, index))), 1))
    return _run_time_shape(b, pieces)


def _run_time_shape(b: ModelBuilder, pieces: list[Piece]) -> int:
    """An int32 vector computed at run time: SHAPE of the tensors ``pieces`` read, the constants after them,
    GATHERed into order and multiplied by the pieces' factors."""
    from irc.ir import DType, TensorType

    def vector(n: int, suffix: str) -> int:
        return b.temp(TensorType(DType.i32, (n,)), suffix)

    sources = list(dict.fromkeys(p[0] for p in pieces if isinstance(p, tuple)))
    if (len(sources) == 1 and len(pieces) == len(_dims(b, sources[0]))
            and pieces == [(sources[0], axis, 1) if d < 0 else d for axis, d in enumerate(_dims(b, sources[0]))]):
        shape = vector(len(pieces), "fit_shape")  # exactly one operand's shape
        b.op("SHAPE", [sources[0]], [shape], {"out_type": "INT32"})
        return shape
    parts, start, indices = [], {}, []
    for source in sources:
        start[source] = sum(len(_dims(b, s)) for s in sources[:sources.index(source)])
        shape = vector(len(_dims(b, source)), "fit_shape")
        b.op("SHAPE", [source], [shape], {"out_type": "INT32"})
        parts.append(shape)
    constants = [p for p in pieces if isinstance(p, int)]
    table_size = sum(len(_dims(b, s)) for s in sources)
    for p in pieces:
        if isinstance(p, tuple):
            indices.append(start[p[0]] + p[1])
        else:
            indices.append(table_size + len([q for q in indices if q >= table_size]))
    if constants:
        parts.append(b.int_vector(np.asarray(constants)))
    table = parts[0]
    if len(parts) > 1:
        table = vector(table_size + len(constants), "fit_dims")
        b.op("CONCATENATION", parts, [table], {"axis": 0})
    shape = vector(len(pieces), "fit_shape")
    b.op("GATHER", [table, b.int_vector(np.asarray(indices))], [shape], {"axis": 0, "batch_dims": 0})
    factors = [p[2] if isinstance(p, tuple) else 1 for p in pieces]
    if any(f != 1 for f in factors):
        scaled = vector(len(pieces), "fit_shape")
        b.op("MUL", [shape, b.int_vector(np.asarray(factors))], [scaled])
        shape = scaled
    return shape


def _retyped(b: ModelBuilder, index: int, dims: list[int], suffix: str) -> int:
    """A new tensor like ``index`` with dims ``dims`` (-1: unknown)."""
    temp = b.like(index, suffix)
    t = b.tensors[temp]
    t.shape = [d if d >= 0 else 1 for d in dims]
    t.shape_signature = list(dims) if any(d < 0 for d in dims) else None
    t.has_rank = True
    return temp


def restore(b: ModelBuilder, fitted: Fitted) -> None:
    """The RESHAPEs that give a merged operator's results their original shapes."""
    for merged, original, shape in fitted.restore:
        b.op("RESHAPE", [merged, shape], [original])
