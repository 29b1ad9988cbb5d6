"""fold-constants: evaluates pure nodes whose operands are all constants with the ops' numpy kernels.

The kernels are the reference interpreter's, so a folded constant is exactly what the interpreter would compute.
A result larger than ``max-size`` elements is left unevaluated (a broadcast or tile of a small constant is cheaper
to compute at run time than to store). Quantize, dequantize and requantize stay (folding a dequantize of int8
weights would undo quantization); other quantized nodes fold only when they keep quantization parameters as
they are (reshape, transpose, ...), which moves integers without rounding.

Regions: the pass runs inside every region (innermost first); an ``if`` whose condition is constant becomes the
branch it takes, and a ``while`` whose condition is false on entry becomes its initial values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irc.passes import register_pass
from irc.passes.base import Pass, option
from irc.passes.regions import inline_region, static_trip_count
from irc.passes.rewrite import RewritePattern, apply_patterns
from irc.passes.util import QUANT_OPS, const_array, is_pure


class FoldNode(RewritePattern):
    ops = ("*",)
    stat = "nodes folded"

    def __init__(self, max_size: int):
        self.max_size = max_size

    def rewrite(self, node, rw):
        if node.op == "const" or node.op in QUANT_OPS or not node.operands or not is_pure(node):
            return False
        sizes = [r.type.num_elements for r in node.results]  # None (not static) is checked once computed
        if any(size is not None and size > self.max_size for size in sizes):
            return False
        if not all(v.is_constant for v in node.operands) or not self._foldable_quant(node):
            return False
        arrays = [const_array(v) for v in node.operands]
        from irc.ir.interpreter import run_node

        try:
            outs = run_node(node, arrays)
        except Exception:
            return False  # a kernel that fails on these constants fails at run time too; leave it there
        if any(o.size > self.max_size for o in outs):
            return False
        values = []
        for result, out in zip(node.results, outs):
            out = np.asarray(out).astype(result.type.dtype.numpy, copy=False)
            values.append(rw.const(out, loc=node.loc, type=result.type.with_shape(out.shape)))
        rw.replace(node, values)
        return True

    @staticmethod
    def _foldable_quant(node) -> bool:
        quantized = any(v.type.quant for v in node.operands) or any(r.type.quant for r in node.results)
        if not quantized:
            return True
        from irc.ops.base import QUANT_PRESERVING

        return node.opdef.has(QUANT_PRESERVING) and all(
            r.type.quant == node.operands[0].type.quant for r in node.results)


class FoldIf(RewritePattern):
    """An ``if`` on a constant condition becomes the branch it takes, inlined."""

    ops = ("if",)
    stat = "branches inlined"

    def rewrite(self, node, rw):
        pred = node.operands[0]
        if not pred.is_constant:
            return False
        taken = node.regions[0] if bool(np.asarray(const_array(pred)).reshape(-1)[0]) else node.regions[1]
        values, made = inline_region(rw.graph, taken, node.operands[1:])
        for clone in made:
            rw.push(clone)
        rw.replace(node, values)
        return True


class FoldDeadLoop(RewritePattern):
    """A ``while`` whose condition is false on entry (it follows from constant initial values) is its initial
    values."""

    ops = ("while",)
    stat = "loops removed"

    def rewrite(self, node, rw):
        if static_trip_count(node, 0) != 0:
            return False
        rw.replace(node, list(node.operands))
        return True


@register_pass
@dataclass(frozen=True)
class FoldConstants(Pass):
    """Evaluate nodes whose inputs are all constant, with the numpy reference kernels."""

    name = "fold-constants"
    walks_regions = "each"  # keeps every graph's inputs and outputs: safe inside regions
    max_size: int = option(1 << 22, "largest result (in elements) to materialize as a constant")

    def apply(self, graph, stats):
        apply_patterns(graph, [FoldNode(self.max_size), FoldIf(), FoldDeadLoop()], stats)
