"""Elementwise ops: binary arithmetic and comparisons with numpy broadcasting, unary math, select and cast.

Binary ops also carry LAYOUT_AGNOSTIC: with same-shaped operands they commute with any transpose (a layout pass
must still check the shapes, as the trait says). Integer ``div`` truncates toward zero and ``floor_div`` rounds
down, as TensorFlow's Div and FloorDiv.
"""

from __future__ import annotations

import numpy as np

from irc.ir.types import DType, TensorType
from irc.ops.activation import Fusable, erf
from irc.ops.base import (
    COMMUTATIVE,
    ELEMENTWISE,
    LAYOUT_AGNOSTIC,
    PURE,
    Attr,
    BinaryElementwise,
    OpDef,
    UnaryElementwise,
    broadcast_shapes,
    register,
)


def _quiet(f):
    """``f`` with numpy's floating-point warnings silenced (x/0 is inf, log(0) is -inf, as in TensorFlow)."""

    def call(*args):
        with np.errstate(all="ignore"):
            return f(*args)

    return staticmethod(call)


# ----- binary ------------------------------------------------------------------------------------------------------
class Binary(BinaryElementwise):
    traits = frozenset({PURE, ELEMENTWISE, LAYOUT_AGNOSTIC})


class Commutative(Binary):
    traits = Binary.traits | {COMMUTATIVE}


class Arithmetic(Fusable, Binary):
    """add/sub/mul/div: binary arithmetic (tfl.add ... fuse an activation into it)."""

    def compute(self, inputs, attrs):
        return BinaryElementwise.kernel(self, inputs, attrs)


@register
class Add(Arithmetic):
    name = "add"
    summary = "x + y."
    traits = Commutative.traits
    fn = staticmethod(np.add)


@register
class Sub(Arithmetic):
    name = "sub"
    summary = "x - y."
    fn = staticmethod(np.subtract)


@register
class Mul(Arithmetic):
    name = "mul"
    summary = "x * y."
    traits = Commutative.traits
    fn = staticmethod(np.multiply)


def _div(x, y):
    if x.dtype.kind in "iu":
        q = np.floor_divide(x, y)
        return q + ((q < 0) & (q * y != x))  # round toward zero, as TensorFlow's Div on integers
    return np.true_divide(x, y)


@register
class Div(Arithmetic):
    name = "div"
    summary = "x / y (integers: truncated toward zero)."
    fn = _quiet(_div)


@register
class Maximum(Commutative):
    name = "maximum"
    summary = "The larger of x and y."
    fn = staticmethod(np.maximum)


@register
class Minimum(Commutative):
    name = "minimum"
    summary = "The smaller of x and y."
    fn = staticmethod(np.minimum)


@register
class Pow(Binary):
    name = "pow"
    summary = "x ** y."
    fn = _quiet(np.power)


@register
class SquaredDifference(Binary):
    name = "squared_difference"
    summary = "(x - y) ** 2."
    fn = _quiet(lambda x, y: np.square(x - y))


@register
class FloorDiv(Binary):
    name = "floor_div"
    summary = "floor(x / y)."
    fn = _quiet(lambda x, y: np.floor_divide(x, y) if x.dtype.kind in "iu" else np.floor(x / y))


@register
class FloorMod(Binary):
    name = "floor_mod"
    summary = "x - floor(x / y) * y (the result has the sign of y)."
    fn = _quiet(np.mod)


class Comparison(Binary):
    result_dtype = DType.bool


@register
class Equal(Comparison):
    name = "equal"
    summary = "x == y, as bool."
    traits = Comparison.traits | {COMMUTATIVE}
    fn = staticmethod(np.equal)


@register
class NotEqual(Comparison):
    name = "not_equal"
    summary = "x != y, as bool."
    traits = Comparison.traits | {COMMUTATIVE}
    fn = staticmethod(np.not_equal)


@register
class Less(Comparison):
    name = "less"
    summary = "x < y, as bool."
    fn = staticmethod(np.less)


@register
class LessEqual(Comparison):
    name = "less_equal"
    summary = "x <= y, as bool."
    fn = staticmethod(np.less_equal)


@register
class Greater(Comparison):
    name = "greater"
    summary = "x > y, as bool."
    fn = staticmethod(np.greater)


@register
class GreaterEqual(Comparison):
    name = "greater_equal"
    summary = "x >= y, as bool."
    fn = staticmethod(np.greater_equal)


class Logical(Commutative):
    """A binary op on bool tensors."""

    def infer(self, types, attrs, consts):
        if any(t.dtype is not DType.bool for t in types):
            raise ValueError(f"{self.name} takes bool operands, got {types[0].dtype.value} and {types[1].dtype.value}")
        return super().infer(types, attrs, consts)


