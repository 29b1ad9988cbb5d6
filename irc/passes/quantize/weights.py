"""Weight quantization with float activations: weight-only int8/int4, dynamic int4, per-tensor, per-channel or
blockwise weights, as LiteRT runs them.

- **weight-only** (``dynamic=False``): the weight constant is stored as int8 or int4 and a ``dequantize`` node
  widens it to float before the float op (TFLite: a DEQUANTIZE operator, which LiteRT runs once, when it prepares
  the model). Accuracy is that of the float model with rounded weights.
- **dynamic** (``dynamic=True``): the op takes the integer weights itself, as ``dynamic-int8`` writes them, and
  LiteRT's hybrid kernels quantize the activations on the fly (int8 x int8 or int8 x int4 arithmetic).

Granularity: ``per-tensor`` (one scale), ``per-channel`` (one scale per output channel; per embedding row for a
gather table) or ``blockwise`` (2-D weights only: every output channel cut into blocks of ``block_size`` input
elements, each with its own scale, written as LiteRT's BlockwiseQuantization: float16 scales, no zero points;
block scales are chosen among values exact in bfloat16, which is what LiteRT's XNNPACK kernels compute with).
Weights are symmetric (zero point 0): int8 in [-127, 127], int4 in [-7, 7]. Each scale is the one, among
max|w|/qmax shrunk by up to 50% in small steps, with the least squared rounding error over its group: a few
outliers then cost themselves, not every other weight in the group.

``SUPPORTED`` says which (op, bits, granularity, dynamic) LiteRT runs; it was measured with
``benchmarks/weight_support.py`` on both ai_edge_litert's and TensorFlow's interpreter (docs/quantization.md has the
table). ``quantize_weights`` refuses any other pair asked for by name, before changing anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from irc.errors import QuantizationError, UsageError
from irc.ir.graph import Graph, Location, Node, Value
from irc.ir.types import DType, QuantParams, TensorType
from irc.passes import register_pass
from irc.passes.base import Pass, option
from irc.passes.quantize import constraints as C

GRANULARITIES = ("per-tensor", "per-channel", "blockwise")
BLOCK_SIZES = (32, 64, 128, 256)
BITS = {8: DType.i8, 4: DType.i4}
QMAX = {8: 127, 4: 7}  # symmetric, narrow range: LiteRT's int8 kernels assume -128 never occurs in weights
# irc op -> the operand that holds the weights; the ops with float kernels that take quantized weights
WEIGHT_OPERAND = {"conv2d": 1, "depthwise_conv2d": 1, "matmul": 1, "batch_matmul": 1, "gather": 0}
OPS = tuple(WEIGHT_OPERAND)

# (op, bits, granularity, dynamic) -> whether LiteRT (ai_edge_litert 2.x and tf.lite in TF 2.21, CPU) runs it and
# gives the float answer within the rounding error, as benchmarks/weight_support.py measured (docs/quantization.md
# has the table, with how each other scheme fails). ``matmul`` is FULLY_CONNECTED; ``batch_matmul`` a constant
# right-hand side, which TFLite also runs as FULLY_CONNECTED; ``gather`` an embedding lookup.
_RUNS = {
    # (op, bits): the (granularity, dynamic) pairs that run
    ("conv2d", 8): {("per-tensor", False), ("per-channel", False), ("per-tensor", True), ("per-channel", True)},
    ("conv2d", 4): {("per-tensor", False), ("per-channel", False), ("per-tensor", True), ("per-channel", True)},
    # hybrid per-tensor int8 depthwise runs but computes garbage; hybrid int4 depthwise has no kernel
    ("depthwise_conv2d", 8): {("per-tensor", False), ("per-channel", False), ("per-channel", True)},
    ("depthwise_conv2d", 4): {("per-tensor", False), ("per-channel", False)},
    # blockwise weights run only in the hybrid int4 kernel: DEQUANTIZE ignores block scales, int8 blocks crash it
    ("matmul", 8): {("per-tensor", False), ("per-channel", False), ("per-tensor", True), ("per-channel", True)},
    ("matmul", 4): {("per-tensor", False), ("per-channel", False), ("per-tensor", True), ("per-channel", True),
                    ("blockwise", True)},
    ("gather", 8): {("per-tensor", False), ("per-channel", False)},
    ("gather", 4): {("per-tensor", False), ("per-channel", False)},
}
_RUNS[("batch_matmul", 8)], _RUNS[("batch_matmul", 4)] = _RUNS[("matmul", 8)], _RUNS[("matmul", 4)]
SUPPORTED: dict[tuple[str, int, str, bool], bool] = {
    (op, bits, granularity, dynamic): (granularity, dynamic) in _RUNS[(op, bits)]
    for op in OPS for bits in BITS for granularity in GRANULARITIES for dynamic in (False, True)
}


@dataclass(frozen=True)
class WeightScheme:
    """How to store weights: ``bits`` 8 or 4, a granularity, a block size (blockwise only), dynamic or weight-only."""

    bits: int
    granularity: str = "per-channel"
    block_size: int | None = None
    dynamic: bool = False

    def __post_init__(self):
        if self.bits not in BITS:
            raise UsageError(f"weights are quantized to 8 or 4 bits, not {self.bits}")
        if self.granularity not in GRANULARITIES:
            raise UsageError(f"unknown granularity {self.granularity!r}", hint=", ".join(GRANULARITIES))
        if self.granularity == "blockwise":
            if self.block_size not in BLOCK_SIZES:
                raise UsageError(f"blockwise quantization needs a block size of {', '.join(map(str, BLOCK_SIZES))}, "
                                 f"not {self.block_size}", hint="--block-size 32")
        elif self.block_size is not None:
            raise UsageError("--block-size goes with --granularity blockwise")

    def __str__(self) -> str:
        kind = "dynamic" if self.dynamic else "weight-only"
        block = f" {self.block_size}" if self.block_size else ""
        return f"int{self.bits} {kind} {self.granularity}{block}"


# The --quantize modes this module serves: mode -> (bits, dynamic)
WEIGHT_MODES = {"int8-weight-only": (8, False), "int4-weight-only": (4, False), "dynamic-int4": (4, True)}


def scheme_for_mode(mode: str, granularity: str | None = None, block_size: int | None = None) -> WeightScheme:
    bits, dynamic = WEIGHT_MODES[mode]
    if granularity is None:
        granularity = "blockwise" if block_size else "per-channel"
    return WeightScheme(bits, granularity, block_size, dynamic)


def quantize_weights(graph: Graph, nodes: Iterable[Node] | None = None, *, bits: int, granularity: str,
                     block_size: int | None, dynamic: bool, moments: dict[Node, np.ndarray] | None = None) -> Counter:
    """Quantizes the weights of ``nodes`` (None: every node whose op takes the scheme) in place.

    Every node asked for by name is checked first: one that has no constant float weights, or whose op LiteRT
    cannot run with the scheme (``SUPPORTED``), raises QuantizationError naming it and its Keras layer, and the
    graph is left as it was. With ``nodes=None`` nodes the scheme does not suit stay float, and a graph with none
    that it suits is an error. ``moments`` (``input_moments``, from calibration data) makes the weights of the
    nodes it has round to least output error (``gptq_weights``). Returns counts of what was done.
    """
    scheme = WeightScheme(bits, granularity, block_size, dynamic)
    stats: Counter = Counter()
    if nodes is None:
        chosen = [n for n in graph.topo_order() if refusal(n, scheme) is None]
        if not chosen:
            raise QuantizationError(f"no layer of the model takes {scheme} weights",
                                    hint=f"LiteRT runs it on: {', '.join(ops_supporting(scheme)) or 'no op'}")
        stats["weights left float"] = sum(1 for n in graph.nodes if _weights(n) is not None) - len(chosen)
    else:
        chosen = list(dict.fromkeys(nodes))
        for node in chosen:
            why = refusal(node, scheme)
            if why is not None:
                raise QuantizationError(f"{describe(node)}: {why}")
    for node in chosen:
        hessian = (moments or {}).get(node)
        _quantize_node(graph, node, scheme, hessian)
        stats[f"weights quantized ({scheme})"] += 1
        if hessian is not None:
            stats["weights rounded to calibrated inputs"] += 1
    return stats


def ops_supporting(scheme: WeightScheme) -> list[str]:
    return [op for op in OPS if SUPPORTED[(op, scheme.bits, scheme.granularity, scheme.dynamic)]]


def describe(node: Node) -> str:
    name = node.loc.names[0] if node.loc.names else f"{node.op}_{node.seq}"
    layer = f" (Keras layer {node.loc.layers[0]})" if node.loc.layers else ""
    return f"node {name}{layer}"


def refusal(node: Node, scheme: WeightScheme) -> str | None:
    """None if ``node``'s weights can be stored with ``scheme`` and LiteRT runs the result, else why not."""
    op = node.core_op
    if op not in WEIGHT_OPERAND:
        return f"{node.op} has no weights to quantize (ops with weights: {', '.join(OPS)})"
    w = _weights(node)
    if w is None:
        return f"its {op} weights are not a constant float32 tensor"
    if not SUPPORTED[(op, scheme.bits, scheme.granularity, scheme.dynamic)]:
        takers = ", ".join(ops_supporting(scheme)) or "no op"
        return f"LiteRT cannot run {op} with {scheme} weights (it runs them on: {takers}; docs/quantization.md)"
    axis = channel_axis(node)
    if scheme.granularity != "per-tensor" and axis is None:
        return f"its weights of shape {list(w.type.shape)} have no output-channel axis LiteRT takes per channel"
    if scheme.granularity == "blockwise":
        if w.type.rank != 2:
            return f"blockwise weights must be a matrix, not of shape {list(w.type.shape)}"
        length = w.type.shape[1 - axis]
        if length % scheme.block_size:
            return f"its {length} inputs per channel do not split into blocks of {scheme.block_size}"
    return None


