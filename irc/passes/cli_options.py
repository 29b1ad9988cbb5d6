"""The pass-pipeline options ``irc opt``, ``irc lower`` and ``irc dump`` share, and the one function that runs them.

    @click.command()
    @pipeline_options
    def command(model, **options):
        graph = ...
        report = run_from_options(graph, "tflite", **options)   # other keyword arguments are ignored
"""

from __future__ import annotations

import click

from irc.errors import PipelineError, UsageError
from irc.ir.graph import Graph
from irc.passes.manager import PipelineReport

OPT_LEVELS = ("O0", "O1", "O2", "O3")


def pipeline_options(func):
    """Adds --passes, --pipeline, -O0..-O3, --print-ir-*, --timing, --check-numerics, --load-pass, --no-verify."""
    options = [
        click.option("--passes", default=None, metavar="PIPELINE",
                     help='Passes to run, e.g. "canonicalize,fuse{activations=relu,relu6},dce" (see irc passes).'),
        click.option("--pipeline", default=None, metavar="NAME",
                     help="A named pipeline: O0-O3, tflite, xla, cuda (see irc passes)."),
        *[click.option(f"-{level}", "opt_level", flag_value=level, default=None,
                       help=f"The {level} pipeline." if level != "O0" else "Optimization level (the O0-O3 pipelines).")
          for level in OPT_LEVELS],
        click.option("--print-ir-before", multiple=True, metavar="PASS", help="Print the IR before PASS (repeatable)."),
        click.option("--print-ir-after", multiple=True, metavar="PASS", help="Print the IR after PASS (repeatable)."),
        click.option("--print-ir-after-all", is_flag=True, help="Print the IR after every pass."),
        click.option("--print-ir-after-change", is_flag=True,
                     help="Print the IR only after passes that changed it (alone: after every such pass)."),
        click.option("--timing", is_flag=True, help="Print each pass's time, share and statistics."),
        click.option("--check-numerics", is_flag=True,
                     help="Run the reference interpreter after each pass; name the first pass that changes outputs."),
        click.option("--numerics-tolerance", type=float, default=1e-4, show_default=True, metavar="RTOL",
                     help="Relative tolerance for --check-numerics (of the largest output magnitude)."),
        click.option("--load-pass", multiple=True, type=click.Path(dir_okay=False), metavar="FILE.py",
                     help="Load passes registered in a Python file (repeatable)."),
        click.option("--no-verify", is_flag=True, help="Do not run the verifier after each pass."),
        click.option("--reproducer-dir", type=click.Path(file_okay=False), default=None,
                     help="Where a failing pass leaves its crash reproducer (default: a temporary directory)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


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
                     timing=False, check_numerics=False, numerics_tolerance=1e-4, load_pass=(), no_verify=False,
                     reproducer_dir=None, stop_after: str | None = None, **_other) -> PipelineReport:
    """Runs the pipeline the options choose (``default_pipeline`` when none) over ``graph`` in place.

    ``stop_after``: end the pipeline after the first pass of that name (``irc dump --after PASS``).
    Prints the timing table with ``timing`` and the op counts before and after with -v; returns the report.
    """
    from irc.commands.common import note
    from irc.passes import get_pass, load_pass_file, run_pipeline
    from irc.passes.instruments import CheckNumerics, PrintIR
    from irc.passes.pipeline import parse_pipeline

    for path in load_pass:
        load_pass_file(path)
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
    report = run_pipeline(graph, chosen, verify_each=not no_verify, instrument=instruments,
                          reproducer_dir=reproducer_dir)
    if timing:
        click.echo(report.timing_table(), err=True)
    if report.records:
        note(f"passes: {report.op_count_note()}")
    return report
