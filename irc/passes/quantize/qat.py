"""Quantization-aware-trained models: the ranges their ``fake_quant`` nodes carry, used instead of calibration.

A QAT model (``tfmot.quantization.keras.quantize_model``) holds TensorFlow FakeQuant ops, lowered to
``fake_quant``: on weights (folded at lowering; the folded constant keeps the op's grid in ``meta["fake_quant"]``)
and on activations (nodes that stay). For int8 / int16x8, as TF's converter does:

- ``absorb_fake_quants`` removes every activation ``fake_quant`` and returns its nudged range as the range of the
  value it quantized (forced, so that it decides the parameters of its same-scale group);
- ``trained_weight_scales`` gives a weight's scales from its grid (per channel where the QAT op was per channel,
  one scale broadcast over the channels of a depthwise filter, per tensor where the QAT op was per tensor);
- ``fill_ranges`` derives the ranges that follow from others (a reshape's or a pool's from its input, softmax's
  fixed ones) and returns the values still without one, which calibration must fill.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from irc.ir.graph import Graph, Node, Value
from irc.ir.types import DType
from irc.ops.quant import nudged_range
from irc.passes.quantize import constraints as C
from irc.passes.quantize.calibration import Ranges


def has_fake_quants(graph: Graph) -> bool:
    return any(n.op == "fake_quant" for n in graph.nodes)


def absorb_fake_quants(graph: Graph, stats: Counter) -> Ranges:
    """Removes the graph's ``fake_quant`` nodes; returns the trained range of each value one of them quantized
    (per-channel activation ranges are joined into one: TFLite's activations are per tensor)."""
    ranges = Ranges()
    for node in graph.topo_order():
        if node.op != "fake_quant":
            continue
        x = node.operands[0]
        a = node.attrs
        nmin, nmax, _, _ = nudged_range(a["min"], a["max"], a.get("num_bits", 8), a.get("narrow_range", False))
        lo, hi = float(np.min(nmin)), float(np.max(nmax))
        if x in ranges:  # two fake quants on one value: the wider range holds both
            lo, hi = min(lo, ranges[x][0]), max(hi, ranges[x][1])
        if not x.is_constant:
            ranges[x] = (lo, hi)
            ranges.forced.add(x)
        graph.replace_all_uses(node.result, x)
        graph.erase(node)
        stats["fake quants absorbed"] += 1
    return ranges


def trained_weight_scales(w: Value, axis: int | None, channels: int | None) -> tuple[np.ndarray, int | None] | None:
    """(scales, axis) from the grid of the QAT op that made weight constant ``w``, or None when it has none or
    the grid is not symmetric 8-bit (TFLite's weights have zero point 0): then the weights' own max |w| decide.
    ``axis`` is the per-channel axis the quantize pass would use, ``channels`` its size."""
    grid = w.producer.meta.get("fake_quant") if w.producer is not None else None
    if not grid or grid["num_bits"] != 8:
        return None
    _, _, scale, zero = nudged_range(grid["min"], grid["max"], 8, grid["narrow_range"])
    if np.any(zero != 128) or np.any(~(scale > 0)):
        return None
    scale = scale.astype(np.float64)
    if not grid.get("per_channel"):
        return (scale[:1], None) if scale.size == 1 else None
    if scale.size == 1:  # a depthwise filter's last axis is its multiplier: one scale for every channel
        return (np.repeat(scale, channels), axis) if axis is not None and channels else (scale, None)
    rank = len(w.type.shape or ())
    if axis != rank - 1 or scale.size != channels:
        return None
    return scale, axis


# ----- which values need a range, and which follow from others ---------------------------------------------------------
def needed_values(graph: Graph, mode: str, keep: set[Node], io: bool) -> list[Value]:
    """The float values the integer rewrite asks a range of, in graph order (as ``rewrite._IntegerRewrite``)."""
    need: dict[Value, None] = {}
    if io:
        need.update((v, None) for v in graph.inputs if _is_f32(v))
    for n in graph.topo_order():
        if n in keep or C.integer_kernel(n, mode) is not None:
            continue
        weighted = C.has_weights(n)
        for i, v in enumerate(n.operands):
            if _is_f32(v) and not v.is_constant and not (weighted and i in (1, C.BIAS_OPERAND)):
                need[v] = None
        need.update((r, None) for r in n.results if _is_f32(r))
    return list(need)


def fill_ranges(graph: Graph, ranges: Ranges, mode: str, keep: set[Node], io: bool) -> list[Value]:
    """Adds the ranges that follow from others (same-scale results from their inputs, fixed outputs from their
    parameters); returns the needed values still without a range."""
    act = C.ACTIVATION_DTYPE[mode]
    missing = []
    for v in needed_values(graph, mode, keep, io):
        if v in ranges:
            continue
        derived = _derived_range(v, ranges, act)
        if derived is None:
            missing.append(v)
        else:
            ranges[v] = derived
    return missing


def _derived_range(v: Value, ranges: Ranges, act: DType) -> tuple[float, float] | None:
    node = v.producer
    if node is None:
        return None
    fixed = C.FIXED.get((node.core_op, act))
    if fixed is not None:
        scale, zero = fixed
        info = np.iinfo(act.numpy)
        return (info.min - zero) * scale, (info.max - zero) * scale
    shared = C.same_scale_operands(node)
    inputs = [node.operands[i] for i in shared if i < len(node.operands)]
    if not inputs or any(u not in ranges for u in inputs):
        return None
    return min(ranges[u][0] for u in inputs), max(ranges[u][1] for u in inputs)


def describe(values: list[Value], limit: int = 6) -> str:
    """The layers (or nodes) that make ``values``, for a one-line message."""
    names: dict[str, None] = {}
    for v in values:
        loc = v.producer.loc if v.producer is not None else None
        if loc is not None and loc.layers:
            names.update((name, None) for name in loc.layers)
        elif loc is not None and loc.names:
            names[loc.names[0]] = None
        else:
            names[f"input {v.name!r}" if v.name else str(v)] = None
    shown = list(names)[:limit]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(shown) + more


def _is_f32(v: Value) -> bool:
    return v.type.dtype is DType.f32 and v.type.quant is None
