"""Declarative rewrite rules: match a small op DAG, check constraints, build the replacement.

    x = Var("x")
    RULES = [
        Rule(Op("mul", x, Const(1.0)), lambda m: m.x, doc="x * 1 -> x"),
        Rule(Op("div", x, Const(name="c")), lambda m: m.op("mul", m.x, m.const(1 / m.c)),
             where=lambda m: m.c.dtype.kind == "f", doc="x / c -> x * (1/c)"),
    ]

``Var`` matches any value (the same name twice must be the same value); ``Const(v)`` a constant whose every element
is ``v``, ``Const(name=...)`` any constant (bound as its numpy array); ``Op(op, *operands, attr=...)`` a node of that
op (or one of a tuple of ops) whose attributes equal the given values (a ``Var`` binds the attribute, a function
tests it). Operands of a commutative op match in either order; ``Optional(p)`` as a last operand matches a node
with or without it (absent, its ``Var`` binds None).

Attributes a pattern does not mention must have their default value. Required attributes (they have no default) match any value unless mentioned, and
``any_attrs=True`` lets every unmentioned attribute be anything.

A rule is checked against the op registry when it is built: an unknown op, an attribute the op does not have or an
operand count it cannot take is a ValueError naming the rule. ``benefit`` orders rules on the same op (higher
first; equal benefits keep their order). A rule's replacement must have the type of what it replaces (a rule that
would change a type declines), so ``x * 1 -> x`` never fires where broadcasting grows ``x``. Rules run on the same
driver as typed patterns (``irc.passes.rewrite``), which can report every rule that fired or declined
(``--debug-rewrites``).

Rules name core ops, which are target-neutral: a target's fused form (``tfl.mul {fused_activation = "relu"}``,
made by the TFLite target's ``tfl-fuse``) is another op, so ``Op("mul", ...)`` never matches it and cannot drop
its activation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from irc.ir.graph import Location, Node, Value
from irc.ir.types import TensorType
from irc.passes.rewrite import RewritePattern, Rewriter, fits
from irc.passes.util import only_use, real_array


class Match:
    """What a rule matched: bound names as attributes (``m.x``), the root node, and builders for the replacement."""

    def __init__(self, root: Node, rw: Rewriter):
        self.root = root
        self.rw = rw
        self.bound: dict[str, Any] = {}
        self.nodes: list[Node] = []

    def __getattr__(self, name: str):
        try:
            return self.__dict__["bound"][name]
        except KeyError:
            raise AttributeError(f"the rule bound no '{name}'") from None

    @property
    def loc(self) -> Location:
        return Location.fused(n.loc for n in [self.root] + self.nodes)

    @property
    def type(self) -> TensorType:
        """The type of the root's (first) result: what the replacement must have."""
        return self.root.results[0].type

    def op(self, op: str, *operands: Value, type: TensorType | None = None, **attrs) -> Value:
        return self.rw.op(op, *operands, loc=self.loc, type=type, **attrs)

    def const(self, array, type: TensorType | None = None) -> Value:
        return self.rw.const(array, loc=self.loc, type=type)


class Pattern:
    def match(self, value: Value, m: Match) -> bool:
        raise NotImplementedError


class Var(Pattern):
    """Any value (or, as an attribute pattern, any attribute value), bound under ``name``."""

    def __init__(self, name: str, where: Callable[[Value], bool] | None = None):
        self.name, self.where = name, where

    def match(self, value, m):
        return self.bind(value, m) and (self.where is None or self.where(value))

    def __repr__(self) -> str:
        return f"Var({self.name!r})"

    def bind(self, item, m: Match) -> bool:
        if self.name in m.bound:
            previous = m.bound[self.name]
            return previous is item or (not isinstance(item, Value) and _same(previous, item))
        m.bound[self.name] = item
        return True


class Const(Pattern):
    """A constant: every element equal to ``value`` if given; bound (as its array) under ``name`` if given.
    A quantized constant is compared, and bound, by its real (dequantized) values."""

    def __init__(self, value: float | None = None, name: str | None = None):
        self.value, self.name = value, name

    def __repr__(self) -> str:
        return f"Const({self.value!r})" if self.name is None else f"Const(name={self.name!r})"

    def match(self, value, m):
        array = real_array(value)
        if array is None or (self.value is not None and not (array.size and np.all(array == self.value))):
            return False
        if self.name:
            m.bound[self.name] = array
        return True


class Optional(Pattern):
    """A last operand that may be absent (``Op("conv2d", x, w, Optional(Var("bias")))``); absent, the names the
    pattern binds are bound to None."""

    def __init__(self, pattern: Pattern):
        self.pattern = pattern

    def match(self, value, m):
        return self.pattern.match(value, m)

    def absent(self, m: Match) -> None:
        for name in _bound_names(self.pattern):
            m.bound.setdefault(name, None)

    def __repr__(self) -> str:
        return f"Optional({self.pattern!r})"


def _bound_names(pattern: Pattern) -> list[str]:
    if isinstance(pattern, Var):
        return [pattern.name]
    if isinstance(pattern, Const):
        return [pattern.name] if pattern.name else []
    if isinstance(pattern, Optional):
        return _bound_names(pattern.pattern)
    if isinstance(pattern, Op):
        names = [pattern.bind_as] if pattern.bind_as else []
        names += [w.name for w in pattern.attrs.values() if isinstance(w, Var)]
        return names + [n for p in pattern.operands for n in _bound_names(p)]
    return []


