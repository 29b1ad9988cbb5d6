"""TFLite emitters for the indexing ops: cumsum, roll, dynamic slices, top_k, gather_nd and the scatters.

Builtins where TFLite has one (CUMSUM, DYNAMIC_UPDATE_SLICE, TOPK_V2, GATHER_ND, SCATTER_ND); the others are written
as TensorFlow's converter writes them, from builtins:

- ``roll``: per rolled axis, two SLICEs and a CONCATENATION (a GATHER of the rotated positions above rank 5, where
  SLICE stops);
- ``dynamic_slice``: the offsets clamped with MAXIMUM and MINIMUM (XLA's rule), then a SLICE at them (above rank 5,
  one GATHER per sliced dim);
- ``tensor_scatter_add``: ADD of the tensor and a SCATTER_ND of the updates;
- ``tensor_scatter_update``: a SCATTER_ND of the updates and one of ones (how many updates land on each element),
  then SELECT_V2 of their quotient where that count is non-zero, of the tensor elsewhere. Repeated indices give the
  mean of their updates (integers: the sum); TensorFlow leaves their order undefined, and its CPU kernel keeps
  the last.

Every builtin here takes equal shapes (no broadcast), and each check refuses a rank beyond the kernel's limit
(``RANK_LIMITS``).
"""

from __future__ import annotations

import numpy as np

from irc.backends.tflite.kernel_limits import LIMITS
from irc.backends.tflite.ops import emits, needs_rank
from irc.backends.tflite.ops_array import copy
from irc.formats.tflite.opnames import INDEXING
from irc.ir.graph import Node, Value
from irc.ir.types import DType, TensorType
from irc.ops.indexing import Roll

# The highest operand rank each TFLite kernel takes, from the table of every kernel's limits (kernel_limits.py).
RANK_LIMITS = {code: LIMITS[code].rank for code in ("SLICE", "DYNAMIC_UPDATE_SLICE")}
# The dtypes each kernel computes in.
_DTYPES = {
    "CUMSUM": (DType.f32, DType.i32, DType.i64),
    "TOPK_V2": (DType.f32, DType.u8, DType.i8, DType.i32, DType.i64),
    "GATHER_ND": (DType.f32, DType.f16, DType.bf16, DType.u8, DType.i8, DType.i16, DType.i32, DType.i64, DType.bool,
                  DType.str),
    "SCATTER_ND": (DType.f32, DType.u8, DType.i8, DType.i32, DType.i64),
    "DYNAMIC_UPDATE_SLICE": (DType.f32, DType.f16, DType.bf16, DType.u8, DType.i8, DType.i16, DType.i32, DType.i64,
                             DType.bool),
    "SLICE": (DType.f32, DType.u8, DType.i8, DType.i16, DType.i32, DType.i64, DType.bool, DType.str),
}


def _dtype_check(code: str, value_index: int = 0):
    def check(node: Node) -> str | None:
        dtype = node.operands[value_index].type.dtype
        if dtype not in _DTYPES[code]:
            return f"TFLite's {code} has no {dtype.value} kernel"
        return None

    return check


def _rank_check(code: str, value_index: int = 0):
    def check(node: Node) -> str | None:
        rank = node.operands[value_index].type.rank
        if rank is None:
            return f"operand {value_index} has unknown rank, which TFLite's {code} needs"
        if code in RANK_LIMITS and rank > RANK_LIMITS[code]:
            return f"TFLite's {code} takes rank {RANK_LIMITS[code]} at most, and operand {value_index} has rank {rank}"
        return None

    return check


def _all(*checks):
    def check(node: Node) -> str | None:
        return next((why for c in checks if (why := c(node)) is not None), None)

    return check


def _no_quant(node: Node) -> str | None:
    if any(v.type.quant for v in (*node.operands, *node.results)):
        return f"irc writes {node.op} for float and integer tensors, not quantized ones"
    return None


def _shape_vector(b, v: Value, dtype=DType.i32) -> int:
    """``v``'s shape as an int tensor: a constant where it is known, else a SHAPE operator."""
    shape = v.type.shape
    if all(isinstance(d, int) for d in shape):
        return b.int_vector(shape, dtype.numpy)
    out = b.temp(TensorType(dtype, (len(shape),)), "shape")
    b.op("SHAPE", [b.tensor(v)], [out], {"out_type": "INT64" if dtype is DType.i64 else "INT32"})
    return out


def _index_i32(b, v: Value) -> int:
    """An index operand as int32 (SCATTER_ND takes no other)."""
    if v.type.dtype is DType.i32:
        return b.tensor(v)
    if v.is_constant and (v.constant.size == 0 or np.abs(v.constant).max() < 2**31):
        return b.constant(v.constant.astype(np.int32))
    out = b.temp(v.type.with_dtype(DType.i32), "indices_i32")
    b.op("CAST", [b.tensor(v)], [out], {"in_data_type": "INT64", "out_data_type": "INT32"})
    return out


