"""Core ops: constants."""

from __future__ import annotations

from irc.ir.types import tensor_type_of
from irc.ops.base import PURE, Attr, OpDef, register


@register
class Const(OpDef):
    name = "const"
    summary = "A constant tensor held in the IR."
    attrs = {"value": Attr("tensor")}
    traits = frozenset({PURE})

    def infer(self, types, attrs, consts):
        return [tensor_type_of(attrs["value"])]

    def kernel(self, inputs, attrs):
        return [attrs["value"]]
