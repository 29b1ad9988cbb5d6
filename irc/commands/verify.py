"""irc verify FILE.irc: parse and verify IR text."""

from __future__ import annotations

import click

from irc.commands.common import load_model, load_options


@click.command("verify")
@click.argument("model", type=click.Path())
@load_options
def command(model, **options):
    """Check that MODEL is valid IR: it parses and every node passes the verifier.

    Constants elided from a dump (no weights file) are checked by type only; the report says how many.
    """
    from irc.ir.printer import ElidedTensor
    from irc.ir.verify import verify

    graph = load_model(model, **options)
    verify(graph, elided_ok=True)
    elided = sum(1 for n in graph.nodes if n.op == "const" and isinstance(n.attrs.get("value"), ElidedTensor))
    if elided:
        click.echo(f"{model}: ok ({len(graph)} nodes); not checked: the data of {elided} constant(s) elided from "
                   "the dump, and the shapes computed from them (pass --weights FILE to check them)")
    else:
        click.echo(f"{model}: ok ({len(graph)} nodes)")
