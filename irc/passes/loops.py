"""Loop passes: ``hoist-invariants`` (loop-invariant code motion out of ``while`` bodies) and ``unroll-loops``.

Both rewrite ``while`` nodes, so they walk regions themselves (``walks_regions = "self"``), innermost loops first.

hoist-invariants: a value of a loop body that depends only on constants and on carried values the body passes
through unchanged is the same in every iteration. Each such value that the rest of the body uses is computed once
before the loop and carried in as a new loop value that the body returns unchanged (regions are isolated from
above, so it cannot be used directly). Hoisted work runs once even when the loop runs zero times, as in any
loop-invariant code motion; only pure ops move. Constants alone move only with ``constants`` (those of at least
``min-elements`` elements): they are stored once either way, but as a carried value a backend may keep them
outside the loop's subgraph.

unroll-loops: a loop whose trip count is static (its condition follows from the constant initial values and the
counters the body computes from them) becomes that many copies of its body, up to ``max-trip`` iterations and
within ``irc.limits``' node limit. On request only: no default pipeline unrolls.
"""

from __future__ import annotations

from dataclasses import dataclass

from irc import limits
from irc.ir.graph import Graph, Node, Value
from irc.passes import register_pass
from irc.passes.base import Pass, option
from irc.passes.manager import regions_innermost_first
from irc.passes.regions import TRIP_COUNT_WORK, inline_region, static_trip_count
from irc.passes.util import is_pure


def _loops_innermost_first(graph: Graph) -> list[Node]:
    graphs = [*regions_innermost_first(graph), graph]
    return [node for g in graphs for node in g.topo_order() if node.op == "while"]


def _invariant_values(body: Graph) -> set[Value]:
    passed = {v for v, out in zip(body.inputs, body.outputs.values()) if v is out}
    invariant = set(passed)
    for node in body.topo_order():
        if is_pure(node) and not node.regions and all(v in invariant for v in node.operands):
            invariant.update(node.results)
    return invariant


def _clone_cone(value: Value, outer: Graph, loop: Node, memo: dict[Value, Value]) -> Value:
    """``value`` (invariant in the loop's body) computed in ``outer`` from the loop's operands and constants."""
    if value in memo:
        return memo[value]
    body = loop.regions[1]
    if value.producer is None:
        memo[value] = loop.operands[body.inputs.index(value)]
        return memo[value]
    node = value.producer
    operands = [_clone_cone(v, outer, loop, memo) for v in node.operands]
    clone = outer.add(node.op, operands, dict(node.attrs), types=[r.type for r in node.results], loc=node.loc)
    memo.update(zip(node.results, clone.results))
    return memo[value]


def _rebuild(loop: Node, extra: list[Value]) -> Node:
    """A copy of ``loop`` carrying ``extra`` values too (its regions already take and return them); the old
    loop's results are replaced and it is erased."""
    graph = loop.graph
    new = graph.add("while", [*loop.operands, *extra], dict(loop.attrs), loc=loop.loc,
                    regions=[r.copy() for r in loop.regions])
    new.meta = dict(loop.meta)
    for old, fresh in zip(loop.results, new.results):
        graph.replace_all_uses(old, fresh)
    graph.erase(loop)
    return new


def hoist_loop(loop: Node, constants: bool, min_elements: int) -> int:
    """Hoists ``loop``'s invariant values; returns how many became carried values."""
    cond, body = loop.regions
    invariant = _invariant_values(body)
    outputs = set(body.outputs.values())
    boundary = []
    for node in body.topo_order():
        for r in node.results:
            if r not in invariant:
                continue
            if not (r in outputs or any(u.results and any(x not in invariant for x in u.results)
                                        for u, _ in r.uses)):
                continue
            if node.op == "const" and not (constants and (r.type.num_elements or 0) >= min_elements):
                continue
            boundary.append(r)
    boundary = [r for r in boundary if not any(r is v for v in body.inputs)]
    if not boundary:
        return 0
    graph, memo, extra = loop.graph, {}, []
    for k, value in enumerate(boundary):
        extra.append(_clone_cone(value, graph, loop, memo))
        name = _fresh_name(body, f"hoisted{k}")
        arg = body.add_input(name, value.type)
        cond.add_input(_fresh_name(cond, name), value.type)
        body.replace_all_uses(value, arg)  # the body's outputs included: a passed-through value stays one
        body.set_output(_fresh_name_output(body), arg)
    from irc.ir.liveness import remove_dead

    remove_dead(body, keep=lambda node: not is_pure(node))
    _rebuild(loop, extra)
    return len(boundary)


def _fresh_name(graph: Graph, base: str) -> str:
    names = {v.name for v in graph.inputs}
    name, n = base, 0
    while name in names:
        n += 1
        name = f"{base}_{n}"
    return name


def _fresh_name_output(graph: Graph) -> str:
    n = len(graph.outputs)
    while str(n) in graph.outputs:
        n += 1
    return str(n)


@register_pass
@dataclass(frozen=True)
class HoistInvariants(Pass):
    """Move loop-invariant computations out of while bodies, as carried values the body passes through."""

    name = "hoist-invariants"
    walks_regions = "self"
    constants: bool = option(False, "hoist large constants too (as carried values)")
    min_elements: int = option(1024, "with constants: hoist constants of at least this many elements")

    def apply(self, graph, stats):
        for loop in _loops_innermost_first(graph):
            if loop.graph is None:
                continue
            hoisted = hoist_loop(loop, self.constants, self.min_elements)
            if hoisted:
                stats["values hoisted"] += hoisted


@register_pass
@dataclass(frozen=True)
class UnrollLoops(Pass):
    """Unroll while loops whose trip count is static (up to max-trip iterations); on request only."""

    name = "unroll-loops"
    walks_regions = "self"
    max_trip: int = option(64, "unroll loops of at most this many iterations")

    def apply(self, graph, stats):
        for loop in _loops_innermost_first(graph):
            if loop.graph is None:
                continue
            # finding the count costs about what unrolling makes: the node limit bounds both
            trips = static_trip_count(loop, self.max_trip, work=max(TRIP_COUNT_WORK, limits.current().max_nodes))
            if trips is None:
                continue
            body = loop.regions[1]
            top = graph
            total = sum(len(g) for g in top.all_graphs()) + trips * sum(len(g) for g in body.all_graphs())
            from irc.ir.verify import node_label

            limits.check_nodes(total, f"unrolling {trips} iterations", where=node_label(loop))
            values = list(loop.operands)
            for _ in range(trips):
                values, _made = inline_region(loop.graph, body, values)
            loop.graph.replace_node(loop, values)
            stats["loops unrolled"] += 1
            stats["iterations unrolled"] += trips
