"""tfl-fuse: the TFLite target's activation fusion, from core ops to the ``tfl`` dialect.

``relu(conv2d(...))`` -> ``tfl.conv2d(...) {fused_activation = "relu"}``, and so for every core op TFLite fuses an
activation into (add, sub, mul, div, the 2-D and 3-D convolutions, matmul, pools, concat: see irc/ops/tfl.py) and
every activation asked for (relu, relu6, relu_n1_to_1 spelled as a clamp, tanh, sigmoid), when the op's result has
no other use. The ``tflite`` pipeline runs it after ``fuse`` (biases and pads, which are
target-neutral); the ``cuda`` pipeline runs it too, for TensorFlow's fused convolution (irc/backends/tfemit).

A fused activation takes the activation's result type, so on quantized graphs the fused op produces the
activation's quantization parameters (as TFLite's fused kernels do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from irc.ir.graph import Location
from irc.ops.tfl import FUSABLE_OPS, fused_name
from irc.passes import register_pass
from irc.passes.base import Pass, option
from irc.passes.rewrite import RewritePattern, apply_patterns
from irc.passes.util import all_equal, only_use, real_array

Activation = Literal["relu", "relu6", "relu_n1_to_1", "tanh", "sigmoid"]
# activation op -> fused activation attribute value (relu_n1_to_1 comes from clamps, see FuseActivation)
ACTIVATION_OPS = {"relu": "relu", "relu6": "relu6", "tanh": "tanh", "sigmoid": "sigmoid"}


class FuseActivation(RewritePattern):
    """act(op(...)) -> tfl.op(...) {fused_activation = act}, for a core op TFLite fuses activations into."""

    ops = tuple(ACTIVATION_OPS) + ("minimum",)
    stat = "activations fused"

    def __init__(self, allowed: tuple[str, ...]):
        self.allowed = set(allowed)

    def rewrite(self, node, rw):
        kind, source = self._activation(node)
        if kind not in self.allowed or source.producer is None or only_use(source) is None:
            return False
        producer = source.producer
        if producer.op not in FUSABLE_OPS or len(producer.results) != 1:
            return False
        out = node.result.type
        if out.dtype != source.type.dtype or out.shape != source.type.shape:
            return False
        fused = rw.create(fused_name(producer.op), producer.operands,
                          {**producer.attrs, "fused_activation": kind}, types=[out],
                          loc=Location.fused([producer.loc, node.loc]))
        rw.replace(node, fused.results)
        return True

    @staticmethod
    def _activation(node):
        """(fused activation name, its input) for an activation node, or (None, its first operand)."""
        if node.op in ACTIVATION_OPS:
            return ACTIVATION_OPS[node.op], node.operands[0]
        # minimum(maximum(x, -1), 1): TFLite's relu_n1_to_1
        for i in (0, 1):
            upper, inner = real_array(node.operands[1 - i]), node.operands[i].producer
            if upper is None or inner is None or inner.op != "maximum" or not all_equal(upper, 1.0):
                continue
            for j in (0, 1):
                lower = real_array(inner.operands[1 - j])
                if lower is not None and all_equal(lower, -1.0) and only_use(node.operands[i]) is not None:
                    return "relu_n1_to_1", inner.operands[j]
        return None, node.operands[0]


@register_pass
@dataclass(frozen=True)
class TflFuse(Pass):
    """TFLite: fuse activations into the op before them, as tfl.* ops (tfl.conv2d {fused_activation = "relu"})."""

    name = "tfl-fuse"
    walks_regions = "each"  # keeps every graph's inputs and outputs: safe inside regions
    activations: tuple[Activation, ...] = option(("relu", "relu6", "relu_n1_to_1", "tanh"),
                                                 "activations to fuse into the op before them")

    def apply(self, graph, stats):
        apply_patterns(graph, [FuseActivation(self.activations)], stats)
