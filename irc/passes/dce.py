"""dce: removes pure nodes whose results nothing uses (graph outputs count as uses).

A worklist over nodes without users: erasing one may leave its operands' producers unused, and they go next.
Impure nodes (opaque TensorFlow ops, ops without the PURE trait) stay, and so does what they use.
"""

from __future__ import annotations

from dataclasses import dataclass

from irc.passes import register_pass
from irc.passes.base import Pass
from irc.passes.rewrite import Rewriter


@register_pass
@dataclass(frozen=True)
class DeadCodeElimination(Pass):
    """Remove pure nodes whose results are unused."""

    name = "dce"

    def apply(self, graph, stats):
        rw = Rewriter(graph, stats)
        for node in graph.nodes:
            if not any(r.uses for r in node.results):
                rw.erase_dead(node)
        if rw.erased:
            stats["nodes removed"] += rw.erased