def _weights(node: Node) -> Value | None:
    """The node's constant float32 weights, or None."""
    index = WEIGHT_OPERAND.get(node.core_op)
    if index is None or len(node.operands) <= index:
        return None
    w = node.operands[index]
    if not w.is_constant or w.type.dtype is not DType.f32 or w.type.quant is not None or w.type.shape is None:
        return None
    if node.core_op == "gather" and (node.attr("axis") != 0 or node.attr("batch_dims") != 0 or w.type.rank != 2):
        return None  # an embedding table: rows picked by the indices
    if node.core_op in ("conv2d", "depthwise_conv2d", "matmul", "batch_matmul"):
        x = node.operands[0]
        if x.type.dtype is not DType.f32 or x.type.quant is not None or x.is_constant:
            return None
    return w


def channel_axis(node: Node) -> int | None:
    """The output-channel axis of the weights (per-channel scales run along it); an embedding table's rows."""
    if node.core_op == "gather":
        return 0
    if node.core_op == "depthwise_conv2d":
        shape = node.operands[1].type.shape
        return 2 if shape[3] == 1 else None
    return C.weight_axis(node)


# ----- the arithmetic ----------------------------------------------------------------------------------------------
def group_rows(w: np.ndarray, axis: int | None, block_size: int | None) -> np.ndarray:
    """``w`` as a matrix with one scale group per row: the tensor, its channels, or its channels' blocks."""
    if axis is None:
        return w.reshape(1, -1)
    rows = np.moveaxis(w, axis, 0)
    if block_size is None:
        return rows.reshape(rows.shape[0], -1)
    if w.ndim != 2 or w.shape[1 - axis] % block_size:
        raise ValueError(f"a {list(w.shape)} tensor does not split into blocks of {block_size} along axis {1 - axis}")
    return rows.reshape(-1, block_size)


