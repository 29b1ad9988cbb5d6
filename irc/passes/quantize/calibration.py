"""Calibration: checking the user's sample inputs, then running the float graph on them to record value ranges.

``load_calibration`` takes an ``.npz`` (arrays keyed by input name; an unnamed ``arr_0`` for a one-input model), an
``.npy`` (one input), a dict of arrays, one array, or any iterable of input dicts (or of arrays, for one input),
and returns a list of input dicts. Stacked arrays hold samples along their first axis. Everything is checked
before any work: unknown or missing input names, dtypes that do not fit the input, and shapes that do not match
are a QuantizationError that names the input and the sample.

``calibrate`` runs the reference interpreter over the samples (batched when the model's batch is symbolic) with an
observer on every float value, and returns ``Ranges``: the range of every graph input and node result. Values
inside regions (loop bodies, branches) are observed every time they run; a region argument's range joins what the
op passes in and, in a loop, what the body returns for the next iteration.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from irc.errors import QuantizationError
from irc.ir.graph import Graph, Node, Value
from irc.ir.types import DType, SymDim

Sample = dict[str, np.ndarray]
BATCH = 32  # samples per interpreter run when the batch dimension is free


# ----- loading and checking --------------------------------------------------------------------------------------------
def load_calibration(source: Any, graph: Graph) -> list[Sample]:
    """The calibration samples in ``source``, each a dict of arrays by input name, checked against ``graph``."""
    where = None
    if isinstance(source, (str, os.PathLike)):
        where = str(source)
        source = _read_file(Path(source))
    if isinstance(source, (np.ndarray, Mapping)):
        samples = _split_stacked(_by_name(source, graph, where), graph, where)
    elif isinstance(source, Iterable):
        samples = [_one_sample(item, graph, i) for i, item in enumerate(source)]
    else:
        raise QuantizationError(f"calibration data must be a file, a dict of arrays, an array or an iterable of "
                                f"input dicts, not {type(source).__name__}")
    if not samples:
        raise QuantizationError("the calibration data holds no samples", where=where)
    _check_symbols(samples, graph)
    return samples


def _read_file(path: Path):
    from irc.npfiles import load_arrays

    return load_arrays(path, "calibration data", QuantizationError,
                       hint="write it with numpy.savez(path, input_name=array, ...)")


def _input_names(graph: Graph) -> str:
    return ", ".join(repr(v.name) for v in graph.inputs)


def _by_name(source, graph: Graph, where: str | None) -> dict[str, np.ndarray]:
    """Arrays keyed by graph input name; a lone array (or an unnamed ``arr_0``) goes to a one-input model's input."""
    if isinstance(source, np.ndarray):
        if len(graph.inputs) != 1:
            raise QuantizationError(f"a single calibration array fits a model with one input; this one has "
                                    f"{len(graph.inputs)} ({_input_names(graph)})", where=where,
                                    hint="key the arrays by input name")
        return {graph.inputs[0].name: source}
    arrays = dict(source)
    if len(graph.inputs) == 1 and list(arrays) == ["arr_0"]:  # numpy.savez(path, array): no name given
        return {graph.inputs[0].name: arrays["arr_0"]}
    return _check_names(arrays, graph, where)


def _check_names(arrays: dict, graph: Graph, where: str | None) -> dict:
    names = [v.name for v in graph.inputs]
    unknown = [k for k in arrays if k not in names]
    if unknown:
        raise QuantizationError(f"calibration data has an array {unknown[0]!r}, which is not a model input "
                                f"(inputs: {_input_names(graph)})", where=where)
    missing = [n for n in names if n not in arrays]
    if missing:
        raise QuantizationError(f"calibration data has no array for model input {missing[0]!r}", where=where)
    return arrays


