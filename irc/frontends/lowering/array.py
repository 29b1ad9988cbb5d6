"""Shapes, slicing, gathering, joining and filling.

TF computes shapes with ops (Shape -> StridedSlice -> Pack -> Reshape); irc takes them as attributes. These
lowerings fold such chains: constants fold outright, and a shape holding the symbolic ``batch`` dim is
carried as a partly known vector (``Lowerer.symbolic``) until a Reshape, Fill or BroadcastTo reads it.
"""

from __future__ import annotations

import math
from collections import Counter
from math import prod

import numpy as np

from irc.frontends.lowering import lowers
from irc.frontends.lowering.context import CannotLower, Lowerer, tf_dtype
from irc.frontends.tfgraph import TFNode
from irc.ir.graph import Value
from irc.ir.types import Dim, DType, SymDim, divide_dim, scale_dim, split_sym
from irc.ops.shape import strided_index


@lowers("Const")
def const(cx: Lowerer, node: TFNode, args: list) -> Value:
    value = node.attrs["value"]
    return cx.const(value, tf_dtype(node.attrs.get("dtype", value.dtype.name)))


@lowers("Placeholder")
def placeholder(cx: Lowerer, node: TFNode, args: list) -> Value:
    """Signature inputs are bound by the driver; any other Placeholder has no value to lower."""
    raise CannotLower("it is not an input of the signature, so nothing feeds it")


@lowers("PlaceholderWithDefault")
def placeholder_with_default(cx: Lowerer, node: TFNode, args: list) -> Value:
    return args[0]


@lowers("NoOp")
def no_op(cx: Lowerer, node: TFNode, args: list) -> list:
    return []


