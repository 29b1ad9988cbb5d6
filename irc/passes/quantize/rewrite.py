"""The graph rewrites behind the quantize pass, one function per mode family.

Full integer (``int8``, ``int16x8``), given the calibrated range of every float value:

1. Choose the nodes TFLite can run on integers (``constraints.integer_kernel``), minus those kept float.
2. Give every quantized tensor a *class key*: a node result, a graph input (``--int8-io``), the quantized twin of a
   float value (``("entry", value)``: a quantize node), a constant operand (``("const", node, i)``) or a
   requantized operand (``("requant", node, i, key)``). Keys of one class share parameters: the operands and
   results of same-scale ops (reshape, pools, concat ...) are joined; fixed-output ops (softmax ...) pin their
   class. A multi-operand same-scale op (concat) given a pinned operand gets a requantize on that edge instead,
   so a softmax output does not force its 1/256 scale onto the other inputs of a concat.
3. Parameters per class from the union of its members' ranges (or the pinned ones), then the edits: results
   retyped, quantize / requantize / dequantize nodes at the float-integer borders, constants quantized,
   weights per channel (symmetric int8), biases int32 (int64 for int16x8) with scale input_scale * weight_scale.

``dynamic-int8`` quantizes only the weights of convolutions and fully-connected ops (int8, per channel, float
activations: TFLite's hybrid kernels, as TF's dynamic-range mode writes them). ``float16`` stores float constants
as float16 widened by a cast (which the TFLite backend writes as DEQUANTIZE).
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

import numpy as np

from irc.errors import QuantizationError
from irc.ir.graph import Graph, Location, Node, Value
from irc.ir.types import DType, QuantParams, TensorType
from irc.ops.quant import quantize_array
from irc.passes.quantize import constraints as C
from irc.passes.quantize.qat import trained_weight_scales

DYNAMIC_OPS = ("conv2d", "depthwise_conv2d", "matmul")
_BORDER = ("const", "quantize", "dequantize", "requantize")
DYNAMIC_MIN_ELEMENTS = 1024  # TF's dynamic-range mode leaves smaller weight tensors float


def _is_f32(v: Value) -> bool:
    return v.type.dtype is DType.f32 and v.type.quant is None


def _loc(value: Value, suffix: str) -> Location:
    """A location for a node inserted after ``value``: its producer's, with the node names suffixed."""
    base = value.producer.loc if value.producer is not None else Location.of(value.name)
    names = tuple(f"{n}/{suffix}" for n in base.names[:1]) or (suffix,)
    return Location(names, base.layers)


def _const(graph: Graph, array: np.ndarray, type: TensorType, loc: Location) -> Value:
    return graph.add("const", (), {"value": array}, types=[type.with_shape(array.shape)], loc=loc).result


def _drop_unused_constants(graph: Graph, values: list[Value]) -> None:
    for v in values:
        if v.producer is not None and v.producer.graph is graph and not v.uses and not graph.is_output(v):
            graph.erase(v.producer)


# ----- preparation -----------------------------------------------------------------------------------------------------
def _with_regions(rewrite):
    """Applies a graph rewrite to every region of the graph too (loop bodies, branches; innermost first), each on
    its own: a region's arguments and results stay float (quantize/dequantize at its border, no integer graph
    inputs or outputs there), so the region op's signature does not change."""

    @functools.wraps(rewrite)
    def apply(graph: Graph, *args, **kwargs):
        from irc.passes.manager import regions_innermost_first

        inner = {**kwargs, "io": None} if "io" in kwargs else kwargs
        for region in regions_innermost_first(graph):
            rewrite(region, *args, **inner)
        return rewrite(graph, *args, **kwargs)

    return apply


@_with_regions
def split_activations(graph: Graph, stats: Counter) -> None:
    """Moves fused tanh / sigmoid activations into nodes of their own, whose input then gets its own range:
    ``tfl.add {fused_activation = "tanh"}`` -> ``tanh(add)``."""
    for node in graph.topo_order():
        act = node.attrs.get("fused_activation")
        if act not in C.UNFUSABLE or len(node.results) != 1:
            continue
        attrs = {k: v for k, v in node.attrs.items() if k != "fused_activation"}
        inner = graph.add(node.core_op, list(node.operands), attrs, loc=node.loc)
        outer = graph.add(act, [inner.result], loc=node.loc)
        graph.replace_node(node, [outer.result])
        stats["activations split off"] += 1


