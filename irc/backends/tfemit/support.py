"""Which nodes a TensorFlow target runs: natively, through a fallback, or not at all (``irc check``, legalization).

irc ops are covered when the emitter has a rule for them (``rules.py``); opaque ``tf.<Op>`` nodes are looked up in
TensorFlow's kernel registry: XLA kernels for xla and tpu (TPU compiles everything through XLA; the TPU kernel
list is not available off a TPU host, so the CPU XLA list stands in for it), GPU kernels for cuda (where
TensorFlow is built with CUDA; without one an op runs on the CPU, which soft placement makes a fallback, never a
failure). ``legalize`` raises one TargetError naming every op a target cannot run.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from irc.backends.tfemit.codegen import has_emitter
from irc.errors import TargetError
from irc.ir.graph import Graph, Node
from irc.ir.types import DType

NATIVE, FALLBACK, UNSUPPORTED = "native", "fallback", "unsupported"
TARGETS = ("xla", "cuda", "tpu")
_QUANT_OPS = {"quantize", "dequantize", "requantize"}


class Support(NamedTuple):
    node: Node
    status: str  # native, fallback or unsupported
    reason: str


def check(graph: Graph, target: str) -> list[Support]:
    """For every node (topological order), whether ``target`` runs it natively, via fallback, or not at all."""
    if target not in TARGETS:
        raise ValueError(f"unknown TensorFlow target {target!r}")
    return [Support(node, *_status(node, target)) for node in graph.topo_order()]


def legalize(graph: Graph, target: str) -> list[Support]:
    """``check``, raising one TargetError that names every op the target cannot run (grouped by op)."""
    report = check(graph, target)
    bad: dict[str, list[Support]] = {}
    for item in report:
        if item.status == UNSUPPORTED:
            bad.setdefault(item.node.op, []).append(item)
    if bad:
        from irc.ir.verify import node_label

        parts = []
        for op, items in sorted(bad.items()):
            nodes = ", ".join(node_label(i.node) for i in items[:3]) + (", ..." if len(items) > 3 else "")
            parts.append(f"{op} x{len(items)} ({items[0].reason}; at {nodes})")
        raise TargetError(f"{target} cannot run {len(bad)} op type(s) of this model: {'; '.join(parts)}",
                          hint="irc check shows every node; keep such ops out of the model or lower it to "
                               "another target")
    return report


def _status(node: Node, target: str) -> tuple[str, str]:
    if node.op == "const":
        return NATIVE, ""
    if not has_emitter(node.op):
        return UNSUPPORTED, f"irc's TensorFlow emitter has no rule for {node.op}"
    dtypes = {v.type.dtype for v in (*node.operands, *node.results)}
    if target in ("xla", "tpu") and DType.str in dtypes:
        return UNSUPPORTED, "XLA has no string tensors"
    if target == "tpu" and DType.f64 in dtypes:
        return UNSUPPORTED, "TPUs have no float64"
    if node.is_opaque:
        return _opaque_status(node, target)
    if target == "cuda" and DType.str in dtypes:
        return FALLBACK, "string ops run on the CPU"
    if node.op not in _QUANT_OPS and any(v.type.quant for v in (*node.operands, *node.results)):
        return FALLBACK, "runs in float32 between dequantize and quantize (TensorFlow has no integer kernel here)"
    return NATIVE, ""


def _opaque_status(node: Node, target: str) -> tuple[str, str]:
    op = node.op.removeprefix("tf.")
    proto = _node_def(node)
    if proto is None:
        return UNSUPPORTED, "its NodeDef is missing or unreadable"
    from tensorflow.python.framework import op_def_registry

    if op_def_registry.get(proto.op) is None:
        return UNSUPPORTED, f"this TensorFlow has no op {proto.op}"
    carried = _library_functions(node)
    for key, value in proto.attr.items():
        called = [value.func.name] if value.HasField("func") else [f.name for f in value.list.func]
        missing = [name for name in called if name not in carried]
        if missing:
            return UNSUPPORTED, f"{op} calls TensorFlow function {missing[0]} (attribute {key!r}), which irc lacks"
    if target in ("xla", "tpu"):
        if _has_kernel(proto, "XLA_CPU_JIT"):
            return NATIVE, ""
        return UNSUPPORTED, f"TensorFlow has no XLA kernel for {op} with these types, so XLA cannot compile it"
    if not _built_with_cuda():
        return FALLBACK, (f"runs on the GPU if TensorFlow has a GPU kernel for {op}, else on the CPU "
                          "(this TensorFlow is built without CUDA, so irc cannot tell)")
    if _has_kernel(proto, "GPU"):
        return NATIVE, ""
    return FALLBACK, f"TensorFlow has no GPU kernel for {op}; it runs on the CPU"


def _node_def(node: Node):
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework import node_def_pb2

    blob = node.attrs.get("node_def")
    if not blob:
        return None
    try:
        return node_def_pb2.NodeDef.FromString(bytes(blob))
    except DecodeError:
        return None


def _library_functions(node: Node) -> set[str]:
    """Names of the functions in the node's ``library`` attribute (a serialized FunctionDefLibrary)."""
    blob = node.attrs.get("library")
    if not blob:
        return set()
    from tensorflow.core.framework import function_pb2

    library = function_pb2.FunctionDefLibrary.FromString(bytes(blob))
    return {f.signature.name for f in library.function}


def _has_kernel(proto, device_type: str) -> bool:
    """Whether TensorFlow registers a kernel for ``proto``'s op on ``device_type`` that accepts its type attrs."""
    for kernel in _kernels().get((proto.op, device_type), ()):
        if all(_constraint_ok(c, proto) for c in kernel.constraint):
            return True
    return False


def _constraint_ok(constraint, proto) -> bool:
    allowed = set(constraint.allowed_values.list.type)
    value = proto.attr.get(constraint.name)
    if value is None or not allowed:
        return True
    if value.HasField("list"):
        return all(t in allowed for t in value.list.type)
    return value.type in allowed


@functools.cache
def _kernels() -> dict:
    """(op, device type) -> kernel defs. XLA registers its kernels once something compiles, so compile a no-op."""
    from irc.backends.tfemit.model import tf

    tf_ = tf()
    from tensorflow.python.framework import kernels

    tf_.function(lambda x: x + 1, jit_compile=True, autograph=False)(tf_.constant(0))
    table: dict = {}
    for kernel in kernels.get_all_registered_kernels().kernel:
        table.setdefault((kernel.op, kernel.device_type), []).append(kernel)
    return table


@functools.cache
def _built_with_cuda() -> bool:
    from irc.backends.tfemit.model import tf

    return bool(tf().test.is_built_with_cuda())