def ungroup(rows: np.ndarray, shape: tuple[int, ...], axis: int | None, block_size: int | None) -> np.ndarray:
    if axis is None:
        return rows.reshape(shape)
    moved = (shape[axis], *(d for i, d in enumerate(shape) if i != axis))
    return np.moveaxis(rows.reshape(moved), 0, axis)


def best_scales(rows: np.ndarray, qmax: int, steps: int = 20, representable=None) -> np.ndarray:
    """Per row, the scale among peak/qmax * f (f from 0.5 to 1) that rounds the row with least squared error.
    ``representable`` maps candidate scales to the values the runtime will really use (e.g. ``block_scales``):
    each candidate is judged, and returned, as that value."""
    exact = representable or (lambda s: s)
    peak = np.abs(rows).max(axis=1)
    best = exact(np.where(peak > 0, peak / qmax, 1.0))
    best_err = _rounding_error(rows, best, qmax)
    for f in np.linspace(0.5, 1.0, steps, endpoint=False):
        scale = exact(np.where(peak > 0, peak * f / qmax, 1.0))
        err = _rounding_error(rows, scale, qmax)
        better = err < best_err
        best, best_err = np.where(better, scale, best), np.where(better, err, best_err)
    return best


def block_scales(scales: np.ndarray) -> np.ndarray:
    """The block scales LiteRT computes with for ``scales``: the file holds float16, and LiteRT's XNNPACK kernels
    (its default CPU path for blockwise int4) truncate those to bfloat16 when they pack the weights, shrinking a
    scale by up to 0.8%. A value exact in both formats is used as written (AI Edge Quantizer writes such scales)."""
    half = np.asarray(scales, np.float16).astype(np.float32)
    bf16 = (half.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)  # exact in float16 too
    return np.where(bf16 > 0, bf16, np.float32(2.0 ** -24)).astype(np.float64)  # float16's least: a zero block


