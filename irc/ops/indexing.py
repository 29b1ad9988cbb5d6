"""Indexing ops: cumulative sums, rolls, slices at run-time offsets, top-k, and n-dimensional gathers and scatters.

``dynamic_slice`` and ``dynamic_update_slice`` take their offsets as an operand (a rank-1 integer tensor, one entry
per dim) and clamp them so the block lies inside the operand, as XLA does. The ``*_nd`` ops read an index tensor
whose last dim addresses the leading dims of the target: an index ``[i, j]`` names the slice ``target[i, j, ...]``.
An index outside the target is an error, as in TensorFlow's CPU kernels. Scatters into the same place add up
(``scatter_nd``, ``tensor_scatter_add``); ``tensor_scatter_update`` writes in index order, so the last one wins.
"""

from __future__ import annotations

import numpy as np

from irc.ir.types import DType, TensorType
from irc.ops.base import PURE, QUANT_PRESERVING, Attr, OpDef, normalize_axis, register
from irc.ops.shape import keep_quant, merge_dims

INDEX_DTYPES = (DType.i32, DType.i64)


def _check_index_dtype(t: TensorType, op: str, what: str) -> None:
    if t.dtype not in INDEX_DTYPES:
        raise ValueError(f"{op} {what} must be i32 or i64, got {t.dtype.value}")


# ----- cumsum, roll ------------------------------------------------------------------------------------------------
@register
class Cumsum(OpDef):
    name = "cumsum"
    summary = "Running sum along axis; exclusive leaves each element out of its own sum, reverse runs from the end."
    operands = ("x",)
    attrs = {"axis": Attr("int"), "exclusive": Attr("bool", False), "reverse": Attr("bool", False)}

    def infer(self, types, attrs, consts):
        x = types[0]
        if x.dtype in (DType.bool, DType.str):
            raise ValueError(f"cumsum takes a numeric tensor, got {x.dtype.value}")
        if x.shape is not None:
            if not x.shape:
                raise ValueError("cumsum needs an operand of rank 1 or more")
            normalize_axis(attrs["axis"], len(x.shape))
        return [TensorType(x.dtype, x.shape)]

    def kernel(self, inputs, attrs):
        x, axis = inputs[0], attrs["axis"]
        if attrs["reverse"]:
            x = np.flip(x, axis)
        out = np.cumsum(x, axis=axis, dtype=x.dtype)
        if attrs["exclusive"]:
            out = np.concatenate([np.zeros_like(np.take(out, [0], axis=axis)),
                                  np.delete(out, -1, axis=axis)], axis=axis) if x.shape[axis] else out
        if attrs["reverse"]:
            out = np.flip(out, axis)
        return [np.ascontiguousarray(out)]


@register
class Roll(OpDef):
    name = "roll"
    summary = "Rotates the operand by shifts[i] places along axes[i] (negative: backwards; a repeated axis adds up)."
    operands = ("x",)
    attrs = {"shifts": Attr("ints"), "axes": Attr("ints")}
    traits = frozenset({PURE, QUANT_PRESERVING})

    def infer(self, types, attrs, consts):
        x = types[0]
        if len(attrs["shifts"]) != len(attrs["axes"]):
            raise ValueError(f"roll has {len(attrs['shifts'])} shifts for {len(attrs['axes'])} axes")
        if x.shape is not None:
            for a in attrs["axes"]:
                normalize_axis(a, len(x.shape))
        return [keep_quant(x, TensorType(x.dtype, x.shape))]

    def kernel(self, inputs, attrs):
        return [np.roll(inputs[0], attrs["shifts"], attrs["axes"])]

    @staticmethod
    def net_shifts(attrs: dict, shape: tuple) -> dict[int, int]:
        """Axis -> shift in [0, dim), for the axes that move (dims must be known)."""
        net: dict[int, int] = {}
        for shift, axis in zip(attrs["shifts"], attrs["axes"]):
            axis = normalize_axis(axis, len(shape))
            net[axis] = net.get(axis, 0) + shift
        return {a: s % shape[a] for a, s in net.items() if shape[a] and s % shape[a]}


# ----- slices at run-time offsets ----------------------------------------------------------------------------------
def clamped_begin(begin: np.ndarray, shape: tuple[int, ...], size: tuple[int, ...]) -> tuple[int, ...]:
    """XLA's rule: each offset is clamped to [0, dim - size] so the block lies inside the operand."""
    return tuple(int(min(max(int(b), 0), d - s)) for b, d, s in zip(np.reshape(begin, -1), shape, size))


