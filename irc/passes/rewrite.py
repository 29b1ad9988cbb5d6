"""The rewrite driver every pattern-based pass shares: typed patterns and rule tables on one worklist.

A ``RewritePattern`` names the ops it looks at (``ops = ("add", "sub")``, or ``("*",)`` for any op) and returns
True from ``rewrite`` when it changed the graph, False (early) when it does not apply. It edits only through the
``Rewriter``, which keeps the worklist right: new nodes and the users of replaced values are revisited, and nodes
left without users (when pure) are erased at once. The driver starts from the graph in dependency order, so a
pattern sees its operands already rewritten; the whole run is linear in the graph size plus the rewrites done.

Patterns on the same op are tried by ``benefit``, highest first (equal benefits keep their order); the first that
rewrites wins. ``trace_rewrites(callback)`` reports every rewrite that fired and every rule that matched but
declined (``irc opt --debug-rewrites``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, ClassVar

import numpy as np

from irc.ir.graph import Graph, Location, Node, Value
from irc.ir.types import TensorType, tensor_type_of
from irc.passes.base import Pass, Stats
from irc.passes.util import is_pure


class RewritePattern:
    """One rewrite, tried on nodes whose op is in ``ops``. Subclasses implement ``rewrite``."""

    ops: ClassVar[tuple[str, ...]] = ("*",)
    stat: ClassVar[str] = "rewrites"  # the statistic a successful rewrite counts
    benefit: ClassVar[int] = 1  # patterns on the same op are tried highest benefit first

    def rewrite(self, node: Node, rw: Rewriter) -> bool:
        raise NotImplementedError(f"{type(self).__qualname__} defines no rewrite(self, node, rw) method")

    def check_ops(self) -> None:
        """A ValueError naming the pattern when one of its ``ops`` is not a registered op."""
        from irc.ops import get_op

        for op in self.ops:
            if op == "*" or op.startswith("tf."):
                continue
            try:
                get_op(op)
            except KeyError:
                raise ValueError(f"pattern {self!r}: unknown op {op!r}") from None

    def __repr__(self) -> str:
        return type(self).__name__


# A rewrite's trace: callback(event, pattern, node, detail), event "fired" or "declined".
RewriteTrace = Callable[[str, RewritePattern, Node, str], None]
_TRACE: ContextVar[RewriteTrace | None] = ContextVar("irc_rewrite_trace", default=None)


@contextlib.contextmanager
def trace_rewrites(callback: RewriteTrace) -> Iterator[None]:
    """Calls ``callback`` for every pattern that fires, and every rule that matches but declines, inside."""
    token = _TRACE.set(callback)
    try:
        yield
    finally:
        _TRACE.reset(token)


class Rewriter:
    """Every edit a pattern makes goes through here, so the driver knows what to revisit."""

    def __init__(self, graph: Graph, stats: Stats):
        self.graph = graph
        self.stats = stats
        self.worklist: list[Node] = []
        self._queued: set[Node] = set()
        self.created: list[Node] = []
        self.erased = 0
        self.trace = _TRACE.get()

    def declined(self, pattern: RewritePattern, node: Node, why: str) -> None:
        """A pattern that matched ``node`` but did not rewrite it says why (shown by ``--debug-rewrites``)."""
        if self.trace is not None:
            self.trace("declined", pattern, node, why)

    # ----- worklist ---------------------------------------------------------------------------------------------
    def push(self, node: Node) -> None:
        if node not in self._queued and node.graph is self.graph:
            self._queued.add(node)
            self.worklist.append(node)

    def pop(self) -> Node | None:
        while self.worklist:
            node = self.worklist.pop()
            self._queued.discard(node)
            if node.graph is self.graph:
                return node
        return None

    def push_users(self, value: Value) -> None:
        for user, _ in value.uses:
            self.push(user)

    # ----- building ---------------------------------------------------------------------------------------------
    def create(self, op: str, operands: Sequence[Value] = (), attrs: dict | None = None, *,
               types: Sequence[TensorType] | None = None, loc: Location = Location()) -> Node:
        node = self.graph.add(op, operands, attrs, types=types, loc=loc)
        self.created.append(node)
        self.push(node)
        return node

    def op(self, op: str, *operands: Value, loc: Location = Location(), type: TensorType | None = None,
           **attrs) -> Value:
        """A new single-result node; its type is inferred unless given."""
        return self.create(op, operands, attrs, types=None if type is None else [type], loc=loc).result

    def const(self, array, loc: Location = Location(), type: TensorType | None = None) -> Value:
        """A new constant (``type`` keeps quantization parameters of the value it stands for)."""
        array = np.asarray(array)
        return self.create("const", (), {"value": array}, types=[type or tensor_type_of(array)], loc=loc).result

    # ----- editing ----------------------------------------------------------------------------------------------
    def replace(self, node: Node, values: Value | Sequence[Value]) -> None:
        """Replaces every result of ``node`` and erases it, with whatever it alone kept alive."""
        values = [values] if isinstance(values, Value) else list(values)
        for old, new in zip(node.results, values, strict=True):
            self.graph.replace_all_uses(old, new)
            self.push_users(new)
            if new.producer is not None:
                self.push(new.producer)
        if not self._used(node):
            producers = [v.producer for v in node.operands if v.producer is not None]
            self.graph.erase(node)
            self.erased += 1
            for producer in producers:
                self.erase_dead(producer)

    def set_operand(self, node: Node, index: int, value: Value) -> None:
        old = node.operands[index]
        self.graph.set_operand(node, index, value)
        self.push(node)
        if old.producer is not None:
            self.erase_dead(old.producer)

    def erase_dead(self, node: Node) -> None:
        """Erases ``node`` if nothing uses its results, then its operands' producers that became unused."""
        stack = [node]
        while stack:
            node = stack.pop()
            if node.graph is not self.graph or not is_pure(node) or self._used(node):
                continue
            producers = [v.producer for v in node.operands if v.producer is not None]
            self.graph.erase(node)
            self.erased += 1
            stack.extend(producers)

    def _used(self, node: Node) -> bool:
        return any(r.uses for r in node.results) or any(self.graph.is_output(r) for r in node.results)