# ----- cumsum, roll ------------------------------------------------------------------------------------------------
@emits("cumsum", check=_all(_rank_check("CUMSUM"), _dtype_check("CUMSUM"), _no_quant))
def cumsum(b, node):
    b.op(INDEXING["cumsum"], [b.tensor(node.operands[0]), b.int_constant(node.attr("axis"))],
         [b.result(node.result)], {"exclusive": node.attr("exclusive"), "reverse": node.attr("reverse")})


def _roll_check(node: Node) -> str | None:
    x = node.operands[0]
    if x.type.rank is None:
        return "roll needs an operand of known rank"
    for axis in node.attr("axes"):
        if not isinstance(x.type.shape[axis], int):
            return f"roll along dim {axis % x.type.rank}, whose size is only known at run time"
    return None


@emits("roll", check=_roll_check)
def roll(b, node):
    x = node.operands[0]
    shape = x.type.shape
    shifts = sorted(Roll.net_shifts(node.attrs, shape).items())
    if not shifts:
        copy(b, node)  # every shift is a whole turn
        return
    current = b.tensor(x)
    for n, (axis, shift) in enumerate(shifts):
        out = b.result(node.result) if n == len(shifts) - 1 else b.temp(x.type, f"roll_{axis}")
        if len(shape) <= RANK_LIMITS["SLICE"]:
            _rotate_by_slices(b, current, x.type, axis, shift, out)
        else:
            positions = (np.arange(shape[axis]) - shift) % shape[axis]  # out[i] = x[i - shift]
            b.op("GATHER", [current, b.int_vector(positions)], [out], {"axis": axis, "batch_dims": 0})
        current = out


def _rotate_by_slices(b, x: int, type: TensorType, axis: int, shift: int, out: int) -> None:
    """out = concat(x[dim - shift:], x[:dim - shift]) along axis, as TensorFlow's converter writes a roll."""
    rank, dim = len(type.shape), type.shape[axis]
    cut = dim - shift

    def part(begin: int, size: int, suffix: str) -> int:
        begins, sizes = [0] * rank, [-1] * rank
        begins[axis], sizes[axis] = begin, size
        t = b.temp(type.with_shape(type.shape[:axis] + (size,) + type.shape[axis + 1:]), suffix)
        b.op("SLICE", [x, b.int_vector(begins), b.int_vector(sizes)], [t])
        return t

    tail, head = part(cut, shift, f"tail_{axis}"), part(0, cut, f"head_{axis}")
    b.op("CONCATENATION", [tail, head], [out], {"axis": axis})


# ----- dynamic slices ----------------------------------------------------------------------------------------------
def _dynamic_slice_check(node: Node) -> str | None:
    x = node.operands[0]
    if x.type.rank is not None and x.type.rank > RANK_LIMITS["SLICE"] and not x.type.is_static:
        return (f"TFLite's SLICE takes rank {RANK_LIMITS['SLICE']} at most; irc gathers instead for an operand of "
                f"known shape, and this rank-{x.type.rank} operand's shape is known only at run time")
    return _rank_check("GATHER")(node) or _dtype_check("SLICE")(node)


@emits("dynamic_slice", check=_dynamic_slice_check)
def dynamic_slice(b, node):
    x, begin = node.operands
    size = list(node.attr("size"))
    dtype = begin.type.dtype  # SLICE takes begin and size of one type, int32 or int64
    static = all(isinstance(d, int) for d in x.type.shape)
    limits = [d - s for d, s in zip(x.type.shape, size)] if static else None
    if limits is not None and _clamped(begin, limits):  # as irc reads a file it wrote: clamped already
        start = b.tensor(begin)
    else:
        vector = TensorType(dtype, (len(size),))
        low = b.temp(vector, "begin_low")
        b.op("MAXIMUM", [b.tensor(begin), b.int_vector([0] * len(size), dtype.numpy)], [low])
        if limits is not None:
            limit = b.int_vector(limits, dtype.numpy)
        else:
            limit = b.temp(vector, "begin_limit")
            b.op("SUB", [_shape_vector(b, x, dtype), b.int_vector(size, dtype.numpy)], [limit])
        start = b.temp(vector, "begin")
        b.op("MINIMUM", [low, limit], [start])
    if len(size) <= RANK_LIMITS["SLICE"]:
        b.op("SLICE", [b.tensor(x), start, b.int_vector(size, dtype.numpy)], [b.result(node.result)])
    else:
        _slice_by_gathers(b, node, start, dtype)


