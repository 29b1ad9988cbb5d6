"""Half-precision inference for the cuda target: weights and compute in float16 or bfloat16.

``to_half(graph, dtype)`` rewrites a float32 graph in place: float32 constants become ``dtype``; each float32 input
is cast to ``dtype`` on entry and each float32 output back to float32 on exit, so the model's signature does not
change. Every node then computes in ``dtype``, except

- ``KEEP_FLOAT32`` ops (softmax and its log: exponentials of half-precision logits lose too much), and
- opaque TensorFlow ops (their NodeDefs fix their float32 types),

which get their operands cast back to float32; a float32 value meeting a half one (a cast to float32, say) is cast
down. Tensor cores run float16 and bfloat16 matmuls and convolutions at several times the float32 rate.
"""

from __future__ import annotations

from irc.errors import UsageError
from irc.ir.graph import Graph, Node, Value
from irc.ir.types import DType

PRECISIONS = {"fp32": DType.f32, "fp16": DType.f16, "bf16": DType.bf16}
KEEP_FLOAT32 = frozenset({"softmax", "log_softmax"})


def parse(precision: str | None) -> DType:
    """The dtype for a ``--precision`` name (None: float32)."""
    key = (precision or "fp32").lower()
    if key not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r} (precisions: {', '.join(PRECISIONS)})")
    return PRECISIONS[key]


def to_half(graph: Graph, dtype: DType) -> int:
    """Rewrites ``graph`` to compute in ``dtype`` (see the module docstring); returns how many nodes now do."""
    if dtype is DType.f32:
        return 0
    if any(v.type.quant for node in graph.nodes for v in node.results):
        raise UsageError("--precision fp16/bf16 applies to float models; this one is quantized")
    outputs = dict(graph.outputs)
    for value in graph.inputs:
        if value.type.dtype is DType.f32 and not value.type.quant:
            _retarget(graph, value, _cast(graph, value, dtype, value))
    converted = 0
    for node in graph.topo_order():
        if node.graph is not graph or node.op == "cast" and node.meta.get("precision"):
            continue
        if node.op == "const":
            converted += _const(graph, node, dtype)
        elif node.is_opaque or node.op in KEEP_FLOAT32:
            _cast_operands(graph, node, DType.f32)
        else:
            converted += _compute_in(graph, node, dtype)
    for name, value in outputs.items():
        final = graph.outputs[name]
        if value.type.dtype is DType.f32 and final.type.dtype is not DType.f32:
            graph.set_output(name, _cast(graph, final, DType.f32, final.producer))
    return converted


def _const(graph: Graph, node: Node, dtype: DType) -> int:
    value = node.attrs["value"]
    if node.result.type.dtype is not DType.f32 or node.result.type.quant:
        return 0
    graph.set_attr(node, "value", value.astype(dtype.numpy))
    graph.set_type(node.result, node.result.type.with_dtype(dtype))
    return 1


def _compute_in(graph: Graph, node: Node, dtype: DType) -> int:
    """Re-infers ``node``'s result types once its float operands all have one float type."""
    from irc.ops import infer_types

    floats = {v.type.dtype for v in node.operands if v.type.dtype in (DType.f32, dtype)}
    if not floats or floats == {DType.f32}:
        return 0  # integer ops, and float32 made from integers (a cast): left as they are
    _cast_operands(graph, node, dtype, only=DType.f32)
    types = infer_types(node.op, [v.type for v in node.operands], node.attrs, [v.constant for v in node.operands])
    for result, type in zip(node.results, types, strict=True):
        graph.set_type(result, type)
    return 1


def _cast_operands(graph: Graph, node: Node, to: DType, only: DType | None = None) -> None:
    """Casts ``node``'s float operands (of dtype ``only``, or any other float than ``to``) to ``to``."""
    for i, v in enumerate(node.operands):
        if v.type.dtype in (DType.f32, DType.f16, DType.bf16) and v.type.dtype is not to and \
                (only is None or v.type.dtype is only):
            graph.set_operand(node, i, _cast(graph, v, to, node))


def _cast(graph: Graph, value: Value, to: DType, near: Node | Value | None) -> Value:
    loc = near.loc if isinstance(near, Node) else (value.producer.loc if value.producer else None)
    node = graph.add("cast", [value], {"to": to}, **({"loc": loc} if loc else {}))
    node.meta["precision"] = True  # made by this pass: the walk leaves it alone
    return node.result


def _retarget(graph: Graph, value: Value, new: Value) -> None:
    """Every use of the input ``value`` except the cast made from it now uses ``new``."""
    for user, i in list(value.uses):
        if user is not new.producer:
            graph.set_operand(user, i, new)
    for name, v in list(graph.outputs.items()):
        if v is value:
            graph.set_output(name, new)
