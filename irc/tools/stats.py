"""Model statistics: op histogram, parameter count, constant size, and MACs and FLOPs per Keras layer.

Counting rules (also in ``irc stats --help``):
- parameters: the elements of every constant; size: their bytes as stored (an int8 weight is one byte);
  a constant counts in the layer of its first user.
- MACs: multiply-accumulates of convolutions and matrix products. FLOPs: two per MAC, plus one per output
  element for bias adds, fused activations, elementwise ops and activations, one per window element for pools,
  one per input element for reductions, and a few per element for softmax and normalizations. Data movement
  (reshape, transpose, concat, gather, ...) counts zero.
- an unknown or symbolic dimension counts as 1 (so a dynamic batch gives per-example numbers), and the report
  says so.
- regions count with their op: the ops of a ``while`` body (and its condition) count in the histogram once, their
  MACs and FLOPs once per iteration when the trip count is static (else once, and the report says the numbers
  are dynamic); both branches of an ``if`` count.

>>> import irc
>>> g = irc.parse('''
... graph @g(%x: f32[1,8]) {
...   %0 = const() {value = dense<f32[8,4] sha256:0123456789abcdef>} : f32[8,4]
...   %1 = tfl.matmul(%x, %0) {fused_activation = "relu"} : f32[1,4] loc("dense/MatMul" in "dense")
...   return %1 as "y"
... }''')
>>> s = graph_stats(g)
>>> s.parameters, s.macs, s.flops
(32, 32, 68)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from irc.ir.graph import Graph, Node
from irc.ir.types import TensorType
from irc.tools.where import layer_name

_FLOPS_PER_ELEMENT = {"softmax": 5, "log_softmax": 5, "batch_norm": 2, "gelu": 8, "silu": 4, "hard_swish": 4,
                      "elu": 3, "softplus": 3, "sigmoid": 4, "tanh": 4, "erf": 8}
_ZERO_FLOP = {"const", "reshape", "transpose", "concat", "split", "slice", "strided_slice", "gather", "squeeze",
              "expand_dims", "tile", "broadcast_to", "shape", "pack", "unpack", "pad", "cast", "quantize",
              "dequantize", "requantize", "one_hot", "select", "identity"}
_POOLS = {"max_pool", "avg_pool"}
_REDUCTIONS = {"mean", "sum", "max", "min", "prod", "argmax"}


@dataclass
class LayerStats:
    name: str
    ops: int = 0
    parameters: int = 0
    bytes: int = 0
    macs: int = 0
    flops: int = 0


@dataclass
class Stats:
    graph: str
    histogram: dict[str, int]
    layers: list[LayerStats]
    dynamic: bool = False  # some dimension was unknown and counted as 1
    dtypes: dict[str, int] = field(default_factory=dict)  # parameter count by dtype

    @property
    def parameters(self) -> int:
        return sum(layer.parameters for layer in self.layers)

    @property
    def bytes(self) -> int:
        return sum(layer.bytes for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def flops(self) -> int:
        return sum(layer.flops for layer in self.layers)

    @property
    def ops(self) -> int:
        return sum(n for op, n in self.histogram.items() if op != "const")

    def format(self, top: int | None = None, color: bool = False) -> str:
        from irc.tools.stats_format import format_stats

        return format_stats(self, top, color)

    def to_json(self) -> dict:
        return {
            "graph": self.graph, "ops": self.ops, "parameters": self.parameters, "bytes": self.bytes,
            "macs": self.macs, "flops": self.flops, "dynamic": self.dynamic, "histogram": self.histogram,
            "parameters_by_dtype": self.dtypes,
            "layers": [vars(layer) for layer in self.layers],
        }


def _size(shape, flags: list[bool]) -> int:
    """Elements of a shape, counting unknown dims as 1 (and noting it in ``flags``)."""
    if shape is None:
        flags.append(True)
        return 1
    total = 1
    for d in shape:
        if isinstance(d, int):
            total *= d
        else:
            flags.append(True)
    return total


def node_cost(node: Node, dynamic: list[bool]) -> tuple[int, int]:
    """(MACs, FLOPs) of one node; see the module docstring for the rules."""
    op = node.core_op  # tfl.conv2d costs what conv2d does, plus its fused activation
    if op in _ZERO_FLOP or not node.results:
        return 0, 0
    out = sum(_size(r.type.shape, dynamic) for r in node.results)
    extra = out if node.attrs.get("fused_activation", "none") != "none" else 0
    shapes = [v.type.shape for v in node.operands]
    macs = 0
    if op in ("conv2d", "depthwise_conv2d", "conv2d_transpose") and len(shapes) >= 2 and shapes[1] is not None:
        kh, kw = (_size((d,), dynamic) for d in shapes[1][:2])
        if op == "conv2d":
            macs = out * kh * kw * _size(shapes[1][2:3], dynamic)
        elif op == "depthwise_conv2d":
            macs = out * kh * kw
        else:
            macs = _size(shapes[0], dynamic) * kh * kw * _size(shapes[1][2:3], dynamic)
        extra += out if len(node.operands) > 2 else 0
    elif op in ("matmul", "batch_matmul") and shapes and shapes[0] is not None and len(shapes[0]) >= 2:
        transposed = node.attrs.get("transpose_a" if op == "matmul" else "adj_x", False)
        k = shapes[0][-2] if transposed else shapes[0][-1]
        macs = out * _size((k,), dynamic)
        extra += out if len(node.operands) > 2 else 0
    elif op in _POOLS:
        ksize = node.attrs.get("ksize", (1, 1))
        return 0, out * int(np.prod(ksize)) + extra
    elif op in _REDUCTIONS:
        return 0, _size(shapes[0], dynamic) if shapes else 0
    else:
        return 0, out * _FLOPS_PER_ELEMENT.get(op, 1) + extra
    return macs, 2 * macs + extra


def _const_numbers(node: Node) -> tuple[int, int, str]:
    t: TensorType = node.results[0].type
    elements = _size(t.shape, [])
    return elements, elements * t.dtype.itemsize, t.dtype.value


def graph_stats(graph: Graph) -> Stats:
    """The statistics of ``graph``, its layers in model order: by each layer's first op in dataflow order
    (constants come first in that order, so they do not place their layer; layers of constants only come last)."""
    layers: dict[str, LayerStats] = {}
    weights: dict[str, LayerStats] = {}
    dynamic: list[bool] = []
    dtypes: dict[str, int] = {}
    histogram: dict[str, int] = {}
    for node, times in _nodes_with_repeats(graph, dynamic):
        histogram[node.op] = histogram.get(node.op, 0) + 1
        if node.op == "const":
            users = node.results[0].users
            name = layer_name(users[0]) if users else layer_name(node)
            stats = weights.setdefault(name, LayerStats(name))
            elements, size, dtype = _const_numbers(node)
            stats.parameters += elements
            stats.bytes += size
            dtypes[dtype] = dtypes.get(dtype, 0) + elements
            continue
        stats = layers.setdefault(layer_name(node), LayerStats(layer_name(node)))
        macs, flops = node_cost(node, dynamic)
        stats.ops += 1
        stats.macs += macs * times
        stats.flops += flops * times
    for name, held in weights.items():
        stats = layers.setdefault(name, LayerStats(name))
        stats.parameters += held.parameters
        stats.bytes += held.bytes
    return Stats(graph.name, dict(sorted(histogram.items())), list(layers.values()), bool(dynamic),
                 dict(sorted(dtypes.items())))


def _nodes_with_repeats(graph: Graph, dynamic: list[bool], times: int = 1):
    """Every node, regions included (each after its op), with how many times it runs per run of the model."""
    for node in graph.topo_order():
        yield node, times
        if not node.regions:
            continue
        inner = times
        if node.op == "while":
            from irc.passes.regions import static_trip_count

            trips = static_trip_count(node, 4096)  # beyond that: counted once, "dynamic"
            if trips is None:
                dynamic.append(True)
                trips = 1
            inner = times * max(trips, 1)
        for region in node.regions:
            yield from _nodes_with_repeats(region, dynamic, inner)
