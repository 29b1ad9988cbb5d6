"""fold-batchnorm: folds inference batch norms into the weights and bias of the conv/depthwise/matmul before them.

Both forms TensorFlow emits are handled: ``batch_norm`` (FusedBatchNorm), and the decomposed
``x * scale + offset`` chain of mul/add (sub, div) with per-channel constants that ``tf.nn.batch_normalization``
leaves after constant folding. With y = conv(x, W) + b:

    batch_norm(y) = y * k + (offset - mean * k),  k = scale / sqrt(variance + epsilon)
                  = conv(x, W * k) + (b - mean) * k + offset          (k per output channel)

A batch norm that follows no such op (or one whose result is used elsewhere) becomes ``x * k + shift`` with
constant k and shift, so no ``batch_norm`` is left either way (option ``decompose``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irc.passes import register_pass
from irc.passes.base import Pass, option
from irc.passes.linear import (
    AddIntoBias,
    bias_of,
    channel_axis,
    linear_producer,
    per_channel_operand,
    rebuild,
    scale_weights,
)
from irc.passes.rewrite import RewritePattern, apply_patterns
from irc.passes.util import const_array, is_quantized


def _bn_constants(node):
    """(k, shift) as float64 channel vectors for a batch_norm with constant parameters, else None."""
    params = [const_array(v) for v in node.operands[1:]]
    if any(p is None for p in params) or is_quantized(node):
        return None
    scale, offset, mean, variance = (p.astype(np.float64) for p in params)
    k = scale / np.sqrt(variance + np.float64(node.attr("epsilon")))
    return k, offset - mean * k


class BatchNormIntoLinear(RewritePattern):
    """batch_norm(linear(x, W, b)) -> linear(x, W * k, (b - mean) * k + offset)."""

    ops = ("batch_norm",)
    stat = "batch norms folded"

    def rewrite(self, node, rw):
        linear = linear_producer(node.operands[0])
        constants = _bn_constants(node)
        if linear is None or constants is None or channel_axis(linear) != channel_axis(node):
            return False
        k, shift = constants
        weights = scale_weights(linear, const_array(linear.operands[1]), k)
        if weights is None:
            return False
        bias = bias_of(linear, k.size) * k + shift
        rw.replace(node, rebuild(rw, linear, weights=weights, bias=bias, type=node.result.type, absorbed=[node]))
        return True


class ScaleIntoLinear(RewritePattern):
    """mul(linear, c) / div(linear, c) with c constant per channel -> linear with W * c and b * c."""

    ops = ("mul", "div")
    stat = "scales folded"

    def rewrite(self, node, rw):
        linear = next((n for v in node.operands if (n := linear_producer(v)) is not None), None)
        found = linear and per_channel_operand(node, linear)
        if not found or (node.op == "div" and found[1] != 0) or is_quantized(node):
            return False
        vector = found[0].astype(np.float64)
        if node.op == "div":
            if not np.all(vector):
                return False
            vector = 1.0 / vector
        weights = scale_weights(linear, const_array(linear.operands[1]), vector)
        if weights is None:
            return False
        bias = bias_of(linear, vector.size) * vector if len(linear.operands) > 2 else None
        rw.replace(node, rebuild(rw, linear, weights=weights, bias=bias, type=node.result.type, absorbed=[node]))
        return True


class DecomposeBatchNorm(RewritePattern):
    """A batch_norm with constant parameters that could not be folded -> x * k + shift."""

    ops = ("batch_norm",)
    stat = "batch norms decomposed"

    def rewrite(self, node, rw):
        constants = _bn_constants(node)
        out = node.result.type
        if constants is None or out.rank is None:
            return False
        axis = channel_axis(node)
        shape = (-1,) + (1,) * (out.rank - 1 - axis)  # broadcasts along the channel axis
        dtype = out.dtype.numpy
        k, shift = (rw.const(c.astype(dtype).reshape(shape), loc=node.loc) for c in constants)
        scaled = rw.op("mul", node.operands[0], k, loc=node.loc, type=out)
        rw.replace(node, rw.op("add", scaled, shift, loc=node.loc, type=out))
        return True


@register_pass
@dataclass(frozen=True)
class FoldBatchNorm(Pass):
    """Fold batch norms (and TF's mul/add form of them) into the preceding conv, depthwise conv or matmul."""

    name = "fold-batchnorm"
    walks_regions = "each"  # keeps every graph's inputs and outputs: safe inside regions
    decompose: bool = option(True, "turn batch norms that cannot be folded into a multiply and an add")

    def apply(self, graph, stats):
        patterns = [BatchNormIntoLinear(), ScaleIntoLinear(), AddIntoBias()]
        if self.decompose:
            patterns.append(DecomposeBatchNorm())
        apply_patterns(graph, patterns, stats)
