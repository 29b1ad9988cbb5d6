"""One registry for everything irc lets a plugin add: ops, TF lowerings, TFLite emitters, passes and backends.

A registry holds name -> item. Before its first lookup, and before anything outside irc registers into it, it
imports irc's own modules for that kind and then the installed plugins (the entry point ``group`` of installed
packages), as pytest and MLIR do, so the result never depends on import order. A name registered twice is an error
that names both owners; the same definition registered again (a module reloaded) replaces itself.

A broken installed plugin must not break irc: it is skipped with a warning. A file given with ``--load`` is the
user's own request, so its failure is an error (``load_file``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import warnings
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, TypeVar

from irc.errors import InputError, UsageError

T = TypeVar("T")
USER_MODULE_PREFIX = "irc_user_plugin_"  # modules imported by load_file

# Every entry point group irc reads, and what an entry point in it names.
ENTRY_POINT_GROUPS = {
    "irc.ops": "a module that registers ops, or an OpDef subclass",
    "irc.lowerings": "a module whose @lowers functions register TensorFlow op lowerings",
    "irc.tflite_emitters": "a module whose @emits functions register TFLite emitters",
    "irc.passes": "a module that registers passes, a Pass subclass or a pass function",
    "irc.backends": "a module that registers a backend, or a Backend subclass",
}


def owner_of(obj: Any) -> str:
    """Where ``obj`` is defined, for error messages: ``module.QualName``, or ``file.py:QualName`` for a file
    loaded with ``--load`` (loading a file of that name again replaces its definitions)."""
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    if module.startswith(USER_MODULE_PREFIX) and getattr(sys.modules.get(module), "__file__", None):
        return f"{Path(sys.modules[module].__file__).name}:{name}"
    return f"{module}.{name}"


class Registry(Generic[T]):
    """name -> item, filled by irc's ``modules`` and the plugins of entry point ``group``.

    ``adopt(name, obj)`` registers an entry point that names an object rather than a module that registers itself.
    """

    def __init__(self, kind: str, modules: Iterable[str] = (), group: str | None = None,
                 adopt: Callable[[str, Any], None] | None = None):
        self.kind = kind
        self.modules = tuple(modules)
        self.group = group
        self.adopt = adopt
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}
        self._state = "new"  # -> "builtins" (importing irc's modules) -> "plugins" -> "ready"

    # ----- registering ----------------------------------------------------------------------------------------------
    def add(self, name: str, item: T, owner: str | None = None, module: str | None = None) -> None:
        """Registers ``item`` (defined in ``module``, by default its ``__module__``) as ``name``; a ValueError
        naming both owners when the name is taken."""
        module = module or getattr(item, "__module__", None)
        if self._state == "new" and module not in self.modules:
            self.load()  # irc's own first: a plugin that takes a built-in name fails now, not on a later lookup
        owner = owner or owner_of(item)
        previous = self._owners.get(name)
        if previous is not None and previous != owner:
            raise ValueError(f"{self.kind} {name!r} is registered twice: by {previous} and by {owner}")
        self._items[name] = item
        self._owners[name] = owner

    def load(self) -> None:
        """Imports irc's modules for this kind, then the installed plugins (once)."""
        if self._state != "new":
            return
        self._state = "builtins"
        try:
            for module in self.modules:
                importlib.import_module(module)
        except BaseException:
            self._state = "new"  # a failure here must not leave a half-filled registry that claims to be loaded
            raise
        self._state = "plugins"
        try:
            if self.group:
                load_entry_points(self.group, self.adopt)
        finally:
            self._state = "ready"

    # ----- looking up -----------------------------------------------------------------------------------------------
    def get(self, name: str) -> T | None:
        self.load()
        return self._items.get(name)

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def items(self) -> dict[str, T]:
        self.load()
        return dict(sorted(self._items.items()))

    def names(self) -> list[str]:
        return list(self.items())

    def owner(self, name: str) -> str | None:
        self.load()
        return self._owners.get(name)


def load_entry_points(group: str, adopt: Callable[[str, Any], None] | None = None) -> list[str]:
    """Imports every entry point of ``group``; returns the names of those that loaded."""
    loaded = []
    for entry in metadata.entry_points(group=group):
        try:
            obj = entry.load()
            if not inspect.ismodule(obj):
                if adopt is None:
                    raise TypeError(f"entry points of {group} name {ENTRY_POINT_GROUPS.get(group, 'a module')}")
                adopt(entry.name, obj)
        except Exception as e:  # noqa: BLE001 (a broken plugin must not break irc)
            warnings.warn(f"irc: cannot load plugin '{entry.name}' ({entry.value}) of {group}: {e}", stacklevel=2)
            continue
        loaded.append(entry.name)
    return loaded


def load_file(path, option: str = "--load") -> Any:
    """Imports a Python file that registers plugins (``--load FILE.py``); returns the module.

    The same file loaded twice is imported once. Its failure, a name it takes twice included, is an InputError
    naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{option}: no such file: {path}")
    if path.suffix != ".py":
        raise UsageError(f"{option} takes a Python file ending in .py, not {path}")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    module_name = f"{USER_MODULE_PREFIX}{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path.resolve())
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        raise InputError(f"loading plugins failed: {type(e).__name__}: {e}", where=str(path)) from e
    return module
