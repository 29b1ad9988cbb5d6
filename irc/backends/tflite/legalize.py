"""Legalization for TFLite: which nodes the backend writes as builtins, as Flex ops, or not at all.

``check`` gives every node's status: ``native`` (TFLite builtin operators), ``fallback`` (an opaque ``tf.<Op>``
written as a Flex custom op, which needs the Flex delegate at run time) or ``unsupported`` with the reason.
``legalize`` raises one UnsupportedOpError naming every op type the model cannot be written with, before
anything is emitted, so a user sees the whole list at once.
"""

from __future__ import annotations

from typing import NamedTuple

from irc.backends.tflite.ops import rule_for
from irc.errors import UnsupportedOpError
from irc.ir.graph import Graph, Node

NATIVE, FALLBACK, UNSUPPORTED = "native", "fallback", "unsupported"
_SHOWN = 3  # node locations named per op type in the error


class Support(NamedTuple):
    node: Node
    status: str
    reason: str


def check(graph: Graph, *, allow_tf_ops: bool = True) -> list[Support]:
    """Every node's status, in topological order."""
    return [Support(node, *status(node, allow_tf_ops)) for node in graph.topo_order()]


def status(node: Node, allow_tf_ops: bool = True) -> tuple[str, str]:
    if node.op == "const":
        return NATIVE, ""
    rule = rule_for(node)
    if rule is None:
        return UNSUPPORTED, f"TFLite has no operator for {node.op} and irc has no rewrite of it"
    problem = rule.check(node) if rule.check is not None else None
    if problem:
        return UNSUPPORTED, problem
    if node.is_opaque:
        if not allow_tf_ops:
            return UNSUPPORTED, "a TensorFlow op irc does not lower (--allow-tf-ops writes it as a Flex op)"
        return FALLBACK, "a Flex op: runs with TensorFlow's kernel through the Flex delegate"
    return NATIVE, ""


def legalize(graph: Graph, *, allow_tf_ops: bool = False) -> list[Support]:
    """``check``, raising one UnsupportedOpError that names every op type TFLite cannot be given."""
    from irc.backends.tflite.backend import live_nodes

    live = set(live_nodes(graph))
    report = check(graph, allow_tf_ops=allow_tf_ops)
    bad: dict[str, list[Support]] = {}
    for item in report:
        if item.status == UNSUPPORTED and item.node in live:
            bad.setdefault(item.node.op, []).append(item)
    if bad:
        raise UnsupportedOpError(describe(bad), hint=_hint(bad))
    return report


def describe(bad: dict[str, list[Support]]) -> str:
    from irc.ir.verify import node_label

    parts = []
    for op, items in sorted(bad.items()):
        shown = ", ".join(str(i.node.loc) if i.node.loc else node_label(i.node) for i in items[:_SHOWN])
        more = ", ..." if len(items) > _SHOWN else ""
        parts.append(f"{op} x{len(items)} ({items[0].reason}; at {shown}{more})")
    return f"TFLite cannot take {len(bad)} op type(s) of this model: " + "; ".join(parts)


def _hint(bad: dict[str, list[Support]]) -> str:
    if all(op.startswith("tf.") for op in bad):
        return "pass --allow-tf-ops to write them as Flex ops, which need TensorFlow's Flex delegate to run"
    return "irc check --target tflite lists every node"
