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
tests it). Operands of a commutative op match in either order. A rule's replacement must have the type of what it
replaces (a rule that would change a type is skipped), so ``x * 1 -> x`` never fires where broadcasting grows ``x``.
Rules run on the same driver as typed patterns (``irc.passes.rewrite``).
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

    def match(self, value, m):
        array = real_array(value)
        if array is None or (self.value is not None and not (array.size and np.all(array == self.value))):
            return False
        if self.name:
            m.bound[self.name] = array
        return True


class Op(Pattern):
    """A node of op ``op`` (a name or a tuple of names) with operands and attributes matching the given patterns."""

    def __init__(self, op: str | tuple[str, ...], *operands: Pattern, bind: str | None = None,
                 single_use: bool = False, **attrs):
        self.ops = (op,) if isinstance(op, str) else tuple(op)
        self.operands, self.bind_as, self.single_use, self.attrs = operands, bind, single_use, attrs

    def match(self, value, m):
        node = value.producer
        if node is None or (self.single_use and only_use(value) is None):
            return False
        if not self.match_node(node, m):
            return False
        m.nodes.append(node)
        return True

    def match_node(self, node: Node, m: Match) -> bool:
        if node.op not in self.ops or len(node.operands) != len(self.operands):
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
        orders = [self.operands]
        if len(self.operands) == 2 and _commutative(node):
            orders.append(self.operands[::-1])
        for order in orders:
            saved = (dict(m.bound), list(m.nodes))
            if all(p.match(v, m) for p, v in zip(order, node.operands)):
                if self.bind_as:
                    m.bound[self.bind_as] = node
                return True
            m.bound, m.nodes = saved
        return False


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
    None to decline. ``doc`` (``"x * 1 -> x"``) names the rule in statistics."""

    def __init__(self, pattern: Op, build: Callable[[Match], Value | Sequence[Value] | None],
                 where: Callable[[Match], bool] | None = None, doc: str = ""):
        self.pattern, self.build, self.where = pattern, build, where
        self.ops = pattern.ops
        self.stat = doc or "rules applied"

    def rewrite(self, node, rw):
        m = Match(node, rw)
        if not self.pattern.match_node(node, m) or (self.where is not None and not self.where(m)):
            return False
        mark = len(rw.created)
        replacement = self.build(m)
        values = [] if replacement is None else [replacement] if isinstance(replacement, Value) else list(replacement)
        if len(values) != len(node.results) or not all(fits(o.type, n.type) for o, n in zip(node.results, values)):
            erased = rw.erased
            for created in reversed(rw.created[mark:]):  # declined: drop what the builder made
                rw.erase_dead(created)
            rw.erased = erased
            return False
        rw.replace(node, values)
        return True

    def __repr__(self) -> str:
        return f"Rule({self.stat})"
