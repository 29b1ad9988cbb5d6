"""Functions turned into passes: ``@register_pass`` on ``fn(graph, *, option=default, ...)``.

Files and installed plugins that register passes are loaded by ``irc.registry`` (``--load FILE.py``, the
``irc.passes`` entry point group)."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable

from irc.passes.base import Pass, Stats, option


def function_pass(fn: Callable, name: str | None = None) -> type[Pass]:
    """A Pass class around ``fn(graph, *, option=default, ...)``; its keyword-only parameters become options."""
    hints = typing.get_type_hints(fn)
    fields, names = [], []
    for param in inspect.signature(fn).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if param.default is inspect.Parameter.empty:
            raise TypeError(f"pass function {fn.__name__}: option '{param.name}' needs a default")
        fields.append((param.name, hints.get(param.name, type(param.default)), option(param.default)))
        names.append(param.name)

    def apply(self, graph, stats: Stats) -> None:
        result = fn(graph, **{n: getattr(self, n) for n in names})
        if result:
            stats.update(result)

    pass_name = name or fn.__name__.replace("_", "-")
    class_name = "".join(part.title() for part in pass_name.replace("-", "_").split("_")) + "Pass"
    return dataclasses.make_dataclass(
        class_name, fields, bases=(Pass,), frozen=True,
        namespace={"apply": apply, "name": pass_name, "__doc__": fn.__doc__, "__module__": fn.__module__},
    )
