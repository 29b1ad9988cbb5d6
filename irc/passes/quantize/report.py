"""The quantization error report: for every quantized tensor, how far it is from the float model's value.

Two errors per tensor, over the calibration samples:

- *end-to-end* (``sqnr_db``, ``rel_rmse``): the quantized graph's tensor against the float graph's tensor, which
  includes everything upstream;
- *added by the layer* (``layer_sqnr_db``, ``layer_rel_rmse``): the quantized node's output against its float op
  run on the very inputs the quantized node saw (dequantized), with the float weights. This is the error this node
  itself adds (weight rounding, output range, clipping), so a badly calibrated layer stands out instead of
  every layer after it; rows are sorted by it, worst first.

``rel_rmse`` is the RMSE divided by the float tensor's range (max - min); SQNR is
10 log10(sum(float^2) / sum(error^2)) in dB (None when there is no error at all). The model's outputs get the
same errors (``outputs``), and their largest ``rel_rmse`` is ``output_error``: the figure ``irc lower
--max-error`` holds under its bound.

    report = quant_report(graph, "data.npz", mode="int8")
    print(report.text())      # or report.to_json()

The float and quantized graphs are matched node by node through ``node.meta["quant.id"]``, set on a float copy
before it is copied again and quantized (``pair``), so the report works on any graph the quantize pass takes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from irc.ir.graph import Graph, Node, Value
from irc.ir.interpreter import dequantize, run, run_node

ID = "quant.id"


@dataclass
class _Sums:
    signal: float = 0.0
    error: float = 0.0
    count: int = 0
    lo: float = math.inf
    hi: float = -math.inf

    def add(self, ref: np.ndarray, got: np.ndarray) -> None:
        ref = np.asarray(ref, np.float64)
        err = np.asarray(got, np.float64) - ref
        finite = np.isfinite(ref) & np.isfinite(err)
        ref, err = ref[finite], err[finite]
        if ref.size:
            self.signal += float(np.sum(ref * ref))
            self.error += float(np.sum(err * err))
            self.count += ref.size
            self.lo, self.hi = min(self.lo, float(ref.min())), max(self.hi, float(ref.max()))

    def sqnr(self) -> float | None:
        if self.error == 0.0:
            return None
        return 10.0 * math.log10(self.signal / self.error) if self.signal > 0 else -math.inf

    def rel_rmse(self) -> float:
        if not self.count:
            return 0.0
        rmse = math.sqrt(self.error / self.count)
        span = self.hi - self.lo
        return rmse / span if span > 0 else rmse


@dataclass
class TensorError:
    """One quantized tensor: where it comes from, its parameters and its errors."""

    layer: str  # the Keras layer(s) the node belongs to, else its node name
    op: str
    nodes: list[str]  # the TF nodes it was made from
    dtype: str
    scale: float | None  # None for a float tensor computed from quantized weights (dynamic-int8, float16)
    zero_point: int | None
    range: tuple[float, float]  # of the float tensor over the samples
    sqnr_db: float | None
    rel_rmse: float
    layer_sqnr_db: float | None
    layer_rel_rmse: float


@dataclass
class OutputError:
    """One model output against the float model's: RMSE relative to the float output's range, SQNR, max |error|."""

    name: str
    rel_rmse: float
    sqnr_db: float | None
    max_abs: float


@dataclass
class QuantReport:
    mode: str
    samples: int
    tensors: list[TensorError] = field(default_factory=list)
    kept_float: list[str] = field(default_factory=list)  # layers (or nodes) left in float
    outputs: list[OutputError] = field(default_factory=list)
    by_value: dict = field(default_factory=dict, repr=False)  # the quantized graph's Value -> its TensorError

    def worst(self, n: int = 1) -> list[TensorError]:
        return self.tensors[:n]

    @property
    def output_error(self) -> float:
        """The largest relative RMSE of the model's outputs (0 for a model without float outputs)."""
        return max((o.rel_rmse for o in self.outputs), default=0.0)

    def to_json(self) -> dict:
        return {"mode": self.mode, "samples": self.samples, "kept_float": self.kept_float,
                "outputs": [asdict(o) for o in self.outputs], "tensors": [asdict(t) for t in self.tensors]}

    def table(self, limit: int | None = None):
        """A rich Table, worst first."""
        from rich.table import Table

        table = Table(title=f"{self.mode} quantization error, {self.samples} sample(s), worst layers first",
                      title_justify="left")
        for name, justify in [("layer", "left"), ("op", "left"), ("type", "left"), ("layer SQNR dB", "right"),
                              ("layer rel RMSE", "right"), ("SQNR dB", "right"), ("rel RMSE", "right"),
                              ("float range", "right")]:
            table.add_column(name, justify=justify)
        for t in self.tensors[:limit]:
            kind = t.dtype if t.scale is None else f"{t.dtype} s={t.scale:.3g} z={t.zero_point}"
            table.add_row(t.layer, t.op, kind, _db(t.layer_sqnr_db),
                          f"{t.layer_rel_rmse:.2%}", _db(t.sqnr_db), f"{t.rel_rmse:.2%}",
                          f"[{t.range[0]:.3g}, {t.range[1]:.3g}]")
        return table

    def text(self, limit: int | None = None, width: int = 140) -> str:
        from rich.console import Console

        console = Console(width=width, record=True, file=_Null())
        console.print(self.table(limit))
        if len(self.tensors) > (limit or len(self.tensors)):
            console.print(f"... {len(self.tensors) - limit} more tensor(s); --limit 0 shows all")
        for o in self.outputs:
            console.print(f"output {o.name!r}: rel RMSE {o.rel_rmse:.3%}, SQNR {_db(o.sqnr_db)} dB, "
                          f"max |error| {o.max_abs:.3g}")
        if self.kept_float:
            console.print(f"kept in float: {', '.join(self.kept_float)}")
        return console.export_text()


