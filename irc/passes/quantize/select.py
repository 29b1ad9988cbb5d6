"""Choosing nodes by what a user calls them: a Keras layer name, a TF node name, an op type or a regular expression.

``--keep-float conv1`` (a layer), ``--keep-float small_cnn_1/conv1_1/convolution`` (a node),
``--keep-float softmax`` or ``op:softmax`` (every node of an op type) and ``--keep-float 'block_1.*'`` or
``/block_1.*/`` (a regular expression that must match a whole layer or node name) all work; the explicit forms
match only as they say. A selector that matches nothing is an error naming the layers there are, so a typo does
not silently quantize the layer the user meant to keep.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from irc.errors import QuantizationError
from irc.ir.graph import Graph, Node


def names_of(node: Node) -> tuple[str, ...]:
    """The names a selector may match: Keras layers first, then TF node names."""
    return (*node.loc.layers, *node.loc.names)


def matches(selector: str, node: Node) -> bool:
    if selector.startswith("op:"):
        return selector[3:] in (node.op, node.core_op)  # op:conv2d also selects tfl.conv2d
    explicit = len(selector) > 2 and selector.startswith("/") and selector.endswith("/")
    if not explicit and (selector in (node.op, node.core_op) or selector in names_of(node)):
        return True
    try:
        pattern = re.compile(selector[1:-1] if explicit else selector)
    except re.error:
        if explicit:
            raise QuantizationError(f"bad regular expression {selector!r}") from None
        return False
    return any(pattern.fullmatch(name) for name in names_of(node))


def select(graph: Graph, selectors: Iterable[str], what: str = "--keep-float") -> set[Node]:
    """The nodes any selector matches, inside regions too; QuantizationError for a selector that matches none."""
    nodes = [n for n in graph.walk(recursive=True) if n.op != "const"]
    chosen: set[Node] = set()
    for selector in selectors:
        hits = {n for n in nodes if matches(selector, n)}
        if not hits:
            raise QuantizationError(f"{what} {selector!r} matches no layer, node or op of the model",
                                    hint=_suggest(selector, nodes))
        chosen |= hits
    return chosen


def _suggest(selector: str, nodes: list[Node]) -> str:
    layers = sorted({layer for n in nodes for layer in n.loc.layers})
    close = difflib.get_close_matches(selector, layers + sorted({n.op for n in nodes}), n=3)
    if close:
        return f"did you mean {', '.join(close)}?"
    shown = ", ".join(layers[:12]) + (", ..." if len(layers) > 12 else "")
    return f"layers: {shown}" if layers else "the model has no Keras layer names; use node names or op types"
