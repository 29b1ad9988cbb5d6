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
from irc.passes.quantize.constraints import MODES, WEIGHT_ONLY_MODES
from irc.passes.quantize.recipe import Recipe, load_recipe

__all__ = [
    "MODES", "Quantize", "Ranges", "Recipe", "apply_quantization", "calibrate", "load_calibration", "load_recipe",
    "prepare_for_quantization", "quantize_graph",
]


def quantize_graph(graph: Graph, mode: str | None = None, calibration=None, observer: str = "minmax",
                   int8_io=False, keep_float: Iterable[str] = (), recipe: Recipe | None = None, *,
                   granularity: str | None = None, block_size: int | None = None) -> Graph:
    """Quantizes ``graph`` in place and returns it.

    ``calibration`` (needed by int8 and int16x8): anything ``load_calibration`` takes (an .npz or .npy path, a
    dict of arrays, an iterable of input dicts) or ``"random[:N]"`` for N standard-normal samples (smoke tests
    only). It is checked against the graph's inputs before any work. A quantization-aware-trained graph
    (``fake_quant`` nodes) needs none: its trained ranges decide, and calibration only fills the ranges it lacks
    (``qat.py``). ``observer``: ``minmax``,
    ``percentile[:P]`` or ``mse``. ``int8_io``: True (or ``"int8"``) makes the graph's own float inputs and
    outputs integer (int16 in int16x8 mode), ``"uint8"`` makes them uint8. ``keep_float``: layers, nodes, op types
    or regular expressions to leave in float. ``recipe`` (``load_recipe(path)``): a scheme per layer; ``mode``,
    when given, replaces its default (docs/quantization.md). ``granularity`` (per-tensor, per-channel, blockwise)
    and ``block_size``: the default scheme's, when it is a weight-only or int4 one (``weights.py``).
    """
    _quantize(graph, mode, calibration, observer, int8_io, tuple(keep_float), Counter(), recipe=recipe,
              granularity=granularity, block_size=block_size)
    return graph


def prepare_for_quantization(graph: Graph, mode: str | Recipe, stats: Counter | None = None) -> Graph:
    """The rewrites that must precede calibration (int8 and int16x8, or a recipe that uses either: fused
    tanh/sigmoid split off)."""
    from irc.passes.quantize.rewrite import split_activations

    if isinstance(mode, Recipe):
        mode = "int8" if mode.static() else mode.default
    else:
        _check_mode(mode)
    if mode in ("int8", "int16x8"):
        split_activations(graph, Counter() if stats is None else stats)
    return graph


def _all_nodes(graph: Graph) -> set:
    """Every node, inside regions too: the rewrites quantize each region (loop body, branch) on its own."""
    return set(graph.walk(recursive=True))


def apply_quantization(graph: Graph, mode: str | None, ranges: Ranges | None = None, *, int8_io=False,
                       keep_float: Iterable[str] = (), min_elements: int | None = None,
                       stats: Counter | None = None, recipe: Recipe | None = None, granularity: str | None = None,
                       block_size: int | None = None, moments: dict | None = None) -> Graph:
    """Rewrites a prepared graph into its quantized form, in place (``ranges`` from ``calibrate``).

    ``recipe`` gives layers schemes of their own (``mode``, when given, is its default); ``keep_float`` adds
    ``float`` entries after it. ``granularity`` and ``block_size`` go with a weight-only or int4 default.
    ``moments`` (``weights.input_moments``) rounds the weight-only and int4 weights of the layers it has to
    least output error on the calibration inputs."""
    from irc.ir.verify import verify
    from irc.passes.quantize import rewrite
    from irc.passes.quantize.recipe import resolve

    stats = Counter() if stats is None else stats
    recipe = _recipe(mode, recipe, keep_float)
    io = _io(int8_io, recipe.default)
    default_weights = _default_weights(recipe, granularity, block_size)
    assignment = resolve(graph, recipe)
    static = [s for s in ("int16x8", "int8") if assignment.nodes(s)]
    if static and ranges is None:
        raise QuantizationError(f"{static[0]} quantization needs calibrated ranges",
                                hint="give calibration data: --calibration data.npz")
    for scheme in sorted(static, key=lambda s: s == recipe.default):  # the one that takes --int8-io last
        keep = _all_nodes(graph) - assignment.nodes(scheme)
        rewrite.quantize_integer(graph, ranges, scheme, io=io if scheme == recipe.default else None, keep=keep,
                                 stats=stats)
        rewrite.carry_ranges(graph, ranges)  # a dequantized value's range is its source's, for the next scheme
    if len(static) > 1:
        rewrite.fold_requantize(graph, stats)
    for named, threshold in ((False, min_elements or rewrite.DYNAMIC_MIN_ELEMENTS), (True, 1)):
        group = assignment.nodes("dynamic-int8", named)  # a layer a recipe names is quantized whatever its size
        if group:
            rewrite.quantize_dynamic(graph, _all_nodes(graph) - group, stats, threshold)
    for entry, nodes in _weight_only_groups(assignment, recipe, default_weights):
        _quantize_weight_only(graph, nodes, entry, stats, moments)
    if assignment.nodes("float16"):
        rewrite.quantize_float16(graph, _all_nodes(graph) - assignment.nodes("float16"), stats)
    verify(graph)
    return graph