# ----- float16 and dynamic-range ---------------------------------------------------------------------------------------
@_with_regions
def quantize_float16(graph: Graph, keep: set[Node], stats: Counter) -> None:
    for node in graph.nodes:
        if node.op != "const" or not _is_f32(node.result):
            continue
        uses = [(u, i) for u, i in node.result.uses if u not in keep]
        if not uses:
            continue
        array = node.result.constant
        half = _const(graph, array.astype(np.float16), TensorType(DType.f16, array.shape), node.loc)
        wide = graph.add("cast", [half], {"to": DType.f32}, loc=node.loc).result
        for user, i in uses:
            graph.set_operand(user, i, wide)
        stats["constants stored as float16"] += 1
        _drop_unused_constants(graph, [node.result])


@_with_regions
def quantize_dynamic(graph: Graph, keep: set[Node], stats: Counter, min_elements: int = DYNAMIC_MIN_ELEMENTS) -> None:
    for node in graph.topo_order():
        if node in keep or node.core_op not in DYNAMIC_OPS or not C.has_weights(node):
            continue
        x, w = node.operands[:2]
        if not _is_f32(x) or not _is_f32(w) or (w.type.num_elements or 0) < min_elements:
            continue
        axis = C.weight_axis(node)
        channels = w.type.shape[axis] if axis is not None else None
        trained = trained_weight_scales(w, axis, channels)  # a QAT model's own weight grid
        scales, axis = trained if trained is not None else (C.weight_scales(w.constant, axis), axis)
        q = C.quantize_weights(w.constant, scales, axis)
        wq = _const(graph, q, TensorType(DType.i8, q.shape, C.weight_params(scales, axis)), w.producer.loc)
        graph.set_operand(node, 1, wq)
        _drop_unused_constants(graph, [w])
        stats["weights quantized"] += 1


# ----- full integer ----------------------------------------------------------------------------------------------------
class _Classes:
    """Union-find over class keys, with the union of the members' ranges and any pinned parameters.

    A member whose range was forced (``Ranges.override``) outranks calibrated ones: a class with forced members
    takes the union of the forced ranges only.
    """

    def __init__(self):
        self.parent: dict[Any, Any] = {}
        self.range: dict[Any, tuple[float, float]] = {}
        self.forced: dict[Any, tuple[float, float]] = {}
        self.pinned: dict[Any, QuantParams] = {}
        self.symmetric: set[Any] = set()

    def add(self, key, rng: tuple[float, float], forced: bool = False) -> None:
        if key not in self.parent:
            self.parent[key] = key
            self.range[key] = (float(rng[0]), float(rng[1]))
            if forced:
                self.forced[key] = self.range[key]

    def find(self, key):
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:  # path compression
            self.parent[key], key = root, self.parent[key]
        return root

    def make_symmetric(self, key) -> None:
        self.symmetric.add(self.find(key))

    def pin(self, key, params: QuantParams) -> None:
        self.pinned[self.find(key)] = params

    def pinned_params(self, key) -> QuantParams | None:
        return self.pinned.get(self.find(key))

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        (alo, ahi), (blo, bhi) = self.range[ra], self.range[rb]
        pa, pb = self.pinned.pop(ra, None), self.pinned.pop(rb, None)
        if pa is not None and pb is not None and pa != pb:
            raise QuantizationError("internal error: two fixed parameter sets meet in one same-scale group")
        self.parent[rb] = ra
        self.range[ra] = (min(alo, blo), max(ahi, bhi))
        if pa or pb:
            self.pinned[ra] = pa or pb
        if rb in self.symmetric:
            self.symmetric.discard(rb)
            self.symmetric.add(ra)
        fa, fb = self.forced.pop(ra, None), self.forced.pop(rb, None)
        if fa and fb:
            self.forced[ra] = (min(fa[0], fb[0]), max(fa[1], fb[1]))
        elif fa or fb:
            self.forced[ra] = fa or fb

    def params(self, key, dtype: DType) -> QuantParams:
        root = self.find(key)
        pinned = self.pinned.get(root)
        rng = self.forced.get(root, self.range[root])
        return pinned or C.activation_params(*rng, dtype, symmetric=root in self.symmetric)


def _const_range(array: np.ndarray) -> tuple[float, float]:
    finite = array[np.isfinite(array)] if array.size else array
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)


