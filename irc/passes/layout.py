"""layout: converts a graph between NHWC and NCHW for a target, leaving no needless transpose.

Every spatial op (conv2d, depthwise_conv2d, conv2d_transpose, pools, batch_norm) not yet in the target layout is
rewritten in it, between a transpose in and a transpose back. Then transposes sink towards the outputs through
layout-agnostic ops (elementwise ops, with constants permuted to match), concat, reductions and pad, and a
transpose meeting another composes with it; inverse pairs cancel. What is left is a transpose where the graph's
own inputs or outputs keep their layout, and before ops that depend on it (reshape, ...). A transpose sinks only
when every user of it can take it, so sinking never adds transposes beside one that has to stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from irc.ir.graph import Node, Value
from irc.ops.base import LAYOUT_AGNOSTIC, normalize_axis
from irc.ops.tfl import FUSABLE_OPS, fused_name
from irc.passes import register_pass
from irc.passes.base import Pass, option
from irc.passes.canonicalize import TRANSPOSE_RULES
from irc.passes.rewrite import RewritePattern, Rewriter, apply_patterns, attrs_of
from irc.passes.util import const_array, inverse_perm, is_identity, permute_type

SPATIAL_OPS = ("conv2d", "depthwise_conv2d", "conv2d_transpose", "max_pool", "avg_pool", "batch_norm")
SPATIAL_OPS += tuple(fused_name(op) for op in SPATIAL_OPS if op in FUSABLE_OPS)  # tfl.conv2d: after tfl-fuse
INTO = {"NCHW": (0, 3, 1, 2), "NHWC": (0, 2, 3, 1)}  # the perm that takes the other layout into this one
REDUCE_OPS = ("mean", "sum", "max", "min", "prod")
MAX_FANOUT = 64  # a transpose with more users than this stays where it is


def convert_op(rw: Rewriter, node: Node, target: str) -> bool:
    """Rewrites spatial op ``node`` in layout ``target`` between two transposes."""
    x, out = node.operands[0], node.result
    if node.attr("data_format") == target or x.type.rank != 4 or out.type.rank != 4:
        return False
    into = INTO[target]
    back = inverse_perm(into)
    moved = rw.op("transpose", x, loc=node.loc, type=permute_type(x.type, into), perm=into)
    changes = {"data_format": target}
    if node.core_op == "conv2d_transpose":
        changes["output_shape"] = tuple(node.attr("output_shape")[p] for p in into)
    new = rw.create(node.op, [moved, *node.operands[1:]], attrs_of(node, **changes),
                    types=[permute_type(out.type, into)], loc=node.loc)
    rw.replace(node, rw.op("transpose", new.result, loc=node.loc, type=out.type, perm=back))
    return True


def _transposed(value: Value) -> tuple[Value, tuple[int, ...]] | None:
    node = value.producer
    if node is None or node.op != "transpose":
        return None
    return node.operands[0], tuple(node.attr("perm"))


class SinkTranspose(RewritePattern):
    """op(transpose(x, p), ...) -> transpose(op(x, ...), p) for ops that commute with a transpose."""

    stat = "transposes sunk"

    def __init__(self):
        from irc.ops import all_ops

        agnostic = tuple(name for name, op in all_ops().items() if op.has(LAYOUT_AGNOSTIC))
        self.ops = agnostic + ("concat", fused_name("concat"), "pad") + REDUCE_OPS

    def rewrite(self, node, rw):
        perm = self.common_perm(node)
        if perm is None or not any(_transposed(v) and self.sinks_away(v.producer) for v in node.operands):
            return False
        operands = [self._untransposed(rw, v, perm) for v in node.operands]
        after = self._reduced_perm(node, perm) if node.op in REDUCE_OPS and not node.attr("keepdims") else perm
        out = node.result.type
        moved = rw.create(node.op, operands, self._attrs(node, perm), types=[permute_type(out, inverse_perm(after))],
                          loc=node.loc).result
        rw.replace(node, moved if is_identity(after) else rw.op("transpose", moved, loc=node.loc, type=out, perm=after))
        return True

    def common_perm(self, node: Node) -> tuple[int, ...] | None:
        """The perm of ``node``'s transposed operands, if they share one and every other operand is a constant or
        a scalar that can be permuted to match; else None."""
        perms = {t[1] for v in node.operands if (t := _transposed(v)) is not None}
        if len(perms) != 1:
            return None
        perm = perms.pop()
        for v in node.operands:
            if _transposed(v) is not None or (v.type.rank == 0 and node.core_op != "concat"):
                continue
            array = const_array(v)
            if array is None or v.type.quant is not None or array.ndim > len(perm):
                return None
            if node.core_op == "concat" and array.ndim != len(perm):
                return None
        return perm

    def sinks_away(self, transpose: Node) -> bool:
        """Whether every user of ``transpose`` can take it (so it goes once they all have)."""
        uses = transpose.result.uses
        if len(uses) > MAX_FANOUT or transpose.graph.is_output(transpose.result):
            return False
        return all(user.op == "transpose" or (user.op in self.ops and self.common_perm(user) is not None)
                   for user, _ in uses)

    @staticmethod
    def _untransposed(rw: Rewriter, v: Value, perm) -> Value:
        t = _transposed(v)
        if t is not None:
            return t[0]
        if v.type.rank == 0:
            return v
        array = const_array(v)
        full = array.reshape((1,) * (len(perm) - array.ndim) + array.shape)
        return rw.const(np.ascontiguousarray(full.transpose(inverse_perm(perm))), loc=v.producer.loc)

    @staticmethod
    def _attrs(node: Node, perm) -> dict:
        rank = len(perm)
        if node.core_op == "concat":
            return attrs_of(node, axis=perm[normalize_axis(node.attr("axis"), rank)])
        if node.op in REDUCE_OPS:
            return attrs_of(node, axes=tuple(sorted(perm[normalize_axis(a, rank)] for a in node.attr("axes"))))
        if node.op == "pad":
            pads, inv = node.attr("paddings"), inverse_perm(perm)
            return attrs_of(node, paddings=tuple(tuple(pads[inv[i]]) for i in range(rank)))
        return dict(node.attrs)

    @staticmethod
    def _reduced_perm(node: Node, perm) -> tuple[int, ...]:
        """The perm taking reduce(x) (reduced axes dropped) to reduce(transpose(x, perm))."""
        rank = len(perm)
        axes = {normalize_axis(a, rank) for a in node.attr("axes")}
        kept = [i for i in range(rank) if i not in axes]
        source_kept = sorted(perm[k] for k in kept)
        return tuple(source_kept.index(perm[k]) for k in kept)


class ConvertSpatialOp(RewritePattern):
    ops = SPATIAL_OPS
    stat = "ops converted"

    def __init__(self, target: str):
        self.target = target

    def rewrite(self, node, rw):
        return convert_op(rw, node, self.target)


@register_pass
@dataclass(frozen=True)
class Layout(Pass):
    """Convert spatial ops to NHWC or NCHW and sink and cancel the transposes that leaves."""

    name = "layout"
    walks_regions = "each"  # keeps every graph's inputs and outputs: safe inside regions
    target: Literal["nhwc", "nchw"] = option("nhwc", "the data layout spatial ops should use", aliases=("to",))

    def apply(self, graph, stats):
        target = self.target.upper()
        apply_patterns(graph, [ConvertSpatialOp(target), SinkTranspose(), *TRANSPOSE_RULES], stats)
