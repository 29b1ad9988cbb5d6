"""The reference interpreter: runs any irc graph on numpy inputs with the ops' numpy kernels.

It defines what every pass must preserve. A node whose operands or results are quantized runs as
dequantize -> float kernel -> quantize to its result type, so quantized graphs have a float reference too.
An op with regions (``while``, ``if``) runs them as graphs of their own, through its ``evaluate``; the observer
sees the nodes inside them too, once per time they run.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Callable, Mapping, Sequence

import numpy as np

from irc import limits
from irc.errors import InputError, IrcError
from irc.ir.graph import Graph, Node, Value
from irc.ir.printer import ElidedTensor
from irc.ir.types import DType, SymDim, TensorType
from irc.ir.verify import node_label

# Called after each node runs with the node and its outputs (calibration, numeric checks, quant reports). An
# observer object with an ``enter_region(region, args)`` method is also told each time a region starts running.
Observer = Callable[[Node, list[np.ndarray]], None]
_QUANT_OPS = {"quantize", "dequantize", "requantize", "const"}


def bind_inputs(graph: Graph, inputs) -> dict[Value, np.ndarray]:
    """Matches user inputs (a dict by name, a list in order, or one array) to the graph's inputs, checking them."""
    if isinstance(inputs, np.ndarray) or not isinstance(inputs, (Mapping, Sequence)):
        inputs = [inputs]
    if isinstance(inputs, Mapping):
        unknown = sorted(set(inputs) - {v.name for v in graph.inputs})
        if unknown:
            names = ", ".join(v.name for v in graph.inputs)
            raise InputError(f"no graph input named {unknown[0]!r} (inputs: {names})")
        missing = [v.name for v in graph.inputs if v.name not in inputs]
        if missing:
            raise InputError(f"missing a value for graph input {missing[0]!r}")
        arrays = [inputs[v.name] for v in graph.inputs]
    else:
        if len(inputs) != len(graph.inputs):
            raise InputError(f"graph takes {len(graph.inputs)} input(s), got {len(inputs)}")
        arrays = list(inputs)
    symbols: dict[SymDim, int] = {}
    bound = {}
    for value, array in zip(graph.inputs, arrays):
        bound[value] = _check_input(value, np.asarray(array), symbols)
    return bound


def _check_input(value: Value, array: np.ndarray, symbols: dict) -> np.ndarray:
    t = value.type
    if array.dtype != t.dtype.numpy:
        safe = t.dtype.is_float and array.dtype.kind in "fiu" or np.can_cast(array.dtype, t.dtype.numpy, "same_kind")
        if not safe:
            raise InputError(f"input {value.name!r} expects {t.dtype.value}, got {array.dtype}")
        array = array.astype(t.dtype.numpy)
    if t.shape is not None:
        if array.ndim != len(t.shape):
            raise InputError(f"input {value.name!r} expects rank {len(t.shape)} ({t}), got shape {array.shape}")
        for want, got in zip(t.shape, array.shape):
            if isinstance(want, int) and want != got:
                raise InputError(f"input {value.name!r} expects shape {t}, got {array.shape}")
            if isinstance(want, SymDim) and symbols.setdefault(want, got) != got:
                raise InputError(f"input {value.name!r}: dimension {want} is {got} here but "
                                 f"{symbols[want]} in another input")
    return array


# Loop iterations run so far in the run under way (every loop counted together), against max_loop_iterations.
_iterations: ContextVar[list[int] | None] = ContextVar("irc_loop_iterations", default=None)


def run(graph: Graph, inputs, observer: Observer | None = None) -> dict[str, np.ndarray]:
    """Runs ``graph`` on ``inputs`` and returns its outputs by name."""
    token = _iterations.set([0]) if _iterations.get() is None else None
    try:
        return _run_bound(graph, bind_inputs(graph, inputs), observer)
    finally:
        if token is not None:
            _iterations.reset(token)


def count_iteration(where: str) -> None:
    """Counts one loop iteration against ``max_loop_iterations``, for the run under way."""
    counter = _iterations.get()
    counter[0] += 1
    most = limits.current().max_loop_iterations
    if counter[0] > most:
        raise InputError(f"loops ran more than {most:,} iterations", where=where,
                         hint=f"raise the limit with {limits.FLAG['max_loop_iterations']} or "
                              f"{limits.ENV['max_loop_iterations']} if the model is meant to loop longer")


def run_region(region: Graph, args: list[np.ndarray], observer: Observer | None = None) -> list[np.ndarray]:
    """Runs a region on its arguments (in order); returns its results in order."""
    if len(args) != len(region.inputs):
        raise InputError(f"region {region.name!r} takes {len(region.inputs)} argument(s), got {len(args)}")
    symbols: dict[SymDim, int] = {}
    env = {}
    for value, array in zip(region.inputs, args):
        try:
            env[value] = _check_input(value, np.asarray(array), symbols)
        except InputError as e:
            raise InputError(f"region {region.name!r} gets a value that does not fit its argument: {e.message}")
    enter = getattr(observer, "enter_region", None)
    if enter is not None:  # an observer that wants region arguments too (quant reports): enter_region(region, args)
        enter(region, [env[v] for v in region.inputs])
    return list(_run_bound(region, env, observer).values())


def _run_bound(graph: Graph, env: dict[Value, np.ndarray], observer: Observer | None) -> dict[str, np.ndarray]:
    order = graph.topo_order()
    remaining = {}  # value -> number of uses left, so intermediate arrays are freed early
    for node in order:
        for v in node.operands:
            remaining[v] = remaining.get(v, 0) + 1
    keep = set(graph.outputs.values())
    for node in order:
        args = [env[v] for v in node.operands]
        outs = run_node(node, args, observer)
        if observer is not None:
            observer(node, outs)
        for value, out in zip(node.results, outs):
            env[value] = out
        for v in node.operands:
            remaining[v] -= 1
            if remaining[v] == 0 and v not in keep:
                env.pop(v, None)
    return {name: env[v] for name, v in graph.outputs.items()}