def _attrs(dtype: DType, q: QuantParams) -> dict:
    return {"dtype": dtype, "scale": tuple(q.scale), "zero_point": tuple(q.zero_point)}


def _uint8(q: QuantParams) -> QuantParams:
    return QuantParams(q.scale, tuple(z + 128 for z in q.zero_point), q.axis)


@_with_regions
def quantize_integer(graph: Graph, ranges, mode: str, *, io: str | None = None, keep: set[Node] = frozenset(),
                     stats: Counter | None = None) -> None:
    """Full-integer quantization of ``graph`` in place (``io``: None, "int8" or "uint8" graph inputs/outputs)."""
    _IntegerRewrite(graph, ranges, mode, io, keep, Counter() if stats is None else stats).run()


class _IntegerRewrite:
    """One full-integer rewrite: class keys, same-scale groups, parameters, then the edits (module docstring)."""

    def __init__(self, graph: Graph, ranges, mode: str, io: str | None, keep: set[Node], stats: Counter):
        self.graph, self.ranges, self.io, self.stats = graph, ranges, io, stats
        self.act, self.bias_dtype = C.ACTIVATION_DTYPE[mode], C.BIAS_DTYPE[mode]
        self.qnodes = [n for n in graph.topo_order() if n not in keep and C.integer_kernel(n, mode) is None]
        self.qset = set(self.qnodes)
        self.io_inputs = [v for v in graph.inputs if io and _is_f32(v)]
        self.direct_io = io is not None and io != "uint8"  # graph inputs that become the quantized tensor itself
        self.forced = getattr(ranges, "forced", set())
        self.classes = _Classes()
        self.keys: dict[tuple[Node, int], Any] = {}  # (quantized node, operand index) -> class key
        self.made: dict[Any, Value] = {}  # class key -> the value made for it

    def run(self) -> None:
        self.assign_keys()
        self.join_same_scale()
        for n in self.qnodes:
            for i in C.SYMMETRIC.get(n.core_op, ()):
                if (n, i) in self.keys:
                    self.classes.make_symmetric(self.keys[(n, i)])
        _widen_add_outputs(self.classes, self.qnodes, self.keys, self.act, self.stats)
        self.edit()

    def params(self, key) -> QuantParams:
        return self.classes.params(key, self.act)

    def range_of(self, v: Value) -> tuple[float, float]:
        if v not in self.ranges:
            where = str(v.producer.loc) if v.producer is not None else f"input {v.name!r}"
            raise QuantizationError(f"no calibrated range for a value at {where}",
                                    hint="calibrate the graph after prepare_for_quantization, as quantize_graph does")
        return self.ranges[v]

    # ----- 1. class keys: what each quantized operand and result becomes ------------------------------------------
    def assign_keys(self) -> None:
        classes = self.classes
        for v in self.io_inputs:
            classes.add(v if self.direct_io else ("entry", v), self.range_of(v), v in self.forced)
        for n in self.qnodes:
            weighted = C.has_weights(n)
            for i, v in enumerate(n.operands):
                if not _is_f32(v) or (weighted and i in (1, C.BIAS_OPERAND)):
                    continue
                if v.is_constant:
                    key = ("const", n, i)
                    classes.add(key, _const_range(v.constant))
                elif v.producer in self.qset or (self.direct_io and v in self.io_inputs):
                    key = v
                else:
                    key = ("entry", v)
                    classes.add(key, self.range_of(v), v in self.forced)
                self.keys[(n, i)] = key
            for r in n.results:
                if _is_f32(r):
                    classes.add(r, self.range_of(r), r in self.forced)
                    fixed = C.FIXED.get((n.core_op, self.act))
                    if fixed is not None:
                        classes.pin(r, QuantParams((fixed[0],), (fixed[1],)))

    # ----- 2. same-scale groups: single-operand ops first, so pinned classes are whole before concat -------------
    def join_same_scale(self) -> None:
        shared_ops = [n for n in self.qnodes if C.same_scale_operands(n)]
        for n in sorted(shared_ops, key=lambda n: len(C.same_scale_operands(n)) > 1):
            shared = C.same_scale_operands(n)
            results = [r for r in n.results if _is_f32(r)]
            for i in shared:
                key = self.keys.get((n, i))
                if key is None:
                    continue
                if len(shared) > 1 and self.classes.pinned_params(key) is not None:
                    source = key
                    key = ("requant", n, i, source)
                    self.classes.add(key, self.classes.range[self.classes.find(source)])
                    self.keys[(n, i)] = key
                    self.stats["requantize nodes"] += 1
                for r in results:
                    self.classes.union(key, r)

    # ----- 3. edits ---------------------------------------------------------------------------------------------------
    def edit(self) -> None:
        graph, act = self.graph, self.act
        # uses by float nodes, taken before any edit: those get a dequantize
        float_uses = {}
        for v in [r for n in self.qnodes for r in n.results if _is_f32(r)] + self.io_inputs:
            float_uses[v] = [(u, i) for u, i in v.uses if u not in self.qset]
        for n in self.qnodes:
            for r in n.results:
                if _is_f32(r):
                    graph.set_type(r, TensorType(act, r.type.shape, self.params(r)))
        for v in self.io_inputs:
            q = self.params(v if self.direct_io else ("entry", v))
            dtype, q = (DType.u8, _uint8(q)) if self.io == "uint8" else (act, q)
            graph.set_type(v, TensorType(dtype, v.type.shape, q))
        replaced: list[Value] = []
        for (n, i), key in self.keys.items():
            new = self.value_of(key)
            if new is not n.operands[i]:
                replaced.append(n.operands[i])
                graph.set_operand(n, i, new)
        for n in self.qnodes:
            if C.has_weights(n):
                replaced += _quantize_weights(graph, n, self.params(self.keys[(n, 0)]), self.bias_dtype)
                self.stats["weights quantized"] += 1
        self.dequantize_float_uses(float_uses)
        _drop_unused_constants(graph, [v for v in replaced if v.is_constant])
        self.stats["nodes quantized"] += len(self.qnodes)
        self.stats["nodes left float"] += sum(1 for n in graph.nodes if n not in self.qset and n.op not in _BORDER
                                              and any(_is_f32(v) for v in (*n.operands, *n.results)))

    def value_of(self, key) -> Value:
        """The quantized value of a class key, made on first use."""
        if isinstance(key, Value):
            return key
        if key in self.made:
            return self.made[key]
        q, graph = self.params(key), self.graph
        kind = key[0]
        if kind == "entry":
            v = key[1]
            op = "requantize" if v.type.quant is not None else "quantize"
            self.made[key] = graph.add(op, [v], _attrs(self.act, q), loc=_loc(v, "quantize")).result
            self.stats["quantize nodes"] += 1
        elif kind == "const":
            src = key[1].operands[key[2]]
            self.made[key] = _const(graph, quantize_array(src.constant, self.act, q), TensorType(self.act, None, q),
                                    _loc(src, "quantized"))
        else:  # requant
            src = self.value_of(key[3])
            self.made[key] = graph.add("requantize", [src], _attrs(self.act, q), loc=_loc(src, "requantize")).result
        return self.made[key]

    def dequantize_float_uses(self, float_uses: dict[Value, list]) -> None:
        graph = self.graph
        for v, uses in float_uses.items():
            outputs = [] if self.io else [name for name, o in graph.outputs.items() if o is v]
            if not uses and not outputs:
                continue
            dq = graph.add("dequantize", [v], loc=_loc(v, "dequantize")).result
            self.stats["dequantize nodes"] += 1
            for user, i in uses:
                graph.set_operand(user, i, dq)
            for name in outputs:
                graph.set_output(name, dq)
        if self.io == "uint8":
            for name, v in list(graph.outputs.items()):
                if v.type.dtype is self.act and v.type.quant is not None:
                    graph.set_output(name, graph.add("requantize", [v], _attrs(DType.u8, _uint8(v.type.quant)),
                                                     loc=_loc(v, "uint8")).result)


