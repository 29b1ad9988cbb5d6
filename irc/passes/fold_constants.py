"""fold-constants: evaluates pure nodes whose operands are all constants with the ops' numpy kernels.

The kernels are the reference interpreter's, so a folded constant is exactly what the interpreter would compute.
A result larger than ``max-size`` elements is left unevaluated (a broadcast or tile of a small constant is cheaper
to compute at run time than to store). Quantize, dequantize and requantize stay (folding a dequantize of int8
weights would undo quantization); other quantized nodes fold only when they keep quantization parameters as
they are (reshape, transpose, ...), which moves integers without rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irc.passes import register_pass
from irc.passes.base import Pass, option
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


@register_pass
@dataclass(frozen=True)
class FoldConstants(Pass):
    """Evaluate nodes whose inputs are all constant, with the numpy reference kernels."""

    name = "fold-constants"
    max_size: int = option(1 << 22, "largest result (in elements) to materialize as a constant")

    def apply(self, graph, stats):
        apply_patterns(graph, [FoldNode(self.max_size)], stats)
