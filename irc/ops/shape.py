"""Shape ops: reshape, transpose, concat, split, slicing, gather, tile, pack/unpack, argmax, one_hot, ...

Shape-like parameters are attributes. Ops marked QUANT_PRESERVING give their result the operand's per-tensor
quantization (per-axis parameters are dropped: the pass that moves them decides). ``strided_slice`` has
TensorFlow's semantics for all five masks; it is computed by turning the spec into a numpy index.
"""

from __future__ import annotations

import math

import numpy as np

from irc import limits
from irc.ir.types import Dim, DType, TensorType
from irc.ops.activation import Fusable
from irc.ops.base import (
    PURE,
    QUANT_PRESERVING,
    Attr,
    OpDef,
    broadcast_shapes,
    normalize_axis,
    register,
)


# ----- helpers shared with nn.py -----------------------------------------------------------------------------------
def merge_dims(a: Dim, b: Dim, what: str) -> Dim:
    """Two dims that must be equal at run time: the better-known one, or an error if both are known and differ."""
    if isinstance(a, int) and isinstance(b, int):
        if a != b:
            raise ValueError(f"{what} differ: {a} and {b}")
        return a
    if isinstance(b, int) or a is None:
        return b
    return a


def keep_quant(src: TensorType, out: TensorType) -> TensorType:
    """``out`` with ``src``'s quantization when that is per-tensor."""
    if src.quant is not None and not src.quant.per_axis:
        return out.with_quant(src.quant)
    return out


def _product(dims) -> Dim:
    return math.prod(dims) if all(isinstance(d, int) for d in dims) else None


class ShapeOp(OpDef):
    """A single-operand op whose result keeps the operand's dtype (and per-tensor quantization)."""

    operands = ("x",)
    traits = frozenset({PURE, QUANT_PRESERVING})

    def infer(self, types, attrs, consts):
        x = types[0]
        shapes = self.shapes(x.shape, attrs)
        return [keep_quant(x, TensorType(x.dtype, s)) for s in shapes]

    def shapes(self, shape: tuple | None, attrs: dict) -> list[tuple | None]:
        """Result shapes from the operand's shape (None = unknown rank)."""
        raise NotImplementedError