def _split_stacked(arrays: dict[str, np.ndarray], graph: Graph, where: str | None) -> list[Sample]:
    """Stacked arrays cut into samples: along a leading sample axis, or in chunks of the model's batch size."""
    pieces: dict[str, list[np.ndarray]] = {}
    for value in graph.inputs:
        array = np.asarray(arrays[value.name])
        rank = value.type.rank
        _check_dtype(value, array, where)
        if rank is not None and array.ndim == rank + 1:
            items = [array[i] for i in range(array.shape[0])]
        elif rank is not None and rank > 0 and array.ndim == rank:
            batch = value.type.shape[0]
            step = batch if isinstance(batch, int) else 1
            if array.shape[0] % step:
                raise QuantizationError(f"calibration array for input {value.name!r} has {array.shape[0]} rows, "
                                        f"not a multiple of the model's batch size {step}", where=where)
            items = [array[i:i + step] for i in range(0, array.shape[0], step)]
        else:
            raise QuantizationError(f"calibration array for input {value.name!r} has shape {list(array.shape)}; "
                                    f"the input is {value.type} (give samples stacked along a first axis)",
                                    where=where)
        pieces[value.name] = items
    counts = {name: len(items) for name, items in pieces.items()}
    if len(set(counts.values())) > 1:
        raise QuantizationError(f"calibration arrays hold different numbers of samples: {counts}", where=where)
    count = next(iter(counts.values()), 0)
    samples = [{name: pieces[name][i] for name in pieces} for i in range(count)]
    for i, sample in enumerate(samples):
        for value in graph.inputs:
            _check_shape(value, sample[value.name], f"{where}: calibration sample {i}" if where else
                         f"calibration sample {i}")
    return samples


def _one_sample(item, graph: Graph, index: int) -> Sample:
    where = f"calibration sample {index}"
    if isinstance(item, np.ndarray) or not isinstance(item, Mapping):
        if len(graph.inputs) != 1:
            raise QuantizationError(f"each calibration sample must be a dict keyed by input name "
                                    f"({_input_names(graph)})", where=where)
        item = {graph.inputs[0].name: item}
    arrays = _check_names(dict(item), graph, where)
    sample = {}
    for value in graph.inputs:
        array = np.asarray(arrays[value.name])
        rank = value.type.rank
        if rank is not None and array.ndim == rank - 1 and _has_batch_dim(value):
            array = array[None]  # a sample without the batch axis
        _check_dtype(value, array, where)
        _check_shape(value, array, where)
        sample[value.name] = array
    return sample


def _has_batch_dim(value: Value) -> bool:
    """Whether the first dim is a batch that one sample may fill (unknown, symbolic or 1)."""
    if not value.type.shape:
        return False
    first = value.type.shape[0]
    return first is None or isinstance(first, SymDim) or first == 1


def _check_dtype(value: Value, array: np.ndarray, where: str | None) -> None:
    want = value.type.dtype
    kind = array.dtype.kind
    fits = (want.is_float and kind == "f") or (want.is_integer and kind in "iu") or \
           (want is DType.bool and kind == "b") or (want is DType.str and kind in "USO")
    if not fits:
        raise QuantizationError(f"input {value.name!r} is {want.value} but its calibration data is {array.dtype}",
                                where=where, hint="convert (and scale) the data as the model expects its input")


def _check_shape(value: Value, array: np.ndarray, where: str) -> None:
    shape = value.type.shape
    if shape is None:
        return
    bad = array.ndim != len(shape) or any(isinstance(d, int) and d != n for d, n in zip(shape, array.shape))
    if bad:
        raise QuantizationError(f"input {value.name!r} expects shape {value.type}, the calibration data has "
                                f"{list(array.shape)}", where=where)


def _check_symbols(samples: list[Sample], graph: Graph) -> None:
    """A symbolic dim (``batch``) shared by several inputs must have one size within a sample."""
    for i, sample in enumerate(samples):
        sizes: dict[SymDim, int] = {}
        for value in graph.inputs:
            for d, n in zip(value.type.shape or (), sample[value.name].shape):
                if isinstance(d, SymDim) and sizes.setdefault(d, n) != n:
                    raise QuantizationError(f"dimension {d} of input {value.name!r} is {n}, but {sizes[d]} in "
                                            f"another input", where=f"calibration sample {i}")