def _recipe(mode: str | None, recipe: Recipe | None, keep_float: Iterable[str]) -> Recipe:
    """The recipe to apply: ``recipe`` (or an empty one) with ``mode`` as its default, then ``keep_float``."""
    from irc.passes.quantize.recipe import Recipe, keep_float_entries

    if mode is not None:
        _check_mode(mode)
    if recipe is None:
        if mode is None:
            raise UsageError("give a quantization mode or a recipe")
        recipe = Recipe(mode)
    return recipe.with_default(mode).plus(*keep_float_entries(keep_float))


def _default_weights(recipe: Recipe, granularity: str | None, block_size: int | None):
    """The default scheme's WeightScheme (granularity and block size checked), or None when it is not one."""
    from irc.passes.quantize.recipe import WEIGHT_ONLY

    if recipe.default not in WEIGHT_ONLY:
        if granularity is not None or block_size is not None:
            raise UsageError(f"--granularity and --block-size go with {', '.join(WEIGHT_ONLY)}, not "
                             f"{recipe.default}")
        return None
    from irc.passes.quantize.weights import scheme_for_mode

    return scheme_for_mode(recipe.default, granularity, block_size)


def _weight_only_groups(assignment, recipe: Recipe, default):
    """(entry, nodes) for each weight-only or int4 setting in use. Only nodes with constant weights count. The
    default scheme goes to the layers it suits (``weights.refusal``); an entry's are all passed on, so that
    ``quantize_weights`` refuses, by name, a layer LiteRT cannot run with the entry's scheme."""
    from irc.passes.quantize.recipe import WEIGHT_ONLY, Entry
    from irc.passes.quantize.weights import _weights, refusal

    groups: dict[tuple, tuple[Entry, set]] = {}
    defaulted = False
    entries = {e for e in assignment.entries.values() if e is not None and e.scheme in WEIGHT_ONLY}
    for node, scheme in assignment.schemes.items():
        if scheme not in WEIGHT_ONLY or _weights(node) is None:
            continue  # a layer's activation or reshape has no weights to store
        entry = assignment.entries[node]
        if entry is None:
            defaulted = True
            if refusal(node, default) is not None:
                continue
            entry = Entry((), recipe.default, default.granularity, default.block_size, "the default scheme")
        key = (entry.scheme, entry.granularity, entry.block_size)
        groups.setdefault(key, (entry, set()))[1].add(node)
    for entry in entries - {e for e, _ in groups.values()}:
        raise QuantizationError(f"{entry.label()}{', '.join(map(repr, entry.select))} selects no layer with "
                                f"constant weights for scheme {entry.scheme}")
    if defaulted and default is not None and not any(e.where == "the default scheme" for e, _ in groups.values()):
        from irc.passes.quantize.weights import ops_supporting

        raise QuantizationError(f"no layer of the model takes {default} weights",
                                hint=f"LiteRT runs it on: {', '.join(ops_supporting(default)) or 'no op'}")
    return list(groups.values())


def _quantize_weight_only(graph: Graph, nodes: set, entry, stats: Counter, moments: dict | None = None) -> None:
    """Weight-only int8/int4 and dynamic int4: irc.passes.quantize.weights does them."""
    from irc.passes.quantize import weights
    from irc.passes.quantize.recipe import WEIGHT_ONLY

    bits, dynamic = WEIGHT_ONLY[entry.scheme]
    stats.update(weights.quantize_weights(
        graph, nodes, bits=bits, granularity=entry.granularity or "per-channel", block_size=entry.block_size,
        dynamic=dynamic, moments=moments))


