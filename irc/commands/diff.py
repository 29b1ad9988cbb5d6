"""irc diff A B: a structural (or --numeric) diff of two models; exit 0 when equal, 1 when different, 2 on trouble."""

from __future__ import annotations

import json
import sys

import click

from irc.commands.common import load_model, load_options, progress, write_output
from irc.errors import IrcError


@click.command("diff")
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("--stat", is_flag=True, help="Only a per-op summary of what changed.")
@click.option("--json", "as_json", is_flag=True, help="Write the diff as JSON, for scripts.")
@click.option("--numeric", is_flag=True,
              help="Also run both on the same random inputs; exit 1 only if a shared output differs beyond tolerance.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --numeric random inputs.")
@click.option("--atol", type=float, default=1e-4, show_default=True, help="--numeric absolute tolerance.")
@click.option("--rtol", type=float, default=1e-4, show_default=True, help="--numeric relative tolerance.")
@click.option("--color/--no-color", default=None, help="Color the output (default: only on a terminal).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the diff here instead of stdout.")
@load_options
@click.pass_context
def command(ctx, a, b, stat, as_json, numeric, seed, atol, rtol, color, output, **options):
    """Compare two models irc reads (any two formats): nodes are matched by structure and source location, so
    renumbering is no change. Shows nodes removed (-), added (+) and changed (~: op, attributes, constants,
    types, shapes, quantization, wiring).

    Exit status: 0 equal, 1 different, 2 trouble (like diff). With --numeric the status says whether every
    shared output agrees within --atol + --rtol * |a|.

    Example: irc diff model/ model.tflite --numeric
    """
    from irc.tools.diff import diff_graphs

    try:
        graph_a = load_model(a, **options)
        graph_b = load_model(b, **options)
        with progress("matching"):
            result = diff_graphs(graph_a, graph_b, a_label=a, b_label=b)
        if numeric:
            from irc.ops.tf_policy import check_graph_may_run
            from irc.tools.diff import numeric_diff

            check_graph_may_run(graph_a, where=a)
            check_graph_may_run(graph_b, where=b)
            with progress("running both models on the same random inputs"):
                result.numeric = numeric_diff(result.matching, seed=seed, atol=atol, rtol=rtol)
        if as_json:
            text = json.dumps(result.to_json(), indent=2) + "\n"
        else:
            use_color = color if color is not None else (output in (None, "-") and sys.stdout.isatty())
            text = result.format_stat(use_color) if stat else result.format(use_color)
        write_output(output, text)  # an output irc cannot write is trouble too
    except IrcError as error:
        error.exit_code = 2  # diff's convention: 2 means trouble, 1 means different
        raise
    same = result.numeric_ok if numeric else result.equal
    ctx.exit(0 if same else 1)
