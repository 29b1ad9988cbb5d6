"""Helpers for rewriting "linear" ops (conv2d, depthwise_conv2d, conv2d_transpose, conv3d, conv3d_transpose, matmul)
with constant weights: which axis their output channels are on, scaling their weights per output channel, and
rebuilding them with a new bias. fold-batchnorm and fuse share them. They are core ops: a target's fused form (``tfl.conv2d``) is never
rebuilt here, so its fused activation cannot be lost or misplaced.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from irc.ir.graph import Location, Node, Value
from irc.ir.types import TensorType
from irc.passes.rewrite import RewritePattern, Rewriter
from irc.passes.util import channel_vector, const_array, is_quantized, only_use

LINEAR_OPS = ("conv2d", "depthwise_conv2d", "conv2d_transpose", "conv3d", "conv3d_transpose", "matmul")


def channel_axis(node: Node) -> int:
    """The output channel axis of a linear op (or of batch_norm), as a non-negative index."""
    rank = node.results[0].type.rank or 0
    if "data_format" in node.opdef.attrs and node.attr("data_format") == "NCHW":
        return 1
    return rank - 1


def linear_producer(value: Value) -> Node | None:
    """The linear op producing ``value`` if it can absorb a per-channel change: constant weights (and bias),
    ``value`` used once, nothing quantized."""
    node = value.producer
    if node is None or node.op not in LINEAR_OPS or only_use(value) is None:
        return None
    if is_quantized(node):
        return None
    if const_array(node.operands[1]) is None or (len(node.operands) > 2 and const_array(node.operands[2]) is None):
        return None
    return node


def _channel_shape(node: Node, weights: np.ndarray) -> tuple[int, ...]:
    """The shape that lays a vector over the output channels along the weights of linear op ``node``."""
    w = weights.shape
    if node.op == "conv2d":  # HWIO
        return (1, 1, 1, w[3])
    if node.op == "depthwise_conv2d":  # [kh, kw, in, multiplier]: channel c * multiplier + m
        return (1, 1, w[2], w[3])
    if node.op == "conv2d_transpose":  # [kh, kw, out, in]
        return (1, 1, w[2], 1)
    if node.op == "conv3d":  # [kd, kh, kw, in, out]
        return (1, 1, 1, 1, w[4])
    if node.op == "conv3d_transpose":  # [kd, kh, kw, out, in]
        return (1, 1, 1, w[3], 1)
    return (w[0], 1) if node.attr("transpose_b") else (1, w[1])  # matmul b: [n, k] or [k, n]


def scale_weights(node: Node, weights: np.ndarray, scale: np.ndarray) -> np.ndarray | None:
    """``weights`` of linear op ``node`` with output channel ``c`` multiplied by ``scale[c]``; None if the shapes
    do not line up."""
    shape = _channel_shape(node, weights)
    if weights.ndim != len(shape) or int(np.prod(shape)) != scale.size:
        return None
    scaled = weights.astype(np.float64) * scale.astype(np.float64).reshape(shape)
    return scaled.astype(weights.dtype)


def bias_of(node: Node, channels: int) -> np.ndarray:
    """The linear op's bias as float64 (zeros when it has none)."""
    if len(node.operands) > 2:
        return const_array(node.operands[2]).astype(np.float64)
    return np.zeros(channels, np.float64)


def rebuild(rw: Rewriter, node: Node, *, weights: np.ndarray | None = None, bias: np.ndarray | None = None,
            type: TensorType | None = None, absorbed: Sequence[Node] = ()) -> Value:
    """A copy of linear op ``node`` with new constant weights and/or bias and result type."""
    loc = Location.fused([node.loc] + [n.loc for n in absorbed])
    operands = list(node.operands[:2])
    if weights is not None:
        operands[1] = rw.const(weights, loc=node.operands[1].producer.loc)
    if bias is not None:
        dtype = node.results[0].type.dtype.numpy
        operands.append(rw.const(np.asarray(bias).astype(dtype), loc=loc))
    elif len(node.operands) > 2:
        operands.append(node.operands[2])
    return rw.create(node.op, operands, dict(node.attrs), types=[type or node.results[0].type], loc=loc).result


def per_channel_operand(node: Node, linear: Node) -> tuple[np.ndarray, int] | None:
    """For a binary ``node`` with one operand from ``linear`` and the other a constant varying only along the
    channels: (that constant as a channel vector, the index of the linear operand)."""
    out = linear.results[0]
    for index in (0, 1):
        if node.operands[index] is out:
            other = const_array(node.operands[1 - index])
            if other is None or node.results[0].type.shape != out.type.shape:
                return None
            vector = channel_vector(other, out.type, channel_axis(linear))
            return None if vector is None else (vector, index)
    return None


class AddIntoBias(RewritePattern):
    """add(linear, c) / sub(linear, c) with c constant per channel -> linear with bias + c (or - c)."""

    ops = ("add", "sub")
    stat = "bias adds folded"

    def rewrite(self, node, rw):
        linear = _linear_operand(node)
        found = linear and per_channel_operand(node, linear)
        if not found or (node.op == "sub" and found[1] != 0) or is_quantized(node):
            return False
        vector, _ = found
        sign = -1.0 if node.op == "sub" else 1.0
        bias = bias_of(linear, vector.size) + sign * vector.astype(np.float64)
        rw.replace(node, rebuild(rw, linear, bias=bias, type=node.results[0].type, absorbed=[node]))
        return True


def _linear_operand(node: Node) -> Node | None:
    for v in node.operands:
        linear = linear_producer(v)
        if linear is not None:
            return linear
    return None

