"""dce: removes pure nodes whose results nothing uses (graph outputs count as uses).

Impure nodes (opaque TensorFlow ops, ops without the PURE trait) stay, and so does what they use: the liveness
walk of ``irc.ir.liveness`` with impure nodes as roots, linear in the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

from irc.ir.liveness import remove_dead
from irc.passes import register_pass
from irc.passes.base import Pass
from irc.passes.util import is_pure


@register_pass
@dataclass(frozen=True)
class DeadCodeElimination(Pass):
    """Remove pure nodes whose results are unused."""

    name = "dce"
    walks_regions = "each"  # keeps every graph's inputs and outputs: safe inside regions

    def apply(self, graph, stats):
        removed = remove_dead(graph, keep=lambda node: not is_pure(node))
        if removed:
            stats["nodes removed"] += removed
