"""Reductions over ``axes`` (negative axes count from the end; empty axes reduce nothing, as TensorFlow).

Float sums and means accumulate in float64 and round to the operand's dtype once; an integer mean truncates
toward zero, as TensorFlow's.
"""

from __future__ import annotations

import numpy as np

from irc.ir.types import TensorType
from irc.ops.base import PURE, Attr, OpDef, normalize_axis, register


class Reduce(OpDef):
    operands = ("x",)
    attrs = {"axes": Attr("ints"), "keepdims": Attr("bool", False)}
    traits = frozenset({PURE})

    @staticmethod
    def fn(x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        raise NotImplementedError

    def infer(self, types, attrs, consts):
        x = types[0]
        if x.shape is None:
            return [TensorType(x.dtype, None)]
        axes = {normalize_axis(a, len(x.shape)) for a in attrs["axes"]}
        if attrs["keepdims"]:
            shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        else:
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return [TensorType(x.dtype, shape)]

    def kernel(self, inputs, attrs):
        x = inputs[0]
        axes = tuple(sorted({a % x.ndim for a in attrs["axes"]})) if x.ndim else ()
        return [np.asarray(self.fn(x, axes, attrs["keepdims"])).astype(x.dtype, copy=False)]


def _wide(x: np.ndarray):
    """The accumulator dtype: float64 for floats, the operand's own for integers."""
    return np.float64 if x.dtype.kind == "f" else x.dtype


def _mean(x, axes, keepdims):
    total = np.sum(x, axis=axes, keepdims=keepdims, dtype=_wide(x))
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    if x.dtype.kind in "iu":
        return np.trunc(total / count)
    return total / count


@register
class Mean(Reduce):
    name = "mean"
    summary = "Mean over axes."
    fn = staticmethod(_mean)


@register
class Sum(Reduce):
    name = "sum"
    summary = "Sum over axes."
    fn = staticmethod(lambda x, axes, keepdims: np.sum(x, axis=axes, keepdims=keepdims, dtype=_wide(x)))


@register
class Max(Reduce):
    name = "max"
    summary = "Largest value over axes."
    fn = staticmethod(lambda x, axes, keepdims: np.max(x, axis=axes, keepdims=keepdims))


@register
class Min(Reduce):
    name = "min"
    summary = "Smallest value over axes."
    fn = staticmethod(lambda x, axes, keepdims: np.min(x, axis=axes, keepdims=keepdims))


@register
class Prod(Reduce):
    name = "prod"
    summary = "Product over axes."
    fn = staticmethod(lambda x, axes, keepdims: np.prod(x, axis=axes, keepdims=keepdims, dtype=_wide(x)))
