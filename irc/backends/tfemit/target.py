"""What the xla, cuda and tpu backends share: the pass pipeline before emission, and option checking."""

from __future__ import annotations

from irc.errors import UsageError
from irc.ir.graph import Graph
from irc.ir.verify import require_data


def prepare(graph: Graph, passes: str | None, quantize: str | None, default: str) -> Graph:
    """A copy of ``graph`` after ``passes`` (the target's ``default`` pipeline when None; "" runs none), then
    quantization when asked (quantized nodes run as float math between dequantize and quantize)."""
    graph = graph.copy()
    pipeline = default if passes is None else passes
    if pipeline:
        from irc.passes import run_pipeline

        run_pipeline(graph, pipeline)
    require_data(graph, "emitting a TensorFlow program")
    if quantize:
        from irc.passes import run_pipeline

        run_pipeline(graph, f"quantize{{mode={quantize}}}")
    return graph


def reject_options(target: str, options: dict) -> None:
    """A UsageError for keyword options this target does not take (None values are ignored)."""
    unknown = sorted(k for k, v in options.items() if v is not None)
    if unknown:
        raise UsageError(f"the {target} target takes no option {', '.join(unknown)}")