class _Null:
    def write(self, text):
        return len(text)

    def flush(self):
        pass


def _db(value: float | None) -> str:
    return "exact" if value is None else f"{value:.1f}"


# ----- building the pair and comparing ---------------------------------------------------------------------------------
def pair(graph: Graph, mode) -> tuple[Graph, Graph]:
    """(float reference, copy to quantize): both prepared for ``mode`` and tagged so their nodes match."""
    from irc.passes.quantize import prepare_for_quantization

    reference = prepare_for_quantization(graph.copy(), mode)
    for i, node in enumerate(reference.walk(recursive=True)):  # regions too: copies keep the tags
        node.meta[ID] = i
    return reference, reference.copy()


def quant_report(graph: Graph, calibration, mode: str | None = "int8", observer: str = "minmax", keep_float=(), *,
                 overrides: Mapping[str, tuple[float, float]] | None = None, samples: int | None = None,
                 progress: bool | None = None, recipe=None, granularity: str | None = None,
                 block_size: int | None = None) -> QuantReport:
    """Quantizes a copy of ``graph`` and compares it with the float graph on the calibration data.

    ``overrides`` sets calibrated ranges by layer/node selector (``{"conv2": (0.0, 1.5)}``) before quantizing;
    ``samples`` compares on the first N calibration samples only (all of them are used to calibrate). ``recipe``:
    a scheme per layer (``mode``, unless None, replaces its default). ``granularity`` and ``block_size`` go with
    a weight-only or int4 default (int8-weight-only, int4-weight-only, dynamic-int4).
    """
    from irc.passes.quantize import _recipe, apply_quantization, calibrate, load_calibration, qat
    from irc.passes.quantize.recipe import resolve

    full = _recipe(mode, recipe, keep_float)
    data = load_calibration(calibration, graph)
    resolve(graph, full)
    reference, quantized = pair(graph, full)
    ranges = None
    if full.static():
        trained = qat.absorb_fake_quants(quantized, Counter()) if qat.has_fake_quants(quantized) else None
        ranges = calibrate(quantized, data, observer, progress=progress)
        if trained is not None:  # a QAT model: its trained ranges win, calibration fills the others
            ranges.update(trained)
            ranges.forced |= trained.forced
        for selector, (lo, hi) in (overrides or {}).items():
            ranges.override(quantized, selector, lo, hi)
    moments = _input_moments(quantized, full, data)  # weight-only/int4 layers round as `irc lower` rounds them
    apply_quantization(quantized, None, ranges, recipe=full, granularity=granularity, block_size=block_size,
                       moments=moments)
    label = full.default if recipe is None else f"recipe {recipe.source or ''} (default {full.default})"
    return compare(reference, quantized, data[:samples] if samples else data, label, progress=progress,
                   static=full.static())


