"""fuse: target-neutral fusions of core ops: bias adds and explicit zero padding into the op that consumes them.

- conv2d / depthwise_conv2d / conv2d_transpose / conv3d / conv3d_transpose / matmul + add(per-channel constant)
  -> the op with a bias
  (its third operand, a 1-D constant);
- pad(x) with zeros on the spatial dims + a VALID conv2d/depthwise_conv2d -> the conv with SAME padding, when the
  padding is exactly what SAME would add (Keras' ZeroPadding2D before a strided conv usually is).

Bias folding never touches quantized ops. Fusing an activation into the op before it is a target's business:
the TFLite target's ``tfl-fuse`` pass (irc/passes/tfl_fuse.py) makes ``tfl.*`` ops of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from irc.ir.graph import Location
from irc.passes import register_pass
from irc.passes.base import Pass, option
from irc.passes.linear import AddIntoBias
from irc.passes.rewrite import RewritePattern, apply_patterns, attrs_of


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
    """Fuse bias adds and zero padding into conv, depthwise conv and matmul (target-neutral)."""

    name = "fuse"
    walks_regions = "each"  # keeps every graph's inputs and outputs: safe inside regions
    moved_options: ClassVar[dict[str, str]] = {
        "activations": "fusing activations is TFLite's business now, use tfl-fuse{activations=...}"}
    bias: bool = option(True, "fold per-channel constant adds into conv/matmul biases")
    pad: bool = option(True, "fold explicit zero padding into conv padding")

    def apply(self, graph, stats):
        patterns = []
        if self.bias:
            patterns.append(AddIntoBias())
        if self.pad:
            patterns.append(PadIntoConv())
        apply_patterns(graph, patterns, stats)
