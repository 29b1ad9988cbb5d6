"""What the pass-pipeline options of ``irc opt``, ``irc lower`` and ``irc dump`` mean, and the one function that
runs them (the click options themselves are in ``irc/commands/pipeline.py``; this module knows no CLI).

    report = run_from_options(graph, "tflite", passes="O2", timing=True)   # other keyword arguments are ignored
"""

from __future__ import annotations

import contextlib
import sys

from irc.errors import PipelineError, UsageError
from irc.ir.graph import Graph
from irc.passes.manager import PipelineReport

OPT_LEVELS = ("O0", "O1", "O2", "O3")


def choose_pipeline(default: str, passes: str | None = None, pipeline: str | None = None,
                    opt_level: str | None = None) -> str:
    """The pipeline text from --passes, --pipeline or -O (at most one of them), else ``default``."""
    from irc.passes import PIPELINES

    given = [text for text in (passes, pipeline, opt_level) if text is not None]
    if len(given) > 1:
        raise UsageError("give one of --passes, --pipeline and -O0..-O3, not several")
    if pipeline is not None and pipeline not in PIPELINES:
        raise PipelineError(f"unknown pipeline '{pipeline}' (pipelines: {', '.join(PIPELINES)})")
    return given[0] if given else default


def run_from_options(graph: Graph, default_pipeline: str, *, passes=None, pipeline=None, opt_level=None,
                     print_ir_before=(), print_ir_after=(), print_ir_after_all=False, print_ir_after_change=False,
                     timing=False, check_numerics=False, numerics_tolerance=1e-4, no_verify=False,
                     reproducer_dir=None, debug_rewrites=False, stop_after: str | None = None,
                     **_other) -> PipelineReport:
    """Runs the pipeline the options choose (``default_pipeline`` when none) over ``graph`` in place.

    ``stop_after``: end the pipeline after the first pass of that name (``irc dump --after PASS``).
    Prints the timing table with ``timing`` and every rewrite that fired or declined with ``debug_rewrites``, to
    stderr; returns the report.
    """
    from irc.passes import get_pass, run_pipeline
    from irc.passes.instruments import CheckNumerics, PrintIR
    from irc.passes.pipeline import parse_pipeline
    from irc.passes.rewrite import trace_rewrites

    chosen = parse_pipeline(choose_pipeline(default_pipeline, passes, pipeline, opt_level))
    for name in (*print_ir_before, *print_ir_after, *([stop_after] if stop_after else [])):
        get_pass(name)  # an unknown pass name is an error, not silence
    if stop_after:
        names = [p.name for p in chosen]
        if stop_after not in names:
            listed = ", ".join(names) if names else "empty: give --passes, --pipeline or -O"
            raise UsageError(f"pass '{stop_after}' is not in the pipeline ({listed})")
        chosen = chosen[: names.index(stop_after) + 1]
    instruments = []
    if print_ir_before or print_ir_after or print_ir_after_all or print_ir_after_change:
        instruments.append(PrintIR(print_ir_before, print_ir_after, print_ir_after_all, print_ir_after_change))
    if check_numerics:
        instruments.append(CheckNumerics(rtol=numerics_tolerance))
    tracing = trace_rewrites(print_rewrite) if debug_rewrites else contextlib.nullcontext()
    with tracing:
        report = run_pipeline(graph, chosen, verify_each=not no_verify, instrument=instruments,
                              reproducer_dir=reproducer_dir)
    if timing:
        print(report.timing_table(), file=sys.stderr)
    return report


def print_rewrite(event: str, pattern, node, detail: str) -> None:
    """One ``--debug-rewrites`` line on stderr: ``rewrite: Rule(x * 1 -> x) fired on 'mul' at LOC``, or
    ``... declined on NODE: why``."""
    if event == "fired":
        print(f"rewrite: {pattern!r} fired on {detail}", file=sys.stderr)
    else:
        from irc.ir.verify import node_label

        print(f"rewrite: {pattern!r} declined on {node_label(node)}: {detail}", file=sys.stderr)
