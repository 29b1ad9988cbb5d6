"""Legalization for TFLite: the graph rewritten into TFLite's idioms, then every node's status.

``rewrite_idioms`` turns decomposed math back into the single builtins TFLite (and its delegates) run fastest,
as TensorFlow's converter does: the erf form of GELU into ``gelu``, ``x * relu6(x + 3) / 6`` into ``hard_swish``,
and a per-channel scale in front of a convolution (Keras' Rescaling) into the filter. These are exact rewrites of
the same function, so ``emit`` runs them even with ``-O0``; as the pass ``tflite-idioms`` they end the backend's
default pipeline, so that they come before any quantization. The tanh approximation of GELU becomes
``gelu {approximate = true}`` as well. A reshape that puts reduced dimensions back becomes the
reduction's ``keepdims``.

``check`` gives every node's status: ``native`` (TFLite builtin operators), ``fallback`` (an opaque ``tf.<Op>``
written as a Flex custom op, which needs the Flex delegate at run time) or ``unsupported`` with the reason.
``legalize`` raises one UnsupportedOpError naming every op type the model cannot be written with, before
anything is emitted, so a user sees the whole list at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from irc.backends.tflite.ops import rule_for
from irc.backends.tflite.ops_nn import widened_constant
from irc.errors import UnsupportedOpError
from irc.ir.graph import Graph, Location, Node
from irc.passes import register_pass
from irc.passes.base import Pass, Stats
from irc.passes.rewrite import RewritePattern, apply_patterns
from irc.passes.rules import Const, Op, Rule, Var
from irc.passes.util import channel_vector, const_array, is_quantized, only_use

NATIVE, FALLBACK, UNSUPPORTED = "native", "fallback", "unsupported"
_SHOWN = 3  # node locations named per op type in the error


class Support(NamedTuple):
    node: Node
    status: str
    reason: str


def check(graph: Graph, *, allow_tf_ops: bool = True) -> list[Support]:
    """Every node's status, in topological order, graph by graph (regions after the graph that holds them)."""
    return [Support(node, *status(node, allow_tf_ops)) for g in graph.all_graphs() for node in g.topo_order()]


def status(node: Node, allow_tf_ops: bool = True) -> tuple[str, str]:
    if node.op == "const":
        return NATIVE, ""
    rule = rule_for(node)
    if rule is None:
        return UNSUPPORTED, f"TFLite has no operator for {node.op} and irc has no rewrite of it"
    problem = rule.check(node) if rule.check is not None else None
    if problem:
        return UNSUPPORTED, problem
    if node.is_opaque:
        if not allow_tf_ops:
            return UNSUPPORTED, "a TensorFlow op irc does not lower (--allow-tf-ops writes it as a Flex op)"
        return FALLBACK, "a Flex op: runs with TensorFlow's kernel through the Flex delegate"
    return NATIVE, ""


def legalize(graph: Graph, *, allow_tf_ops: bool = False) -> list[Support]:
    """``check``, raising one UnsupportedOpError that names every op type TFLite cannot be given."""
    from irc.ir.liveness import live_nodes

    live = {node for g in graph.all_graphs() for node in live_nodes(g)}
    report = check(graph, allow_tf_ops=allow_tf_ops)
    bad: dict[str, list[Support]] = {}
    for item in report:
        if item.status == UNSUPPORTED and item.node in live:
            bad.setdefault(item.node.op, []).append(item)
    if bad:
        raise UnsupportedOpError(describe(bad), hint=_hint(bad))
    return report


def describe(bad: dict[str, list[Support]]) -> str:
    from irc.ir.verify import node_label

    parts = []
    for op, items in sorted(bad.items()):
        shown = ", ".join(str(i.node.loc) if i.node.loc else node_label(i.node) for i in items[:_SHOWN])
        more = ", ..." if len(items) > _SHOWN else ""
        parts.append(f"{op} x{len(items)} ({items[0].reason}; at {shown}{more})")
    return f"TFLite cannot take {len(bad)} op type(s) of this model: " + "; ".join(parts)


def _hint(bad: dict[str, list[Support]]) -> str:
    if all(op.startswith("tf.") for op in bad):
        return "pass --allow-tf-ops to write them as Flex ops, which need TensorFlow's Flex delegate to run"
    return "irc check --target tflite lists every node"


# ----- idioms: decomposed math back into TFLite builtins -------------------------------------------------------------
class Near(Const):
    """A constant whose every element is within float32 rounding of ``target``."""

    def __init__(self, target: float):
        super().__init__(name=None)
        self.target = target

    def match(self, value, m):
        array = value.constant
        if not isinstance(array, np.ndarray) or array.size == 0 or array.dtype.kind != "f" or value.type.quant:
            return False
        return bool(np.allclose(array.astype(np.float64), self.target, rtol=1e-6, atol=0))


