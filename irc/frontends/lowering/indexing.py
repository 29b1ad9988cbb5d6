"""Cumulative sums, rolls, XLA's dynamic slices, top-k, and n-dimensional gathers and scatters.

Axes, shifts, sizes, k and a scatter's shape must be constants (irc's ops take them as attributes); offsets and
indices may be computed at run time. Index operands of other integer types are cast to i32.
"""

from __future__ import annotations

from irc.frontends.lowering import lowers
from irc.frontends.lowering.context import CannotLower, Lowerer, tf_dtype
from irc.frontends.tfgraph import TFNode
from irc.ir.graph import Value
from irc.ir.types import DType
from irc.ops.indexing import INDEX_DTYPES


def _index(cx: Lowerer, v: Value) -> Value:
    return v if v.type.dtype in INDEX_DTYPES else cx.op("cast", v, to=DType.i32)


@lowers("Cumsum")
def cumsum(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, axis = args
    axis = cx.axes([cx.int_scalar(axis, "the axis")], cx.rank(x))[0]
    return cx.op("cumsum", x, axis=axis, exclusive=bool(node.attrs.get("exclusive", False)),
                 reverse=bool(node.attrs.get("reverse", False)))


@lowers("Roll")
def roll(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, shift, axis = args
    shifts, axes = cx.ints(shift, "the shift"), cx.ints(axis, "the axis")
    if len(shifts) != len(axes):
        raise CannotLower(f"it has {len(shifts)} shifts for {len(axes)} axes")
    return cx.op("roll", x, shifts=tuple(shifts), axes=tuple(cx.axes(axes, cx.rank(x))))


@lowers("XlaDynamicSlice")
def dynamic_slice(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, begin, size = args
    sizes = cx.ints(size, "the slice size")
    cx.shape(x, rank=len(sizes), what="the operand")
    if any(s < 0 for s in sizes):  # sizes are exact: XLA has no -1 for "to the end"
        raise CannotLower(f"its sizes {sizes} must be >= 0")
    return cx.op("dynamic_slice", x, _index(cx, begin), size=tuple(sizes))


@lowers("XlaDynamicUpdateSlice")
def dynamic_update_slice(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, update, begin = args
    return cx.op("dynamic_update_slice", x, update, _index(cx, begin))


@lowers("TopKV2", "TopK")
def top_k(cx: Lowerer, node: TFNode, args: list) -> list:
    """``sorted=False`` leaves the order to the kernel: sorted is one such order."""
    k = cx.int_scalar(args[1], "k") if node.op == "TopKV2" else int(node.attrs["k"])
    values, indices = cx.add("top_k", [args[0]], {"k": k})
    index_type = tf_dtype(node.attrs.get("index_type", "int32"))
    if index_type is not DType.i32:
        indices = cx.op("cast", indices, to=index_type)
    return [values, indices]


def _check_policy(node: TFNode) -> None:
    """irc's ops refuse an index outside the target, as TF's default policy; IGNORE (skip it) is another op."""
    policy = node.attrs.get("bad_indices_policy", "")
    if policy not in ("", "DEFAULT", "ERROR"):
        raise CannotLower(f"bad_indices_policy {policy!r} is not irc's (an index outside the target is an error)")


@lowers("GatherNd", "ResourceGatherNd")
def gather_nd(cx: Lowerer, node: TFNode, args: list) -> Value:
    _check_policy(node)
    params, indices = args
    return cx.op("gather_nd", params, _index(cx, indices))


@lowers("ScatterNd")
def scatter_nd(cx: Lowerer, node: TFNode, args: list) -> Value:
    _check_policy(node)
    indices, updates, shape = args
    return cx.op("scatter_nd", _index(cx, indices), updates, shape=tuple(cx.ints(shape, "the shape")))


@lowers("TensorScatterUpdate", "TensorScatterAdd")
def tensor_scatter(cx: Lowerer, node: TFNode, args: list) -> Value:
    _check_policy(node)
    tensor, indices, updates = args
    op = "tensor_scatter_update" if node.op == "TensorScatterUpdate" else "tensor_scatter_add"
    return cx.op(op, tensor, _index(cx, indices), updates)
