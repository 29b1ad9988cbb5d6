"""TF ops to irc ops: one lowering per TF op type, in a table filled by the ``@lowers`` decorator.

A lowering is ``fn(cx, node, args) -> Value | list[Value | None]``: ``cx`` is the ``Lowerer`` (it builds irc
nodes at the TF node's location and folds constants), ``node`` the ``TFNode`` and ``args`` the irc values of
its inputs, in order. It returns one value per TF output it supports (None for outputs nothing may read).
A lowering that does not apply to a node (a shape computed at run time, an attribute irc lacks) raises
``CannotLower`` with the reason.

Families: ``math`` (elementwise, activations, reductions), ``nn`` (convolutions, matmul, pools, norms, resize),
``array`` (shapes, slicing, gather, concat, ...), ``indexing`` (Cumsum, Roll, XLA's dynamic slices, TopKV2,
GatherNd, ScatterNd, TensorScatterUpdate/Add), ``einsum``, ``control_flow`` (While/If/Case as regions,
TensorLists as tensors), ``complex`` (complex numbers and the FFTs).
Find a lowering by grepping its TF op name: ``grep -rn '"Conv2D"' irc/frontends/lowering``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping

from irc import limits
from irc.errors import InputError, UnsupportedOpError, UsageError
from irc.frontends.lowering.context import CannotLower, Lowerer, ref_value, tf_dtype
from irc.frontends.tfgraph import TFGraph, TFNode
from irc.ir.graph import Graph, Location, Value
from irc.ir.liveness import remove_dead
from irc.ir.types import SymDim, TensorType
from irc.ops.tf_policy import denied_reason
from irc.registry import Registry

Lowering = Callable[[Lowerer, TFNode, list], object]
FAMILIES = ("math", "nn", "array", "indexing", "einsum", "control_flow", "complex")
# TF op type -> lowering: the families above, then the ``irc.lowerings`` plugins (irc/registry.py).
LOWERINGS: Registry[Lowering] = Registry("lowering of TF op", [f"irc.frontends.lowering.{f}" for f in FAMILIES],
                                         "irc.lowerings")
BATCH = SymDim("batch")
# Ops that can never be kept as opaque TF nodes (they need TF functions, which irc lowers into regions).
NEVER_OPAQUE = frozenset({"While", "StatelessWhile", "If", "StatelessIf", "Case", "StatelessCase"})
# Ops the driver handles itself.
_DRIVER_OPS = frozenset({"Placeholder"})


def lowers(*tf_ops: str):
    """Registers a lowering for the given TF op types: ``@lowers("Relu")`` (a type lowered twice is an error)."""

    def register(fn: Lowering) -> Lowering:
        for name in tf_ops:
            LOWERINGS.add(name, fn)
        return fn

    return register


def supported_ops() -> list[str]:
    """The TF op types irc lowers."""
    return LOWERINGS.names()


def lower_graph(tfgraph: TFGraph, input_shapes: Mapping[str, tuple] | None = None,
                allow_tf_ops: bool = False, name: str = "main", unsafe: bool = False) -> Graph:
    """Lowers a neutral TF graph to an irc Graph.

    ``input_shapes`` fixes inputs' shapes by name; otherwise an unknown first dim becomes the symbolic dim
    ``batch``. Ops irc cannot lower raise one UnsupportedOpError listing them all, unless ``allow_tf_ops``
    keeps them as opaque ``tf.<Op>`` nodes; ops that touch files, the network or the process
    (``irc.ops.tf_policy.DENIED``) are kept only with ``unsafe`` too.
    """
    LOWERINGS.load()
    graph = Graph(name)
    cx = Lowerer(tfgraph, graph, allow_tf_ops, unsafe=unsafe)
    if not allow_tf_ops:
        check_supported(tfgraph)
    env: dict[str, list] = {}
    _bind_inputs(cx, tfgraph, dict(input_shapes or {}), env)
    lower_nodes(cx, tfgraph.nodes, env)
    for out_name, ref in tfgraph.outputs:
        try:
            value = ref_value(env, ref)
        except CannotLower as e:
            raise InputError(f"output {out_name!r} cannot be read: {e}", where=tfgraph.source) from None
        if not isinstance(value, Value):
            raise UnsupportedOpError(f"output {out_name!r} is not a tensor irc can return", where=tfgraph.source)
        graph.set_output(out_name, value)
    remove_dead(graph)  # folded constants, unused shape arithmetic, the TF outputs nothing uses
    return graph


def _bind_inputs(cx: Lowerer, tfgraph: TFGraph, input_shapes: dict, env: dict) -> None:
    names = [name for name, _, _ in tfgraph.inputs]
    unknown = sorted(set(input_shapes) - set(names))
    if unknown:
        raise UsageError(f"--input-shape names {unknown[0]!r}, which is not an input of the model "
                         f"(inputs: {', '.join(names) or 'none'})")
    for name, dtype, shape in tfgraph.inputs:
        if name in input_shapes:
            fixed = tuple(int(d) for d in input_shapes[name])
            if shape is not None and len(shape) != len(fixed):
                raise UsageError(f"--input-shape gives input {name!r} rank {len(fixed)}, but the model's input "
                                 f"has rank {len(shape)} ({_fmt_shape(shape)})")
            if shape is not None and any(d is not None and d != f for d, f in zip(shape, fixed)):
                raise UsageError(f"--input-shape {name}={','.join(map(str, fixed))} contradicts the model's "
                                 f"input shape {_fmt_shape(shape)}")
            shape = fixed
        dims = None if shape is None else tuple(
            d if d is not None else input_dim(name, i) for i, d in enumerate(shape))
        try:
            value = cx.graph.add_input(name, TensorType(tf_dtype(dtype), dims))
        except CannotLower as e:
            raise UnsupportedOpError(f"input {name!r}: {e}", where=tfgraph.source) from None
        for axis, d in enumerate(dims or ()):
            if isinstance(d, SymDim):
                cx.sym_sources.setdefault(d, (value, axis))
        env[name] = [value]


def input_dim(name: str, axis: int) -> SymDim:
    """The symbol for an input's dim unknown until run time: ``batch`` for the first (every input shares it), else
    one of its own (``token_ids_1``): inputs' other dims need not agree (a padding mask's length does, an
    encoder's input's need not), so irc does not assume they do."""
    if axis == 0:
        return BATCH
    base = re.sub(r"[^A-Za-z0-9_]", "_", name)  # an identifier of the text form
    return SymDim(f"{base if base[:1].isalpha() else 'in_' + base}_{axis}")


def _fmt_shape(shape) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def check_supported(tfgraph: TFGraph) -> None:
    """Raises one UnsupportedOpError naming every TF op type without a lowering (with counts and an example)."""
    missing: Counter = Counter()
    example: dict[str, TFNode] = {}
    nodes = list(tfgraph.nodes) + [n for fn in tfgraph.functions.values() for n in fn.nodes]
    for node in nodes:
        if node.op not in LOWERINGS and node.op not in _DRIVER_OPS:
            missing[node.op] += 1
            example.setdefault(node.op, node)
    if not missing:
        return
    parts = []
    for op, count in sorted(missing.items(), key=lambda kv: (-kv[1], kv[0])):
        node = example[op]
        where = f"e.g. {node.name}" + (f" in layer {node.layer}" if node.layer else "")
        parts.append(f"{op} ({count} node{'s' if count > 1 else ''}, {where})")
    kinds = f"{len(missing)} TensorFlow op type{'s' if len(missing) > 1 else ''}"
    denied = [(op, why) for op in sorted(missing) if (why := denied_reason(op)) is not None]
    if denied:  # never suggest keeping (and so running) these
        op, why = denied[0]
        hint = f"{op} {why}, so irc does not offer to keep it as a TensorFlow op (see docs/security.md)"
    else:
        hint = "pass --allow-tf-ops to keep them as TensorFlow ops"
    raise UnsupportedOpError(f"{kinds} irc cannot lower: {', '.join(parts)}; {hint}", where=tfgraph.source)


def lower_nodes(cx: Lowerer, nodes: list[TFNode], env: dict[str, list]) -> None:
    """Lowers ``nodes`` (in topological order) into ``cx.graph``, binding each node's outputs in ``env``."""
    saved = cx.node, cx.loc
    try:
        for node in nodes:
            if node.op in _DRIVER_OPS and node.name in env:
                continue
            cx.lowered += 1
            if cx.lowered > cx.max_lowered:
                limits.check_expansion(cx.lowered, cx.source_nodes, "inlining the model's function calls",
                                       where=cx.tfgraph.source)
            env[node.name] = lower_node(cx, node, _read_inputs(cx, node, env))
    finally:
        cx.node, cx.loc = saved


