"""Passes written outside irc: functions turned into passes, ``--load-pass FILE.py`` and ``irc.passes`` entry points."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import sys
import typing
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from irc.errors import InputError, UsageError
from irc.passes.base import Pass, Stats, option

ENTRY_POINT_GROUP = "irc.passes"
USER_MODULE_PREFIX = "irc_user_passes_"  # modules imported by load_file


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


def load_file(path) -> list[str]:
    """Imports ``path`` (a Python file whose decorators register passes); returns the pass names it registered."""
    from irc import passes

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--load-pass: no such file: {path}")
    if path.suffix != ".py":
        raise UsageError(f"--load-pass takes a Python file ending in .py, not {path}")
    before = dict(passes._REGISTRY)
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    module_name = f"{USER_MODULE_PREFIX}{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path.resolve())
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        raise InputError(f"loading passes failed: {type(e).__name__}: {e}", where=str(path)) from e
    return [n for n, cls in passes._REGISTRY.items() if before.get(n) is not cls]


def load_entry_points() -> None:
    """Imports every ``irc.passes`` entry point: a module whose decorators register passes, or a pass itself."""
    from irc.passes import _REGISTRY, register_pass

    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = entry.load()
        except Exception as e:  # a broken plugin must not break irc
            warnings.warn(f"irc: cannot load pass plugin '{entry.name}' ({entry.value}): {e}", stacklevel=2)
            continue
        if inspect.ismodule(obj):
            continue
        if isinstance(obj, type) and issubclass(obj, Pass):
            if _REGISTRY.get(obj.name) is not obj:
                register_pass(obj)
        elif callable(obj):
            register_pass(obj, name=entry.name)