def _slice_by_gathers(b, node: Node, start: int, dtype: DType) -> None:
    """Above SLICE's rank: one GATHER per sliced dim, of positions start[i] + range(size[i])."""
    x = node.operands[0]
    size = node.attr("size")
    axes = [i for i, (d, s) in enumerate(zip(x.type.shape, size)) if s != d]
    current, shape = b.tensor(x), list(x.type.shape)
    if not axes:
        copy(b, node)
        return
    for n, axis in enumerate(axes):
        offset = b.temp(TensorType(dtype, (1,)), f"begin_{axis}")
        b.op("SLICE", [start, b.int_vector([axis], dtype.numpy), b.int_vector([1], dtype.numpy)], [offset])
        positions = b.temp(TensorType(dtype, (size[axis],)), f"positions_{axis}")
        b.op("ADD", [offset, b.int_vector(range(size[axis]), dtype.numpy)], [positions])
        shape[axis] = size[axis]
        out = b.result(node.result) if n == len(axes) - 1 else b.temp(x.type.with_shape(tuple(shape)), f"rows_{axis}")
        b.op("GATHER", [current, positions], [out], {"axis": axis, "batch_dims": 0})
        current = out


def _clamped(begin: Value, limits: list[int]) -> bool:
    """Whether ``begin`` is minimum(maximum(b, 0), limits) (or constant and within [0, limits])."""
    if begin.is_constant:
        return bool(np.all(begin.constant >= 0) and np.all(begin.constant <= limits))
    low = begin.producer
    if low is None or low.op != "minimum" or not low.operands[1].is_constant:
        return False
    if not np.array_equal(np.reshape(low.operands[1].constant, -1), limits):
        return False
    inner = low.operands[0].producer
    return (inner is not None and inner.op == "maximum" and inner.operands[1].is_constant
            and not np.any(inner.operands[1].constant))


@emits("dynamic_update_slice",
       check=_all(_rank_check("DYNAMIC_UPDATE_SLICE"), _dtype_check("DYNAMIC_UPDATE_SLICE")))
def dynamic_update_slice(b, node):
    x, update, begin = node.operands
    b.op(INDEXING["dynamic_update_slice"], [b.tensor(x), b.tensor(update), b.tensor(begin)], [b.result(node.result)])


# ----- top_k, gather_nd, scatters ----------------------------------------------------------------------------------
@emits("top_k", check=_all(_rank_check("TOPK_V2"), _dtype_check("TOPK_V2")))
def top_k(b, node):
    values, indices = node.results
    b.op(INDEXING["top_k"], [b.tensor(node.operands[0]), b.int_constant(node.attr("k"))],
         [b.result(values), b.result(indices)])


@emits("gather_nd", check=_all(needs_rank(0, 1), _dtype_check("GATHER_ND")))
def gather_nd(b, node):
    params, indices = node.operands
    b.op(INDEXING["gather_nd"], [b.tensor(params), b.tensor(indices)], [b.result(node.result)])


@emits("scatter_nd", check=_all(needs_rank(0, 1), _dtype_check("SCATTER_ND", 1), _no_quant))
def scatter_nd(b, node):
    indices, updates = node.operands
    b.op(INDEXING["scatter_nd"], [_index_i32(b, indices), b.tensor(updates), b.int_vector(node.attr("shape"))],
         [b.result(node.result)])


def _scatter(b, node: Node, updates: int, type: TensorType, suffix: str) -> int:
    """SCATTER_ND of ``updates`` into zeros shaped as the node's tensor operand."""
    tensor, indices, _ = node.operands
    out = b.temp(tensor.type.with_dtype(type.dtype), suffix)
    b.op(INDEXING["scatter_nd"], [_index_i32(b, indices), updates, _shape_vector(b, tensor)], [out])
    return out


_SCATTER_CHECK = _all(needs_rank(0, 1, 2), _dtype_check("SCATTER_ND", 2), _no_quant)


@emits("tensor_scatter_add", check=_SCATTER_CHECK)
def tensor_scatter_add(b, node):
    tensor, _, updates = node.operands
    added = _scatter(b, node, b.tensor(updates), updates.type, "scattered")
    b.op("ADD", [b.tensor(tensor), added], [b.result(node.result)])


@emits("tensor_scatter_update", check=_SCATTER_CHECK)
def tensor_scatter_update(b, node):
    tensor, _, updates = node.operands
    float_ = updates.type.dtype.is_float
    count_type = updates.type.with_dtype(DType.f32 if float_ else DType.i32)
    if all(isinstance(d, int) for d in updates.type.shape):
        ones = b.constant(np.ones(updates.type.shape, count_type.dtype.numpy))
    else:
        ones = b.temp(count_type, "ones")
        b.op("FILL", [_shape_vector(b, updates), b.constant(np.ones((), count_type.dtype.numpy))], [ones])
    counts = _scatter(b, node, ones, count_type, "counts")
    summed = _scatter(b, node, b.tensor(updates), updates.type, "scattered")
    hit = b.temp(tensor.type.with_dtype(DType.bool), "hit")
    b.op("CAST", [counts], [hit], {"in_data_type": "FLOAT32" if float_ else "INT32", "out_data_type": "BOOL"})
    if float_:  # repeated indices: the mean of their updates (0/0 only where the tensor is kept)
        mean = b.temp(tensor.type, "mean")
        b.op("DIV", [summed, counts], [mean])
        summed = mean
    b.op("SELECT_V2", [hit, summed, b.tensor(tensor)], [b.result(node.result)])
