"""irc viz MODEL -o graph.svg|.html|.dot|.png: a picture of the graph."""

from __future__ import annotations

from pathlib import Path

import click

from irc.commands.common import load_model, load_options, note, progress, write_output
from irc.errors import UsageError


@click.command("viz")
@click.argument("model", type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="The picture to write; its suffix picks the format: .svg, .html, .dot or .png ('-' for stdout).")
@click.option("-f", "--format", "fmt", type=click.Choice(["svg", "html", "dot", "png"]), default=None,
              help="The format, when the output's suffix does not say (or is '-').")
@click.option("--collapse", type=click.Choice(["auto", "none", "layer"]), default="auto", show_default=True,
              help="One box per Keras layer; auto collapses only graphs with more than --max-nodes boxes.")
@click.option("--max-nodes", type=click.IntRange(min=4), default=200, show_default=True,
              help="The most boxes to draw: past it, auto collapses by layer, then by layer-name prefix, then cuts.")
@click.option("--engine", type=click.Choice(["builtin", "dot"]), default="builtin", show_default=True,
              help="Who lays out SVG and HTML: irc itself (no dependencies) or Graphviz's dot program.")
@load_options
def command(model, output, fmt, collapse, max_nodes, engine, **options):
    """Draw MODEL's graph. SVG and HTML (pan, zoom, search, details on click) are drawn by irc itself; PNG needs
    Graphviz's dot program; DOT is text for your own tools.

    Example: irc viz model/ -o model.html
    """
    from irc.tools.viz import render

    if fmt is None:
        suffix = Path(output).suffix.lower().lstrip(".") if output != "-" else ""
        if suffix not in ("svg", "html", "htm", "dot", "gv", "png"):
            raise UsageError(f"cannot tell the picture format from {output!r}", hint="use .svg, .html, .dot or .png, "
                                                                                     "or give --format")
        fmt = {"htm": "html", "gv": "dot"}.get(suffix, suffix)
    graph = load_model(model, **options)
    with progress(f"drawing {len(graph)} nodes"):
        picture = render(graph, fmt, collapse=collapse, max_nodes=max_nodes, engine=engine)
    write_output(output, picture)
    note(f"wrote {output}")
