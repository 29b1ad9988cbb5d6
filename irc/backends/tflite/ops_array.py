"""TFLite emitters for shape ops, slicing, gather, reductions, quantization and opaque TensorFlow ops (Flex).

Shape-like attributes become constant int32 operands. A reshape, squeeze or expand_dims whose result has at most
one dimension unknown until run time is a RESHAPE to the result's shape (-1 for that dimension): one operator
that every delegate takes. Opaque ``tf.<Op>`` nodes become Flex custom operators (custom code ``Flex<Op>``, the
NodeDef in the custom options) for the Flex delegate; the legalizer allows them only with ``allow_tf_ops``.
"""

from __future__ import annotations

import numpy as np

from irc.backends.tflite.ops import emits, needs_rank, no_wide_floats, normal_axis, rank_of, with_tfl
from irc.formats.tflite.opnames import REDUCE
from irc.ir.graph import Node
from irc.ir.types import DType


def result_shape(node: Node) -> list[int] | None:
    """The result's shape with -1 for the one dimension unknown until run time; None if more are unknown."""
    shape = node.result.type.shape
    if shape is None or sum(not isinstance(d, int) for d in shape) > 1:
        return None
    return [d if isinstance(d, int) else -1 for d in shape]


def reshape_to(b, node: Node, shape) -> None:
    b.op("RESHAPE", [b.tensor(node.operands[0]), b.int_vector(shape)], [b.result(node.result)])


def copy(b, node: Node) -> None:
    """The operand itself, as a RESHAPE to its own shape (for ops that do nothing here)."""
    shape = result_shape(node)
    if shape is None:
        x = b.tensor(node.operands[0])
        shape_t = b.temp(node.result.type.with_dtype(DType.i32).with_shape((node.result.type.rank,)), "shape")
        b.op("SHAPE", [x], [shape_t], {"out_type": "INT32"})
        b.op("RESHAPE", [x, shape_t], [b.result(node.result)])
    else:
        reshape_to(b, node, shape)


def no_strings(node: Node) -> str | None:
    if any(v.type.dtype in (DType.f64, DType.bf16) for v in (*node.operands, *node.results)):
        return f"TFLite has no float64 or bfloat16 kernel for {node.op}"
    return None


# ----- reshape, transpose, squeeze, expand_dims ----------------------------------------------------------------------
@emits("reshape")
def reshape(b, node):
    reshape_to(b, node, result_shape(node) or list(node.attr("shape")))


@emits("dynamic_reshape")
def dynamic_reshape(b, node):
    shape = node.operands[1]
    if shape.type.dtype is not DType.i32:  # TFLite's RESHAPE reads an int32 shape
        cast = b.temp(shape.type.with_dtype(DType.i32), "shape")
        b.op("CAST", [b.tensor(shape)], [cast], {"in_data_type": "INT64", "out_data_type": "INT32"})
        b.op("RESHAPE", [b.tensor(node.operands[0]), cast], [b.result(node.result)])
        return
    b.op("RESHAPE", [b.tensor(node.operands[0]), b.tensor(shape)], [b.result(node.result)])


@emits("squeeze", check=needs_rank(0))
def squeeze(b, node):
    shape = result_shape(node)
    if shape is not None:
        reshape_to(b, node, shape)
        return
    rank = rank_of(node.operands[0])
    axes = [normal_axis(a, rank) for a in node.attr("axes")]
    b.op("SQUEEZE", [b.tensor(node.operands[0])], [b.result(node.result)], {"squeeze_dims": axes})


@emits("expand_dims")
def expand_dims(b, node):
    shape = result_shape(node)
    if shape is not None:
        reshape_to(b, node, shape)
        return
    b.op("EXPAND_DIMS", [b.tensor(node.operands[0]), b.int_constant(node.attr("axis"))], [b.result(node.result)])


@emits("transpose")
def transpose(b, node):
    b.op("TRANSPOSE", [b.tensor(node.operands[0]), b.int_vector(node.attr("perm"))], [b.result(node.result)])


# ----- concat, split, pack, unpack -----------------------------------------------------------------------------------
@emits(*with_tfl("concat"), check=lambda node: needs_rank(0)(node) or no_strings(node))
def concat(b, node):
    from irc.backends.tflite.ops import activated

    axis = normal_axis(node.attr("axis"), rank_of(node.result))
    # TFLite's concatenation kernels ignore a fused activation: it follows as its own operator
    activated(b, node, "CONCATENATION", [b.tensor(v) for v in node.operands], {"axis": axis}, fusable=False)


