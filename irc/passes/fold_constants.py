"""fold-constants: evaluates pure nodes whose operands are all constants with the ops' numpy kernels.

The kernels are the reference interpreter's, so a folded constant is exactly what the interpreter would compute.

Size policy (TensorFlow's MLIR constant folder has the same shape of rule): a result is materialized when it is
small (at most ``small-bytes``) or when it is at most ``grow-factor`` times the bytes of the constants it is
computed from. A node that would blow a little constant data up into a big one (a broadcast, a tile, an outer
product such as Swin's shifted-window mask ``m[:, None, :] != m[:, :, None]``) stays in the graph and computes it at
run time from the small constants; what keeps the size (transposing, reshaping, slicing weights) still folds.
Nothing larger than ``max-size`` elements is materialized at all.

Quantize, dequantize and requantize stay (folding a dequantize of int8 weights would undo quantization); other
quantized nodes fold only when they keep quantization parameters as they are (reshape, transpose, ...), which moves
integers without rounding.

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

SMALL_BYTES = 8 << 10  # TensorFlow's folder: 64 Kibit
GROW_FACTOR = 2.0


def grows_too_much(result_bytes: int, operand_bytes: int, small_bytes: int = SMALL_BYTES,
                   grow_factor: float = GROW_FACTOR) -> bool:
    """Whether a folded result of ``result_bytes`` would be both large and much larger than its constant operands:
    then it is computed at run time. The TF frontend's folding at lowering time asks the same question."""
    return result_bytes > small_bytes and result_bytes > grow_factor * operand_bytes


def nbytes(values) -> int:
    """The bytes of the values' static types (a value of unknown size counts as none)."""
    return sum(v.type.num_elements * v.type.dtype.itemsize for v in values if v.type.num_elements is not None)


class FoldNode(RewritePattern):
    ops = ("*",)
    stat = "nodes folded"

    def __init__(self, max_size: int, small_bytes: int, grow_factor: float):
        self.max_size = max_size
        self.small_bytes = small_bytes
        self.grow_factor = grow_factor

    def grows_too_much(self, node, result_bytes: int) -> bool:
        return grows_too_much(result_bytes, nbytes(node.operands), self.small_bytes, self.grow_factor)

    def rewrite(self, node, rw):
        if node.op == "const" or node.op in QUANT_OPS or not node.operands or not is_pure(node):
            return False
        sizes = [r.type.num_elements for r in node.results]  # None (not static) is checked once computed
        if any(size is not None and size > self.max_size for size in sizes):
            return False
        if not all(v.is_constant for v in node.operands) or not self._foldable_quant(node):
            return False
        if None not in sizes and self.grows_too_much(node, nbytes(node.results)):
            return False
        arrays = [const_array(v) for v in node.operands]
        from irc.ir.interpreter import run_node

        try:
            outs = run_node(node, arrays)
        except Exception:
            return False  # a kernel that fails on these constants fails at run time too; leave it there
        if any(o.size > self.max_size for o in outs):
            return False
        if None in sizes and self.grows_too_much(node, sum(o.nbytes for o in map(np.asarray, outs))):
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
    small_bytes: int = option(SMALL_BYTES, "a result up to this many bytes is always materialized")
    grow_factor: float = option(GROW_FACTOR, "a larger one only up to this many times its operands' bytes")

    def apply(self, graph, stats):
        fold = FoldNode(self.max_size, self.small_bytes, self.grow_factor)
        apply_patterns(graph, [fold, FoldIf(), FoldDeadLoop()], stats)