def _read_inputs(cx: Lowerer, node: TFNode, env: dict[str, list]) -> list:
    try:
        return [ref_value(env, ref) for ref in node.inputs]
    except CannotLower as e:  # an output its producer does not have (a damaged file) or that irc did not make
        raise InputError(f"{node.op} node '{node.name}' cannot read its inputs: {e}", where=cx.tfgraph.source) \
            from None


def lower_node(cx: Lowerer, node: TFNode, args: list) -> list:
    cx.node, cx.loc = node, Location.of(node.name, node.layer)
    fn = LOWERINGS.get(node.op)
    try:
        if fn is None:
            raise CannotLower("irc has no lowering for it")
        outs = fn(cx, node, args)
    except CannotLower as e:
        if not cx.allow_tf_ops or node.op in NEVER_OPAQUE:
            raise _cannot_lower(cx, node, str(e)) from None
        why = None if cx.unsafe else denied_reason(node.op)
        if why is not None:
            raise _cannot_lower(cx, node, f"{e}, and it {why}, which irc keeps as a TensorFlow op only with "
                                          "--unsafe (see docs/security.md)") from None
        from irc.frontends.lowering.opaque import lower_opaque

        try:
            outs = lower_opaque(cx, node, args)
        except CannotLower as e2:
            raise _cannot_lower(cx, node, f"{e}, and it cannot be kept as a TensorFlow op: {e2}") from None
    except KeyError as e:
        if not e.args or e.args[0] in node.attrs:
            raise
        # A NodeDef without an attribute its op always has: a corrupt or hand-made file.
        raise InputError(f"TensorFlow op {node.op} ({node.name}) has no attribute {e.args[0]!r}",
                         where=cx.tfgraph.source) from None
    return outs if isinstance(outs, list) else [outs]


def _cannot_lower(cx: Lowerer, node: TFNode, reason: str) -> UnsupportedOpError:
    layer = f" in layer {node.layer}" if node.layer else ""
    why = denied_reason(node.op)
    if cx.allow_tf_ops or node.op in NEVER_OPAQUE:
        hint = ""
    elif why is not None:  # never suggest keeping (and so running) it
        hint = f"; it {why}, so irc does not offer to keep it as a TensorFlow op (see docs/security.md)"
    else:
        hint = "; pass --allow-tf-ops to keep it as a TensorFlow op"
    return UnsupportedOpError(f"cannot lower TensorFlow op {node.op} ({node.name}{layer}): {reason}{hint}",
                              where=cx.tfgraph.source)


__all__ = ["LOWERINGS", "CannotLower", "Lowerer", "lower_graph", "lowers", "supported_ops"]