def _gelu_rules() -> list[Rule]:
    x = Var("x", where=lambda v: v.type.dtype.is_float and v.type.quant is None)

    def scaled(inner):  # x / sqrt(2), written either way
        return [Op("mul", inner, Near(math.sqrt(0.5))), Op("div", inner, Near(math.sqrt(2.0)))]

    # 0.5 x (1 + erf(x / sqrt 2)), and TensorFlow's 0.5 x erfc(-x / sqrt 2) = 0.5 x (1 - erf(-x / sqrt 2))
    one_plus = [Op("add", Op("erf", s), Near(1.0)) for s in scaled(x)]
    one_plus += [Op("sub", Near(1.0), Op("erf", s)) for s in scaled(Op("neg", x))]
    forms = []
    for tail in one_plus:
        forms += [Op("mul", Op("mul", x, Near(0.5)), tail), Op("mul", x, Op("mul", tail, Near(0.5))),
                  Op("mul", Op("mul", x, tail), Near(0.5))]
    rules = [Rule(form, lambda m: m.op("gelu", m.x, approximate=False), doc="erf form -> gelu") for form in forms]
    # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))): the tanh approximation (ALBERT's gelu_new, Keras'
    # gelu(approximate=True)), which TFLite's GELU computes with approximate = true
    cubic = Op("add", x, Op("mul", Op("pow", x, Near(3.0)), Near(0.044715)))
    c = math.sqrt(2 / math.pi)
    tanhs = [Op("tanh", Op("mul", cubic, Near(c))), Op("tfl.mul", cubic, Near(c), fused_activation="tanh")]
    tanh_forms = []
    for tanh in tanhs:  # tfl-fuse may have fused the tanh into its mul already
        tail = Op("add", tanh, Near(1.0))
        tanh_forms += [Op("mul", Op("mul", x, Near(0.5)), tail), Op("mul", x, Op("mul", tail, Near(0.5))),
                       Op("mul", Op("mul", x, tail), Near(0.5))]
    rules += [Rule(form, lambda m: m.op("gelu", m.x, approximate=True), doc="tanh form -> gelu(approximate)")
              for form in tanh_forms]
    return rules


def _hard_swish_rules() -> list[Rule]:
    x = Var("x", where=lambda v: v.type.dtype.is_float and v.type.quant is None)
    gates = [Op("tfl.add", x, Near(3.0), fused_activation="relu6"), Op("relu6", Op("add", x, Near(3.0)))]
    forms = []
    for gate in gates:
        forms += [Op("mul", x, Op("div", gate, Near(6.0))), Op("mul", x, Op("mul", gate, Near(1 / 6))),
                  Op("div", Op("mul", x, gate), Near(6.0)), Op("mul", Op("mul", x, gate), Near(1 / 6))]
    return [Rule(form, lambda m: m.op("hard_swish", m.x), doc="x * relu6(x + 3) / 6 -> hard_swish")
            for form in forms]


class ScaleIntoFilter(RewritePattern):
    """conv(x * c, w) -> conv(x, w * c) for a constant c per input channel (zero padding stays zero)."""

    ops = ("conv2d", "depthwise_conv2d", "tfl.conv2d", "tfl.depthwise_conv2d")  # an activation after: no matter
    stat = "input scales folded into filters"

    def rewrite(self, node, rw):
        scaled, f = node.operands[:2]
        mul = scaled.producer
        if (mul is None or mul.op != "mul" or only_use(scaled) is not node
                or node.attr("data_format") != "NHWC" or not f.is_constant or f.type.quant is not None
                or not f.type.dtype.is_float or scaled.type.quant is not None):
            return False
        for x, c in (mul.operands, mul.operands[::-1]):
            scale = _channel_scale(c, x, f.type.shape[2])
            if scale is not None and x.type == scaled.type:
                break
        else:
            return False
        weights = (f.constant * scale.reshape(1, 1, -1, 1)).astype(f.constant.dtype)
        filt = rw.const(weights, loc=f.producer.loc)
        new = rw.create(node.op, [x, filt, *node.operands[2:]], dict(node.attrs), types=[node.result.type],
                        loc=node.loc)
        rw.replace(node, new.results)
        return True


def _channel_scale(c, x, channels) -> np.ndarray | None:
    """The per-channel scale of constant ``c`` multiplied into ``x`` (channels last), or None."""
    array = c.constant
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f" or c.type.quant is not None:
        return None
    if not isinstance(channels, int) or x.type.rank is None or array.ndim > x.type.rank:
        return None
    if any(d != 1 for d in array.shape[:-1]) or (array.ndim and array.shape[-1] not in (1, channels)):
        return None
    return np.broadcast_to(array.reshape(-1), (channels,)).astype(np.float64)