@emits("split", check=needs_rank(0))
def split(b, node):
    x = node.operands[0]
    axis = normal_axis(node.attr("axis"), rank_of(x))
    sizes = list(node.attr("sizes"))
    outputs = [b.result(r) for r in node.results]
    count = len(sizes)
    if len(set(sizes)) == 1 and -1 not in sizes:
        b.op("SPLIT", [b.int_constant(axis), b.tensor(x)], outputs, {"num_splits": count})
    else:
        b.op("SPLIT_V", [b.tensor(x), b.int_vector(sizes), b.int_constant(axis)], outputs, {"num_splits": count})


@emits("pack", check=needs_rank(0))
def pack(b, node):
    axis = normal_axis(node.attr("axis"), rank_of(node.result))
    b.op("PACK", [b.tensor(v) for v in node.operands], [b.result(node.result)],
         {"values_count": len(node.operands), "axis": axis})


@emits("unpack", check=needs_rank(0))
def unpack(b, node):
    x = node.operands[0]
    axis = normal_axis(node.attr("axis"), rank_of(x))
    b.op("UNPACK", [b.tensor(x)], [b.result(r) for r in node.results], {"num": len(node.results), "axis": axis})


# ----- slicing, gather, tile ------------------------------------------------------------------------------------------
@emits("slice")
def slice_(b, node):
    begin, size = node.attr("begin"), node.attr("size")
    b.op("SLICE", [b.tensor(node.operands[0]), b.int_vector(begin), b.int_vector(size)], [b.result(node.result)])


_MASKS = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")


@emits("strided_slice")
def strided_slice(b, node):
    inputs = [b.tensor(node.operands[0])] + [b.int_vector(node.attr(k)) for k in ("begin", "end", "strides")]
    b.op("STRIDED_SLICE", inputs, [b.result(node.result)], {k: node.attr(k) for k in _MASKS})


@emits("gather", check=no_strings)
def gather(b, node):
    params, indices = node.operands
    if indices.is_constant and indices.type.dtype is DType.i64:
        values = indices.constant
        if values.size == 0 or np.abs(values).max() < 2**31:
            idx = b.constant(values.astype(np.int32))  # int32 indices, as TensorFlow's converter writes them
        else:
            idx = b.tensor(indices)
    else:
        idx = b.tensor(indices)
    fields = {"axis": node.attr("axis"), "batch_dims": node.attr("batch_dims")}
    b.op("GATHER", [b.tensor(params), idx], [b.result(node.result)], fields)


@emits("tile", check=no_strings)
def tile(b, node):
    b.op("TILE", [b.tensor(node.operands[0]), b.int_vector(node.attr("multiples"))], [b.result(node.result)])


@emits("broadcast_to", check=no_strings)
def broadcast_to(b, node):
    b.op("BROADCAST_TO", [b.tensor(node.operands[0]), b.int_vector(node.attr("shape"))], [b.result(node.result)])


@emits("shape")
def shape(b, node):
    out_type = "INT64" if node.attr("dtype") is DType.i64 else "INT32"
    b.op("SHAPE", [b.tensor(node.operands[0])], [b.result(node.result)], {"out_type": out_type})


@emits("argmax", check=lambda node: needs_rank(0)(node) or no_strings(node))
def argmax(b, node):
    x = node.operands[0]
    axis = normal_axis(node.attr("axis"), rank_of(x))
    out_type = "INT64" if node.attr("dtype") is DType.i64 else "INT32"
    b.op("ARG_MAX", [b.tensor(x), b.int_vector([axis])], [b.result(node.result)], {"output_type": out_type})


@emits("one_hot", check=no_strings)
def one_hot(b, node):
    dtype = node.attr("dtype").numpy
    inputs = [b.tensor(node.operands[0]), b.int_constant(node.attr("depth")),
              b.constant(np.asarray(node.attr("on_value"), dtype)), b.constant(np.asarray(node.attr("off_value"), dtype))]
    b.op("ONE_HOT", inputs, [b.result(node.result)], {"axis": node.attr("axis")})


# ----- reductions ------------------------------------------------------------------------------------------------------