def _quantize(graph: Graph, mode: str | None, calibration, observer: str, int8_io, keep_float: tuple[str, ...],
              stats: Counter, min_elements: int | None = None, progress: bool | None = None,
              recipe: Recipe | None = None, granularity: str | None = None, block_size: int | None = None) -> None:
    from irc.ir.verify import require_data
    from irc.passes.quantize.observers import make_observer
    from irc.passes.quantize.recipe import resolve

    full = _recipe(mode, recipe, keep_float)
    require_data(graph, f"quantizing ({full.default})")  # constants elided from a dump: their values decide all
    make_observer(observer)
    weights = _default_weights(full, granularity, block_size)
    if _io(int8_io, full.default) and weights is not None:
        raise UsageError(f"{full.default} keeps float activations: integer inputs and outputs go with int8 or int16x8")
    assignment = resolve(graph, full)  # a selector that matches nothing or a scheme no node takes fails now
    integer = full.static()
    samples = None
    no_data = calibration is None or (isinstance(calibration, str) and not calibration)
    weight_nodes = [n for n, scheme in assignment.schemes.items() if scheme in WEIGHT_ONLY_MODES]
    if (integer or weight_nodes) and not no_data:
        samples = random_samples(graph, calibration) if _is_random(calibration) else \
            load_calibration(calibration, graph)
    what = mode if mode in ("int8", "int16x8") else "static (int8, int16x8)"
    trained = None
    if integer and qat.has_fake_quants(graph):
        trained = qat.absorb_fake_quants(graph, stats)  # a QAT model: its trained ranges come first
    elif integer and no_data:
        raise QuantizationError(f"{what} quantization needs calibration data",
                                hint="--calibration data.npz (arrays keyed by input name), or in Python any "
                                     "iterable of input dicts")
    prepare_for_quantization(graph, full, stats)
    ranges = None
    if trained is not None:
        io = _io(int8_io, full.default) is not None
        missing = _fill_trained(graph, trained, full, io)
        if missing and samples is None:
            raise QuantizationError(f"{what} quantization of this quantization-aware-trained model needs "
                                    f"calibration data for what its fake-quant ops give no range: "
                                    f"{qat.describe(missing)}", hint="--calibration data.npz fills only those")
        ranges = trained
        if missing:  # calibration fills only the ranges the model lacks
            calibrated = calibrate(graph, samples, observer, progress=progress)
            ranges = Ranges({**calibrated, **trained})
            ranges.forced = set(trained.forced)
            _fill_trained(graph, ranges, full, io)
            stats["ranges calibrated"] += len(missing)
        stats["ranges trained"] += len(trained.forced)
    elif integer:
        ranges = calibrate(graph, samples, observer, progress=progress)
    moments = None
    if weight_nodes and samples is not None:  # calibration data: int4/weight-only weights round to the inputs
        from irc.passes.quantize.weights import input_moments

        moments = input_moments(graph, weight_nodes, samples)
    apply_quantization(graph, None, ranges, int8_io=int8_io, min_elements=min_elements, stats=stats, recipe=full,
                       granularity=granularity, block_size=block_size, moments=moments)


def _fill_trained(graph: Graph, ranges: Ranges, recipe: Recipe, io: bool) -> list:
    """``qat.fill_ranges`` for each static scheme of ``recipe``, on the nodes that get it."""
    from irc.passes.quantize.recipe import STATIC, resolve

    assignment = resolve(graph, recipe)
    missing = []
    for scheme in STATIC:
        nodes = assignment.nodes(scheme)
        if nodes:
            missing += qat.fill_ranges(graph, ranges, scheme, _all_nodes(graph) - nodes, io and scheme == recipe.default)
    return missing


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise UsageError(f"unknown quantization mode {mode!r}", hint=f"modes: {', '.join(MODES)}")


def _io(int8_io, mode: str) -> str | None:
    if int8_io in (False, None, "", "float"):
        return None
    if mode not in ("int8", "int16x8"):
        raise UsageError(f"integer inputs and outputs go with int8 or int16x8 quantization, not {mode}")
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
    """Quantize for TFLite: every --quantize mode (int8 and int16x8 calibrated; weight-only int8/int4, dynamic int4)."""

    name = "quantize"
    walks_regions = "self"  # calibrates the whole model, then quantizes each region on its own
    mode: Literal["float16", "dynamic-int8", "int8", "int16x8", "int8-weight-only", "int4-weight-only",
                  "dynamic-int4"] = option("int8", "what to quantize to (the --quantize modes)")
    calibration: str = option("", "calibration inputs: an .npz keyed by input name, an .npy, or random[:N]")
    observer: str = option("minmax", "range observer: minmax, percentile[:P] or mse")
    int8_io: bool = option(False, "integer graph inputs and outputs instead of quantize/dequantize at the edges")
    keep_float: tuple[str, ...] = option((), "layers, nodes, op types or regexes to leave in float")
    min_elements: int = option(1024, "dynamic-int8: the smallest weight tensor to quantize")
    recipe: str = option("", "a recipe file (TOML or JSON): a scheme per layer, in place of mode")
    granularity: str = option("", "weight modes: per-tensor, per-channel (the default) or blockwise")
    block_size: int = option(0, "weight modes, blockwise: 32, 64, 128 or 256 weights per block")

    def apply(self, graph, stats):
        recipe = load_recipe(self.recipe) if self.recipe else None
        _quantize(graph, None if recipe else self.mode, self.calibration or None, self.observer, self.int8_io,
                  self.keep_float, stats, min_elements=self.min_elements, recipe=recipe,
                  granularity=self.granularity or None, block_size=self.block_size or None)
