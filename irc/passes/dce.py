"""dce: removes pure nodes whose results nothing uses (graph outputs count as uses).

Impure nodes (opaque TensorFlow ops, ops without the PURE trait) stay, and so does what they use: the liveness
walk of ``irc.ir.liveness`` with impure nodes as roots, linear in the graph.

Regions: the manager runs the pass inside every region (innermost first); a region's results always stay. Then a
``while`` drops a carried value whose result nothing uses when neither its condition nor the body's other
carried values need it (a counter the loop tests stays), and an ``if`` drops results nothing uses and the inputs
no branch then needs. A loop or ``if`` left with no result used goes when everything in its regions is pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from irc.ir.graph import Graph, Node
from irc.ir.liveness import remove_dead
from irc.passes import register_pass
from irc.passes.base import Pass
from irc.passes.util import is_pure


def _impure(node: Node) -> bool:
    return not is_pure(node)


def _all_pure(node: Node) -> bool:
    """Whether everything inside ``node``'s regions is pure (removing the node removes no effect)."""
    return all(is_pure(n) or (n.regions and _all_pure(n)) for r in node.regions for n in r.walk())


def inputs_needed(region: Graph, outputs: set[int]) -> set[int]:
    """Indices of the region's arguments that its results ``outputs`` (by index) or its impure nodes need."""
    results = list(region.outputs.values())
    used = {results[i] for i in outputs}
    stack = [v.producer for v in used if v.producer is not None] + [n for n in region.nodes if _impure(n)]
    live: set[Node] = set()
    while stack:
        node = stack.pop()
        if node not in live:
            live.add(node)
            used.update(node.operands)
            stack.extend(v.producer for v in node.operands if v.producer is not None)
    return {i for i, v in enumerate(region.inputs) if v in used}


def _drop_outputs(region: Graph, drop: set[int]) -> None:
    kept = [v for i, v in enumerate(region.outputs.values()) if i not in drop]
    region.outputs = {str(i): v for i, v in enumerate(kept)}
    region.version += 1
    remove_dead(region, keep=_impure)


def _drop_inputs(region: Graph, drop: set[int]) -> None:
    region.inputs = [v for i, v in enumerate(region.inputs) if i not in drop]
    region.version += 1


def _unused(node: Node) -> set[int]:
    graph = node.graph
    return {i for i, r in enumerate(node.results) if not r.uses and not graph.is_output(r)}


def _rebuild(node: Node, operands, keep_results: list[int]) -> None:
    graph = node.graph
    new = graph.add(node.op, operands, dict(node.attrs), loc=node.loc, regions=[r.copy() for r in node.regions])
    new.meta = dict(node.meta)
    for old_index, fresh in zip(keep_results, new.results):
        graph.replace_all_uses(node.results[old_index], fresh)
    graph.erase(node)


def shrink_while(loop: Node) -> int:
    """Drops the carried values of ``loop`` that nothing needs; returns how many."""
    cond, body = loop.regions
    drop = _unused(loop)
    while drop:
        needed = inputs_needed(body, set(range(len(loop.results))) - drop) | inputs_needed(cond, {0})
        smaller = drop - needed
        if smaller == drop:
            break
        drop = smaller
    if not drop:
        return 0
    if len(drop) == len(loop.results):
        if not _all_pure(loop):
            return 0
        loop.graph.erase(loop)
        return len(drop)
    _drop_outputs(body, drop)
    remove_dead(cond, keep=_impure)
    _drop_inputs(body, drop)
    _drop_inputs(cond, drop)
    keep = [i for i in range(len(loop.results)) if i not in drop]
    _rebuild(loop, [loop.operands[i] for i in keep], keep)
    return len(drop)


def shrink_if(node: Node) -> int:
    """Drops the results of an ``if`` nothing uses, then the inputs no branch needs; returns how many went."""
    drop = _unused(node)
    if len(drop) == len(node.results) and drop:
        if not _all_pure(node):
            return 0
        node.graph.erase(node)
        return len(drop)
    keep = [i for i in range(len(node.results)) if i not in drop]
    needed = set()
    for region in node.regions:
        needed |= inputs_needed(region, set(range(len(node.results))) - drop)
    unused_inputs = set(range(len(node.operands) - 1)) - needed
    if not drop and not unused_inputs:
        return 0
    for region in node.regions:
        if drop:
            _drop_outputs(region, drop)
        remove_dead(region, keep=_impure)
        _drop_inputs(region, unused_inputs)
    operands = [node.operands[0]] + [v for j, v in enumerate(node.operands[1:]) if j not in unused_inputs]
    _rebuild(node, operands, keep)
    return len(drop) + len(unused_inputs)


@register_pass
@dataclass(frozen=True)
class DeadCodeElimination(Pass):
    """Remove pure nodes whose results are unused."""

    name = "dce"
    walks_regions = "each"  # keeps every graph's inputs and outputs: safe inside regions

    def apply(self, graph, stats):
        removed = remove_dead(graph, keep=_impure)
        shrunk = 0
        for node in reversed(graph.topo_order()):  # users first: dropping one frees what it used
            if node.graph is not graph:
                continue
            if node.op == "while":
                shrunk += shrink_while(node)
            elif node.op == "if":
                shrunk += shrink_if(node)
        if shrunk:
            stats["region values dropped"] += shrunk
            removed += remove_dead(graph, keep=_impure)
        if removed:
            stats["nodes removed"] += removed