@register
class LogicalAnd(Logical):
    name = "logical_and"
    summary = "x and y, on bools."
    fn = staticmethod(np.logical_and)


@register
class LogicalOr(Logical):
    name = "logical_or"
    summary = "x or y, on bools."
    fn = staticmethod(np.logical_or)


@register
class Select(OpDef):
    name = "select"
    summary = "x where cond is true, else y (all three broadcast)."
    operands = ("cond", "x", "y")
    traits = frozenset({PURE, ELEMENTWISE, LAYOUT_AGNOSTIC})

    def infer(self, types, attrs, consts):
        cond, x, y = types
        if cond.dtype is not DType.bool:
            raise ValueError(f"select's condition must be bool, got {cond.dtype.value}")
        if x.dtype != y.dtype:
            raise ValueError(f"operand dtypes differ: {x.dtype.value} and {y.dtype.value}")
        return [TensorType(x.dtype, broadcast_shapes(cond.shape, x.shape, y.shape))]

    def kernel(self, inputs, attrs):
        cond, x, y = inputs
        return [np.where(cond, x, y).astype(x.dtype, copy=False)]


# ----- unary -------------------------------------------------------------------------------------------------------
def _unary(f):
    """``fn`` for a unary op that reads no attributes, with floating-point warnings silenced."""

    def call(x, attrs):
        with np.errstate(all="ignore"):
            return f(x)

    return staticmethod(call)


@register
class Neg(UnaryElementwise):
    name = "neg"
    summary = "-x."
    fn = _unary(np.negative)


@register
class Abs(UnaryElementwise):
    name = "abs"
    summary = "|x|."
    fn = _unary(np.abs)


@register
class Sqrt(UnaryElementwise):
    name = "sqrt"
    summary = "Square root."
    fn = _unary(np.sqrt)


@register
class Rsqrt(UnaryElementwise):
    name = "rsqrt"
    summary = "1 / sqrt(x)."
    fn = _unary(lambda x: 1 / np.sqrt(x))


@register
class Exp(UnaryElementwise):
    name = "exp"
    summary = "e ** x."
    fn = _unary(np.exp)


@register
class Log(UnaryElementwise):
    name = "log"
    summary = "Natural logarithm."
    fn = _unary(np.log)


@register
class Square(UnaryElementwise):
    name = "square"
    summary = "x * x."
    fn = _unary(np.square)


@register
class Sin(UnaryElementwise):
    name = "sin"
    summary = "Sine."
    fn = _unary(np.sin)


@register
class Cos(UnaryElementwise):
    name = "cos"
    summary = "Cosine."
    fn = _unary(np.cos)


@register
class Floor(UnaryElementwise):
    name = "floor"
    summary = "Rounds down."
    fn = _unary(np.floor)


@register
class Ceil(UnaryElementwise):
    name = "ceil"
    summary = "Rounds up."
    fn = _unary(np.ceil)


@register
class Round(UnaryElementwise):
    name = "round"
    summary = "Rounds to the nearest integer, halves to even (as TensorFlow)."
    fn = _unary(np.rint)


@register
class Sign(UnaryElementwise):
    name = "sign"
    summary = "-1, 0 or 1 by the sign of x."
    fn = _unary(np.sign)


@register
class Erf(UnaryElementwise):
    name = "erf"
    summary = "The error function."
    fn = _unary(erf)


@register
class Reciprocal(UnaryElementwise):
    name = "reciprocal"
    summary = "1 / x."
    fn = _unary(lambda x: np.reciprocal(x) if x.dtype.kind == "f" else 1 // x)


@register
class LogicalNot(UnaryElementwise):
    name = "logical_not"
    summary = "not x, on bools."
    fn = _unary(np.logical_not)

    def infer(self, types, attrs, consts):
        if types[0].dtype is not DType.bool:
            raise ValueError(f"logical_not takes a bool operand, got {types[0].dtype.value}")
        return super().infer(types, attrs, consts)


@register
class Cast(UnaryElementwise):
    name = "cast"
    summary = "Converts to dtype ``to`` (floats to integers truncate toward zero)."
    attrs = {"to": Attr("dtype")}

    def infer(self, types, attrs, consts):
        return [TensorType(attrs["to"], types[0].shape)]

    def kernel(self, inputs, attrs):
        x = inputs[0]
        if x.dtype.kind == "c" and not attrs["to"].is_complex:
            x = np.real(x)  # as TensorFlow's Cast: the real part (numpy would warn, then do the same)
        with np.errstate(all="ignore"):
            return [x.astype(attrs["to"].numpy)]