class Op(Pattern):
    """A node of op ``op`` (a name or a tuple of names) with operands and attributes matching the given patterns.

    Unmentioned attributes must be at their defaults unless ``any_attrs``; ``Optional`` operands come last."""

    def __init__(self, op: str | tuple[str, ...], *operands: Pattern, bind: str | None = None,
                 single_use: bool = False, any_attrs: bool = False, **attrs):
        self.ops = (op,) if isinstance(op, str) else tuple(op)
        self.operands, self.bind_as, self.single_use, self.attrs = operands, bind, single_use, attrs
        self.any_attrs = any_attrs
        self.required = len(operands)
        while self.required and isinstance(operands[self.required - 1], Optional):
            self.required -= 1
        if any(isinstance(p, Optional) for p in operands[: self.required]):
            raise ValueError(f"{self!r}: Optional operands must come last")

    def __repr__(self) -> str:
        ops = self.ops[0] if len(self.ops) == 1 else self.ops
        inner = [repr(ops), *map(repr, self.operands), *(f"{k}={v!r}" for k, v in self.attrs.items())]
        return f"Op({', '.join(inner)})"

    def check(self, rule: str) -> None:
        """Checks the pattern against the op registry; a ValueError naming ``rule`` when it cannot match."""
        from irc.ops import get_op

        for name in self.ops:
            if name.startswith("tf."):
                continue
            try:
                opdef = get_op(name)
            except KeyError:
                raise ValueError(f"rule {rule}: unknown op {name!r}") from None
            for key in self.attrs:
                if key not in opdef.attrs:
                    valid = ", ".join(sorted(opdef.attrs)) or "none"
                    raise ValueError(f"rule {rule}: op {name!r} has no attribute {key!r} (attributes: {valid})")
            for count in {self.required, len(self.operands)}:
                if (why := opdef.check_arity(count)) is not None:
                    raise ValueError(f"rule {rule}: {name} {why}")
        for operand in self.operands:
            inner = operand.pattern if isinstance(operand, Optional) else operand
            if isinstance(inner, Op):
                inner.check(rule)

    def match(self, value, m):
        node = value.producer
        if node is None or (self.single_use and only_use(value) is None):
            return False
        if not self.match_node(node, m):
            return False
        m.nodes.append(node)
        return True

    def match_node(self, node: Node, m: Match) -> bool:
        if node.op not in self.ops or not self.required <= len(node.operands) <= len(self.operands):
            return False
        if not self.any_attrs and not self._unmentioned_at_defaults(node):
            return False
        for key, want in self.attrs.items():
            got = node.attr(key)
            if isinstance(want, Var):
                if not want.bind(got, m):
                    return False
            elif callable(want):
                if not want(got):
                    return False
            elif not _same(got, want):
                return False
        present = self.operands[: len(node.operands)]
        orders = [present]
        if len(present) == 2 and _commutative(node):
            orders.append(present[::-1])
        for order in orders:
            saved = (dict(m.bound), list(m.nodes))
            if all(p.match(v, m) for p, v in zip(order, node.operands)):
                for absent in self.operands[len(node.operands):]:
                    absent.absent(m)
                if self.bind_as:
                    m.bound[self.bind_as] = node
                return True
            m.bound, m.nodes = saved
        return False


    def _unmentioned_at_defaults(self, node: Node) -> bool:
        try:
            specs = node.opdef.attrs
        except KeyError:
            return True
        for key, value in node.attrs.items():
            spec = specs.get(key)
            if key in self.attrs or spec is None or spec.required:
                continue
            if not _same(value, spec.default):
                return False
        return True


def _commutative(node: Node) -> bool:
    from irc.ops.base import COMMUTATIVE

    try:
        return node.opdef.has(COMMUTATIVE)
    except KeyError:
        return False


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return a == b


class Rule(RewritePattern):
    """``pattern`` -> ``build(match)``; ``where(match)`` must hold. ``build`` returns the replacement value(s), or
    None to decline. ``doc`` (``"x * 1 -> x"``) names the rule in statistics and errors; ``benefit`` orders rules
    on the same op (higher first). The pattern is checked against the op registry here: a ValueError names the
    rule when it names an unknown op or attribute."""

    def __init__(self, pattern: Op, build: Callable[[Match], Value | Sequence[Value] | None],
                 where: Callable[[Match], bool] | None = None, doc: str = "", benefit: int = 1):
        if not isinstance(pattern, Op):
            raise TypeError(f"rule {doc or pattern!r}: the pattern must be an Op(...), got {pattern!r}")
        self.pattern, self.build, self.where = pattern, build, where
        self.ops = pattern.ops
        self.stat = doc or "rules applied"
        self.benefit = benefit
        pattern.check(repr(doc) if doc else repr(pattern))

    def rewrite(self, node, rw):
        m = Match(node, rw)
        if not self.pattern.match_node(node, m):
            return False
        if self.where is not None and not self.where(m):
            rw.declined(self, node, "its where() is false")
            return False
        mark = len(rw.created)
        replacement = self.build(m)
        values = [] if replacement is None else [replacement] if isinstance(replacement, Value) else list(replacement)
        if len(values) != len(node.results) or not all(fits(o.type, n.type) for o, n in zip(node.results, values)):
            why = "build returned None" if replacement is None else "the replacement's type differs"
            rw.declined(self, node, why)
            erased = rw.erased
            for created in reversed(rw.created[mark:]):  # declined: drop what the builder made
                rw.erase_dead(created)
            rw.erased = erased
            return False
        rw.replace(node, values)
        return True

    def __repr__(self) -> str:
        return f"Rule({self.stat})"