def _input_moments(graph: Graph, recipe, samples: list[dict]) -> dict | None:
    """With calibration data the weight-only and int4 layers' weights round to it (weights.gptq_weights)."""
    from irc.passes.quantize.constraints import WEIGHT_ONLY_MODES
    from irc.passes.quantize.recipe import resolve
    from irc.passes.quantize.weights import input_moments

    nodes = [n for n, scheme in resolve(graph, recipe).schemes.items() if scheme in WEIGHT_ONLY_MODES]
    return input_moments(graph, nodes, samples) if nodes else None


def compare(reference: Graph, quantized: Graph, samples: list[dict], mode: str = "int8", *,
            progress: bool | None = None, static: bool | None = None) -> QuantReport:
    """The report of ``quantized`` against ``reference`` (a pair from ``pair``) over ``samples``."""
    from irc.passes.quantize.calibration import batches, progress_bar

    by_id = {node.meta[ID]: node for node in reference.walk(recursive=True) if ID in node.meta}
    rows = [r for node in quantized.walk(recursive=True) if node.op != "const" for r in node.results
            if r.type.quant or (r.type.dtype.is_float and _has_low_precision_operand(node))]
    total = {r: _Sums() for r in rows}
    added = {r: _Sums() for r in rows}
    outputs = {name: _Sums() for name, v in quantized.outputs.items()}
    peaks = dict.fromkeys(outputs, 0.0)
    with progress_bar(len(samples), "comparing", progress) as advance:
        for inputs, count in batches(samples, reference):
            floats = _float_values(reference, inputs)
            quantized_run = _QuantRun(quantized, by_id, floats, inputs, total, added)
            quantized_run.run()
            for name, v in quantized.outputs.items():
                if v in quantized_run.reference and v.type.dtype.is_float:
                    ref, got = quantized_run.reference[v], quantized_run.real(v)
                    outputs[name].add(ref, got)
                    err = np.abs(np.asarray(got, np.float64) - ref)
                    peaks[name] = max(peaks[name], float(np.max(err, initial=0.0, where=np.isfinite(err))))
            advance(count)
    report = QuantReport(mode, len(samples))
    for r in rows:
        report.by_value[r] = _row(r, total[r], added[r])
        report.tensors.append(report.by_value[r])
    report.tensors.sort(key=lambda t: (_rank(t.layer_sqnr_db), _rank(t.sqnr_db)))
    report.outputs = [OutputError(name, sums.rel_rmse(), sums.sqnr(), peaks[name])
                      for name, sums in outputs.items() if sums.count]
    if static or (static is None and mode in ("int8", "int16x8")):
        report.kept_float = _kept_float(quantized)
    return report


def _has_low_precision_operand(node: Node) -> bool:
    """Quantized weights (dynamic-int8), weights widened by a dequantize (weight-only) or float16 weights widened by
    a cast (float16)."""
    if node.op in ("dequantize", "cast"):
        return False
    for v in node.operands:
        if v.type.quant is not None:
            return True
        p = v.producer
        if p is not None and p.op == "dequantize" and p.operands[0].is_constant:
            return True
        if p is not None and p.op == "cast" and p.operands[0].type.dtype.value == "f16":
            return True
    return False


def _region_key(region: Graph, j: int):
    """The key of a region argument: its op's tag, the region's index and the argument's."""
    node = region.parent
    return ("region", node.meta.get(ID), node.regions.index(region), j)


class _FloatValues:
    """Every tagged node's outputs in a float run, by (tag, result index), and every region argument's: a list
    per key, one entry each time the node or region runs (a loop body runs many times)."""

    def __init__(self):
        self.values: dict[tuple, list[np.ndarray]] = {}

    def __call__(self, node: Node, outs: list[np.ndarray]) -> None:
        if ID in node.meta:
            for k, out in enumerate(outs):
                self.values.setdefault((node.meta[ID], k), []).append(out)

    def enter_region(self, region: Graph, args: list[np.ndarray]) -> None:
        for j, arg in enumerate(args):
            self.values.setdefault(_region_key(region, j), []).append(arg)


def _float_values(graph: Graph, inputs: dict) -> dict[tuple, list[np.ndarray]]:
    observer = _FloatValues()
    run(graph, inputs, observer)
    return observer.values


