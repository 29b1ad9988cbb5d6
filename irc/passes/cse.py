"""cse: merges pure nodes that compute the same thing: same op, operands, attributes and result types.

One walk in dependency order with a table keyed by (op, operands, attributes, types); constants are keyed by
their content, so equal weights are stored once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from irc.passes import register_pass
from irc.passes.base import Pass
from irc.passes.util import is_pure


def _key_of(value):
    """A hashable stand-in for an attribute value."""
    if isinstance(value, np.ndarray):
        from irc.ir.printer import tensor_digest

        return ("tensor", tensor_digest(value))
    if isinstance(value, (list, tuple)):
        return tuple(_key_of(v) for v in value)
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    try:
        hash(value)
    except TypeError:
        return ("unhashable", id(value))
    return (type(value).__name__, value)


@register_pass
@dataclass(frozen=True)
class CommonSubexpressionElimination(Pass):
    """Merge pure nodes that compute the same value (equal constants included)."""

    name = "cse"
    walks_regions = "each"  # keeps every graph's inputs and outputs: safe inside regions

    def apply(self, graph, stats):
        seen = {}
        for node in graph.topo_order():
            if not is_pure(node):
                continue
            key = (node.op, tuple(id(v) for v in node.operands),
                   tuple(sorted((k, _key_of(v)) for k, v in node.attrs.items())),
                   tuple(r.type for r in node.results))
            twin = seen.get(key)
            if twin is None:
                seen[key] = node
                continue
            graph.replace_node(node, twin.results)
            stats["nodes merged"] += 1
