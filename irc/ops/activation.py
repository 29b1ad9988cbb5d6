"""Activation ops, and the fused-activation helper shared by the target forms that fuse one.

``ACTIVATION_FNS`` is the one table of fused activations (``none, relu, relu6, relu_n1_to_1, tanh, sigmoid``).
Core ops never carry one. The core ops a target may fuse an activation into (conv2d, matmul, add, pools, concat,
...) derive from ``Fusable``: they compute their results in ``compute``; the target dialect's form of the op (say
``tfl.conv2d``, irc/ops/tfl.py) declares a ``fused_activation`` attribute, which ``Fusable.kernel`` applies after.

``erf`` is computed in float64 without scipy: a Taylor series for |x| < 2 and a continued fraction for erfc
beyond; both agree with ``math.erf`` to about 1e-14 (see tests/test_ops_activation.py).
"""

from __future__ import annotations

import math

import numpy as np

from irc.ops.base import (
    ELEMENTWISE,
    FUSABLE_ACTIVATION,
    LAYOUT_AGNOSTIC,
    PURE,
    Attr,
    OpDef,
    UnaryElementwise,
    normalize_axis,
    register,
    same_type,
)


# ----- the activation functions ------------------------------------------------------------------------------------
def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, np.zeros((), x.dtype))


def relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, np.zeros((), x.dtype), np.asarray(6, x.dtype))


def relu_n1_to_1(x: np.ndarray) -> np.ndarray:
    return np.clip(x, np.asarray(-1, x.dtype), np.asarray(1, x.dtype))


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(-np.logaddexp(0, -x))  # 1 / (1 + exp(-x)), without overflow


ACTIVATION_FNS = {
    "none": lambda x: x,
    "relu": relu,
    "relu6": relu6,
    "relu_n1_to_1": relu_n1_to_1,
    "tanh": np.tanh,
    "sigmoid": sigmoid,
}


def apply_activation(y: np.ndarray, activation: str) -> np.ndarray:
    """Applies a fused activation (an entry of ``ACTIVATION_FNS``), keeping ``y``'s dtype."""
    y = np.asarray(y)
    return np.asarray(ACTIVATION_FNS[activation](y)).astype(y.dtype, copy=False)


class Fusable(OpDef):
    """A core op a target dialect may fuse an activation into: ``compute`` gives its results; a dialect form that
    declares ``fused_activation`` gets the activation applied after them by the same kernel."""

    def compute(self, inputs: list[np.ndarray], attrs: dict) -> list[np.ndarray]:
        raise NotImplementedError

    def kernel(self, inputs, attrs):
        results = self.compute(inputs, attrs)
        activation = attrs.get("fused_activation", "none")
        return results if activation == "none" else [apply_activation(y, activation) for y in results]