class _QuantRun:
    """Runs the quantized graph, adding each quantized tensor's errors as it is computed."""

    def __init__(self, graph: Graph, by_id: dict[int, Node], floats: dict, inputs: dict, total: dict, added: dict):
        self.graph, self.by_id, self.floats, self.inputs = graph, by_id, floats, inputs
        self.total, self.added = total, added
        self.env: dict[Value, np.ndarray] = {}
        self.reference: dict[Value, np.ndarray] = {}  # the float graph's value of a quantized-graph value
        self.runs: dict[tuple, int] = {}  # key -> times seen so far: the float run's value of the same time

    def run(self) -> None:
        for v in self.graph.inputs:
            self.env[v] = np.asarray(self.inputs[v.name])
            if not v.type.quant:
                self.reference[v] = self.env[v]
        run(self.graph, self.inputs, self)

    def __call__(self, node: Node, outs: list[np.ndarray]) -> None:
        self.observe(node, outs)

    def _float(self, key) -> np.ndarray | None:
        """The float run's value for ``key`` at the same occurrence (None when the runs took other paths)."""
        seen = self.runs.get(key, 0)
        self.runs[key] = seen + 1
        values = self.floats.get(key, ())
        return values[seen] if seen < len(values) else None

    def enter_region(self, region: Graph, args: list[np.ndarray]) -> None:
        for j, (v, arg) in enumerate(zip(region.inputs, args)):
            self.env[v] = arg
            ref = self._float(_region_key(region, j))
            if ref is not None and not v.type.quant:
                self.reference[v] = ref
            else:
                self.reference.pop(v, None)

    def real(self, v: Value) -> np.ndarray:
        return dequantize(self.env[v], v.type)

    def observe(self, node: Node, outs: list[np.ndarray]) -> None:
        for r, out in zip(node.results, outs):
            self.env[r] = out
        if node.op == "const":
            return
        if ID in node.meta:
            for k, r in enumerate(node.results):
                ref = self._float((node.meta[ID], k))
                if ref is not None:
                    self.reference[r] = ref
                else:
                    self.reference.pop(r, None)
        elif node.op in ("quantize", "requantize", "dequantize"):
            if node.operands[0] in self.reference:
                self.reference[node.result] = self.reference[node.operands[0]]
            else:
                self.reference.pop(node.result, None)
        if not any(r in self.total for r in node.results):
            return
        local = self.float_op(node)
        for k, r in enumerate(node.results):
            if r not in self.total:
                continue
            got = self.real(r)
            if r in self.reference:
                self.total[r].add(self.reference[r], got)
            if local is not None:
                self.added[r].add(local[k], got)

    def float_op(self, node: Node) -> list[np.ndarray] | None:
        """The node's float op on the (dequantized) inputs it was given, with the float constants."""
        if node.op in ("quantize", "requantize"):
            return [self.real(node.operands[0])]
        float_node = self.by_id.get(node.meta.get(ID))
        if float_node is None or len(float_node.operands) != len(node.operands):
            return None
        args = []
        for fv, qv in zip(float_node.operands, node.operands):
            args.append(fv.constant if fv.is_constant else self.real(qv))
        return run_node(float_node, args)


def _row(value: Value, total: _Sums, added: _Sums) -> TensorError:
    node = value.producer
    q = value.type.quant
    layer = ", ".join(node.loc.layers) or (node.loc.names[0] if node.loc.names else f"{node.op}_{node.seq}")
    rng = (total.lo, total.hi) if total.count else (added.lo, added.hi) if added.count else (0.0, 0.0)
    return TensorError(layer=layer, op=node.op, nodes=list(node.loc.names), dtype=value.type.dtype.value,
                       scale=float(q.scale[0]) if q else None, zero_point=int(q.zero_point[0]) if q else None,
                       range=rng,
                       sqnr_db=total.sqnr(), rel_rmse=total.rel_rmse(), layer_sqnr_db=added.sqnr(),
                       layer_rel_rmse=added.rel_rmse())


def _rank(sqnr: float | None) -> float:
    return math.inf if sqnr is None else sqnr


def _kept_float(graph: Graph) -> list[str]:
    """Layers (or nodes) whose float ops stayed float in the quantized graph."""
    names = {}
    for node in graph.walk(recursive=True):
        if node.op in ("const", "quantize", "dequantize", "requantize"):
            continue
        floats = [v for v in (*node.operands, *node.results) if v.type.dtype.is_float and not v.is_constant]
        if floats and not any(v.type.quant for v in (*node.operands, *node.results)):
            names[", ".join(node.loc.layers) or (node.loc.names[0] if node.loc.names else node.op)] = None
    return list(names)
