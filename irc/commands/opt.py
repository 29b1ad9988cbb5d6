"""irc opt FILE.irc --passes PIPELINE [-o out.irc]: run passes over IR text, like mlir-opt (``-`` reads stdin)."""

from __future__ import annotations

import sys

import click

from irc.commands.pipeline import pipeline_options, run_options


def read_graph(path: str, weights: str | None):
    """The graph in ``path`` (an .irc file, or any model irc reads); ``-`` reads IR text from stdin."""
    from irc.api import load, load_weights
    from irc.ir.parser import parse

    if path == "-":
        arrays = load_weights(weights) if weights else None
        return parse(sys.stdin.read(), source="<stdin>", weights=arrays)
    return load(path, weights=weights)


@click.command("opt")
@click.argument("file", type=click.Path(allow_dash=True))
@pipeline_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="Write the IR here (and its large constants beside it, as NAME.weights.npz) instead of stdout.")
@click.option("--full", is_flag=True, help="Write every constant in full instead of eliding large ones.")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="The .npz of constants elided from FILE (as written by 'irc dump --save-weights').")
def command(file, output, full, weights, **options):
    """Run a pass pipeline over FILE (IR text, or any model irc reads) and print the result, large constants
    elided as 'irc dump' does.

    Example: irc opt model.irc --passes "canonicalize,fold-batchnorm,fuse{pad=false},dce"
    """
    from irc.ir.weights_file import write_ir

    graph = read_graph(file, weights)
    run_options(graph, "O0", **options)
    write_ir(graph, output, full=full)
