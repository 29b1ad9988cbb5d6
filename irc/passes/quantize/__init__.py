"""Quantization for TFLite, as IR passes: ``float16``, ``dynamic-int8``, ``int8`` and ``int16x8``.

    from irc.passes.quantize import quantize_graph
    quantize_graph(graph, "int8", calibration="data.npz")             # in place; returns the graph

or step by step, to look at (and change) what calibration found before the graph is rewritten::

    prepare_for_quantization(graph, "int8")          # splits off activations that need ranges of their own
    ranges = calibrate(graph, samples, "percentile")  # Value -> (lo, hi)
    ranges.override(graph, "conv2", 0.0, 6.0)         # by Keras layer, node name, op type or regex
    apply_quantization(graph, "int8", ranges, int8_io=True, keep_float=["classifier"])

Run it after the ``tflite`` pipeline (biases and activations fused, batch norms folded), as the TFLite backend does
with ``emit(graph, quantize=...)``. In a pipeline it is ``quantize{mode=int8 calibration=data.npz}``. The result
runs in the reference interpreter (quantized nodes compute dequantize -> float -> quantize), and
``irc.passes.quantize.report`` compares it with the float graph tensor by tensor. See docs/quantization.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from irc.errors import QuantizationError, UsageError
from irc.ir.graph import Graph
from irc.passes import register_pass
from irc.passes.base import Pass, option
from irc.passes.quantize import qat
from irc.passes.quantize.calibration import Ranges, calibrate, load_calibration
from irc.passes.quantize.constraints import MODES

__all__ = [
    "MODES", "Quantize", "Ranges", "apply_quantization", "calibrate", "load_calibration",
    "prepare_for_quantization", "quantize_graph",
]


def quantize_graph(graph: Graph, mode: str, calibration=None, observer: str = "minmax", int8_io=False,
                   keep_float: Iterable[str] = ()) -> Graph:
    """Quantizes ``graph`` in place and returns it.

    ``calibration`` (needed by int8 and int16x8): anything ``load_calibration`` takes (an .npz or .npy path, a
    dict of arrays, an iterable of input dicts) or ``"random[:N]"`` for N standard-normal samples (smoke tests
    only). It is checked against the graph's inputs before any work. A quantization-aware-trained graph
    (``fake_quant`` nodes) needs none: its trained ranges decide, and calibration only fills the ranges it lacks
    (``qat.py``). ``observer``: ``minmax``,
    ``percentile[:P]`` or ``mse``. ``int8_io``: True (or ``"int8"``) makes the graph's own float inputs and
    outputs integer (int16 in int16x8 mode), ``"uint8"`` makes them uint8. ``keep_float``: layers, nodes, op types
    or regular expressions to leave in float.
    """
    _quantize(graph, mode, calibration, observer, int8_io, tuple(keep_float), Counter())
    return graph


def prepare_for_quantization(graph: Graph, mode: str, stats: Counter | None = None) -> Graph:
    """The rewrites that must precede calibration (int8 and int16x8: fused tanh/sigmoid split off)."""
    from irc.passes.quantize.rewrite import split_activations

    _check_mode(mode)
    if mode in ("int8", "int16x8"):
        split_activations(graph, Counter() if stats is None else stats)
    return graph


def apply_quantization(graph: Graph, mode: str, ranges: Ranges | None = None, *, int8_io=False,
                       keep_float: Iterable[str] = (), min_elements: int | None = None,
                       stats: Counter | None = None) -> Graph:
    """Rewrites a prepared graph into its quantized form, in place (``ranges`` from ``calibrate``)."""
    from irc.ir.verify import verify
    from irc.passes.quantize import rewrite
    from irc.passes.quantize.select import select

    _check_mode(mode)
    stats = Counter() if stats is None else stats
    keep = select(graph, keep_float)
    if mode == "float16":
        rewrite.quantize_float16(graph, keep, stats)
    elif mode == "dynamic-int8":
        rewrite.quantize_dynamic(graph, keep, stats, min_elements or rewrite.DYNAMIC_MIN_ELEMENTS)
    else:
        if ranges is None:
            raise QuantizationError(f"{mode} quantization needs calibrated ranges",
                                    hint="give calibration data: --calibration data.npz")
        rewrite.quantize_integer(graph, ranges, mode, io=_io(int8_io, mode), keep=keep, stats=stats)
    verify(graph)
    return graph


def _quantize(graph: Graph, mode: str, calibration, observer: str, int8_io, keep_float: tuple[str, ...],
              stats: Counter, min_elements: int | None = None, progress: bool | None = None) -> None:
    from irc.ir.verify import require_data
    from irc.passes.quantize.observers import make_observer
    from irc.passes.quantize.select import select

    _check_mode(mode)
    require_data(graph, f"quantizing ({mode})")  # constants elided from a dump: their values decide everything
    make_observer(observer)
    _io(int8_io, mode)
    select(graph, keep_float)  # a selector that matches nothing fails now, not after calibrating
    integer = mode in ("int8", "int16x8")
    samples = None
    no_data = calibration is None or (isinstance(calibration, str) and not calibration)
    if integer and not no_data:
        samples = random_samples(graph, calibration) if _is_random(calibration) else \
            load_calibration(calibration, graph)
    trained = None
    if integer and qat.has_fake_quants(graph):
        trained = qat.absorb_fake_quants(graph, stats)  # a QAT model: its trained ranges come first
    elif integer and no_data:
        raise QuantizationError(f"{mode} quantization needs calibration data",
                                hint="--calibration data.npz (arrays keyed by input name), or in Python any "
                                     "iterable of input dicts")
    prepare_for_quantization(graph, mode, stats)
    ranges = None
    if trained is not None:
        keep, io = select(graph, keep_float), _io(int8_io, mode) is not None
        missing = qat.fill_ranges(graph, trained, mode, keep, io)
        if missing and samples is None:
            raise QuantizationError(f"{mode} quantization of this quantization-aware-trained model needs "
                                    f"calibration data for what its fake-quant ops give no range: "
                                    f"{qat.describe(missing)}", hint="--calibration data.npz fills only those")
        ranges = trained
        if missing:  # calibration fills only the ranges the model lacks
            calibrated = calibrate(graph, samples, observer, progress=progress)
            ranges = Ranges({**calibrated, **trained})
            ranges.forced = set(trained.forced)
            qat.fill_ranges(graph, ranges, mode, keep, io)
            stats["ranges calibrated"] += len(missing)
        stats["ranges trained"] += len(trained.forced)
    elif integer:
        ranges = calibrate(graph, samples, observer, progress=progress)
    apply_quantization(graph, mode, ranges, int8_io=int8_io, keep_float=keep_float, min_elements=min_elements,
                       stats=stats)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise UsageError(f"unknown quantization mode {mode!r}", hint=f"modes: {', '.join(MODES)}")


def _io(int8_io, mode: str) -> str | None:
    if int8_io in (False, None, "", "float"):
        return None
    if int8_io in (True, "int8", "int16"):
        return "int8"
    if int8_io == "uint8":
        if mode != "int8":
            raise UsageError("uint8 inputs and outputs go with int8 quantization only")
        return "uint8"
    raise UsageError(f"bad int8_io {int8_io!r}", hint="True, 'int8' or 'uint8'")


def _is_random(calibration) -> bool:
    return isinstance(calibration, str) and calibration.split(":")[0] == "random"


def random_samples(graph: Graph, spec: str = "random:16") -> list[dict]:
    """``random[:N]``: N deterministic standard-normal samples (for smoke tests, not for accuracy)."""
    from irc.ir.interpreter import random_inputs

    _, _, count = spec.partition(":")
    try:
        n = int(count) if count else 16
    except ValueError:
        raise UsageError(f"bad calibration {spec!r}", hint="random or random:N") from None
    if n < 1:
        raise UsageError(f"bad calibration {spec!r}: N must be at least 1")
    return load_calibration([random_inputs(graph, seed=i) for i in range(n)], graph)


@register_pass
@dataclass(frozen=True)
class Quantize(Pass):
    """Quantize for TFLite: float16, dynamic-int8, int8 or int16x8 (calibrated), per-channel weights."""

    name = "quantize"
    mode: Literal["float16", "dynamic-int8", "int8", "int16x8"] = option("int8", "what to quantize to")
    calibration: str = option("", "calibration inputs: an .npz keyed by input name, an .npy, or random[:N]")
    observer: str = option("minmax", "range observer: minmax, percentile[:P] or mse")
    int8_io: bool = option(False, "integer graph inputs and outputs instead of quantize/dequantize at the edges")
    keep_float: tuple[str, ...] = option((), "layers, nodes, op types or regexes to leave in float")
    min_elements: int = option(1024, "dynamic-int8: the smallest weight tensor to quantize")

    def apply(self, graph, stats):
        _quantize(graph, self.mode, self.calibration or None, self.observer, self.int8_io, self.keep_float, stats,
                  min_elements=self.min_elements)