def _check_begin(begin: TensorType, rank: int | None, op: str) -> None:
    _check_index_dtype(begin, op, "offsets")
    if begin.shape is not None:
        if len(begin.shape) != 1:
            raise ValueError(f"{op} offsets must be a vector, got rank {len(begin.shape)}")
        if rank is not None:
            merge_dims(begin.shape[0], rank, f"{op} offsets' length and the operand's rank")


@register
class DynamicSlice(OpDef):
    name = "dynamic_slice"
    summary = "The block of the given size at offsets read at run time (clamped to lie inside the operand)."
    operands = ("x", "begin")
    attrs = {"size": Attr("ints")}
    traits = frozenset({PURE, QUANT_PRESERVING})

    def infer(self, types, attrs, consts):
        x, begin = types
        size = tuple(attrs["size"])
        if any(s < 0 for s in size):
            raise ValueError(f"dynamic_slice sizes must be >= 0, got {list(size)}")
        _check_begin(begin, len(size), "dynamic_slice")
        if x.shape is not None:
            if len(x.shape) != len(size):
                raise ValueError(f"dynamic_slice has {len(size)} sizes for a rank-{len(x.shape)} operand")
            for i, (d, s) in enumerate(zip(x.shape, size)):
                if isinstance(d, int) and s > d:
                    raise ValueError(f"dynamic_slice size {s} exceeds dim {i} of size {d}")
        return [keep_quant(x, TensorType(x.dtype, size))]

    def kernel(self, inputs, attrs):
        x, begin = inputs
        size = tuple(attrs["size"])
        start = clamped_begin(begin, x.shape, size)
        return [np.ascontiguousarray(x[tuple(slice(b, b + s) for b, s in zip(start, size))])]


@register
class DynamicUpdateSlice(OpDef):
    name = "dynamic_update_slice"
    summary = "The operand with update written at offsets read at run time (clamped to lie inside the operand)."
    operands = ("x", "update", "begin")
    traits = frozenset({PURE, QUANT_PRESERVING})

    def infer(self, types, attrs, consts):
        x, update, begin = types
        if x.dtype != update.dtype:
            raise ValueError(f"dynamic_update_slice update is {update.dtype.value}, the operand {x.dtype.value}")
        rank = x.rank if x.rank is not None else update.rank
        _check_begin(begin, rank, "dynamic_update_slice")
        if x.shape is not None and update.shape is not None:
            if len(x.shape) != len(update.shape):
                raise ValueError(f"dynamic_update_slice update has rank {len(update.shape)}, the operand "
                                 f"{len(x.shape)}")
            for i, (d, u) in enumerate(zip(x.shape, update.shape)):
                if isinstance(d, int) and isinstance(u, int) and u > d:
                    raise ValueError(f"dynamic_update_slice update dim {i} of size {u} exceeds the operand's {d}")
        return [keep_quant(x, TensorType(x.dtype, x.shape))]

    def kernel(self, inputs, attrs):
        x, update, begin = inputs
        start = clamped_begin(begin, x.shape, update.shape)
        out = x.copy()
        out[tuple(slice(b, b + s) for b, s in zip(start, update.shape))] = update
        return [out]


# ----- top_k -------------------------------------------------------------------------------------------------------
@register
class TopK(OpDef):
    name = "top_k"
    summary = "The k largest entries along the last dim, largest first (ties: lower index first), and their indices."
    operands = ("x",)
    attrs = {"k": Attr("int")}

    def infer(self, types, attrs, consts):
        x, k = types[0], attrs["k"]
        if x.dtype in (DType.bool, DType.str):
            raise ValueError(f"top_k takes a numeric tensor, got {x.dtype.value}")
        if k < 0:
            raise ValueError(f"top_k k must be >= 0, got {k}")
        if x.shape is None:
            return [TensorType(x.dtype, None), TensorType(DType.i32, None)]
        if not x.shape:
            raise ValueError("top_k needs an operand of rank 1 or more")
        last = x.shape[-1]
        if isinstance(last, int) and k > last:
            raise ValueError(f"top_k k = {k} exceeds the last dim of size {last}")
        shape = x.shape[:-1] + (k,)
        return [TensorType(x.dtype, shape), TensorType(DType.i32, shape)]

    def kernel(self, inputs, attrs):
        x, k = inputs[0], attrs["k"]
        # descending keys that keep the order of ties under a stable sort (~x reverses integers without overflow)
        key = -x if x.dtype.kind == "f" else ~x
        order = np.argsort(key, axis=-1, kind="stable")[..., :k]
        return [np.take_along_axis(x, order, axis=-1), order.astype(np.int32)]


