"""canonicalize: algebraic simplifications, as a table of rules plus two typed patterns.

Every rule keeps the value's type exactly (the driver checks), so ``x * 1 -> x`` does not fire where broadcasting
against the ones would grow ``x``, and nothing fires across a change of quantization parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from irc.passes import register_pass
from irc.passes.rewrite import PatternPass, RewritePattern, attrs_of
from irc.passes.rules import Const, Op, Rule, Var
from irc.passes.util import compose_perms, is_identity

x = Var("x")


def _float(m) -> bool:
    return m.x.type.dtype.is_float


def _composed_transpose(m):
    perm = compose_perms(m.p, m.q)
    return m.x if is_identity(perm) else m.op("transpose", m.x, perm=perm, type=m.type)


TRANSPOSE_RULES = [
    Rule(Op("transpose", x, perm=is_identity), lambda m: m.x, doc="no-op transpose"),
    Rule(Op("transpose", Op("transpose", x, perm=Var("p")), perm=Var("q")), _composed_transpose,
         doc="transpose of transpose"),
]

RULES = TRANSPOSE_RULES + [
    Rule(Op("add", x, Const(0)), lambda m: m.x, doc="x + 0 -> x"),
    Rule(Op("sub", x, Const(0)), lambda m: m.x, doc="x - 0 -> x"),
    Rule(Op("mul", x, Const(1)), lambda m: m.x, doc="x * 1 -> x"),
    Rule(Op("div", x, Const(1)), lambda m: m.x, doc="x / 1 -> x"),
    Rule(Op("neg", Op("neg", x)), lambda m: m.x, doc="-(-x) -> x"),
    Rule(Op("cast", x), lambda m: m.x, doc="no-op cast"),  # fires only where the type stays the same
    Rule(Op("pad", x, paddings=lambda pads: not any(a or b for a, b in pads), any_attrs=True), lambda m: m.x,
         doc="no-op pad"),  # any mode or fill value: nothing is padded
    Rule(Op("concat", x), lambda m: m.x, doc="concat of one operand"),
    # keepdims over axes of size 1 (a global pooling of a 1x1 map): the type stays, so nothing was reduced
    *(Rule(Op(op, x, any_attrs=True), lambda m: m.x, doc=f"{op} over size-1 axes") for op in ("mean", "sum", "max", "min")),
    # activations spelled as clamps
    Rule(Op("maximum", Op("minimum", x, Const(6)), Const(0)), lambda m: m.op("relu6", m.x), where=_float,
         doc="max(min(x, 6), 0) -> relu6"),
    Rule(Op("maximum", x, Const(0)), lambda m: m.op("relu", m.x), where=_float, doc="max(x, 0) -> relu"),
    Rule(Op("minimum", Op("relu", x), Const(6)), lambda m: m.op("relu6", m.x), doc="min(relu(x), 6) -> relu6"),
]

RESHAPES = ("reshape", "squeeze", "expand_dims")


class CollapseReshapes(RewritePattern):
    """A reshape, squeeze or expand_dims that changes nothing goes; a chain of them becomes one reshape."""

    ops = RESHAPES
    stat = "reshapes collapsed"

    def rewrite(self, node, rw):
        source = node.operands[0]
        while source.producer is not None and source.producer.op in RESHAPES:
            source = source.producer.operands[0]
        want = node.result.type
        if source.type == want and _at_most_one_unknown(want.shape):
            rw.replace(node, source)
            return True
        if source is node.operands[0] or not _at_most_one_unknown(want.shape):
            return False
        shape = tuple(d if isinstance(d, int) else -1 for d in want.shape)
        rw.replace(node, rw.op("reshape", source, loc=node.loc, type=want, shape=shape))
        return True


def _at_most_one_unknown(shape) -> bool:
    return shape is not None and sum(not isinstance(d, int) for d in shape) <= 1


class MatmulOfTranspose(RewritePattern):
    """matmul(a, transpose(b)) -> matmul(a, b, transpose_b = not transpose_b) (and the same for a)."""

    ops = ("matmul",)
    stat = "transposes absorbed"

    def rewrite(self, node, rw):
        for index, flag in ((0, "transpose_a"), (1, "transpose_b")):
            producer = node.operands[index].producer
            if producer is not None and producer.op == "transpose" and tuple(producer.attr("perm")) == (1, 0):
                operands = list(node.operands)
                operands[index] = producer.operands[0]
                attrs = attrs_of(node, **{flag: not node.attr(flag)})
                new = rw.create("matmul", operands, attrs, types=[node.result.type], loc=node.loc)
                rw.replace(node, new.results)
                return True
        return False


PATTERNS = [*RULES, CollapseReshapes(), MatmulOfTranspose()]


@register_pass
@dataclass(frozen=True)
class Canonicalize(PatternPass):
    """Algebraic simplifications: x*1, x+0, no-op cast/reshape/transpose/pad/reduction, reshape and transpose chains."""

    name = "canonicalize"
    patterns = PATTERNS
