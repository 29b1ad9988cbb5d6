"""Backends, by name: each is a ``Backend`` (``irc/backends/base.py``) registered with ``@register_backend``.

- ``ir``: irc's own text form (``irc/backends/ir.py``)
- ``tflite``: TFLite flatbuffers written by irc (``irc/backends/tflite/``)
- ``xla``, ``cuda``, ``tpu``: TensorFlow programs rebuilt from the IR (``irc/backends/tfemit/`` and friends)

Installed packages add backends through the ``irc.backends`` entry point group, and ``irc --load FILE.py`` through
the file's ``@register_backend`` (docs/extending.md). ``irc.lower(model, emit=NAME)`` and ``irc lower --emit NAME``
find them here.
"""

from __future__ import annotations

from irc.backends.base import Backend
from irc.errors import UsageError
from irc.registry import Registry, owner_of

# The built-in backends: name -> the module that registers it.
BUILTIN_BACKENDS = {
    "ir": "irc.backends.ir",
    "tflite": "irc.backends.tflite.backend",
    "xla": "irc.backends.xla",
    "cuda": "irc.backends.cuda",
    "tpu": "irc.backends.tpu",
}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator: registers a Backend subclass under its ``name`` (a taken name is an error naming both)."""
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TypeError(f"register_backend: {cls!r} is not a subclass of irc.backends.Backend")
    if not cls.name:
        raise TypeError(f"backend {cls.__qualname__} has no name")
    BACKENDS.add(cls.name, cls(), owner_of(cls), cls.__module__)
    return cls


def _adopt(name: str, obj) -> None:
    """An ``irc.backends`` entry point naming a Backend subclass."""
    register_backend(obj)


BACKENDS: Registry[Backend] = Registry("backend", BUILTIN_BACKENDS.values(), "irc.backends", _adopt)


def get_backend(name: str) -> Backend:
    """The backend for target ``name``; a UsageError listing the targets when there is none."""
    backend = BACKENDS.get(name)
    if backend is None:
        raise UsageError(f"unknown target {name!r} (targets: {', '.join(BACKENDS.names())})")
    return backend


def available_backends() -> dict[str, Backend]:
    return BACKENDS.items()


__all__ = ["BACKENDS", "BUILTIN_BACKENDS", "Backend", "available_backends", "get_backend", "register_backend"]
