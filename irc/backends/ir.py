"""The ``ir`` target: irc's text form, after the requested passes."""

from __future__ import annotations

from irc.ir.graph import Graph
from irc.ir.printer import print_graph

DEFAULT_PIPELINE = "O0"


def emit(graph: Graph, *, output=None, passes=None, quantize=None, full: bool = False, force: bool = False,
         **_options) -> Graph:
    if passes:
        from irc.passes import run_pipeline

        run_pipeline(graph, passes)
    if quantize:
        from irc.passes import run_pipeline

        run_pipeline(graph, f"quantize{{mode={quantize}}}")
    if output is not None:
        from irc.commands.common import write_output

        write_output(output, print_graph(graph, full=full), force=force)
    return graph


def check(graph: Graph):
    """Every node can be written as IR."""
    return [(node, "native", "") for node in graph.nodes]
