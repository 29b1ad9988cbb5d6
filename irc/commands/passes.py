"""irc passes: every pass with its options and a one-line description, and the named pipelines."""

from __future__ import annotations

import click


def describe_passes() -> str:
    from irc.passes import PIPELINES, available_passes
    from irc.passes.base import format_value

    registry = available_passes()
    width = max(len(name) for name in registry)
    lines = ["Passes:"]
    for name, cls in registry.items():
        lines.append(f"  {name:<{width}}  {cls.summary()}")
        for spec in cls.options():
            default = format_value(spec.default) or '""'
            help = f"  {spec.help}" if spec.help else ""
            lines.append(f"  {'':<{width}}    {spec.name}: {spec.type_name} = {default}{help}")
    lines.append("")
    lines.append("Pipelines (--pipeline NAME, -O0..-O3, or a name inside --passes):")
    width = max(len(name) for name in PIPELINES)
    for name, text in PIPELINES.items():
        lines.append(f"  {name:<{width}}  {text or '(no passes)'}")
    return "\n".join(lines)


@click.command("passes")
@click.option("--load-pass", multiple=True, type=click.Path(dir_okay=False), metavar="FILE.py",
              help="Also list the passes a Python file registers (repeatable).")
def command(load_pass):
    """List every pass with its options, and the named pipelines."""
    from irc.passes import load_pass_file

    for path in load_pass:
        load_pass_file(path)
    click.echo(describe_passes())
