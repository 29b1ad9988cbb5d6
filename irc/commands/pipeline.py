"""The pass-pipeline options ``irc opt``, ``irc lower`` and ``irc dump`` share (their meaning and the function that
runs them: ``irc/passes/cli_options.py``).

    @click.command()
    @pipeline_options
    def command(model, **options):
        graph = ...
        report = run_options(graph, "tflite", **options)   # other keyword arguments are ignored
"""

from __future__ import annotations

import click

from irc.commands.common import note
from irc.errors import UsageError
from irc.passes.cli_options import OPT_LEVELS, run_from_options


def run_options(graph, default_pipeline: str, **options):
    """``run_from_options``, then the op counts before and after as a note (-v)."""
    report = run_from_options(graph, default_pipeline, **options)
    if report.records:
        note(f"passes: {report.op_count_note()}")
    return report


def _bad_opt_level(ctx, param, value):
    """-O4, -Os, -O 2: compilers' spellings irc does not take (without this, click says "No such option: -O")."""
    if value is not None and f"O{value}" in OPT_LEVELS:
        raise UsageError(f"write the optimization level without a space: -O{value}")
    if value is not None:
        raise UsageError(f"-O{value} is not an optimization level: use -O0, -O1, -O2 or -O3 (see irc passes)")


def pipeline_options(func):
    """Adds --passes, --pipeline, -O0..-O3, --print-ir-*, --timing, --check-numerics, --no-verify, --debug-rewrites."""
    options = [
        click.option("--passes", default=None, metavar="PIPELINE",
                     help='Passes to run, e.g. "canonicalize,layout{target=nchw},dce" (see irc passes).'),
        click.option("--pipeline", default=None, metavar="NAME",
                     help="A named pipeline: O0-O3, tflite, xla, cuda (see irc passes)."),
        *[click.option(f"-{level}", "opt_level", flag_value=level, default=None,
                       help=f"The {level} pipeline." if level != "O0" else "Optimization level (the O0-O3 pipelines).")
          for level in OPT_LEVELS],
        click.option("-O", "bad_opt_level", hidden=True, expose_value=False, callback=_bad_opt_level),
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
        click.option("--debug-rewrites", is_flag=True,
                     help="Print every rewrite rule that fired, and every rule that matched but declined."),
        click.option("--no-verify", is_flag=True, help="Do not run the verifier after each pass."),
        click.option("--reproducer-dir", type=click.Path(file_okay=False), default=None,
                     help="Where a failing pass leaves its crash reproducer (default: a temporary directory)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func