def fits(old: TensorType, new: TensorType) -> bool:
    """Whether a value of type ``new`` may stand in for one of type ``old``: the same type. (Merely compatible
    shapes are not enough: ``x + zeros[4]`` is not ``x`` when ``x`` is ``f32[?]``.)"""
    return old.dtype == new.dtype and old.quant == new.quant and old.shape == new.shape


def apply_patterns(graph: Graph, patterns: Iterable[RewritePattern], stats: Stats,
                   max_rewrites: int | None = None) -> int:
    """Applies ``patterns`` until none matches; returns the number of rewrites."""
    by_op: dict[str, list[RewritePattern]] = {}
    for pattern in patterns:
        for op in pattern.ops:
            by_op.setdefault(op, []).append(pattern)
    anywhere = by_op.pop("*", [])
    rw = Rewriter(graph, stats)
    for node in reversed(graph.topo_order()):  # a stack: producers come off first
        rw.push(node)
    limit = max_rewrites if max_rewrites is not None else 10 * len(graph) + 1000
    candidates: dict[str, list[RewritePattern]] = {}
    done = 0
    while (node := rw.pop()) is not None:
        if node.op not in candidates:
            # sorted is stable: equal benefits keep their order
            candidates[node.op] = sorted(by_op.get(node.op, []) + anywhere, key=lambda p: -p.benefit)
        for pattern in candidates[node.op]:
            label = _label(node) if rw.trace is not None else ""
            if pattern.rewrite(node, rw):
                if rw.trace is not None:
                    rw.trace("fired", pattern, node, label)
                stats[pattern.stat] += 1
                done += 1
                break
        if done > limit:
            raise RuntimeError(f"rewriting did not converge after {done} rewrites (a pattern undoes another?)")
    if rw.erased:
        stats["nodes removed"] += rw.erased
    return done


def _label(node: Node) -> str:
    from irc.ir.verify import node_label

    return node_label(node)


class PatternPass(Pass):
    """A pass that applies its ``patterns`` (typed patterns and rules) until none matches.

    Subclass it as a frozen dataclass, set ``name`` and ``patterns``, and register it. A subclass without
    ``patterns`` (or with ``rules`` instead) is refused when the class is created, and so is a pattern whose ops
    are not registered.
    """

    patterns: ClassVar[Sequence[RewritePattern]] = ()
    # Patterns replace values by values of the same type and never touch a graph's inputs or outputs, so they
    # are safe inside regions: the manager applies them to every region graph too.
    walks_regions = "each"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "rules" in cls.__dict__:
            raise TypeError(f"PatternPass {cls.__qualname__}: put its rules in 'patterns', not 'rules'")
        if cls.apply is PatternPass.apply and not cls.patterns:
            raise TypeError(f"PatternPass {cls.__qualname__} has no patterns: set patterns = [Rule(...), ...]")
        for pattern in cls.patterns:
            if not isinstance(pattern, RewritePattern):
                raise TypeError(f"PatternPass {cls.__qualname__}: {pattern!r} in patterns is not a Rule or a "
                                "RewritePattern")
            pattern.check_ops()

    def apply(self, graph: Graph, stats: Stats) -> None:
        apply_patterns(graph, self.patterns, stats)


def attrs_of(node: Node, **changes: Any) -> dict:
    """``node``'s attributes with ``changes`` applied; an attribute set to None or to its default is left out."""
    attrs = dict(node.attrs)
    specs = node.opdef.attrs
    for key, value in changes.items():
        spec = specs.get(key)
        if value is None or (spec is not None and not spec.required and spec.default == value):
            attrs.pop(key, None)
        else:
            attrs[key] = value
    return attrs
