"""The verifier: checks the invariants every pass must keep.

The graph is acyclic, every operand is defined in the graph, ops are known with valid attributes and arity,
and each node's declared result types agree with what the op's shape rule infers. Regions are checked as graphs
of their own (isolated from above: a value of an enclosing graph is an error), and each region's signature
against its op's operands and results (the op's ``infer_regions``).
"""

from __future__ import annotations

import numpy as np

from irc.errors import InputError, VerifyError
from irc.ir.graph import Graph, Node
from irc.ir.printer import ElidedTensor
from irc.ir.types import DType, TensorType, shapes_compatible


def node_label(node: Node) -> str:
    """How messages name a node: its op and where it came from (TF node, Keras layer)."""
    where = f" at {node.loc}" if node.loc else ""
    return f"'{node.op}'{where}"


def find_problems(graph: Graph, *, elided_ok: bool = False) -> list[str]:
    """Every invariant the graph breaks, one message each (empty when the graph is valid).

    A constant elided from a dump (only its type and hash known) is a problem unless ``elided_ok``: such a graph
    can be printed, drawn and counted, but not run, transformed or emitted.
    """
    return _graph_problems(graph, elided_ok, frozenset())


def _graph_problems(graph: Graph, elided_ok: bool, outer: frozenset) -> list[str]:
    """``find_problems`` for one graph; ``outer`` holds the values of the graphs enclosing it (a region)."""
    from irc.ops import get_op

    problems: list[str] = []
    defined = set(graph.inputs)
    for node in graph.nodes:
        defined.update(node.results)
    try:
        order = graph.topo_order()
    except ValueError:
        return [_describe_cycle(graph)]
    for node in order:
        label = node_label(node)
        for i, v in enumerate(node.operands):
            if v in outer:
                problems.append(f"{label}: operand {i} is a value of an enclosing graph; a region uses only its "
                                "own arguments (pass the value in as one)")
            elif v not in defined:
                problems.append(f"{label}: operand {i} is not defined in the graph")
        try:
            op = get_op(node.op)
        except KeyError:
            problems.append(f"{label}: unknown op '{node.op}'")
            continue
        if (why := op.check_arity(len(node.operands))) is not None:
            problems.append(f"{label}: {why}")
            continue
        if (why := op.check_region_count(len(node.regions))) is not None:
            problems.append(f"{label}: {why}")
            continue
        if node.regions:
            inner = outer | defined
            for name, region in zip(op.regions, node.regions):
                problems.extend(f"{p}, in region '{name}' of {label}"
                                for p in _graph_problems(region, elided_ok, inner))
        if node.op == "const" and isinstance(node.attrs.get("value"), ElidedTensor):
            problems.extend(_elided_problems(node, label, elided_ok))
            continue
        attr_problems = op.check_attrs(node.attrs)
        problems.extend(f"{label}: {p}" for p in attr_problems)
        if attr_problems or node.is_opaque:
            continue
        try:
            if op.regions:
                inferred = op.infer_regions([v.type for v in node.operands], op.with_defaults(node.attrs),
                                            node.regions)
            else:
                inferred = op.infer([v.type for v in node.operands], op.with_defaults(node.attrs),
                                    [_constant(v) for v in node.operands])
        except (ValueError, TypeError, IndexError) as e:
            problems.append(f"{label}: {e}")
            continue
        if len(inferred) != len(node.results):
            problems.append(f"{label}: declares {len(node.results)} results, the op gives {len(inferred)}")
            continue
        for i, (want, got) in enumerate(zip(inferred, node.results)):
            if node.op == "const" and got.type.dtype is DType.i4 and _holds_int4(node.attrs["value"]):
                want = TensorType(DType.i4, want.shape, want.quant)  # i4 constants are held in int8 arrays
            if (why := _type_mismatch(want, got.type)) is not None:
                problems.append(f"{label}: result {i} {why}")
    for name, v in graph.outputs.items():
        if v in outer:
            problems.append(f"output {name!r} is a value of an enclosing graph; a region returns only its own values")
        elif v not in defined:
            problems.append(f"output {name!r} is not defined in the graph")
    return problems


def _holds_int4(array) -> bool:
    return isinstance(array, np.ndarray) and array.dtype == np.int8 and \
        (array.size == 0 or (int(array.min()) >= -8 and int(array.max()) <= 7))


def _constant(value) -> np.ndarray | None:
    """The operand's array when it is a constant whose value the shape rules can read (a broken const: None)."""
    array = value.producer.attrs.get("value") if value.is_constant else None
    return array if isinstance(array, np.ndarray) else None


def require_data(graph: Graph, purpose: str) -> None:
    """An InputError when a constant was elided from a dump: ``purpose`` (emitting tflite, ...) needs its data."""
    elided = [n for n in graph.walk(recursive=True)
              if n.op == "const" and isinstance(n.attrs.get("value"), ElidedTensor)]
    if elided:
        more = f" and {len(elided) - 1} more" if len(elided) > 1 else ""
        raise InputError(f"{purpose} needs the data of constant sha256:{elided[0].attrs['value'].digest} "
                         f"({node_label(elided[0])}){more}, which was elided from a dump",
                         hint="pass the --weights file written by 'irc dump --save-weights', or dump with --full")


def _elided_problems(node: Node, label: str, elided_ok: bool) -> list[str]:
    value = node.attrs["value"]
    if not elided_ok:
        return [(f"{label}: constant sha256:{value.digest} was elided from a dump; pass the --weights file written "
                 "by 'irc dump --save-weights', or dump with --full")]
    if len(node.results) != 1:
        return [f"{label}: declares {len(node.results)} results, the op gives 1"]
    why = _type_mismatch(TensorType(value.dtype, tuple(value.shape)), node.results[0].type)
    return [f"{label}: result 0 {why}"] if why else []


def _type_mismatch(inferred: TensorType, declared: TensorType) -> str | None:
    if inferred.dtype != declared.dtype:
        return f"is declared {declared} but the op gives dtype {inferred.dtype.value}"
    if not shapes_compatible(inferred.shape, declared.shape):
        return f"is declared {declared} but the op gives {inferred}"
    if inferred.quant is not None and inferred.quant != declared.quant:
        return f"is declared {declared} but the op gives {inferred}"
    return None


def _describe_cycle(graph: Graph) -> str:
    import networkx as nx

    cycle = nx.find_cycle(graph.to_networkx())
    nodes = " -> ".join(node_label(a) for a, _ in cycle)
    return f"graph has a cycle: {nodes} -> {node_label(cycle[0][0])}"


def verify(graph: Graph, *, elided_ok: bool = False) -> None:
    """Raises VerifyError naming the first problem (and how many more there are)."""
    problems = find_problems(graph, elided_ok=elided_ok)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise VerifyError(problems[0] + more)