# ----- mixed schemes --------------------------------------------------------------------------------------------------
# requantizations TFLite's QUANTIZE kernel does between integer types; int8 -> int16 it refuses (quantize.cc), so
# that border stays a DEQUANTIZE and a QUANTIZE
REQUANTIZABLE = {(DType.i8, DType.i8), (DType.i16, DType.i16), (DType.i16, DType.i8)}


@_with_regions
def carry_ranges(graph: Graph, ranges) -> None:
    """Gives every dequantize result the calibrated range of its operand, so that a rewrite for a second scheme can
    quantize it again (int8 layers after int16x8 ones, say)."""
    for node in graph.nodes:
        if node.op == "dequantize" and node.result not in ranges and node.operands[0] in ranges:
            ranges[node.result] = ranges[node.operands[0]]
            if node.operands[0] in getattr(ranges, "forced", ()):
                ranges.forced.add(node.result)


@_with_regions
def fold_requantize(graph: Graph, stats: Counter) -> None:
    """``quantize(dequantize(x))`` between two integer schemes -> ``requantize(x)`` where TFLite can do it."""
    for node in graph.topo_order():
        if node.op != "quantize":
            continue
        dq = node.operands[0].producer
        if dq is None or dq.op != "dequantize":
            continue
        x = dq.operands[0]
        if (x.type.dtype, node.result.type.dtype) not in REQUANTIZABLE:
            continue
        attrs = {k: node.attrs[k] for k in ("dtype", "scale", "zero_point") if k in node.attrs}
        new = graph.add("requantize", [x], attrs, loc=node.loc)
        graph.replace_node(node, [new.result])
        if not dq.result.uses and not graph.is_output(dq.result):
            graph.erase(dq)
        stats["requantize nodes"] += 1
        stats["quantize nodes"] -= 1