# ----- reshape, transpose, squeeze, expand_dims --------------------------------------------------------------------
@register
class Reshape(ShapeOp):
    name = "reshape"
    summary = "Same elements, new shape; one entry may be -1 (inferred)."
    attrs = {"shape": Attr("ints")}

    def shapes(self, shape, attrs):
        target = attrs["shape"]
        if target.count(-1) > 1 or any(d < -1 for d in target):
            raise ValueError(f"reshape takes sizes >= 0 and at most one -1, got {list(target)}")
        known = math.prod(d for d in target if d != -1)
        if shape is None:
            return [tuple(None if d == -1 else d for d in target)]
        total = _product(shape)
        if -1 not in target:
            if total is not None and total != known:
                raise ValueError(f"cannot reshape {total} elements into shape {list(target)}")
            return [tuple(target)]
        if total is not None:
            if known == 0 or total % known:
                raise ValueError(f"cannot reshape {total} elements into shape {list(target)}")
            return [tuple(total // known if d == -1 else d for d in target)]
        # [batch, 4, 4] -> [-1, 16]: one symbolic dim, and the known dims match the rest of the target
        unknown = [d for d in shape if not isinstance(d, int)]
        rest = _product([d for d in shape if isinstance(d, int)])
        fill = unknown[0] if len(unknown) == 1 and rest == known else None
        return [tuple(fill if d == -1 else d for d in target)]

    def kernel(self, inputs, attrs):
        return [np.reshape(inputs[0], attrs["shape"])]


@register
class DynamicReshape(OpDef):
    name = "dynamic_reshape"
    summary = ("Same elements, new shape read at run time from the vector ``shape`` (one entry may be -1); for "
               "shapes with more than one dim unknown until run time, which ``reshape {shape}`` cannot hold.")
    operands = ("x", "shape")
    traits = frozenset({PURE, QUANT_PRESERVING})

    def infer(self, types, attrs, consts):
        x, shape = types
        if shape.dtype not in (DType.i32, DType.i64) or shape.rank != 1 or not isinstance(shape.shape[0], int):
            raise ValueError(f"dynamic_reshape's shape must be an i32 or i64 vector of known length, got {shape}")
        known = consts[1] if consts else None
        if known is not None:
            (out,) = Reshape().shapes(x.shape, {"shape": tuple(int(d) for d in known)})
        else:
            out = (None,) * shape.shape[0]
        return [keep_quant(x, TensorType(x.dtype, out))]

    def kernel(self, inputs, attrs):
        x, shape = inputs
        target = tuple(int(d) for d in shape)
        Reshape().shapes(x.shape, {"shape": target})  # the same checks (sizes, one -1) and messages
        return [np.reshape(x, target)]


@register
class Transpose(ShapeOp):
    name = "transpose"
    summary = "Permutes the dims: result dim i is operand dim perm[i]."
    attrs = {"perm": Attr("ints")}

    def shapes(self, shape, attrs):
        perm = attrs["perm"]
        if sorted(perm) != list(range(len(perm))):
            raise ValueError(f"perm {list(perm)} is not a permutation")
        if shape is None:
            return [(None,) * len(perm)]
        if len(perm) != len(shape):
            raise ValueError(f"perm {list(perm)} does not match rank {len(shape)}")
        return [tuple(shape[p] for p in perm)]

    def kernel(self, inputs, attrs):
        return [np.transpose(inputs[0], attrs["perm"])]


@register
class Reverse(ShapeOp):
    name = "reverse"
    summary = "Reverses the order of elements along each of ``axes`` (a backward RNN reads its sequence so)."
    attrs = {"axes": Attr("ints")}

    def shapes(self, shape, attrs):
        if shape is not None:
            for axis in attrs["axes"]:
                normalize_axis(axis, len(shape))
        return [shape]

    def kernel(self, inputs, attrs):
        x = inputs[0]
        return [np.flip(x, tuple(normalize_axis(a, x.ndim) for a in attrs["axes"])).copy()]


@register
class Squeeze(ShapeOp):
    name = "squeeze"
    summary = "Removes size-1 dims: those in axes, or all of them when axes is empty."
    attrs = {"axes": Attr("ints", ())}

    def shapes(self, shape, attrs):
        if shape is None:
            return [None]
        if not attrs["axes"]:
            if any(not isinstance(d, int) for d in shape):
                return [None]  # which dims are 1 is only known at run time
            return [tuple(d for d in shape if d != 1)]
        axes = {normalize_axis(a, len(shape)) for a in attrs["axes"]}
        for a in axes:
            if isinstance(shape[a], int) and shape[a] != 1:
                raise ValueError(f"cannot squeeze dim {a} of size {shape[a]}")
        return [tuple(d for i, d in enumerate(shape) if i not in axes)]

    def kernel(self, inputs, attrs):
        x = inputs[0]
        axes = tuple(attrs["axes"]) or tuple(i for i, d in enumerate(x.shape) if d == 1)
        return [np.squeeze(x, axis=axes)]


@register
class ExpandDims(ShapeOp):
    name = "expand_dims"
    summary = "Inserts a size-1 dim at axis (negative counts from the end of the result)."
    attrs = {"axis": Attr("int")}

    def shapes(self, shape, attrs):
        if shape is None:
            return [None]
        axis = normalize_axis(attrs["axis"], len(shape) + 1)
        return [shape[:axis] + (1,) + shape[axis:]]

    def kernel(self, inputs, attrs):
        return [np.expand_dims(inputs[0], attrs["axis"])]


# ----- concat, split, pack, unpack ---------------------------------------------------------------------------------
def _merge_shapes(types: list[TensorType], skip: int | None, what: str) -> list[Dim] | None:
    """The common shape of ``types`` (dims must agree, except dim ``skip``); None if every rank is unknown."""
    shapes = [t.shape for t in types if t.shape is not None]
    if not shapes:
        return None
    if len({len(s) for s in shapes}) > 1:
        raise ValueError(f"{what} operands have different ranks: {', '.join(str(t) for t in types)}")
    out = list(shapes[0])
    for s in shapes[1:]:
        for i, d in enumerate(s):
            if i != skip:
                out[i] = merge_dims(out[i], d, f"{what} operands' dim {i}")
    return out


def _same_dtype(types: list[TensorType], what: str) -> DType:
    if len({t.dtype for t in types}) > 1:
        raise ValueError(f"{what} operands have different dtypes: {', '.join(t.dtype.value for t in types)}")
    return types[0].dtype


@register
class Concat(Fusable):
    name = "concat"
    summary = "Joins the operands along axis."
    operands = ("xs*",)
    attrs = {"axis": Attr("int")}

    def infer(self, types, attrs, consts):
        if not types:
            raise ValueError("concat needs at least one operand")
        dtype = _same_dtype(types, "concat")
        rank = next((len(t.shape) for t in types if t.shape is not None), None)
        if rank is None:
            return [TensorType(dtype, None)]
        axis = normalize_axis(attrs["axis"], rank)
        out = _merge_shapes(types, axis, "concat")
        parts = [None if t.shape is None else t.shape[axis] for t in types]
        out[axis] = sum(parts) if all(isinstance(d, int) for d in parts) else None
        return [TensorType(dtype, tuple(out))]

    def compute(self, inputs, attrs):
        return [np.concatenate(inputs, axis=attrs["axis"])]


@register
class Split(ShapeOp):
    name = "split"
    summary = "Splits along axis into pieces of the given sizes (one -1 takes the rest); one result per piece."
    attrs = {"axis": Attr("int"), "sizes": Attr("ints")}

    def shapes(self, shape, attrs):
        sizes = attrs["sizes"]
        if not sizes or sizes.count(-1) > 1 or any(s < -1 for s in sizes):
            raise ValueError(f"split sizes must be >= 0 with at most one -1, got {list(sizes)}")
        if shape is None:
            return [None] * len(sizes)
        axis = normalize_axis(attrs["axis"], len(shape))
        dim, rest = shape[axis], sum(s for s in sizes if s != -1)
        if isinstance(dim, int) and (rest > dim or (-1 not in sizes and rest != dim)):
            raise ValueError(f"split sizes {list(sizes)} do not add up to dim {axis} of size {dim}")
        fill = dim - rest if isinstance(dim, int) else None
        return [shape[:axis] + (fill if s == -1 else s,) + shape[axis + 1:] for s in sizes]

    def kernel(self, inputs, attrs):
        x, axis, sizes = inputs[0], attrs["axis"], list(attrs["sizes"])
        if -1 in sizes:
            sizes[sizes.index(-1)] = x.shape[axis] - sum(s for s in sizes if s != -1)
        return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


@register
class Pack(OpDef):
    name = "pack"
    summary = "Stacks same-shaped operands along a new dim at axis."
    operands = ("xs*",)
    attrs = {"axis": Attr("int", 0)}

    def infer(self, types, attrs, consts):
        if not types:
            raise ValueError("pack needs at least one operand")
        dtype = _same_dtype(types, "pack")
        shape = _merge_shapes(types, None, "pack")
        if shape is None:
            return [TensorType(dtype, None)]
        axis = normalize_axis(attrs["axis"], len(shape) + 1)
        return [TensorType(dtype, tuple(shape[:axis]) + (len(types),) + tuple(shape[axis:]))]

    def kernel(self, inputs, attrs):
        return [np.stack(inputs, axis=attrs["axis"])]


@register
class Unpack(ShapeOp):
    name = "unpack"
    summary = "Splits along axis into its slices, removing that dim; one result per slice."
    attrs = {"axis": Attr("int", 0)}

    def shapes(self, shape, attrs):
        if shape is None or not shape:
            raise ValueError("unpack needs an operand of known rank, 1 or more")
        axis = normalize_axis(attrs["axis"], len(shape))
        if not isinstance(shape[axis], int):
            raise ValueError(f"unpack needs a known size along axis {axis}, got {shape[axis]}")
        return [shape[:axis] + shape[axis + 1:]] * shape[axis]

    def kernel(self, inputs, attrs):
        x = np.moveaxis(inputs[0], attrs["axis"], 0)
        return [np.ascontiguousarray(s) for s in x]


# ----- slicing and gathering ---------------------------------------------------------------------------------------
@register
class Slice(ShapeOp):
    name = "slice"
    summary = "The block starting at begin with the given size (size -1 runs to the end)."
    attrs = {"begin": Attr("ints"), "size": Attr("ints")}

    def shapes(self, shape, attrs):
        begin, size = attrs["begin"], attrs["size"]
        if len(begin) != len(size) or any(b < 0 for b in begin) or any(s < -1 for s in size):
            raise ValueError(f"slice needs begin >= 0 and size >= -1 of equal length, got {list(begin)}, {list(size)}")
        if shape is None:
            return [tuple(None if s == -1 else s for s in size)]
        if len(begin) != len(shape):
            raise ValueError(f"slice spec of length {len(begin)} for a rank-{len(shape)} operand")
        out = []
        for d, b, s in zip(shape, begin, size):
            if isinstance(d, int) and (b > d or (s != -1 and b + s > d)):
                raise ValueError(f"slice begin {list(begin)} size {list(size)} is out of bounds for {list(shape)}")
            if s != -1:
                out.append(s)
            else:
                out.append(d - b if isinstance(d, int) else (d if b == 0 else None))
        return [tuple(out)]

    def kernel(self, inputs, attrs):
        index = tuple(slice(b, None if s == -1 else b + s) for b, s in zip(attrs["begin"], attrs["size"]))
        return [inputs[0][index]]


def strided_index(attrs: dict) -> tuple:
    """The numpy index equivalent to a strided_slice spec (TensorFlow's masks; an ellipsis is implied at the end)."""
    begin, end, strides = attrs["begin"], attrs["end"], attrs["strides"]
    if not len(begin) == len(end) == len(strides):
        raise ValueError(f"begin, end and strides differ in length: {list(begin)}, {list(end)}, {list(strides)}")
    if 0 in strides:
        raise ValueError("strided_slice strides must be non-zero")
    if attrs["ellipsis_mask"].bit_count() > 1:
        raise ValueError("strided_slice allows at most one ellipsis")
    index = []
    for i, (b, e, s) in enumerate(zip(begin, end, strides)):
        bit = 1 << i
        if attrs["ellipsis_mask"] & bit:
            index.append(Ellipsis)
        elif attrs["new_axis_mask"] & bit:
            index.append(None)
        elif attrs["shrink_axis_mask"] & bit:
            index.append(b)
        else:
            index.append(slice(None if attrs["begin_mask"] & bit else b, None if attrs["end_mask"] & bit else e, s))
    return tuple(index)


@register
class StridedSlice(ShapeOp):
    name = "strided_slice"
    summary = "TensorFlow's strided slice, with begin/end/ellipsis/new_axis/shrink_axis masks."
    attrs = {"begin": Attr("ints"), "end": Attr("ints"), "strides": Attr("ints"),
             "begin_mask": Attr("int", 0), "end_mask": Attr("int", 0), "ellipsis_mask": Attr("int", 0),
             "new_axis_mask": Attr("int", 0), "shrink_axis_mask": Attr("int", 0)}

    def shapes(self, shape, attrs):
        index = strided_index(attrs)
        if shape is None:
            return [None]
        consumed = sum(1 for item in index if item is not None and item is not Ellipsis)
        if consumed > len(shape):
            raise ValueError(f"strided_slice spec indexes {consumed} dims of a rank-{len(shape)} operand")
        if Ellipsis not in index:
            index += (Ellipsis,)
        out, dims = [], iter(shape)
        for item in index:
            if item is None:
                out.append(1)
            elif item is Ellipsis:
                out.extend(next(dims) for _ in range(len(shape) - consumed))
            elif isinstance(item, int):
                d = next(dims)
                if isinstance(d, int) and not -d <= item < d:
                    raise ValueError(f"strided_slice index {item} is out of range for a dim of {d}")
            else:
                out.append(_slice_len(next(dims), item))
        return [tuple(out)]

    def kernel(self, inputs, attrs):
        return [np.array(inputs[0][strided_index(attrs)])]


def _slice_len(d: Dim, s: slice) -> Dim:
    if isinstance(d, int):
        return len(range(*s.indices(d)))
    return d if s.start is None and s.stop is None and s.step == 1 else None


@register
class Gather(OpDef):
    name = "gather"
    summary = "Takes params' slices at indices along axis; the first batch_dims dims are shared batch dims."
    operands = ("params", "indices")
    attrs = {"axis": Attr("int", 0), "batch_dims": Attr("int", 0)}
    traits = frozenset({PURE, QUANT_PRESERVING})

    def infer(self, types, attrs, consts):
        params, indices = types
        if indices.dtype not in (DType.i32, DType.i64):
            raise ValueError(f"gather indices must be i32 or i64, got {indices.dtype.value}")
        if params.shape is None or indices.shape is None:
            return [keep_quant(params, TensorType(params.dtype, None))]
        axis, bd = self.axes(len(params.shape), len(indices.shape), attrs)
        for i in range(bd):
            merge_dims(params.shape[i], indices.shape[i], f"gather batch dim {i}")
        shape = params.shape[:axis] + indices.shape[bd:] + params.shape[axis + 1:]
        return [keep_quant(params, TensorType(params.dtype, shape))]

    @staticmethod
    def axes(params_rank: int, indices_rank: int, attrs: dict) -> tuple[int, int]:
        bd = attrs["batch_dims"] + indices_rank if attrs["batch_dims"] < 0 else attrs["batch_dims"]
        axis = normalize_axis(attrs["axis"], params_rank)
        if not 0 <= bd <= min(axis, indices_rank):
            raise ValueError(f"batch_dims {attrs['batch_dims']} must be within [0, axis={axis}] and indices' rank")
        return axis, bd

    def kernel(self, inputs, attrs):
        params, indices = inputs
        axis, bd = self.axes(params.ndim, indices.ndim, attrs)
        if bd == 0:
            return [np.take(params, indices, axis=axis)]
        batch = params.shape[:bd]
        p = params.reshape((-1,) + params.shape[bd:])
        i = indices.reshape((-1,) + indices.shape[bd:])
        out = np.stack([np.take(p[b], i[b], axis=axis - bd) for b in range(p.shape[0])])
        return [out.reshape(batch + out.shape[1:])]


# ----- tile, broadcast_to, shape -----------------------------------------------------------------------------------
@register
class Tile(OpDef):
    name = "tile"
    summary = "Repeats the operand multiples[i] times along dim i."
    operands = ("x",)
    attrs = {"multiples": Attr("ints")}

    def infer(self, types, attrs, consts):
        x, mult = types[0], attrs["multiples"]
        if any(m < 0 for m in mult):
            raise ValueError(f"tile multiples must be >= 0, got {list(mult)}")
        if x.shape is None:
            return [TensorType(x.dtype, (None,) * len(mult))]
        if len(mult) != len(x.shape):
            raise ValueError(f"tile has {len(mult)} multiples for a rank-{len(x.shape)} operand")
        shape = tuple(d * m if isinstance(d, int) else (d if m == 1 else None) for d, m in zip(x.shape, mult))
        return [TensorType(x.dtype, shape)]

    def kernel(self, inputs, attrs):
        return [np.tile(inputs[0], attrs["multiples"])]


@register
class BroadcastTo(OpDef):
    name = "broadcast_to"
    summary = "Broadcasts the operand to shape (numpy rules)."
    operands = ("x",)
    attrs = {"shape": Attr("ints")}

    def infer(self, types, attrs, consts):
        x, shape = types[0], tuple(attrs["shape"])
        if x.shape is not None and (len(x.shape) > len(shape) or broadcast_shapes(x.shape, shape) != shape):
            raise ValueError(f"cannot broadcast {x} to {list(shape)}")
        return [TensorType(x.dtype, shape)]

    def kernel(self, inputs, attrs):
        return [np.array(np.broadcast_to(inputs[0], attrs["shape"]))]


@register
class Shape(OpDef):
    name = "shape"
    summary = "The operand's shape as a rank-1 integer tensor."
    operands = ("x",)
    attrs = {"dtype": Attr("dtype", DType.i32)}

    def infer(self, types, attrs, consts):
        if attrs["dtype"] not in (DType.i32, DType.i64):
            raise ValueError(f"shape's dtype must be i32 or i64, got {attrs['dtype'].value}")
        return [TensorType(attrs["dtype"], (types[0].rank,))]

    def kernel(self, inputs, attrs):
        return [np.array(inputs[0].shape, dtype=attrs["dtype"].numpy)]


@register
class Fill(OpDef):
    name = "fill"
    summary = "A tensor of the shape ``dims`` holds (computed at run time) filled with the scalar ``value``."
    operands = ("dims", "value")

    def infer(self, types, attrs, consts):
        dims, value = types
        if dims.dtype not in (DType.i32, DType.i64) or dims.rank not in (1, None):
            raise ValueError(f"fill's dims must be an i32 or i64 vector, got {dims}")
        if value.rank not in (0, None):
            raise ValueError(f"fill's value must be a scalar, got {value}")
        known = consts[0] if consts else None
        if known is not None:
            if any(int(d) < 0 for d in known.reshape(-1)):
                raise ValueError(f"fill's dims {known.tolist()} has a negative dimension")
            return [TensorType(value.dtype, tuple(int(d) for d in known.reshape(-1)))]
        if dims.shape is None or dims.shape[0] is None or not isinstance(dims.shape[0], int):
            return [TensorType(value.dtype, None)]
        return [TensorType(value.dtype, (None,) * dims.shape[0])]

    def kernel(self, inputs, attrs):
        dims, value = inputs
        shape = tuple(int(d) for d in dims.reshape(-1))
        limits.check_array(shape, value.dtype.itemsize, f"fill's result ({value.dtype}{list(shape)})")
        return [np.full(shape, value.reshape(()), dtype=value.dtype)]


# ----- argmax, one_hot ---------------------------------------------------------------------------------------------
@register
class ArgMax(OpDef):
    name = "argmax"
    summary = "Index of the largest value along axis (the first on ties)."
    operands = ("x",)
    attrs = {"axis": Attr("int"), "dtype": Attr("dtype", DType.i64)}

    def infer(self, types, attrs, consts):
        x = types[0]
        if attrs["dtype"] not in (DType.i32, DType.i64):
            raise ValueError(f"argmax's dtype must be i32 or i64, got {attrs['dtype'].value}")
        if x.shape is None:
            return [TensorType(attrs["dtype"], None)]
        axis = normalize_axis(attrs["axis"], len(x.shape))
        return [TensorType(attrs["dtype"], x.shape[:axis] + x.shape[axis + 1:])]

    def kernel(self, inputs, attrs):
        return [np.argmax(inputs[0], axis=attrs["axis"]).astype(attrs["dtype"].numpy)]


@register
class OneHot(OpDef):
    name = "one_hot"
    summary = "on_value where the new dim's index equals indices, else off_value (out-of-range: all off)."
    operands = ("indices",)
    attrs = {"depth": Attr("int"), "axis": Attr("int", -1), "on_value": Attr("float", 1.0),
             "off_value": Attr("float", 0.0), "dtype": Attr("dtype", DType.f32)}

    def infer(self, types, attrs, consts):
        x = types[0]
        if x.dtype not in (DType.i32, DType.i64, DType.u8):
            raise ValueError(f"one_hot indices must be integers, got {x.dtype.value}")
        if attrs["depth"] < 0:
            raise ValueError(f"one_hot depth must be >= 0, got {attrs['depth']}")
        if x.shape is None:
            return [TensorType(attrs["dtype"], None)]
        axis = len(x.shape) if attrs["axis"] == -1 else normalize_axis(attrs["axis"], len(x.shape) + 1)
        return [TensorType(attrs["dtype"], x.shape[:axis] + (attrs["depth"],) + x.shape[axis:])]

    def kernel(self, inputs, attrs):
        x, dtype = inputs[0], attrs["dtype"].numpy
        hot = x[..., None] == np.arange(attrs["depth"])
        out = np.where(hot, np.asarray(attrs["on_value"], dtype), np.asarray(attrs["off_value"], dtype))
        return [np.moveaxis(out, -1, attrs["axis"]) if attrs["axis"] != -1 else out]
