"""Automatic mixed precision: the layers that get more bits, chosen until the output error is under a bound.

    choice = auto_quantize(graph, samples, "int8", max_error=0.01)   # quantizes graph in place
    print(choice.recipe.to_toml(choice.summary()))                   # the recipe it chose, to edit and replay

The *output error* is the largest, over the model's float outputs, of the RMS difference between the quantized
and the float model's output on the calibration samples, divided by the float output's range (max - min): the
``rel RMSE`` ``irc quant-report`` shows for an output. ``max_error=0.01`` asks for an RMS error of 1% of the range.

The search, greedy by the per-layer error ``quant-report`` measures (the error a layer adds itself, in SQNR):

1. Quantize with the base recipe (every layer in ``mode``), measure the whole model: each layer's added error and
   the output error. Stop if the output error is under the bound.
2. Give the worst layers one step more bits (int8 -> int16x8 -> float; straight to float where TFLite has no
   16x8 kernel), re-measure the whole model, and repeat with the worst layers of the new measurement. The number
   of layers moved per step doubles (1, 2, 4 ...), so a model that needs many layers moved takes a few steps,
   not one per layer; when a step gets under the bound, the smallest prefix of its layers (worst first) that does
   is found by bisection.

Calibration runs once; each step quantizes a copy of the prepared graph with the same ranges and runs the float
and the quantized graphs in the reference interpreter over the samples. ``target_size`` (bytes of the quantized
graph's constants, which the file exceeds by a few KB of metadata) bounds what the search may spend: a move that
would pass it is skipped, and without ``max_error`` the search moves layers for as long as the size allows. The
graph is finally quantized with the chosen recipe exactly as ``quantize_graph(graph, recipe=...)`` does it, so the
written recipe replays to the same file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from irc.errors import QuantizationError, UsageError
from irc.ir.graph import Graph, Node
from irc.passes.quantize.recipe import STATIC, Entry, Recipe, resolve, selector_for, why_not
from irc.passes.quantize.report import ID, QuantReport, compare

NEXT = {"int8": "int16x8", "int16x8": "float"}
WHERE = "irc lower --max-error"


@dataclass
class Step:
    moved: list[str]  # the layers given more bits in this step
    error: float
    size: int


@dataclass
class Choice:
    recipe: Recipe
    error: float  # the output error under the recipe
    size: int  # bytes of the quantized graph's constants
    base_error: float  # with every layer in the base mode
    base_size: int
    max_error: float | None
    steps: list[Step] = field(default_factory=list)
    measurements: int = 0  # quantized runs over the calibration samples

    def summary(self) -> str:
        bound = f" (bound {self.max_error:.3%})" if self.max_error is not None else ""
        return (f"written by irc lower --max-error: output rel RMSE {self.error:.3%}{bound}, constants "
                f"{self.size / 1024:.1f} KB;\nall {self.recipe.default}: {self.base_error:.3%}, "
                f"{self.base_size / 1024:.1f} KB; {len(self.recipe.entries)} entr(ies) from {self.measurements} "
                f"measurement(s)")


def constant_bytes(graph: Graph) -> int:
    return sum(int(np.asarray(n.result.constant).nbytes) for n in graph.walk(recursive=True) if n.op == "const")


def auto_quantize(graph: Graph, samples, mode: str = "int8", *, max_error: float | None = None,
                  target_size: int | None = None, recipe: Recipe | None = None, keep_float=(),
                  observer: str = "minmax", int8_io=False, progress: bool | None = None, log=None) -> Choice:
    """Quantizes ``graph`` in place with the recipe the search chooses (module docstring) and returns it.

    ``samples``: checked calibration samples (``load_calibration``); ``recipe``: entries to start from (the
    search adds its own after them); ``log``: a callable given one line per measurement.
    """
    from irc.passes.quantize import _recipe, apply_quantization, calibrate, prepare_for_quantization

    if max_error is None and target_size is None:
        raise UsageError("automatic mixed precision needs --max-error or --target-size")
    if max_error is not None and not max_error > 0:
        raise UsageError(f"--max-error must be above 0, not {max_error}")
    base = _recipe(mode, recipe, keep_float)
    if base.default not in STATIC:
        raise UsageError(f"automatic mixed precision starts from int8 or int16x8, not {base.default}")
    resolve(graph, base)  # bad selectors fail before calibrating
    prepare_for_quantization(graph, base)
    ranges = calibrate(graph, samples, observer, progress=progress)
    for i, node in enumerate(graph.walk(recursive=True)):  # loop bodies and branches too
        node.meta[ID] = i
    try:
        search = _Search(graph, ranges, samples, progress, log or (lambda line: None))
        choice = search.run(base, max_error, target_size)
    finally:
        for node in graph.walk(recursive=True):
            node.meta.pop(ID, None)
    apply_quantization(graph, None, ranges, int8_io=int8_io, recipe=choice.recipe)
    return choice


class _Search:
    def __init__(self, graph: Graph, ranges, samples, progress, log):
        self.graph, self.ranges, self.samples, self.progress, self.log = graph, ranges, samples, progress, log
        self.units = _units(graph)  # selector -> its nodes
        self.measurements = 0

    def measure(self, recipe: Recipe) -> tuple[QuantReport, int]:
        from irc.passes.quantize import apply_quantization

        self.measurements += 1
        trial = self.graph.copy()
        apply_quantization(trial, None, _transfer(self.ranges, self.graph, trial), recipe=recipe, stats=Counter())
        report = compare(self.graph, trial, self.samples, recipe.default, progress=self.progress, static=True)
        return report, constant_bytes(trial)

    def run(self, base: Recipe, max_error: float | None, target_size: int | None) -> Choice:
        report, size = self.measure(base)
        self.log(f"all {base.default}: output error {report.output_error:.3%}, constants {size / 1024:.1f} KB")
        if target_size is not None and size > target_size:
            raise QuantizationError(f"every layer in {base.default} already takes {size} bytes, above "
                                    f"--target-size {target_size}", where=WHERE)
        choice = Choice(base, report.output_error, size, report.output_error, size, max_error)
        recipe, batch = base, 1
        while max_error is None or report.output_error > max_error:
            moves = self.candidates(recipe, report, size, target_size)[:batch]
            if not moves:
                break
            trial = recipe.plus(*moves)
            trial_report, trial_size = self.measure(trial)
            if target_size is not None and trial_size > target_size:
                break  # the estimate fell short: the size is spent
            if max_error is not None and trial_report.output_error <= max_error and len(moves) > 1:
                trial, trial_report, trial_size = self.bisect(recipe, moves, max_error, (trial_report, trial_size))
            moved = [m.select[0] for m in trial.entries[len(recipe.entries):]]
            recipe, report, size = trial, trial_report, trial_size
            choice.steps.append(Step(moved, report.output_error, size))
            self.log(f"{', '.join(moved)} -> more bits: output error {report.output_error:.3%}, "
                     f"constants {size / 1024:.1f} KB")
            batch *= 2
        choice.recipe, choice.error, choice.size = recipe, report.output_error, size
        choice.measurements = self.measurements
        if max_error is not None and choice.error > max_error:
            limit = f" within --target-size {target_size}" if target_size is not None else ""
            raise QuantizationError(f"the output error stays at {choice.error:.3%}, above --max-error "
                                    f"{max_error:.3%}{limit}", where=WHERE,
                                    hint="allow a larger --target-size" if limit else None)
        return choice

    def bisect(self, recipe: Recipe, moves: list[Entry], max_error: float, passing):
        """The shortest prefix of ``moves`` (worst layers first) that gets under ``max_error``."""
        lo, hi, best = 0, len(moves), passing
        while hi - lo > 1:
            mid = (lo + hi) // 2
            report, size = self.measure(recipe.plus(*moves[:mid]))
            if report.output_error <= max_error:
                hi, best = mid, (report, size)
            else:
                lo = mid
        return recipe.plus(*moves[:hi]), *best

    def candidates(self, recipe: Recipe, report: QuantReport, size: int, target_size: int | None) -> list[Entry]:
        """Entries giving a layer one step more bits, worst layer (by the error it adds) first."""
        schemes = resolve(self.graph, recipe).schemes
        score: dict[str, tuple[float, float]] = {}
        for value, row in report.by_value.items():
            key = (_rank(row.layer_sqnr_db), _rank(row.sqnr_db))
            for unit in self.units_of(value):
                score[unit] = min(score.get(unit, key), key)
        moves, budget = [], None if target_size is None else target_size - size
        for unit in sorted(score, key=score.get):
            nodes = self.units[unit]
            now = next((schemes[n] for n in nodes if schemes[n] in STATIC), None)
            if now is None or score[unit][0] == np.inf:
                continue  # not quantized, or adds no error of its own (data movement)
            step = NEXT[now]
            if step == "int16x8" and all(why_not(n, step) for n in nodes):
                step = "float"
            if budget is not None:
                cost = _extra_bytes(nodes, step)
                if cost > budget:
                    continue
                budget -= cost
            moves.append(Entry((unit,), step, where=WHERE))
        return moves

    def units_of(self, value) -> list[str]:
        """The layers whose precision decides a quantized value's error: its producer's, or for a quantize or
        requantize at a border, its users' (moving them to the other side removes the border)."""
        node = value.producer
        if node is None:
            return []
        if ID in node.meta:
            return [self.unit_of[node.meta[ID]]] if node.meta[ID] in self.unit_of else []
        if node.op in ("quantize", "requantize"):
            return [self.unit_of[u.meta[ID]] for u, _ in value.uses if u.meta.get(ID) in self.unit_of]
        return []

    @property
    def unit_of(self) -> dict[int, str]:
        if not hasattr(self, "_unit_of"):
            self._unit_of = {n.meta[ID]: unit for unit, nodes in self.units.items() for n in nodes}
        return self._unit_of


