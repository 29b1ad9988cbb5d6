"""irc dump MODEL: print the IR of any model irc reads."""

from __future__ import annotations

import io

import click
import numpy as np

from irc.commands.common import load_model, load_options, write_output
from irc.commands.pipeline import pipeline_options, run_options


@click.command("dump")
@click.argument("model", type=click.Path())
@click.option("--full", is_flag=True, help="Write every constant in full instead of eliding large ones.")
@click.option("--save-weights", "weights_out", type=click.Path(dir_okay=False), default=None,
              help="Save the elided constants to this .npz (keyed by hash) so the dump can be run and lowered.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the IR here instead of stdout.")
@click.option("--after", "stop_after", default=None, metavar="PASS",
              help="Dump the IR after PASS of the pipeline (the passes after it do not run).")
@load_options
@pipeline_options
def command(model, full, weights_out, output, stop_after, **options):
    """Print MODEL's IR: deterministic, so dumps diff cleanly. With --passes/--pipeline/-O, after those passes."""
    from irc.ir.printer import collect_weights, print_graph

    graph = load_model(model, **options)
    run_options(graph, "O0", stop_after=stop_after, **options)
    if weights_out is not None:  # "" too: refused as an output path, not skipped
        buffer = io.BytesIO()
        np.savez(buffer, **collect_weights(graph))
        write_output(weights_out, buffer.getvalue())
    write_output(output, print_graph(graph, full=full))