# ----- erf without scipy -------------------------------------------------------------------------------------------
_TAYLOR = [(-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(48)]  # erf(x) = 2/sqrt(pi) x sum c_n x^2n
_CF_DEPTH = 60


def erf(x: np.ndarray) -> np.ndarray:
    """The error function in float64 (absolute error below 1e-14), vectorized."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    out = np.empty_like(a)
    small = a < 2.0
    z = a[small] ** 2
    series = np.zeros_like(z)
    for c in reversed(_TAYLOR):  # Horner's rule in x^2
        series = series * z + c
    out[small] = 2.0 / math.sqrt(math.pi) * a[small] * series
    big = np.minimum(a[~small], 7.0)  # erfc(7) < 1e-22: erf is 1 in float64 from there
    # erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated from the tail.
    t = big.copy()
    for k in range(_CF_DEPTH, 0, -1):
        t = big + (k / 2.0) / t
    out[~small] = 1.0 - np.exp(-big * big) / (math.sqrt(math.pi) * t)
    return np.copysign(out, x)


# ----- ops ---------------------------------------------------------------------------------------------------------
def _unary(f):
    """``fn`` for a unary op that reads no attributes."""
    return staticmethod(lambda x, attrs: f(x))


class Activation(UnaryElementwise):
    """A unary elementwise activation that TFLite can fuse into the op producing its operand."""

    traits = frozenset({PURE, ELEMENTWISE, LAYOUT_AGNOSTIC, FUSABLE_ACTIVATION})


@register
class Relu(Activation):
    name = "relu"
    summary = "max(x, 0)."
    fn = _unary(relu)


@register
class Relu6(Activation):
    name = "relu6"
    summary = "min(max(x, 0), 6)."
    fn = _unary(relu6)


@register
class Sigmoid(Activation):
    name = "sigmoid"
    summary = "1 / (1 + exp(-x))."
    fn = _unary(sigmoid)


@register
class Tanh(Activation):
    name = "tanh"
    summary = "Hyperbolic tangent."
    fn = _unary(np.tanh)


@register
class HardSwish(UnaryElementwise):
    name = "hard_swish"
    summary = "x * relu6(x + 3) / 6."
    fn = _unary(lambda x: x * relu6(x + np.asarray(3, x.dtype)) / np.asarray(6, x.dtype))


@register
class Elu(UnaryElementwise):
    name = "elu"
    summary = "x if x > 0 else exp(x) - 1."
    fn = _unary(lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))))


@register
class Softplus(UnaryElementwise):
    name = "softplus"
    summary = "log(1 + exp(x)), computed without overflow."
    fn = _unary(lambda x: np.logaddexp(np.zeros((), x.dtype), x))


@register
class Silu(UnaryElementwise):
    name = "silu"
    summary = "x * sigmoid(x) (swish)."
    fn = _unary(lambda x: x * sigmoid(x))


@register
class LeakyRelu(UnaryElementwise):
    name = "leaky_relu"
    summary = "x if x >= 0 else alpha * x."
    attrs = {"alpha": Attr("float", 0.2)}
    fn = staticmethod(lambda x, attrs: np.where(x >= 0, x, x * np.asarray(attrs["alpha"], x.dtype)))


def _gelu(x: np.ndarray, attrs: dict) -> np.ndarray:
    v = x.astype(np.float64)
    if attrs["approximate"]:
        return 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))
    return 0.5 * v * (1.0 + erf(v / math.sqrt(2.0)))


@register
class Gelu(UnaryElementwise):
    name = "gelu"
    summary = "x * Phi(x), exact (erf) or with the tanh approximation."
    attrs = {"approximate": Attr("bool", False)}
    fn = staticmethod(_gelu)


class SoftmaxBase(OpDef):
    """A normalization along ``axis``; same type as its operand."""

    operands = ("x",)
    traits = frozenset({PURE})

    def infer(self, types, attrs, consts):
        if types[0].rank is not None:
            normalize_axis(attrs["axis"], types[0].rank)
        return same_type(types[0])


@register
class Softmax(SoftmaxBase):
    name = "softmax"
    summary = "exp(beta * x) normalized to sum to 1 along axis (numerically stable)."
    attrs = {"axis": Attr("int", -1), "beta": Attr("float", 1.0)}

    def kernel(self, inputs, attrs):
        x, axis = inputs[0], attrs["axis"]
        z = (x - np.max(x, axis=axis, keepdims=True)) * np.asarray(attrs["beta"], x.dtype)
        e = np.exp(z)
        return [(e / np.sum(e, axis=axis, keepdims=True)).astype(x.dtype, copy=False)]


@register
class LogSoftmax(SoftmaxBase):
    name = "log_softmax"
    summary = "x - log(sum(exp(x))) along axis (numerically stable)."
    attrs = {"axis": Attr("int", -1)}

    def kernel(self, inputs, attrs):
        x, axis = inputs[0], attrs["axis"]
        z = x - np.max(x, axis=axis, keepdims=True)
        return [(z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))).astype(x.dtype, copy=False)]