# ----- shapes -----------------------------------------------------------------------------------------------------
@lowers("Shape")
def shape(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, dtype = args[0], tf_dtype(node.attrs.get("out_type", "int32"))
    dims = cx.shape(x)
    if all(isinstance(d, int) for d in dims):
        return cx.const(np.asarray(dims, dtype=dtype.numpy))
    return cx.dims_value(dims, cx.op("shape", x, dtype=dtype), dtype)


@lowers("Rank")
def rank(cx: Lowerer, node: TFNode, args: list) -> Value:
    return cx.const(np.asarray(cx.rank(args[0]), dtype=np.int32))


@lowers("Size")
def size(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, dtype = args[0], tf_dtype(node.attrs.get("out_type", "int32"))
    dims = cx.shape(x)
    if all(isinstance(d, int) for d in dims):
        return cx.const(np.asarray(prod(dims), dtype=dtype.numpy))
    count = cx.op("prod", cx.op("shape", x, dtype=dtype), axes=(0,))
    return cx.dims_value((dims[0] if len(dims) == 1 else None,), count, dtype, scalar=True)


@lowers("Reshape")
def reshape(cx: Lowerer, node: TFNode, args: list) -> Value:
    """The target shape must be known but for one dim (or for dims that cancel against the operand's)."""
    x, target = args
    dims = cx.dims(target)
    if dims is None:
        raise CannotLower("the target shape is computed at run time")
    result = reshape_value(cx, x, dims, runtime=target)
    out = result.type.shape
    if result is not x and (known := cx.dims(x)) is not None and len(out) <= 1 and not result.is_constant:
        cx.symbolic[result] = known  # a shape vector reshaped to a vector or scalar keeps its entries
    return result


def reshape_target(in_shape: tuple[Dim, ...], dims: tuple[Dim, ...]) -> tuple[tuple[int, ...], tuple[Dim, ...]]:
    """(the reshape's ``shape`` attribute, the result's shape) for TF's target ``dims``.

    ``dims`` holds ints (-1 = infer), SymDims and None (unknown). The unknown entry is solved from the operand:
    its element count, static part times symbolic dims, divided by the target's. Symbolic dims cancel, so
    [batch, 7, 7, 64] -> [-1, 3136] gives [batch, 3136]; a scaled symbol counts as its base times its factor,
    so [batch, 8, 8, 4] -> [-1, 4, 4, 4] gives [batch_x4, 4, 4, 4] and back.
    """
    out: list[Dim] = [d if not (isinstance(d, int) and d < 0) else None for d in dims]
    unknown = [i for i, d in enumerate(out) if d is None]
    if len(unknown) == 1 and not any(d is None for d in in_shape):
        in_static, in_syms = _element_count(in_shape)
        t_static, t_syms = _element_count([d for d in out if d is not None])
        rest = in_syms - t_syms
        if not (t_syms - in_syms) and t_static and in_static % t_static == 0:
            factor = in_static // t_static
            if not rest:
                out[unknown[0]] = factor
            elif sum(rest.values()) == 1:
                out[unknown[0]] = scale_dim(next(iter(rest)), factor)
    attr = tuple(int(d) if isinstance(d, int) else -1 for d in out)
    return attr, tuple(out)


def reshape_value(cx: Lowerer, x: Value, dims: tuple[Dim, ...], runtime: Value | None = None) -> Value:
    """``x`` reshaped to ``dims`` (TF's target: ints, -1, symbols, None). A target with one dim unknown until run
    time is a ``reshape``; with more, a ``dynamic_reshape`` reading the shape at run time: ``runtime`` (TF's
    own target vector), or the dims read from the values that have the symbols."""
    attr, out = reshape_target(cx.shape(x), dims)
    if out == x.type.shape and all(isinstance(d, (int, SymDim)) for d in out):
        return x
    if attr.count(-1) <= 1:
        result = cx.op("reshape", x, shape=attr, types=[x.type.with_shape(out)])
    else:
        if runtime is not None and not runtime.is_constant and runtime.type.rank == 1:
            vector = runtime if runtime.type.dtype is DType.i32 else cx.op("cast", runtime, to=DType.i32)
        elif all(isinstance(d, int) or (isinstance(d, SymDim) and split_sym(d)[0] in cx.sym_sources) for d in out):
            vector = cx.dims_vector(out)
        else:
            raise CannotLower(f"reshape to {_fmt(dims)} leaves {attr.count(-1)} dims unknown until run time")
        result = cx.op("dynamic_reshape", x, vector, types=[x.type.with_shape(out)])
    for axis, d in enumerate(out):  # a value having batch_x16, for masks and fills of that size (Lowerer.full)
        if isinstance(d, SymDim) and not result.is_constant:
            cx.sym_sources.setdefault(d, (result, axis))
    return result


def _element_count(shape) -> tuple[int, Counter]:
    """A shape's element count as (static part, base symbols): a scaled symbol adds its factor to the first."""
    static, syms = 1, Counter()
    for d in shape:
        if isinstance(d, SymDim):
            base, factor = split_sym(d)
            static *= factor
            syms[base] += 1
        else:
            static *= d
    return static, syms


def _fmt(dims) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


@lowers("Squeeze")
def squeeze(cx: Lowerer, node: TFNode, args: list) -> Value:
    x = args[0]
    shape_ = cx.shape(x)
    axes = cx.axes(node.attrs.get("squeeze_dims", []), len(shape_), "squeeze_dims") if shape_ else []
    if not axes:
        if not all(isinstance(d, int) for d in shape_):
            raise CannotLower(f"squeezing every size-1 dim of {x.type}: which are 1 is known only at run time")
        axes = [i for i, d in enumerate(shape_) if d == 1]
    if not axes:
        return x
    out = cx.op("squeeze", x, axes=tuple(sorted(set(axes))))
    _keep_dims_of_vector(cx, x, out)
    return out


@lowers("ExpandDims")
def expand_dims(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, axis = args
    out = cx.op("expand_dims", x, axis=cx.int_scalar(axis, "the axis"))
    _keep_dims_of_vector(cx, x, out)
    return out


def _keep_dims_of_vector(cx: Lowerer, x: Value, out: Value) -> None:
    """A partly known shape vector keeps its entries through a squeeze/expand between rank 0 and 1."""
    if not out.is_constant and (dims := cx.dims(x)) is not None and (out.type.rank or 0) <= 1:
        cx.symbolic[out] = dims


@lowers("Transpose")
def transpose(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, perm = args
    perm = tuple(p % max(cx.rank(x), 1) for p in cx.ints(perm, "the permutation"))
    if perm == tuple(range(len(perm))):
        return x
    return cx.op("transpose", x, perm=perm)


# ----- joining and splitting ------------------------------------------------------------------------------------
@lowers("ConcatV2", "Concat")
def concat(cx: Lowerer, node: TFNode, args: list) -> Value:
    """ConcatV2(values..., axis); Concat(axis, values...)."""
    axis_value, values = (args[-1], args[:-1]) if node.op == "ConcatV2" else (args[0], args[1:])
    axis = cx.int_scalar(axis_value, "the axis")
    rank = len(cx.shape(values[0], min_rank=1, what="a value"))  # TensorFlow cannot concatenate scalars
    if any(cx.rank(v) != rank for v in values):
        raise CannotLower(f"its values have ranks {[cx.rank(v) for v in values]}; they must all be the same")
    (axis,) = cx.axes([axis], rank)
    nonempty = [v for v in values if v.type.shape is None or v.type.shape[axis] != 0]
    values = nonempty or values[:1]
    if len(values) == 1:
        return values[0]
    out = cx.op("concat", *values, axis=axis)
    if not out.is_constant and rank == 1:
        parts = [cx.dims(v) for v in values]
        if all(p is not None for p in parts):
            cx.symbolic[out] = tuple(d for p in parts for d in p)
    return out


@lowers("Pack")
def pack(cx: Lowerer, node: TFNode, args: list) -> Value:
    axis = int(node.attrs.get("axis", 0))
    out = cx.op("pack", *args, axis=axis)
    if not out.is_constant and all(v.type.rank == 0 for v in args):
        parts = [cx.dims(v) for v in args]
        if all(p is not None for p in parts):
            cx.symbolic[out] = tuple(p[0] for p in parts)
    return out


@lowers("Unpack")
def unpack(cx: Lowerer, node: TFNode, args: list) -> list:
    x = args[0]
    axis = int(node.attrs.get("axis", 0))
    outs = list(cx.add("unpack", [x], {"axis": axis}))
    dims = cx.dims(x)
    if dims is not None and cx.rank(x) == 1 and not x.is_constant:
        outs = [cx.dims_value((d,), v, v.type.dtype, scalar=True) for d, v in zip(dims, outs)]
    return outs


@lowers("Split")
def split(cx: Lowerer, node: TFNode, args: list) -> list:
    """Split(axis, value) into num_split equal pieces."""
    axis_value, x = args
    shape_ = cx.shape(x)
    (axis,) = cx.axes([cx.int_scalar(axis_value, "the axis")], len(shape_))
    n = int(node.attrs["num_split"])
    if n == 1:
        return [x]
    dim = shape_[axis]
    if not isinstance(dim, int):
        raise CannotLower(f"splitting dim {axis} of {x.type}, whose size is known only at run time")
    return list(cx.add("split", [x], {"axis": axis, "sizes": (dim // n,) * n}))


@lowers("SplitV")
def split_v(cx: Lowerer, node: TFNode, args: list) -> list:
    """SplitV(value, size_splits, axis); one size may be -1."""
    x, sizes, axis_value = args
    (axis,) = cx.axes([cx.int_scalar(axis_value, "the axis")], cx.rank(x))
    sizes = tuple(cx.ints(sizes, "the split sizes"))
    if len(sizes) == 1:
        return [x]
    return list(cx.add("split", [x], {"axis": axis, "sizes": sizes}))


# ----- slicing and gathering ------------------------------------------------------------------------------------
@lowers("Slice")
def slice_(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, begin, size_ = args
    begin = tuple(cx.ints(begin, "the slice begin"))
    sizes = cx.dims(size_)
    if sizes is not None and len(sizes) == len(begin) and any(isinstance(d, SymDim) for d in sizes) \
            and all(isinstance(d, (int, SymDim)) for d in sizes):
        return _slice_to_symbols(cx, x, begin, sizes)
    size_ = tuple(cx.ints(size_, "the slice size"))
    out = cx.op("slice", x, begin=begin, size=size_)
    if not out.is_constant and (dims := cx.dims(x)) is not None and cx.rank(x) == 1:
        stop = None if size_[0] == -1 else begin[0] + size_[0]
        return cx.dims_value(dims[begin[0]:stop], out, out.type.dtype)
    return out


def _slice_to_symbols(cx: Lowerer, x: Value, begin: tuple[int, ...], sizes: tuple[Dim, ...]) -> Value:
    """A slice whose size along some axes is a run-time dim (GPT-2's positions: the first seq rows of a table):
    a static slice of the other axes, then a gather of begin + arange(size) along each of those."""
    if any(not 0 <= b < 2**31 for b in begin):
        raise CannotLower(f"the slice begin {list(begin)} lies outside 0 .. 2**31 - 1")
    static = tuple(-1 if isinstance(d, SymDim) else d for d in sizes)
    out = cx.op("slice", x, begin=tuple(0 if isinstance(d, SymDim) else b for b, d in zip(begin, sizes)), size=static)
    for axis, (b, d) in enumerate(zip(begin, sizes)):
        if isinstance(d, SymDim):
            indices = _arange(cx, d, DType.i32)
            if b:
                indices = cx.op("add", indices, cx.const(np.int32(b)))
            out = cx.op("gather", out, indices, axis=axis)
    return out


def _arange(cx: Lowerer, n: SymDim, dtype: DType) -> Value:
    """0, 1, ..., n - 1 for a dim n known only at run time: the exclusive running sum of n ones."""
    return cx.op("cumsum", cx.full((n,), 1, dtype), axis=0, exclusive=True)


@lowers("StridedSlice")
def strided_slice(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, begin, end, strides = args
    known = [cx.dims(begin), cx.dims(end)]
    if any(dims is None or None in dims for dims in known):  # a loop counter, say
        return _run_time_index(cx, node, x, begin, strides)
    attrs = {"begin": tuple(cx.ints(begin, "the slice begin")), "end": tuple(cx.ints(end, "the slice end")),
             "strides": tuple(cx.ints(strides, "the slice strides"))}
    for mask in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask"):
        if node.attrs.get(mask, 0):
            attrs[mask] = int(node.attrs[mask])
    dims = cx.dims(x)
    if dims is not None and not x.is_constant and cx.rank(x) == 1:
        picked = np.asarray(np.array(dims, dtype=object)[strided_index(_with_defaults(attrs))], dtype=object)
        entries = tuple(picked.reshape(-1).tolist())
        if all(isinstance(d, int) for d in entries):  # only static entries of a partly known shape
            return cx.const(np.asarray(entries, dtype=x.type.dtype.numpy).reshape(picked.shape))
        out = cx.op("strided_slice", x, **attrs)
        return cx.dims_value(entries, out, out.type.dtype, scalar=picked.ndim == 0)
    return cx.op("strided_slice", x, **attrs)


def _run_time_index(cx: Lowerer, node: TFNode, x: Value, begin: Value, strides: Value) -> Value:
    """``x[:, i]`` with ``i`` known only at run time (a loop counter): a gather on each indexed axis. Other axes
    must be whole (``:``)."""
    steps = cx.ints(strides, "the slice strides")
    rank = len(cx.shape(x))
    shrink, full = int(node.attrs.get("shrink_axis_mask", 0)), int(node.attrs.get("begin_mask", 0)) & int(
        node.attrs.get("end_mask", 0))
    if node.attrs.get("ellipsis_mask", 0) or node.attrs.get("new_axis_mask", 0) or len(steps) > rank:
        raise CannotLower("the slice begin is computed at run time and the slice has ellipsis or new axes")
    for axis in range(len(steps)):
        if not (shrink >> axis & 1 or (full >> axis & 1 and steps[axis] == 1)):
            raise CannotLower("the slice begin is computed at run time; irc reads such a slice only as single "
                              "indices (x[:, i]) on some axes and whole axes elsewhere")
    if begin.type.dtype is not DType.i32:
        begin = cx.op("cast", begin, to=DType.i32)
    for axis in reversed(range(len(steps))):  # the last axis first, so earlier axes keep their numbers
        if shrink >> axis & 1:
            index = cx.op("gather", begin, cx.const(np.asarray(axis, np.int32)))
            size = x.type.shape[axis]
            size = (cx.const(np.asarray(size, np.int32)) if isinstance(size, int) else
                    cx.op("gather", cx.op("shape", x), cx.const(np.asarray(axis, np.int32))))
            index = cx.op("floor_mod", index, size)  # a negative index counts from the end, as in TF
            x = cx.op("gather", x, index, axis=axis)
    return x


def _with_defaults(attrs: dict) -> dict:
    full = {"begin_mask": 0, "end_mask": 0, "ellipsis_mask": 0, "new_axis_mask": 0, "shrink_axis_mask": 0}
    full.update(attrs)
    return full


@lowers("GatherV2", "Gather", "ResourceGather")
def gather(cx: Lowerer, node: TFNode, args: list) -> Value:
    params, indices = args[:2]
    axis = cx.int_scalar(args[2], "the axis") if node.op == "GatherV2" else 0
    batch_dims = int(node.attrs.get("batch_dims", 0))
    if indices.type.dtype not in (DType.i32, DType.i64):
        indices = cx.op("cast", indices, to=DType.i32)
    out = cx.op("gather", params, indices, axis=axis, batch_dims=batch_dims)
    dims = cx.dims(params)
    if not out.is_constant and dims is not None and cx.rank(params) == 1 and indices.is_constant:
        if indices.constant.size and not (0 <= indices.constant.min() and indices.constant.max() < len(dims)):
            raise CannotLower(f"indices {indices.constant.reshape(-1).tolist()} lie outside {len(dims)} entries")
        picked = np.array(dims, dtype=object)[indices.constant.astype(np.int64)]
        entries = tuple(np.asarray(picked, dtype=object).reshape(-1).tolist())
        return cx.dims_value(entries, out, out.type.dtype, scalar=np.ndim(picked) == 0)
    return out


@lowers("ReverseV2")
def reverse(cx: Lowerer, node: TFNode, args: list) -> Value:
    """A strided slice with stride -1 on the reversed axes."""
    x, axes = args
    rank_ = cx.rank(x)
    axes = set(cx.axes(cx.ints(axes, "the axes"), rank_, "the axes"))
    if not axes:
        return x
    full = (1 << rank_) - 1
    return cx.op("strided_slice", x, begin=(0,) * rank_, end=(0,) * rank_,
                 strides=tuple(-1 if i in axes else 1 for i in range(rank_)), begin_mask=full, end_mask=full)


# ----- repeating, broadcasting, filling -------------------------------------------------------------------------
@lowers("Tile")
def tile(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, multiples = args
    multiples = tuple(cx.ints(multiples, "the multiples"))
    if all(m == 1 for m in multiples):
        return x
    return cx.op("tile", x, multiples=multiples)


@lowers("BroadcastTo")
def broadcast_to(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, target = args
    dims = cx.dims(target)
    if dims is None:
        raise CannotLower("the target shape is computed at run time")
    return broadcast(cx, x, dims)


def broadcast(cx: Lowerer, x: Value, dims) -> Value:
    """``x`` broadcast to ``dims``; symbolic dims come from a value that has them."""
    if any(d is None or (isinstance(d, int) and d < 0) for d in dims):
        raise CannotLower(f"broadcasting to {_fmt(dims)}, which has unknown dims")
    shape = cx.shape(x)
    padded = (1,) * (len(dims) - len(shape)) + tuple(shape)
    if any(isinstance(d, SymDim) and have != 1 for d, have in zip(dims, padded)):
        # x has some of the symbols already ([1, seq, seq] -> [batch, seq, seq]): select against a mask of the
        # target's shape broadcasts it, whatever the mask holds
        return cx.op("select", cx.full(dims, True, DType.bool), x, x)
    static = tuple(d if isinstance(d, int) else 1 for d in dims)
    if x.type.shape != static:
        x = cx.op("broadcast_to", x, shape=static)
    for axis, d in enumerate(dims):
        if isinstance(d, SymDim):
            mask = cx.sym_mask(d, axis, len(dims))
            x = cx.op("select", mask, x, x)
    return x


@lowers("Fill")
def fill(cx: Lowerer, node: TFNode, args: list) -> Value:
    dims_value, value = args
    dims = cx.dims(dims_value)
    if dims is None:
        raise CannotLower("the shape is computed at run time")
    if value.type.shape != ():
        raise CannotLower(f"the fill value has shape {value.type.shape}, where Fill needs a scalar")
    if value.is_constant:
        return cx.full(dims, value.constant.reshape(()), value.type.dtype)
    return broadcast(cx, value, dims)


@lowers("ZerosLike", "OnesLike")
def zeros_like(cx: Lowerer, node: TFNode, args: list) -> Value:
    x = args[0]
    return cx.full(cx.shape(x), 0 if node.op == "ZerosLike" else 1, x.type.dtype)


@lowers("Range")
def range_(cx: Lowerer, node: TFNode, args: list) -> Value:
    """A constant, or ``arange(n)`` of a dim ``n`` known only at run time (a causal mask's positions): the running
    sum of n ones, exclusive."""
    dtype = tf_dtype(node.attrs.get("Tidx", "int32"))
    ends = [cx.constant(v) for v in (args[0], args[2])]
    limit = cx.dims(args[1])
    if cx.constant(args[1]) is None and limit is not None and len(limit) == 1 and isinstance(limit[0], SymDim):
        if not all(e is not None and e.size == 1 for e in ends) or (ends[0].item(), ends[1].item()) != (0, 1):
            raise CannotLower(f"a range to the run-time size {limit[0]} must start at 0 and step by 1 (irc knows "
                              "no other range's length)")
        return _arange(cx, limit[0], dtype)
    if cx.constant(args[1]) is None:
        raise CannotLower("the range's limit is computed at run time, and is no input dim irc can follow")
    start, limit, delta = cx.scalars(args, "the range's start, limit and delta")
    if delta == 0 or math.ceil((limit - start) / delta) > 2**31:
        raise CannotLower(f"a range from {start} to {limit} by {delta}")
    return cx.const(np.arange(start, limit, delta).astype(dtype.numpy))


@lowers("Select", "SelectV2")
def select(cx: Lowerer, node: TFNode, args: list) -> Value:
    """SelectV2 broadcasts; Select (v1) with a vector condition picks rows of x and y."""
    cond, x, y = args
    if node.op == "Select" and cond.type.rank == 1 and (x.type.rank or 1) > 1:
        cond = cx.op("reshape", cond, shape=(-1,) + (1,) * (x.type.rank - 1),
                     types=[cond.type.with_shape(cond.type.shape + (1,) * (x.type.rank - 1))])
    return cx.op("select", cond, x, y)


@lowers("OneHot")
def one_hot(cx: Lowerer, node: TFNode, args: list) -> Value:
    indices, depth, on, off = args
    dtype = tf_dtype(node.attrs.get("T", on.type.dtype.numpy.name))
    on_value, off_value = cx.scalars([on, off], "on_value and off_value")
    return cx.op("one_hot", indices, depth=cx.int_scalar(depth, "the depth"), axis=int(node.attrs.get("axis", -1)),
                 on_value=float(on_value), off_value=float(off_value), dtype=dtype)



@lowers("ShapeN")
def shape_n(cx: Lowerer, node: TFNode, args: list) -> list:
    return [shape(cx, node, [x]) for x in args]


@lowers("BroadcastArgs")
def broadcast_args(cx: Lowerer, node: TFNode, args: list) -> Value:
    """The broadcast of two shapes, computed while lowering (the shapes must be known but for symbolic dims)."""
    a, b = (cx.dims(v) for v in args)
    if a is None or b is None:
        raise CannotLower("the shapes are computed at run time")
    from irc.ops.base import broadcast_shapes

    try:
        dims = broadcast_shapes(tuple(a), tuple(b))
    except ValueError as e:
        raise CannotLower(str(e)) from None
    if not all(isinstance(d, int) for d in dims):
        raise CannotLower(f"the broadcast shape {_fmt(dims)} is known only at run time")
    return cx.const(np.asarray(dims, dtype=args[0].type.dtype.numpy))


@lowers("DepthToSpace", "SpaceToDepth")
def depth_to_space(cx: Lowerer, node: TFNode, args: list) -> Value:
    """NHWC DepthToSpace/SpaceToDepth as reshape -> transpose -> reshape (TF's DCR element order)."""
    x, b = args[0], int(node.attrs["block_size"])
    if node.attrs.get("data_format", "NHWC") != "NHWC":
        raise CannotLower(f"data_format {node.attrs['data_format']}")
    n, h, w, c = cx.shape(x, rank=4)
    if not all(isinstance(d, int) for d in (h, w, c)):
        raise CannotLower(f"{node.op} of {x.type}, whose spatial size is known only at run time")
    batch = n if isinstance(n, int) else -1
    if node.op == "DepthToSpace":  # [n, h, w, (i, j, k)] -> [n, (h, i), (w, j), k]
        split, out = (batch, h, w, b, b, c // (b * b)), (batch, h * b, w * b, c // (b * b))
    else:  # [n, (h, i), (w, j), k] -> [n, h, w, (i, j, k)]
        split, out = (batch, h // b, b, w // b, b, c), (batch, h // b, w // b, c * b * b)
    x = cx.op("reshape", x, shape=split, types=[x.type.with_shape((n,) + split[1:])])
    x = cx.op("transpose", x, perm=(0, 1, 3, 2, 4, 5))
    return cx.op("reshape", x, shape=out, types=[x.type.with_shape((n,) + out[1:])])


@lowers("MatrixBandPart")
def matrix_band_part(cx: Lowerer, node: TFNode, args: list) -> Value:
    """Keeps the band num_lower below and num_upper above the diagonal (-1: all) of the last two dims."""
    x, lower_value, upper_value = args
    rows, cols = cx.shape(x, min_rank=2)[-2:]
    if not isinstance(rows, int) or not isinstance(cols, int):
        raise CannotLower(f"a band of {x.type}, whose matrix size is known only at run time")
    lower_, upper = cx.int_scalar(lower_value, "num_lower"), cx.int_scalar(upper_value, "num_upper")
    i, j = np.arange(rows)[:, None], np.arange(cols)[None, :]
    keep = ((lower_ < 0) | (i - j <= lower_)) & ((upper < 0) | (j - i <= upper))
    zero = cx.const(np.zeros((), x.type.dtype.numpy))
    return cx.op("select", cx.const(keep), x, zero)


# ----- space <-> batch (Keras' dilated convolutions) -------------------------------------------------------------
def _reshape_to(cx: Lowerer, x: Value, dims: tuple[Dim, ...]) -> Value:
    """Reshape to ``dims`` (ints and at most one unknown, written -1), typed with ``dims``."""
    attr = tuple(d if isinstance(d, int) else -1 for d in dims)
    if attr.count(-1) > 1:
        raise CannotLower(f"reshape to {_fmt(dims)} leaves more than one dim unknown")
    return cx.op("reshape", x, shape=attr, types=[x.type.with_shape(dims)])


def _block_args(cx: Lowerer, x: Value, block_value: Value, pairs_value: Value, what: str):
    """SpaceToBatchND's and BatchToSpaceND's block shape, (before, after) pairs (paddings or crops) and x's
    shape, after the checks TF's shape functions make on them."""
    block = cx.ints(block_value, "the block shape")
    flat = cx.floats(pairs_value, f"the {what}").astype(np.int64)
    if flat.size != 2 * len(block):
        raise CannotLower(f"{flat.size} {what} values for {len(block)} block dimensions (it needs two each)")
    pairs = flat.reshape(-1, 2).tolist()
    if any(b < 1 for b in block) or any(p < 0 for pair in pairs for p in pair):
        raise CannotLower(f"block shape {block} and {what} {pairs} must be positive")
    return block, pairs, cx.shape(x, min_rank=1 + len(block))


@lowers("SpaceToBatchND")
def space_to_batch(cx: Lowerer, node: TFNode, args: list) -> Value:
    """pad -> reshape [B, p1/b1, b1, ...] -> transpose [b1, ..., B, p1/b1, ...] -> reshape [b1*...*B, ...]."""
    x, block_value, pad_value = args
    block, pads, shape_ = _block_args(cx, x, block_value, pad_value, "paddings")
    m, rest = len(block), list(shape_[1 + len(block):])
    if any(p for pair in pads for p in pair):
        x = cx.op("pad", x, paddings=((0, 0),) + tuple((int(a), int(b)) for a, b in pads) + ((0, 0),) * len(rest))
    padded = x
    spatial = cx.shape(x)[1:1 + m]
    if not all(isinstance(d, int) for d in spatial + tuple(rest)):
        raise CannotLower(f"space-to-batch of {x.type}, whose spatial size is known only at run time")
    batch = shape_[0]
    split: list[Dim] = [batch]
    for d, b in zip(spatial, block):
        split += [d // b, b]
    x = _reshape_to(cx, x, tuple(split + rest))
    perm = [2 + 2 * i for i in range(m)] + [0] + [1 + 2 * i for i in range(m)]
    perm += list(range(1 + 2 * m, 1 + 2 * m + len(rest)))
    x = cx.op("transpose", x, perm=tuple(perm))
    factor = int(np.prod(block))
    out = _reshape_to(cx, x, (scale_dim(batch, factor),) + tuple(d // b for d, b in zip(spatial, block))
                      + tuple(rest))
    cx.space_to_batch[out] = (padded, tuple(block))  # a convolution of it may become a dilated one (nn.py)
    return out


@lowers("BatchToSpaceND")
def batch_to_space(cx: Lowerer, node: TFNode, args: list) -> Value:
    """reshape [b1, ..., B, s1, ...] -> transpose [B, s1, b1, ...] -> reshape [B, s1*b1, ...] -> crop."""
    x, block_value, crop_value = args
    block, crops, shape_ = _block_args(cx, x, block_value, crop_value, "crops")
    m, rest = len(block), list(shape_[1 + len(block):])
    spatial = shape_[1:1 + m]
    if cx.dilated.get(x) == tuple(block):  # a dilated convolution made it in place (nn.py): only the crop is left
        return _crop(cx, x, spatial, crops, rest)
    if not all(isinstance(d, int) for d in tuple(spatial) + tuple(rest)):
        raise CannotLower(f"batch-to-space of {x.type}, whose spatial size is known only at run time")
    factor = int(np.prod(block))
    batch = divide_dim(shape_[0], factor)
    x = _reshape_to(cx, x, tuple(block) + (batch,) + tuple(spatial) + tuple(rest))
    perm = [m]
    for i in range(m):
        perm += [m + 1 + i, i]
    perm += list(range(2 * m + 1, 2 * m + 1 + len(rest)))
    x = cx.op("transpose", x, perm=tuple(perm))
    full = tuple(d * b for d, b in zip(spatial, block))
    return _crop(cx, _reshape_to(cx, x, (batch,) + full + tuple(rest)), full, crops, rest)


def _crop(cx: Lowerer, x: Value, full, crops, rest) -> Value:
    if any(c for pair in crops for c in pair):
        begin = (0,) + tuple(int(a) for a, _ in crops) + (0,) * len(rest)
        size_ = (-1,) + tuple(int(d - a - b) for d, (a, b) in zip(full, crops)) + (-1,) * len(rest)
        x = cx.op("slice", x, begin=begin, size=size_)
    return x
