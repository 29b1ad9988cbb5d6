"""irc: a compiler framework for TensorFlow models.

``import irc`` stays light: TensorFlow and the heavier modules load only when a function needs them.

>>> import irc
>>> g = irc.parse('''
... graph @tiny(%x: f32[2]) {
...   %0 = relu(%x) : f32[2]
...   return %0 as "y"
... }''')
>>> irc.run(g, {"x": [-1.0, 2.0]})["y"].tolist()
[0.0, 2.0]
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "Graph": "irc.ir.graph",
    "parse": "irc.ir.parser",
    "verify": "irc.ir.verify",
    "run": "irc.api",
    "load": "irc.api",
    "lower": "irc.api",
    "diff": "irc.api",
    "errors": None,
}


def __getattr__(name: str):
    import importlib

    if name not in _API:
        raise AttributeError(f"module 'irc' has no attribute {name!r}")
    if _API[name] is None:
        return importlib.import_module(f"irc.{name}")
    return getattr(importlib.import_module(_API[name]), name)


def __dir__():
    return sorted([*globals(), *_API])