def _rounding_error(rows: np.ndarray, scale: np.ndarray, qmax: int) -> np.ndarray:
    q = np.clip(np.rint(rows / scale[:, None]), -qmax, qmax)
    return ((q * scale[:, None] - rows) ** 2).sum(axis=1)


# bfloat16 has 8 significant bits: 128 values per octave, so this many steps over [0.5, 1) reach each candidate
BLOCK_STEPS = 256


def quantized_weights(w: np.ndarray, bits: int, axis: int | None, block_size: int | None) -> tuple[np.ndarray, QuantParams]:
    """(integers held in int8, their parameters) for float weights ``w``."""
    qmax = QMAX[bits]
    rows = group_rows(np.asarray(w, np.float64), axis, block_size)
    if block_size is None:
        scales = best_scales(rows, qmax)
    else:  # the search judges each scale as LiteRT will use it, so the integers fit the scale it multiplies by
        scales = best_scales(rows, qmax, BLOCK_STEPS, block_scales)
    q = np.clip(np.rint(rows / scales[:, None]), -qmax, qmax).astype(np.int8)
    params = QuantParams(tuple(float(s) for s in scales), (0,) * scales.size, axis, block_size)
    return ungroup(q, w.shape, axis, block_size), params


def gptq_weights(w: np.ndarray, bits: int, out_axis: int, per_tensor: bool, block_size: int | None,
                 hessian: np.ndarray, damping: float = 0.01) -> tuple[np.ndarray, QuantParams]:
    """``quantized_weights`` for a matrix ``w`` whose input axis (the one that is not ``out_axis``) meets inputs
    of second moment ``hessian`` (E[x xᵀ], from calibration): GPTQ (Frantar et al. 2022). The inputs are rounded
    one after another, and each rounding error is spread over the inputs not yet rounded, as far as their
    correlation lets them cancel it, so that the layer's *output* on such inputs changes least, not each weight.
    Scales are chosen as without calibration (a block's when the rounding reaches it, on the updated weights);
    ``damping`` (a fraction of the mean diagonal) keeps the inverse stable, as in the paper."""
    qmax = QMAX[bits]
    work = np.moveaxis(np.asarray(w, np.float64), out_axis, 0).copy()  # [outputs, inputs]
    n = work.shape[1]
    h = np.array(hessian, np.float64)
    dead = np.diag(h) <= 0  # an input that was always 0: its weights' errors cost nothing, spread nothing
    h[dead, dead] = 1.0
    h += damping * np.mean(np.diag(h)) * np.eye(n)
    upper = np.linalg.cholesky(np.linalg.inv(h)).T
    if block_size is None:
        rows = work.reshape(1, -1) if per_tensor else work
        scales = best_scales(rows, qmax)
        column_scales = np.broadcast_to(scales, (work.shape[0],)) if per_tensor else scales
    else:
        scales = np.zeros((work.shape[0], n // block_size))
    q = np.zeros(work.shape, np.int8)
    step = block_size * -(-128 // block_size) if block_size else 128  # columns per batch, whole blocks
    for start in range(0, n, step):  # as the paper's code: errors reach later batches in one product
        end = min(start + step, n)
        errors = np.zeros((work.shape[0], end - start))
        for i in range(start, end):
            if block_size is not None and i % block_size == 0:
                scales[:, i // block_size] = best_scales(work[:, i:i + block_size], qmax, BLOCK_STEPS, block_scales)
                column_scales = scales[:, i // block_size]
            q[:, i] = np.clip(np.rint(work[:, i] / column_scales), -qmax, qmax)
            error = (work[:, i] - q[:, i] * column_scales) / upper[i, i]
            work[:, i + 1:end] -= np.outer(error, upper[i, i + 1:end])
            errors[:, i - start] = error
        work[:, end:] -= errors @ upper[start:end, end:]
    axis = None if per_tensor else out_axis
    params = QuantParams(tuple(float(s) for s in scales.reshape(-1)), (0,) * scales.size, axis, block_size)
    return np.moveaxis(q, 0, out_axis), params


def input_moments(graph: Graph, nodes: Iterable[Node], samples: list[dict]) -> dict[Node, np.ndarray]:
    """E[x xᵀ] of the inputs of those ``nodes`` that multiply a vector by a weight matrix (``matmul`` and
    ``batch_matmul`` of the top graph with 2-D weights), over every row of every calibration sample, from one run
    of the float graph; the input of ``gptq_weights``. Few samples of a wide input estimate it badly, and GPTQ
    would then fit the rounding to those samples alone: the estimate is shrunk toward a multiple of the identity
    as far as Ledoit and Wolf's formula (2004) finds the samples too few (``shrink_moments``)."""
    from irc.ir.interpreter import run
    from irc.limits import check_array
    from irc.passes.quantize.calibration import batches

    wanted: dict[Value, list[Node]] = {}
    for node in nodes:
        if node.graph is not graph or node.core_op not in ("matmul", "batch_matmul") or _weights(node) is None:
            continue
        w, x = node.operands[1], node.operands[0]
        if w.type.rank != 2:
            continue
        transposed = node.attrs.get("transpose_a" if node.core_op == "matmul" else "adj_x", False)
        if transposed or x.type.shape is None or not isinstance(x.type.shape[-1], int):
            continue
        width = int(x.type.shape[-1])
        check_array((width, width), 8, f"the input moments of {describe(node)}")
        wanted.setdefault(x, []).append(node)
    sums: dict[Value, np.ndarray] = {}
    fourth: Counter = Counter()  # the sum of |x|⁴ over the rows, for the shrinkage
    counts: Counter = Counter()

    def add(value: Value, array: np.ndarray) -> None:
        rows = np.asarray(array, np.float64).reshape(-1, array.shape[-1])
        sums[value] = sums.get(value, 0.0) + rows.T @ rows
        fourth[value] += float(np.sum(np.sum(rows ** 2, axis=1) ** 2))
        counts[value] += len(rows)

    def on_node(node: Node, outputs: list[np.ndarray]) -> None:
        for value, array in zip(node.results, outputs):
            if value in wanted:
                add(value, array)

    if wanted:
        for inputs, _ in batches(samples, graph):
            for value in graph.inputs:
                if value in wanted:
                    add(value, inputs[value.name])
            run(graph, inputs, on_node)
    return {node: shrink_moments(sums[value] / counts[value], fourth[value] / counts[value], counts[value])
            for value, group in wanted.items() if counts[value] for node in group}


def shrink_moments(moments: np.ndarray, fourth: float, count: int) -> np.ndarray:
    """Ledoit-Wolf shrinkage of a second-moment matrix S = E[x xᵀ] estimated from ``count`` rows, ``fourth`` being
    their mean |x|⁴: (1 - a) S + a μ I with μ = trace(S) / p and a the estimated share of S that is sampling
    noise (as sklearn.covariance.ledoit_wolf with assume_centered computes it)."""
    p = moments.shape[0]
    mu = np.trace(moments) / p
    spread = (np.sum(moments ** 2) - 2 * mu * np.trace(moments) + p * mu ** 2) / p  # |S - μI|² / p
    noise = min(max((fourth - np.sum(moments ** 2)) / (p * count), 0.0), spread)
    share = 0.0 if spread <= 0 else noise / spread
    return (1 - share) * moments + share * mu * np.eye(p)


def _quantize_node(graph: Graph, node: Node, scheme: WeightScheme, hessian: np.ndarray | None = None) -> None:
    graph = node.graph  # a node inside a region (a loop body) is edited in its own graph
    index = WEIGHT_OPERAND[node.core_op]
    w = node.operands[index]
    axis = None if scheme.granularity == "per-tensor" else channel_axis(node)
    block = scheme.block_size if scheme.granularity == "blockwise" else None
    if hessian is not None:
        q, params = gptq_weights(w.constant, scheme.bits, channel_axis(node), axis is None, block, hessian)
    else:
        q, params = quantized_weights(w.constant, scheme.bits, axis, block)
    loc = Location(w.producer.loc.names or node.loc.names, node.loc.layers)
    wq = graph.add("const", (), {"value": q}, types=[TensorType(BITS[scheme.bits], q.shape, params)], loc=loc).result
    if not scheme.dynamic:
        wq = graph.add("dequantize", [wq], loc=loc).result
    graph.set_operand(node, index, wq)
    if not w.uses and not graph.is_output(w):
        graph.erase(w.producer)


@register_pass
@dataclass(frozen=True)
class QuantizeWeights(Pass):
    """Quantize weights only (int8 or int4, per tensor, per channel or blockwise), weight-only or dynamic."""

    name = "quantize-weights"
    bits: int = option(8, "8 or 4")
    granularity: str = option("per-channel", "per-tensor, per-channel or blockwise")
    block_size: int = option(0, "blockwise: 32, 64, 128 or 256 weights per block")
    dynamic: bool = option(False, "keep the weights integer in the op (LiteRT's hybrid kernels) instead of a "
                                  "DEQUANTIZE to float")

    def apply(self, graph, stats):
        stats.update(quantize_weights(graph, bits=self.bits, granularity=self.granularity,
                                      block_size=self.block_size or None, dynamic=self.dynamic))