class KeepReducedDims(RewritePattern):
    """reshape(reduce(x) {keepdims=false}) back to the kept shape -> reduce(x) {keepdims=true} (one operator)."""

    ops = ("reshape",)
    stat = "reshapes into reductions"
    REDUCTIONS = ("mean", "sum", "max", "min", "prod")

    def rewrite(self, node, rw):
        reduced = node.operands[0]
        reduce = reduced.producer
        if reduce is None or reduce.op not in self.REDUCTIONS or reduce.attr("keepdims") or only_use(reduced) is None:
            return False
        x = reduce.operands[0]
        if x.type.rank is None:
            return False
        axes = {a % x.type.rank for a in reduce.attr("axes")}
        kept = tuple(1 if i in axes else d for i, d in enumerate(x.type.shape))
        if kept != node.result.type.shape:
            return False
        new = rw.create(reduce.op, [x], {**reduce.attrs, "keepdims": True}, types=[node.result.type],
                        loc=Location.fused([reduce.loc, node.loc]))
        rw.replace(node, new.results)
        return True


class ReshapesIntoFullyConnected(RewritePattern):
    """reshape(matmul(reshape(x, [m, k]), w), [..., n]) -> tfl.matmul(x, w) : [..., n], where x is [..., k].

    TensorFlow's Tensordot (Keras' Dense on a sequence) flattens the leading dims before its MatMul and puts them
    back after it; TFLite's FULLY_CONNECTED keeps them itself (keep_num_dims), as TensorFlow's converter writes
    it, so neither RESHAPE is written. Where the matmul's input is no reshape of such an x, it is reshaped to
    ``[..., k]`` instead: one RESHAPE for two; where the result is reshaped otherwise (``[..., heads, size]``),
    the FULLY_CONNECTED reads x and only that reshape stays. Constant (or widened) weights only.

    A ``dynamic_reshape`` (more than one dim read at run time: an open batch and sequence) folds the same way:
    the leading dims are the same symbols (``[batch, token_ids_1, n]``), so they are the same sizes at run time;
    where it reshapes otherwise it stays, with its own shape vector.
    """

    ops = ("reshape", "dynamic_reshape")
    stat = "reshapes folded into fully-connected"

    def rewrite(self, node, rw):
        product = node.operands[0]
        mm = product.producer
        if mm is None or only_use(product) is not node:
            return False
        matmul_attrs = _as_matmul(mm)
        if matmul_attrs is None:
            return False
        a, w = mm.operands[:2]
        out = node.result.type
        if (matmul_attrs["transpose_a"] or a.type.rank != 2 or out.rank is None or out.rank < 3
                or out.quant != product.type.quant or not (w.is_constant or widened_constant(w) is not None)):
            return False
        k, n = a.type.shape[1], product.type.shape[1]
        x = _reshaped_from(rw, a, out.shape[:-1] + (k,)) if out.shape[-1] == n else None
        kept = out
        if x is None:  # the result is reshaped otherwise ([..., heads, size]): read the x whose last dim is k
            x = _source_ending_in(a, k)
            if x is None or (node.op == "reshape" and sum(not isinstance(d, int) for d in out.shape) > 1):
                return False
            kept = product.type.with_shape(x.type.shape[:-1] + (n,))
        attrs = {**matmul_attrs, "fused_activation": mm.attrs.get("fused_activation", "none")}
        loc = Location.fused([mm.loc, node.loc])
        new = rw.create("tfl.matmul", [x, *mm.operands[1:]], attrs, types=[kept], loc=loc).result
        if kept != out and node.op == "dynamic_reshape":
            new = rw.op("dynamic_reshape", new, node.operands[1], type=out, loc=node.loc)
        elif kept != out:
            new = rw.op("reshape", new, shape=tuple(d if isinstance(d, int) else -1 for d in out.shape), type=out,
                        loc=node.loc)
        rw.replace(node, new)
        return True


_RESHAPES = ("reshape", "dynamic_reshape")


def _as_matmul(mm: Node) -> dict | None:
    """The matmul attributes of ``mm``: a matmul's own, or those of a batch_matmul of two rank-2 operands
    (TensorFlow's einsum of a Dense on a sequence, with a run-time sequence length), else None."""
    if mm.op in ("matmul", "tfl.matmul"):
        return {"transpose_a": mm.attr("transpose_a"), "transpose_b": mm.attr("transpose_b")}
    if mm.op == "batch_matmul" and len(mm.operands) == 2 and all(v.type.rank == 2 for v in mm.operands):
        return {"transpose_a": mm.attr("adj_x"), "transpose_b": mm.attr("adj_y")}
    return None