@emits(*REDUCE, check=lambda node: needs_rank(0)(node) or no_wide_floats(node))
def reduce(b, node):
    x = node.operands[0]
    rank = rank_of(x)
    axes = sorted({normal_axis(a, rank) for a in node.attr("axes")})
    if not axes:
        copy(b, node)  # reducing over no axis leaves the operand as it is
        return
    b.op(REDUCE[node.op], [b.tensor(x), b.int_vector(axes)], [b.result(node.result)],
         {"keep_dims": node.attr("keepdims")})


# ----- quantization ----------------------------------------------------------------------------------------------------
@emits("quantize", "requantize")
def quantize(b, node):
    # the result's tensor carries the parameters; QUANTIZE also requantizes between integer types
    b.op("QUANTIZE", [b.tensor(node.operands[0])], [b.result(node.result)])


@emits("dequantize")
def dequantize(b, node):
    from irc.backends.tflite.ops_nn import takes_widened_weights

    if node.operands[0].is_constant and node.result.uses and not b.graph.is_output(node.result) and \
            all(takes_widened_weights(user, i) for user, i in node.result.uses):
        return  # weight-only weights: each user writes the constant in its layout, with a DEQUANTIZE of its own
    b.op("DEQUANTIZE", [b.tensor(node.operands[0])], [b.result(node.result)])


@emits("fake_quant")
def fake_quant(b, node):
    """TFLite's FAKE_QUANT for one range; per channel (which the builtin lacks), narrow_range (which its kernel
    refuses at run time) or a min = max = 0 range (which it turns into NaN) as TensorFlow's arithmetic in
    builtins: clamp, shift, scale, floor(+0.5), shift, scale."""
    x, a = node.operands[0], node.attrs
    lo, hi = np.asarray(a["min"], np.float32), np.asarray(a["max"], np.float32)
    bits, narrow = a.get("num_bits", 8), a.get("narrow_range", False)
    if lo.size == 1 and not narrow and not (lo[0] == 0 and hi[0] == 0):
        b.op("FAKE_QUANT", [b.tensor(x)], [b.result(node.result)],
             {"min": float(lo[0]), "max": float(hi[0]), "num_bits": bits, "narrow_range": narrow})
        return
    from irc.ops.quant import nudged_range

    nmin, nmax, scale, zero = nudged_range(lo, hi, bits, narrow)
    empty = (lo == 0) & (hi == 0)  # TF gives zeros: make every step below give 0
    qmin = np.float32(1 if narrow else 0)
    nmin, nmax = np.where(empty, 0, nmin), np.where(empty, 0, nmax)
    with np.errstate(divide="ignore"):
        inv = np.where(empty, 0, np.float32(1) / np.where(empty, 1, scale))
    steps = [("MAXIMUM", nmin), ("MINIMUM", nmax), ("SUB", nmin), ("MUL", inv), ("ADD", np.float32(0.5)),
             ("FLOOR", None), ("SUB", np.where(empty, 0, zero - qmin)), ("MUL", np.where(empty, 0, scale))]
    current = b.tensor(x)
    for i, (code, operand) in enumerate(steps):
        out = b.result(node.result) if i == len(steps) - 1 else b.temp(x.type, f"fake_quant{i}")
        inputs = [current] if operand is None else [current, b.constant(np.asarray(operand, np.float32))]
        b.op(code, inputs, [out])
        current = out

# ----- opaque TensorFlow ops -------------------------------------------------------------------------------------------
def _flex_check(node: Node) -> str | None:
    if node.attrs.get("library"):
        return "it calls TensorFlow functions, which a Flex op cannot carry"
    if not node.attrs.get("node_def"):
        return "it has no NodeDef"
    return None


@emits("tf.*", check=_flex_check)
def flex(b, node):
    from irc.formats.tflite.flatbuffer import FLEX_PREFIX, flex_options

    name = node.op.removeprefix("tf.")
    b.op("CUSTOM", [b.tensor(v) for v in node.operands], [b.result(r) for r in node.results],
         custom_code=FLEX_PREFIX + name, custom_options=flex_options(name, node.attrs["node_def"]))


# ----- run-time shapes (TensorLists of run-time length) ---------------------------------------------------------------
@emits("fill")
def fill(b, node):
    dims, value = node.operands
    b.op("FILL", [b.tensor(dims), b.tensor(value)], [b.result(node.result)])