def run_node(node: Node, args: list[np.ndarray], observer: Observer | None = None) -> list[np.ndarray]:
    """One node's outputs, with quantized operands handled by dequantize -> float kernel -> quantize.

    A node with regions runs them (``observer`` sees their nodes)."""
    from irc.ops import get_op

    op = get_op(node.op)
    attrs = op.with_defaults(node.attrs)
    if node.regions:
        where = f"running node {node_label(node)}"
        token = _iterations.set([0]) if _iterations.get() is None else None  # a node run alone (folding) counts alone
        try:
            outs = op.evaluate(args, attrs, node.regions,
                               lambda region, values: run_region(region, values, observer), where)
        finally:
            if token is not None:
                _iterations.reset(token)
        return [quantize(np.asarray(o), r.type) for o, r in zip(outs, node.results)]
    if node.op != "const":  # a constant's array is the IR's own: there is nothing to allocate
        _check_result_sizes(node, args)
    try:
        if node.op == "const" and isinstance(attrs["value"], ElidedTensor):
            digest = attrs["value"].digest
            raise InputError(f"constant {digest} was elided from the dump this graph was read from",
                             hint="dump with --full, or pass the --weights file written beside it")
        quantized = node.op not in _QUANT_OPS and (
            any(v.type.quant for v in node.operands) or any(r.type.quant for r in node.results))
        if quantized:
            floats = [dequantize(a, v.type) for a, v in zip(args, node.operands)]
            outs = op.kernel(floats, attrs)
            outs = [quantize(o, r.type) for o, r in zip(outs, node.results)]
        elif node.op in _QUANT_OPS and node.op != "const":
            outs = op.kernel(args, {**attrs, "_types": ([v.type for v in node.operands], [r.type for r in node.results])})
        else:
            outs = op.kernel(args, attrs)
    except IrcError as e:
        if e.where is None:
            e.where = f"node {node_label(node)}"
        raise
    except Exception as e:  # a kernel failing on real data is a user-visible problem, named by node
        problems = op.check_attrs(node.attrs)  # an unverified graph (irc.parse) may name its attributes wrongly
        message = "; ".join(problems) if problems else f"{type(e).__name__}: {e}"
        raise InputError(message, where=f"running node {node_label(node)}") from e
    outs = [np.asarray(o) for o in outs]
    for i, out in enumerate(outs):  # what could not be sized beforehand must not feed anything larger
        limits.check_memory(out.nbytes, f"result {i} {out.dtype}{list(out.shape)}",
                            where=f"running node {node_label(node)}")
    return outs


def _check_result_sizes(node: Node, args: list[np.ndarray]) -> None:
    """Refuses to run a node whose results would be over the memory limit, before its kernel allocates them.

    The declared result types give the sizes when they are static; otherwise the op's shape rule does, applied to
    the operands' actual shapes. A result neither can size (an opaque TensorFlow op's unknown dimension) is
    checked as soon as it exists, so it cannot feed a larger one.
    """
    types = [r.type for r in node.results]
    if not all(t.is_static for t in types):
        from irc.ops import infer_types

        try:
            operand_types = [TensorType(v.type.dtype, np.shape(a), v.type.quant) for v, a in zip(node.operands, args)]
            types = infer_types(node.op, operand_types, node.attrs)
        except (ValueError, TypeError, KeyError, IndexError):  # the kernel will say what is wrong with the operands
            return
    for i, t in enumerate(types):
        if t.is_static:
            limits.check_array(t.shape, t.dtype.itemsize, _result_name(node, i, t),
                               where=f"running node {node_label(node)}")


def _result_name(node: Node, index: int, type: TensorType) -> str:
    return f"result {index} ({type})" if len(node.results) > 1 else f"its result ({type})"


def dequantize(array: np.ndarray, type: TensorType) -> np.ndarray:
    """The real values of a quantized array (unchanged when ``type`` is not quantized)."""
    from irc.ops.quant import dequantize_array

    return array if type.quant is None else dequantize_array(array, type.quant)


def quantize(array: np.ndarray, type: TensorType) -> np.ndarray:
    """Real values quantized to ``type`` (a plain cast when it is not quantized)."""
    from irc.ops.quant import quantize_array

    if type.quant is None:
        return array.astype(type.dtype.numpy, copy=False)
    return quantize_array(array, type.dtype, type.quant)


def random_inputs(graph: Graph, seed: int = 0, batch: int = 1) -> dict[str, np.ndarray]:
    """Deterministic random inputs for a graph; unknown dims become ``batch`` (first dim) or 1."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for v in graph.inputs:
        shape = tuple(d if isinstance(d, int) else (batch if i == 0 else 1) for i, d in enumerate(v.type.shape or ()))
        dtype = v.type.dtype
        # numpy draws in 64 bits, then converts: that is what it allocates
        limits.check_array(shape, max(dtype.itemsize, 8), f"random input {v.name!r} ({dtype.value}{list(shape)})")
        if dtype.is_float:
            arrays[v.name] = rng.standard_normal(shape).astype(dtype.numpy)
        elif dtype is DType.bool:
            arrays[v.name] = rng.random(shape) < 0.5
        else:
            arrays[v.name] = rng.integers(0, 10, shape).astype(dtype.numpy)
    return arrays