def _determined(shape: tuple) -> bool:
    """Every dim known or a symbol, but for at most one unknown (no symbol), which the element count gives."""
    return sum(d is None for d in shape) <= 1


def _source_ending_in(a, k):
    """The value of rank 3 or more, last dim ``k`` and at most one unknown dim without a symbol, that rank-2 ``a``
    is a reshape (chain) of, or None."""
    source = a
    while source.producer is not None and source.producer.op in _RESHAPES:
        source = source.producer.operands[0]
        shape = source.type.shape
        if shape is not None and len(shape) >= 3 and shape[-1] == k and _determined(shape):
            return source
    return None


class ActivationIntoFullyConnected(RewritePattern):
    """act(tfl.matmul(x, w) {fused_activation = none}) -> tfl.matmul(x, w) {fused_activation = act}, for the
    FULLY_CONNECTEDs that keep leading dims: tfl-fuse ran while a reshape still stood between them."""

    ops = ("relu", "relu6", "tanh")
    stat = "activations fused into fully-connected"

    def rewrite(self, node, rw):
        source = node.operands[0]
        mm = source.producer
        if (mm is None or mm.op != "tfl.matmul" or mm.attr("fused_activation") != "none"
                or mm.operands[0].type.rank in (None, 2) or only_use(source) is not node
                or node.result.type != source.type):
            return False
        new = rw.create(mm.op, mm.operands, {**mm.attrs, "fused_activation": node.op}, types=[node.result.type],
                        loc=Location.fused([mm.loc, node.loc]))
        rw.replace(node, new.results)
        return True


class BiasIntoFullyConnected(RewritePattern):
    """add(tfl.matmul(x, w), c) -> tfl.matmul(x, w, c), c constant per output channel, for the FULLY_CONNECTEDs
    that keep leading dims (Keras' Dense on a sequence adds its bias after Tensordot's reshape, where ``fuse``
    could not reach it); a tfl.add's fused activation goes with it."""

    ops = ("add", "tfl.add")
    stat = "biases fused into fully-connected"

    def rewrite(self, node, rw):
        for product, c in (node.operands, node.operands[::-1]):
            mm = product.producer
            if (mm is not None and mm.op == "tfl.matmul" and len(mm.operands) == 2
                    and mm.attr("fused_activation") == "none" and mm.operands[0].type.rank not in (None, 2)
                    and only_use(product) is node):
                break
        else:
            return False
        array = const_array(c)
        out = node.result.type
        if array is None or out != product.type or is_quantized(node) or is_quantized(mm):
            return False
        bias = channel_vector(array, out, -1)
        if bias is None:
            return False
        bias = rw.const(np.ascontiguousarray(bias, dtype=out.dtype.numpy), loc=c.producer.loc)
        attrs = {**mm.attrs, "fused_activation": node.attrs.get("fused_activation", "none")}
        new = rw.create(mm.op, [*mm.operands, bias], attrs, types=[out], loc=Location.fused([mm.loc, node.loc]))
        rw.replace(node, new.results)
        return True


def _reshaped_from(rw, a, shape: tuple):
    """``a`` (rank 2) as a value of ``shape``: the reshape it was made from, or a new reshape of it; None when
    the element counts cannot be shown to agree."""
    source = a
    while True:
        if source.type.shape == shape and _determined(shape):
            return source
        producer = source.producer
        if producer is None or producer.op not in _RESHAPES:
            break
        source = producer.operands[0]
    if not all(isinstance(d, int) for d in (*shape, *a.type.shape)) or math.prod(shape) != math.prod(a.type.shape):
        return None
    return rw.op("reshape", source, shape=shape, loc=a.producer.loc if a.producer else Location())


IDIOMS: list[RewritePattern] = [*_gelu_rules(), *_hard_swish_rules(), ScaleIntoFilter(), KeepReducedDims(),
                                 ReshapesIntoFullyConnected(), BiasIntoFullyConnected(), ActivationIntoFullyConnected()]


def rewrite_idioms(graph: Graph) -> Stats:
    """Rewrites ``graph`` in place into TFLite's idioms; returns what was rewritten."""
    stats = Stats()
    for g in graph.all_graphs():
        apply_patterns(g, IDIOMS, stats)
    return stats


@register_pass
@dataclass(frozen=True)
class TFLiteIdioms(Pass):
    """Rewrites decomposed math into the builtins TFLite runs best (gelu, hard_swish, scales into filters)."""

    name = "tflite-idioms"
    walks_regions = "self"  # apply runs the idioms in every region itself, as rewrite_idioms does

    def apply(self, graph: Graph, stats: Stats) -> None:
        for g in graph.all_graphs():
            apply_patterns(g, IDIOMS, stats)
