"""Elementwise math, activations and reductions.

Most TF elementwise ops map one to one onto an irc op (the tables below); TF's broadcasting is numpy's, as
irc's. Ops irc has no single op for are written with a few: Erfc = 1 - erf, Selu, Softsign, Log1p, ...
"""

from __future__ import annotations

import numpy as np

from irc.frontends.lowering import lowers
from irc.frontends.lowering.context import CannotLower, Lowerer, tf_dtype
from irc.frontends.tfgraph import TFNode
from irc.ir.graph import Value
from irc.ir.types import Dim, DType, divide_dim, scale_dim

# TF binary op -> irc op (same operands, numpy broadcasting).
BINARY = {
    "AddV2": "add", "Add": "add", "Sub": "sub", "Mul": "mul", "RealDiv": "div", "Div": "div",
    "Maximum": "maximum", "Minimum": "minimum", "Pow": "pow", "SquaredDifference": "squared_difference",
    "FloorDiv": "floor_div", "FloorMod": "floor_mod",
    "Equal": "equal", "NotEqual": "not_equal", "Less": "less", "LessEqual": "less_equal",
    "Greater": "greater", "GreaterEqual": "greater_equal", "LogicalAnd": "logical_and", "LogicalOr": "logical_or",
}
# TF unary op -> irc op.
UNARY = {
    "Neg": "neg", "Abs": "abs", "Sqrt": "sqrt", "Rsqrt": "rsqrt", "Exp": "exp", "Log": "log", "Square": "square",
    "Sin": "sin", "Cos": "cos", "Floor": "floor", "Ceil": "ceil", "Round": "round", "Rint": "round",
    "Sign": "sign", "Erf": "erf", "Reciprocal": "reciprocal", "Inv": "reciprocal", "LogicalNot": "logical_not",
    "Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh", "Elu": "elu", "Softplus": "softplus",
}
# Integer ops on the symbolic dims of shape vectors (Shape -> StridedSlice -> Mul -> Pack -> Reshape).
_DIM_ARITH = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "floor_div": lambda a, b: a // b,
}


@lowers(*BINARY)
def binary(cx: Lowerer, node: TFNode, args: list) -> Value:
    """AddV2, Sub, Mul, RealDiv, Maximum, Pow, SquaredDifference, Equal, Less, LogicalAnd, ..."""
    op = BINARY[node.op]
    x, y = args
    out = cx.op(op, x, y)
    if op in _DIM_ARITH and not out.is_constant:
        _track_dim_arith(cx, op, x, y, out)
    return out


def _track_dim_arith(cx: Lowerer, op: str, x: Value, y: Value, out: Value) -> None:
    """x * 2 where x is the symbolic batch: keep what is known (a known factor times an unknown is unknown)."""
    a, b = cx.dims(x), cx.dims(y)
    if a is None or b is None or out.type.rank is None or out.type.rank > 1:
        return
    n = max(len(a), len(b))
    if len(a) not in (1, n) or len(b) not in (1, n):
        return
    a, b = (a * n if len(a) == 1 else a), (b * n if len(b) == 1 else b)
    result: list[Dim] = []
    for p, q in zip(a, b):
        if isinstance(p, int) and isinstance(q, int):
            result.append(int(_DIM_ARITH[op](p, q)))
        elif op == "mul" and (isinstance(p, int) or isinstance(q, int)):
            result.append(scale_dim(q, p) if isinstance(p, int) else scale_dim(p, q))  # batch * 16 = batch_x16
        elif op == "floor_div" and isinstance(q, int):
            result.append(divide_dim(p, q))  # batch_x16 // 4 = batch_x4
        elif op in ("add", "sub") and q == 0:
            result.append(p)
        else:
            result.append(None)
    cx.symbolic[out] = tuple(result)


@lowers(*UNARY)
def unary(cx: Lowerer, node: TFNode, args: list) -> Value:
    """Neg, Abs, Sqrt, Rsqrt, Exp, Log, Relu, Relu6, Sigmoid, Tanh, Elu, Softplus, Erf, ..."""
    return cx.op(UNARY[node.op], args[0])


@lowers("Identity", "StopGradient", "Snapshot", "PreventGradient", "EnsureShape", "CheckNumerics")
def identity(cx: Lowerer, node: TFNode, args: list):
    """Ops that pass their (first) input through."""
    return args[0]


@lowers("IdentityN")
def identity_n(cx: Lowerer, node: TFNode, args: list):
    return list(args)


