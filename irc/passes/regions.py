"""Helpers for passes that rewrite region ops (``while``, ``if``): inlining a region, and evaluating a region on
the values that are known (constants) to learn what it computes from them alone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from irc.ir.graph import Graph, Node, Value


def inline_region(graph: Graph, region: Graph, args: Sequence[Value]) -> tuple[list[Value], list[Node]]:
    """Clones ``region``'s nodes into ``graph``, its arguments bound to ``args``; returns the values standing for
    its results (in order) and the nodes made. Nested regions are copied with their nodes."""
    mapping: dict[Value, Value] = dict(zip(region.inputs, args, strict=True))
    made = []
    for node in region.topo_order():
        clone = graph.add(node.op, [mapping[v] for v in node.operands], dict(node.attrs),
                          types=[r.type for r in node.results], loc=node.loc,
                          regions=[r.copy() for r in node.regions])
        clone.meta = dict(node.meta)
        mapping.update(zip(node.results, clone.results))
        made.append(clone)
    return [mapping[v] for v in region.outputs.values()], made


def evaluate_known(region: Graph, known: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
    """The region's results that follow from the arguments given (None: unknown) with the reference kernels;
    None for a result that needs an unknown argument, an impure node or a kernel that fails."""
    from irc.ir.interpreter import run_node
    from irc.passes.util import const_array, is_pure

    env: dict[Value, np.ndarray] = {v: a for v, a in zip(region.inputs, known, strict=True) if a is not None}
    for node in region.topo_order():
        if node.op == "const":
            env[node.result] = const_array(node.result)
            continue
        if not (is_pure(node) or node.regions) or not all(v in env for v in node.operands):
            continue
        try:
            outs = run_node(node, [env[v] for v in node.operands])
        except Exception:  # noqa: BLE001, S112 - it fails at run time too; here it only means "not known"
            continue
        for value, out in zip(node.results, outs):
            env[value] = np.asarray(out).astype(value.type.dtype.numpy, copy=False)
    return [env.get(v) for v in region.outputs.values()]


def constant_operands(node: Node) -> list[np.ndarray | None]:
    from irc.passes.util import const_array

    return [const_array(v) if v.is_constant else None for v in node.operands]


# Node evaluations ``static_trip_count`` spends at most: a crafted loop must not make a query (irc stats) slow.
TRIP_COUNT_WORK = 200_000


def static_trip_count(loop: Node, most: int, work: int = TRIP_COUNT_WORK) -> int | None:
    """How many times ``loop``'s body runs, when its condition follows from the constant initial values and what
    the body computes from them (counters); None when unknown, above ``most``, or when finding out would take
    more than ``work`` node evaluations."""
    cond, body = loop.regions
    values = constant_operands(loop)
    bound = loop.attr("max_trip_count")
    per_iteration = sum(len(g) for g in cond.all_graphs()) + sum(len(g) for g in body.all_graphs())
    trips = 0
    while True:
        work -= per_iteration
        if work < 0:
            return None
        (go,) = evaluate_known(cond, values)
        if go is None:
            return None
        if not bool(np.asarray(go).reshape(-1)[0]) or (bound >= 0 and trips >= bound):
            return trips
        if trips >= most:
            return None
        values = evaluate_known(body, values)
        trips += 1
