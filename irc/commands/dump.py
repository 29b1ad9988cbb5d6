"""irc dump MODEL: print the IR of any model irc reads."""

from __future__ import annotations

import click

from irc.commands.common import load_model, load_options
from irc.commands.pipeline import pipeline_options, run_options

AFTER_DEFAULT_PIPELINE = "tflite"  # --after PASS alone: the pipeline 'irc lower' runs by default


@click.command("dump")
@click.argument("model", type=click.Path())
@click.option("--full", is_flag=True, help="Write every constant in full instead of eliding large ones.")
@click.option("--save-weights", "weights_out", type=click.Path(dir_okay=False), default=None,
              help="Save the elided constants to this .npz (keyed by hash); with -o they go to "
                   "OUTPUT's name with .weights.npz unless given.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the IR here (and its large constants beside it, as NAME.weights.npz) instead of stdout.")
@click.option("--after", "stop_after", default=None, metavar="PASS",
              help="Dump the IR after PASS of the pipeline (the passes after it do not run); alone, of the "
                   f"pipeline 'irc lower' runs ({AFTER_DEFAULT_PIPELINE}).")
@load_options
@pipeline_options
def command(model, full, weights_out, output, stop_after, **options):
    """Print MODEL's IR: deterministic, so dumps diff cleanly. With --passes/--pipeline/-O, after those passes.

    Written to a file with -o, the dump can be run, optimized and lowered as it is: its large constants go to
    NAME.weights.npz beside it, and its first line records that file's name.
    """
    from irc.ir.weights_file import write_ir

    graph = load_model(model, **options)
    run_options(graph, AFTER_DEFAULT_PIPELINE if stop_after else "O0", stop_after=stop_after, **options)
    write_ir(graph, output, full=full, weights_out=weights_out)