@lowers("BiasAdd", "BiasAddV1")
def bias_add(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, bias = args
    if node.attrs.get("data_format", "NHWC") == "NCHW" and cx.rank(x) > 2:
        bias = cx.op("reshape", bias, shape=(-1,) + (1,) * (cx.rank(x) - 2))
    return cx.op("add", x, bias)


@lowers("AddN")
def add_n(cx: Lowerer, node: TFNode, args: list) -> Value:
    total = args[0]
    for x in args[1:]:
        total = cx.op("add", total, x)
    return total


@lowers("DivNoNan")
def div_no_nan(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, y = args
    zero = cx.const(np.zeros((), y.type.dtype.numpy))
    safe = cx.op("select", cx.op("equal", y, zero), cx.const(np.ones((), y.type.dtype.numpy)), y)
    return cx.op("select", cx.op("equal", y, zero), zero, cx.op("div", x, safe))


@lowers("TruncateDiv")
def truncate_div(cx: Lowerer, node: TFNode, args: list) -> Value:
    if not args[0].type.dtype.is_integer:
        raise CannotLower("TruncateDiv on floats")
    return cx.op("div", *args)  # irc's integer div truncates toward zero


@lowers("Erfc")
def erfc(cx: Lowerer, node: TFNode, args: list) -> Value:
    """erfc(x) = 1 - erf(x) (Keras' exact GELU is 0.5 * x * erfc(-x / sqrt(2)))."""
    x = args[0]
    return cx.op("sub", _scalar(cx, 1, x), cx.op("erf", x))


@lowers("Log1p")
def log1p(cx: Lowerer, node: TFNode, args: list) -> Value:
    return cx.op("log", cx.op("add", args[0], _scalar(cx, 1, args[0])))


@lowers("Expm1")
def expm1(cx: Lowerer, node: TFNode, args: list) -> Value:
    return cx.op("sub", cx.op("exp", args[0]), _scalar(cx, 1, args[0]))


@lowers("Selu")
def selu(cx: Lowerer, node: TFNode, args: list) -> Value:
    """scale * (x if x > 0 else alpha * (exp(x) - 1)), with TF's constants."""
    x = args[0]
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    positive = cx.op("mul", x, _scalar(cx, scale, x))
    negative = cx.op("mul", cx.op("elu", x), _scalar(cx, scale * alpha, x))
    return cx.op("select", cx.op("greater", x, _scalar(cx, 0, x)), positive, negative)


@lowers("Softsign")
def softsign(cx: Lowerer, node: TFNode, args: list) -> Value:
    x = args[0]
    return cx.op("div", x, cx.op("add", cx.op("abs", x), _scalar(cx, 1, x)))


@lowers("LeakyRelu")
def leaky_relu(cx: Lowerer, node: TFNode, args: list) -> Value:
    return cx.op("leaky_relu", args[0], alpha=float(node.attrs.get("alpha", 0.2)))


@lowers("Softmax")
def softmax(cx: Lowerer, node: TFNode, args: list) -> Value:
    return cx.op("softmax", args[0], axis=-1)


@lowers("LogSoftmax")
def log_softmax(cx: Lowerer, node: TFNode, args: list) -> Value:
    return cx.op("log_softmax", args[0], axis=-1)


@lowers("Cast")
def cast(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, to = args[0], tf_dtype(node.attrs["DstT"])
    if x.type.dtype is to:
        return x
    out = cx.op("cast", x, to=to)
    if not out.is_constant and (to.is_integer or to.is_float) and (dims := cx.dims(x)) is not None:
        cx.symbolic[out] = dims
    return out


# ----- reductions -------------------------------------------------------------------------------------------------
REDUCE = {"Mean": "mean", "Sum": "sum", "Max": "max", "Min": "min", "Prod": "prod"}


@lowers(*REDUCE)
def reduce(cx: Lowerer, node: TFNode, args: list) -> Value:
    """Mean, Sum, Max, Min, Prod over constant axes."""
    x, axes_value = args
    axes = cx.ints(axes_value, "the reduction axes")
    keep = bool(node.attrs.get("keep_dims", False))
    rank = cx.rank(x)
    axes = tuple(sorted(set(cx.axes(axes, rank, "the reduction axes"))))
    if not axes:
        return x
    out = cx.op(REDUCE[node.op], x, axes=axes, keepdims=keep)
    if node.op == "Prod" and not out.is_constant and rank == 1 and not keep:
        dims = cx.dims(x)  # the number of elements of a partly known shape
        if dims is not None:
            known = all(isinstance(d, int) for d in dims)
            cx.symbolic[out] = (int(np.prod(dims)) if known else (dims[0] if len(dims) == 1 else None),)
    return out


@lowers("All", "Any")
def all_any(cx: Lowerer, node: TFNode, args: list) -> Value:
    """All = min, Any = max over bool values cast to int."""
    x, axes_value = args
    axes = cx.ints(axes_value, "the reduction axes")
    rank = cx.rank(x)
    axes = tuple(sorted(set(cx.axes(axes, rank, "the reduction axes"))))
    if not axes:
        return x
    as_int = cx.op("cast", x, to=DType.i32)
    out = cx.op("min" if node.op == "All" else "max", as_int, axes=axes, keepdims=bool(node.attrs.get("keep_dims")))
    return cx.op("cast", out, to=DType.bool)


@lowers("ArgMax", "ArgMin")
def arg_max(cx: Lowerer, node: TFNode, args: list) -> Value:
    """ArgMax; ArgMin as the argmax of -x (the first minimum, as TF)."""
    x, axis_value = args
    axis = cx.int_scalar(axis_value, "the axis")
    if node.op == "ArgMin":
        if x.type.dtype is DType.bool or x.type.dtype is DType.u8:
            raise CannotLower(f"ArgMin on {x.type.dtype.value}")
        x = cx.op("neg", x)
    return cx.op("argmax", x, axis=axis, dtype=tf_dtype(node.attrs.get("output_type", "int64")))


def _scalar(cx: Lowerer, value, like: Value) -> Value:
    return cx.const(np.asarray(value, dtype=like.type.dtype.numpy))


@lowers("ClipByValue")
def clip_by_value(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, low, high = args
    return cx.op("minimum", cx.op("maximum", x, low), high)


# ----- fake quantization (quantization-aware training) ----------------------------------------------------------------
@lowers("FakeQuantWithMinMaxArgs", "FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel")
def fake_quant(cx: Lowerer, node: TFNode, args: list) -> Value:
    """To ``fake_quant`` (its float simulation). Over a constant (a weight) it folds, and the folded constant
    remembers its grid in ``meta["fake_quant"]``: the quantize pass takes the weight scales from it."""
    from irc.errors import InputError
    from irc.ops.quant import check_fake_quant

    if node.op == "FakeQuantWithMinMaxArgs":
        lo, hi = [float(node.attrs.get("min", -6.0))], [float(node.attrs.get("max", 6.0))]
        if not lo[0] < hi[0]:  # TF's own check for this op (the Vars ops accept min = max)
            raise InputError(f"{node.op} node '{node.name}': min {lo[0]:g} must be below max {hi[0]:g}",
                             where=cx.tfgraph.source)
    else:
        lo = [float(v) for v in cx.floats(args[1], "min").reshape(-1)]
        hi = [float(v) for v in cx.floats(args[2], "max").reshape(-1)]
    bits, narrow = int(node.attrs.get("num_bits", 8)), bool(node.attrs.get("narrow_range", False))
    x = args[0]
    layer = f" (layer {node.layer})" if node.layer else ""
    if node.op == "FakeQuantWithMinMaxVarsPerChannel":
        last = cx.shape(x, min_rank=1)[-1]
        if len(lo) != len(hi) or not lo or (isinstance(last, int) and len(lo) != last):
            raise InputError(f"{node.op} node '{node.name}'{layer}: min and max hold {len(lo)} and {len(hi)} values "
                             f"for a last dimension of {last}", where=cx.tfgraph.source)
    elif len(lo) != 1 or len(hi) != 1:
        raise InputError(f"{node.op} node '{node.name}'{layer}: min and max must be scalars",
                         where=cx.tfgraph.source)
    why = check_fake_quant(lo, hi, bits)
    if why is not None:
        raise InputError(f"{node.op} node '{node.name}'{layer}: {why}", where=cx.tfgraph.source)
    attrs = {"min": tuple(lo), "max": tuple(hi), "num_bits": bits, "narrow_range": narrow}
    out = cx.op("fake_quant", x, **attrs)
    if out.is_constant and out.producer is not None:
        out.producer.meta["fake_quant"] = {**attrs, "per_channel": node.op == "FakeQuantWithMinMaxVarsPerChannel"}
    return out
