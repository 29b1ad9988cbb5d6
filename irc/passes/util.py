"""Small queries the passes share: purity, constant arrays, single use, quantization, permutations."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from irc.ir.graph import Node, Value
from irc.ir.types import TensorType

QUANT_OPS = frozenset({"quantize", "dequantize", "requantize"})


def is_pure(node: Node) -> bool:
    """Whether ``node`` may be folded, deduplicated or removed: a PURE registry op, not an opaque TF op."""
    if node.is_opaque:
        return False
    try:
        from irc.ops.base import PURE

        return node.opdef.has(PURE)
    except KeyError:
        return False


def const_array(value: Value) -> np.ndarray | None:
    """The array of a constant value, or None when it is not a constant.

    A constant elided from a dump (only its hash known) is an InputError: a pass that asks for a constant's data
    would otherwise give a silently different result (fold-batchnorm folding nothing)."""
    array = value.constant
    if array is None or isinstance(array, np.ndarray):
        return array
    from irc.errors import InputError
    from irc.ir.verify import node_label

    users = value.users
    label = node_label(value.producer) if value.producer.loc or not users else f"an operand of {node_label(users[0])}"
    raise InputError(f"needs the data of constant sha256:{array.digest} ({label}), which was "
                     "elided from the dump this graph was read from",
                     hint="load the dump with its weights file (--weights FILE), or dump with --full")


def real_array(value: Value) -> np.ndarray | None:
    """Like ``const_array``, with a quantized constant's real (dequantized) values instead of its integers."""
    array = const_array(value)
    if array is not None and value.type.quant is not None:
        from irc.ir.interpreter import dequantize

        return dequantize(array, value.type)
    return array


def only_use(value: Value) -> Node | None:
    """The one node that uses ``value`` (once), if that is its only use and it is not a graph output."""
    graph = value.producer.graph if value.producer is not None else None
    if len(value.uses) != 1 or (graph is not None and graph.is_output(value)):
        return None
    return value.uses[0][0]


def is_quantized(node: Node) -> bool:
    """Whether any operand or result of ``node`` carries quantization parameters, or it is a (de)quantize op."""
    return (node.op in QUANT_OPS or any(v.type.quant is not None for v in node.operands)
            or any(r.type.quant is not None for r in node.results))


def all_equal(array: np.ndarray, scalar: float) -> bool:
    return array.size > 0 and bool(np.all(array == scalar))


# ----- permutations -------------------------------------------------------------------------------------------------
def inverse_perm(perm: Sequence[int]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def compose_perms(first: Sequence[int], then: Sequence[int]) -> tuple[int, ...]:
    """The perm of ``transpose(transpose(x, first), then)`` as one transpose of x."""
    return tuple(first[i] for i in then)


def is_identity(perm: Sequence[int]) -> bool:
    return all(i == p for i, p in enumerate(perm))


def permute_type(t: TensorType, perm: Sequence[int]) -> TensorType:
    """The type of ``transpose(x, perm)`` for x of type ``t`` (a per-axis quantization axis moves along)."""
    shape = None if t.shape is None else tuple(t.shape[p] for p in perm)
    quant = t.quant
    if quant is not None and quant.axis is not None:
        from dataclasses import replace

        quant = replace(quant, axis=inverse_perm(perm)[quant.axis])
    return TensorType(t.dtype, shape, quant)


# ----- per-channel constants ----------------------------------------------------------------------------------------
def channel_vector(array: np.ndarray, out: TensorType, channel_axis: int) -> np.ndarray | None:
    """``array`` as a vector over the channels of a value of type ``out``, if broadcasting it against that value
    varies only along ``channel_axis`` and leaves the shape unchanged; else None."""
    if out.shape is None or array.ndim > len(out.shape):
        return None
    channels = out.shape[channel_axis]
    if not isinstance(channels, int):
        return None
    axis = channel_axis % len(out.shape) - (len(out.shape) - array.ndim)  # the channel axis within ``array``
    for i, d in enumerate(array.shape):
        if d != 1 and i != axis:
            return None
    if axis >= 0 and array.shape[axis] not in (1, channels):
        return None
    return np.broadcast_to(array.reshape(-1) if array.size > 1 else array.reshape(()), (channels,))