# ----- gather_nd, scatters -----------------------------------------------------------------------------------------
def _nd_index(indices: np.ndarray, shape: tuple[int, ...], op: str) -> tuple[np.ndarray, ...]:
    """The index tensor as a tuple of flat coordinate arrays, one per addressed dim; refuses out-of-range entries."""
    depth = indices.shape[-1]
    flat = indices.reshape(int(np.prod(indices.shape[:-1])), depth).astype(np.int64)
    for i in range(depth):
        bad = (flat[:, i] < 0) | (flat[:, i] >= shape[i])
        if bad.any():
            raise ValueError(f"{op} index {flat[bad.argmax()].tolist()} lies outside shape {list(shape)}")
    return tuple(flat.T)


def _indexed_shape(indices: TensorType, target: tuple | None, op: str):
    """``indices.shape[:-1] + target[depth:]``, the shape a gather gives and a scatter takes; None if unknown."""
    _check_index_dtype(indices, op, "indices")
    if indices.shape is None:
        return None
    if not indices.shape:
        raise ValueError(f"{op} indices need rank 1 or more")
    depth = indices.shape[-1]
    if not isinstance(depth, int):
        return None
    if depth < 1:
        raise ValueError(f"{op} indices' last dim must be 1 or more")
    if target is None:
        return None
    if depth > len(target):
        raise ValueError(f"{op} indices address {depth} dims of a rank-{len(target)} tensor")
    return indices.shape[:-1] + tuple(target[depth:])


@register
class GatherNd(OpDef):
    name = "gather_nd"
    summary = "The slices of params that indices' last dim addresses: indices.shape[:-1] + params.shape[depth:]."
    operands = ("params", "indices")
    traits = frozenset({PURE, QUANT_PRESERVING})

    def infer(self, types, attrs, consts):
        params, indices = types
        return [keep_quant(params, TensorType(params.dtype, _indexed_shape(indices, params.shape, self.name)))]

    def kernel(self, inputs, attrs):
        params, indices = inputs
        index = _nd_index(indices, params.shape, self.name)
        out = params[index]
        return [np.ascontiguousarray(out.reshape(indices.shape[:-1] + params.shape[indices.shape[-1]:]))]


def _check_updates(indices: TensorType, updates: TensorType, target: tuple | None, op: str) -> None:
    want = _indexed_shape(indices, target, op)
    if want is None or updates.shape is None:
        return
    if len(want) != len(updates.shape):
        raise ValueError(f"{op} updates have rank {len(updates.shape)}, where indices and the target need "
                         f"{len(want)}")
    for i, (w, u) in enumerate(zip(want, updates.shape)):
        merge_dims(w, u, f"{op} updates' dim {i} and the indexed slices'")


@register
class ScatterNd(OpDef):
    name = "scatter_nd"
    summary = "Zeros of shape with updates added at the slices indices address (repeated indices add up)."
    operands = ("indices", "updates")
    attrs = {"shape": Attr("ints")}

    def infer(self, types, attrs, consts):
        indices, updates = types
        shape = tuple(attrs["shape"])
        if any(d < 0 for d in shape):
            raise ValueError(f"scatter_nd shape must be >= 0, got {list(shape)}")
        _check_updates(indices, updates, shape, self.name)
        return [TensorType(updates.dtype, shape)]

    def kernel(self, inputs, attrs):
        indices, updates = inputs
        out = np.zeros(attrs["shape"], updates.dtype)
        return [_scatter(out, indices, updates, self.name, add=True)]


def _scatter(out: np.ndarray, indices: np.ndarray, updates: np.ndarray, op: str, add: bool) -> np.ndarray:
    index = _nd_index(indices, out.shape, op)
    rows = updates.reshape((-1,) + out.shape[indices.shape[-1]:])
    if add:
        np.add.at(out, index, rows)
    else:
        out[index] = rows  # numpy assigns in order: the last of repeated indices wins
    return out


class TensorScatter(OpDef):
    """tensor with the slices that indices address replaced by (or added to) updates."""

    operands = ("tensor", "indices", "updates")
    add = False

    def infer(self, types, attrs, consts):
        tensor, indices, updates = types
        if tensor.dtype != updates.dtype:
            raise ValueError(f"{self.name} updates are {updates.dtype.value}, the tensor {tensor.dtype.value}")
        _check_updates(indices, updates, tensor.shape, self.name)
        return [TensorType(tensor.dtype, tensor.shape)]

    def kernel(self, inputs, attrs):
        tensor, indices, updates = inputs
        return [_scatter(tensor.copy(), indices, updates, self.name, add=self.add)]


@register
class TensorScatterUpdate(TensorScatter):
    name = "tensor_scatter_update"
    summary = "tensor with the slices indices address replaced by updates (repeated indices: the last wins)."


@register
class TensorScatterAdd(TensorScatter):
    name = "tensor_scatter_add"
    summary = "tensor with updates added at the slices indices address (repeated indices add up)."
    add = True