# ----- running ---------------------------------------------------------------------------------------------------------
class Ranges(dict):
    """Value -> (lo, hi): the calibrated range of each float graph input and node result.

    ``override(graph, selector, lo, hi)`` sets the range of every float result of the nodes a selector names
    (a layer, node, op type or regular expression, as ``--keep-float`` takes them). An overridden range is
    ``forced``: it decides the parameters of the tensors that must share them (a reshape of it, ...) even where
    their calibrated ranges are wider.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.forced: set[Value] = set()

    def override(self, graph: Graph, selector: str, lo: float, hi: float) -> int:
        from irc.passes.quantize.select import select

        if not lo <= hi:
            raise QuantizationError(f"range override for {selector!r}: low {lo} is above high {hi}")
        count = 0
        for node in select(graph, [selector], "range override"):
            for r in node.results:
                if r in self:
                    self[r] = (float(lo), float(hi))
                    self.forced.add(r)
                    count += 1
        return count

    def of(self, node: Node) -> list[tuple[float, float] | None]:
        return [self.get(r) for r in node.results]


def batches(samples: list[Sample], graph: Graph, size: int = BATCH) -> list[tuple[Sample, int]]:
    """(inputs, sample count): consecutive samples joined along the batch axis when every input's batch is free
    and their other dims agree; one sample per run otherwise."""
    if size <= 1 or not graph.inputs or not all(_free_batch(v) for v in graph.inputs):
        return [(s, 1) for s in samples]
    out: list[tuple[Sample, int]] = []
    group: list[Sample] = []

    def flush():
        if group:
            out.append(({k: np.concatenate([s[k] for s in group]) for k in group[0]}, len(group)))
            group.clear()

    for sample in samples:
        if group and any(sample[k].shape[1:] != group[0][k].shape[1:] for k in sample):
            flush()
        group.append(sample)
        if len(group) == size:
            flush()
    flush()
    return out


def _free_batch(value: Value) -> bool:
    shape = value.type.shape
    if not shape:
        return False
    first = shape[0]
    if first is None:
        return True
    if not isinstance(first, SymDim):
        return False
    return sum(d == first for d in shape) == 1  # a symbol used only there


def calibrate(graph: Graph, samples, observer: str = "minmax", *, progress: bool | None = None) -> Ranges:
    """The range of every float value of ``graph`` over ``samples`` (anything ``load_calibration`` takes)."""
    from irc.ir.interpreter import run
    from irc.passes.quantize.observers import make_observer

    factory = make_observer(observer)
    samples = load_calibration(samples, graph)  # cheap for checked samples; catches unchecked ones
    observers: dict[Value, Any] = {}

    def watch(value: Value, array: np.ndarray) -> None:
        if value.type.dtype.is_float and value.type.quant is None:
            if value not in observers:
                observers[value] = factory()
            observers[value].observe(array)

    def on_node(node: Node, outputs: list[np.ndarray]) -> None:
        if node.op != "const":
            for value, array in zip(node.results, outputs):
                watch(value, array)

    with progress_bar(len(samples), "calibrating", progress) as advance:
        for inputs, count in batches(samples, graph):
            for value in graph.inputs:
                watch(value, inputs[value.name])
            run(graph, inputs, on_node)
            advance(count)
    ranges = {value: obs.range() for value, obs in observers.items()}
    _add_region_arguments(graph, ranges)
    return Ranges(ranges)


def _add_region_arguments(graph: Graph, ranges: dict) -> None:
    """Ranges of region arguments: what the op passes in, and for a loop what its body returns for the next
    iteration (the observer saw those values as node results, over every iteration)."""
    from irc.passes.manager import regions_innermost_first

    regions = list(reversed(regions_innermost_first(graph)))  # outer first: an op's operands are known
    for _ in range(3):  # a body returning one argument in another's place needs another round
        for region in regions:
            node = region.parent
            operands = node.operands[1:] if node.op == "if" else node.operands
            results = list(node.regions[1].outputs.values()) if node.op == "while" else [None] * len(operands)
            for arg, operand, result in zip(region.inputs, operands, results):
                seen = [ranges[v] for v in (operand, result) if v is not None and v in ranges]
                if seen and arg.type.dtype.is_float:
                    ranges[arg] = (min(r[0] for r in seen), max(r[1] for r in seen))


class progress_bar:
    """A rich progress bar on stderr while calibrating (only on a terminal, and not under ``irc -q``)."""

    def __init__(self, total: int, what: str, enabled: bool | None):
        self.total, self.what = total, what
        self.enabled = _show_progress() if enabled is None else enabled
        self._progress = None

    def __enter__(self):
        if not self.enabled:
            return lambda n=1: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self._progress.__enter__()
        task = self._progress.add_task(self.what, total=self.total)
        return lambda n=1: self._progress.advance(task, n)

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
        return False


def _show_progress() -> bool:
    """On a terminal, unless the "irc" logger is set above INFO (``irc -q`` does that)."""
    return sys.stderr.isatty() and logging.getLogger("irc").level <= logging.INFO
