"""irc verify FILE.irc: parse and verify IR text."""

from __future__ import annotations

import click

from irc.commands.common import load_model, load_options


@click.command("verify")
@click.argument("model", type=click.Path())
@load_options
def command(model, **options):
    """Check that MODEL is valid IR: it parses and every node passes the verifier."""
    from irc.ir.verify import verify

    graph = load_model(model, **options)
    verify(graph)
    click.echo(f"{model}: ok ({len(graph)} nodes)")
