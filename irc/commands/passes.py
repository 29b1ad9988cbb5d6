"""irc passes: every pass with its options and a one-line description, the named pipelines and the targets."""

from __future__ import annotations

import click


def describe_passes() -> str:
    from irc.backends import available_backends
    from irc.passes import PIPELINES, available_passes
    from irc.passes.base import format_value

    backends = available_backends()  # first: a backend's module registers the passes it brings
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
    lines.append("")
    lines.append("Targets (irc lower --emit NAME), their default pipelines and the passes they bring:")
    width = max(len(name) for name in backends)
    for name, backend in backends.items():
        lines.append(f"  {name:<{width}}  {backend.description}")
        brings = f"; brings {', '.join(backend.passes)}" if backend.passes else ""
        lines.append(f"  {'':<{width}}    pipeline: {backend.default_pipeline}{brings}")
    return "\n".join(lines)


@click.command("passes")
def command():
    """List every pass with its options, the named pipelines and the targets (with irc --load FILE.py: a plugin's
    too)."""
    click.echo(describe_passes())
