"""Which nodes a graph needs, and removing the rest: the one dead-node removal every layer uses.

A node is live when a graph output depends on it, or when ``keep(node)`` says it must stay (a pass keeps impure
nodes, the TFLite reader opaque ones) together with everything it depends on.
"""

from __future__ import annotations

from collections.abc import Callable

from irc.ir.graph import Graph, Node


def live_nodes(graph: Graph, keep: Callable[[Node], bool] | None = None) -> set[Node]:
    """The nodes an output, or a node ``keep`` holds on to, depends on."""
    stack = [v.producer for v in graph.outputs.values() if v.producer is not None]
    if keep is not None:
        stack += [node for node in graph.nodes if keep(node)]
    live: set[Node] = set()
    while stack:
        node = stack.pop()
        if node not in live:
            live.add(node)
            stack.extend(v.producer for v in node.operands if v.producer is not None)
    return live


def remove_dead(graph: Graph, keep: Callable[[Node], bool] | None = None) -> int:
    """Erases every node that is not live (users before their producers); returns how many it erased."""
    live = live_nodes(graph, keep)
    dead = [node for node in reversed(graph.topo_order()) if node not in live]
    for node in dead:
        graph.erase(node)
    return len(dead)