def _units(graph: Graph) -> dict[str, list[Node]]:
    """The layers the search moves: a selector (a Keras layer's name, else a node's) -> the nodes it selects."""
    from irc.passes.quantize.select import select

    units: dict[str, list[Node]] = {}
    for node in graph.walk(recursive=True):
        name = (node.loc.layers or node.loc.names or (None,))[0]
        if node.op == "const" or name is None:
            continue
        selector = selector_for(name)
        if selector not in units:
            units[selector] = sorted(select(graph, [selector]), key=lambda n: n.meta[ID])
    return units


def _transfer(ranges, source: Graph, target: Graph):
    """``ranges`` of ``source``'s values for the same values of ``target``, a copy (matched by ``quant.id``)."""
    from irc.passes.quantize.calibration import Ranges

    by_id = {n.meta[ID]: n for n in target.walk(recursive=True) if ID in n.meta}
    out = Ranges()
    pairs = list(zip(source.inputs, target.inputs))
    for node in source.walk(recursive=True):
        twin = by_id.get(node.meta.get(ID))
        if twin is not None:
            pairs += zip(node.results, twin.results)
            for region, twin_region in zip(node.regions, twin.regions):  # region arguments have ranges too
                pairs += zip(region.inputs, twin_region.inputs)
    for old, new in pairs:
        if old in ranges:
            out[new] = ranges[old]
            if old in ranges.forced:
                out.forced.add(new)
    return out


def _extra_bytes(nodes: list[Node], scheme: str) -> int:
    """About how many bytes more ``nodes``' constants take in ``scheme`` than in int8."""
    extra = 0
    for node in nodes:
        for i, v in enumerate(node.operands):
            if v.is_constant and v.type.dtype.is_float:
                count = int(np.asarray(v.constant).size)
                extra += 3 * count if scheme == "float" else (4 * count if i == 2 else count)
    return extra


def _rank(sqnr: float | None) -> float:
    return np.inf if sqnr is None else sqnr
