"""fuse: bias adds and activations into the op that produces them, and explicit zero padding into convolutions.

- conv2d / depthwise_conv2d / conv2d_transpose / matmul + add(per-channel constant) -> the op with a bias
  (its third operand, a 1-D constant);
- any op with an ``activation`` attribute (those, and add/sub/mul/div, pools, concat) followed by relu, relu6,
  tanh, ... -> the op with ``activation`` set, when its result has no other use;
- pad(x) with zeros on the spatial dims + a VALID conv2d/depthwise_conv2d -> the conv with SAME padding, when the
  padding is exactly what SAME would add (Keras' ZeroPadding2D before a strided conv usually is).

A fused activation takes the activation's result type, so on quantized graphs the fused op produces the
activation's quantization parameters (as TFLite's fused kernels do); bias folding never touches quantized ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from irc.ir.graph import Location
from irc.passes import register_pass
from irc.passes.base import Pass, option
from irc.passes.linear import AddIntoBias
from irc.passes.rewrite import RewritePattern, apply_patterns, attrs_of
from irc.passes.util import all_equal, only_use, real_array

Activation = Literal["relu", "relu6", "relu_n1_to_1", "tanh", "sigmoid"]
# activation op -> fused activation attribute value (relu_n1_to_1 comes from clamps, see FuseActivation)
ACTIVATION_OPS = {"relu": "relu", "relu6": "relu6", "tanh": "tanh", "sigmoid": "sigmoid"}


class FuseActivation(RewritePattern):
    """act(op(...)) -> op(...) {activation = act}, for an op that declares an ``activation`` attribute."""

    ops = tuple(ACTIVATION_OPS) + ("minimum",)
    stat = "activations fused"

    def __init__(self, allowed: tuple[str, ...]):
        self.allowed = set(allowed)

    def rewrite(self, node, rw):
        kind, source = self._activation(node)
        if kind not in self.allowed or source.producer is None or only_use(source) is None:
            return False
        producer = source.producer
        spec = producer.opdef.attrs.get("activation") if not producer.is_opaque else None
        if spec is None or producer.attr("activation") != "none" or len(producer.results) != 1:
            return False
        out = node.result.type
        if out.dtype != source.type.dtype or out.shape != source.type.shape:
            return False
        fused = rw.create(producer.op, producer.operands, attrs_of(producer, activation=kind), types=[out],
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


class PadIntoConv(RewritePattern):
    """conv(pad(x), padding=VALID) -> conv(x, padding=SAME) where the pad is exactly SAME's padding."""

    ops = ("conv2d", "depthwise_conv2d")
    stat = "pads fused"

    def rewrite(self, node, rw):
        from irc.ops.nn import same_padding, to_nhwc, window_out

        pad = node.operands[0].producer
        if pad is None or pad.op != "pad" or node.attr("padding") != "VALID":
            return False
        if pad.attr("mode") != "constant" or pad.attr("constant_value") != 0.0:
            return False
        fmt = node.attr("data_format")
        x = pad.operands[0]
        _, h, w, _ = to_nhwc(x.type.shape, fmt)
        pn, ph, pw, pc = to_nhwc(tuple(tuple(p) for p in pad.attr("paddings")), fmt)
        kh, kw = node.operands[1].type.shape[:2]
        (sh, sw), (dh, dw) = node.attr("strides"), node.attr("dilations")
        if any(p != (0, 0) for p in (pn, pc)) or not all(isinstance(d, int) for d in (h, w, kh, kw)):
            return False
        if ph != same_padding(h, kh, sh, dh, "SAME") or pw != same_padding(w, kw, sw, dw, "SAME"):
            return False
        _, oh, ow, _ = to_nhwc(node.result.type.shape, fmt)
        if (oh, ow) != (window_out(h, kh, sh, dh, "SAME"), window_out(w, kw, sw, dw, "SAME")):
            return False
        operands = [x] + list(node.operands[1:])
        fused = rw.create(node.op, operands, attrs_of(node, padding="SAME"), types=[node.result.type],
                          loc=Location.fused([pad.loc, node.loc]))
        rw.replace(node, fused.results)
        return True


@register_pass
@dataclass(frozen=True)
class Fuse(Pass):
    """Fuse bias adds, activations and zero padding into conv, depthwise conv, matmul and arithmetic ops."""

    name = "fuse"
    activations: tuple[Activation, ...] = option(("relu", "relu6", "relu_n1_to_1", "tanh"),
                                                 "activations to fuse into the op before them")
    bias: bool = option(True, "fold per-channel constant adds into conv/matmul biases")
    pad: bool = option(True, "fold explicit zero padding into conv padding")

    def apply(self, graph, stats):
        patterns = [FuseActivation(self.activations)]
        if self.bias:
            patterns.append(AddIntoBias())
        if self.pad:
            patterns.append(PadIntoConv())
        apply_patterns(graph, patterns, stats)