def _widen_add_outputs(classes: _Classes, qnodes: list[Node], keys: dict, act: DType, stats: Counter) -> None:
    """Output ranges of integer ADD/SUB widened where TFLite's rescaling would need a multiplier above 1."""
    for n in qnodes:
        if n.core_op not in C.RESCALED_ADD or n.results[0] not in classes.parent:
            continue
        inputs = [keys[(n, i)] for i in range(len(n.operands)) if (n, i) in keys]
        out = n.results[0]
        if not inputs or classes.pinned_params(out) is not None:
            continue
        floor = 2 * max(classes.params(k, act).scale[0] for k in inputs) / 2 ** C.ADD_SHIFT[act] * 1.01
        q = classes.params(out, act)
        if q.scale[0] < floor:
            root = classes.find(out)
            info = np.iinfo(act.numpy)  # the range the parameters cover, scaled up
            grow = floor / q.scale[0]
            lo = (info.min - q.zero_point[0]) * q.scale[0] * grow
            hi = (info.max - q.zero_point[0]) * q.scale[0] * grow
            classes.range[root] = (lo, hi)
            if root in classes.forced:
                classes.forced[root] = (lo, hi)
            stats["add outputs widened"] += 1


def _quantize_weights(graph: Graph, node: Node, input_params: QuantParams, bias_dtype: DType) -> list[Value]:
    """Per-channel int8 weights and a bias of ``bias_dtype`` scaled by input_scale * weight_scale."""
    w = node.operands[1]
    bias = node.operands[C.BIAS_OPERAND] if len(node.operands) > C.BIAS_OPERAND else None
    if bias is None and node.core_op in C.NEEDS_BIAS:
        # TFLite's integer convolutions require a bias tensor: give them a zero one
        bias = _const(graph, np.zeros(C.output_channels(node), np.float32), TensorType(DType.f32, None), node.loc)
        graph.set_operands(node, [*node.operands, bias])
    axis = C.weight_axis(node)
    in_scale = input_params.scale[0]
    channels = w.type.shape[axis] if axis is not None and w.type.shape is not None else None
    trained = trained_weight_scales(w, axis, channels)  # a QAT model's own weight grid
    if trained is not None:
        scales, axis = trained
    else:
        scales = C.weight_scales(w.constant, axis)
    if bias is not None:
        scales = C.fit_bias(bias.constant, scales, in_scale, bias_dtype)
    q = C.quantize_weights(w.constant, scales, axis)
    graph.set_operand(node, 1, _const(graph, q, TensorType(DType.i8, None, C.weight_params(scales, axis)),
                                      w.producer.loc))
    if bias is None:
        return [w]
    bias_scales = in_scale * scales
    b = np.asarray(bias.constant)
    per_channel = bias_scales.size > 1
    qb = C.quantize_bias(b, bias_scales if per_channel else bias_scales[0], bias_dtype)
    params = QuantParams(tuple(float(s) for s in bias_scales), (0,) * bias_scales.size, 0 if per_channel else None)
    graph.set_operand(node, C.BIAS_OPERAND, _const(graph, qb, TensorType(bias_dtype, None, params), bias.producer.loc))
    return [w, bias]
