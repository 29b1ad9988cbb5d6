"""irc stats MODEL: op histogram, parameter count, model size, MACs and FLOPs per Keras layer."""

from __future__ import annotations

import json
import sys

import click

from irc.commands.common import load_model, load_options, write_output


@click.command("stats")
@click.argument("model", type=click.Path())
@click.option("--top", type=click.IntRange(min=1), default=None, metavar="N",
              help="Only the N layers with the most MACs (default: every layer, in model order).")
@click.option("--json", "as_json", is_flag=True, help="Write the statistics as JSON, for scripts.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@load_options
def command(model, top, as_json, output, **options):
    """Op histogram, parameter count, size of the constants, and MACs and FLOPs per Keras layer of MODEL.

    MACs count the multiply-accumulates of convolutions and matrix products; FLOPs count a MAC as two, and
    one per output element of elementwise ops, activations and bias adds. Unknown dimensions (a dynamic batch)
    count as 1.

    Example: irc stats model/ --top 10
    """
    from irc.tools.stats import graph_stats

    graph = load_model(model, **options)
    stats = graph_stats(graph)
    if as_json:
        text = json.dumps(stats.to_json(), indent=2) + "\n"
    else:
        color = output in (None, "-") and sys.stdout.isatty()
        text = stats.format(top, color)
    write_output(output, text)
