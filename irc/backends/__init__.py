"""Backends, by name. Each backend module exposes ``emit(graph, *, output=None, passes=None, quantize=None, **opts)``
and ``check(graph)`` (which nodes the target runs natively, through a fallback, or not at all).

- ``ir``: irc's own text form (``irc/backends/ir.py``)
- ``tflite``: TFLite flatbuffers written by irc (``irc/backends/tflite/``)
- ``xla``, ``cuda``, ``tpu``: TensorFlow programs rebuilt from the IR (``irc/backends/tf_emitter.py`` and friends)
"""

from __future__ import annotations

import importlib

from irc.errors import UsageError

BACKENDS = {
    "ir": "irc.backends.ir",
    "tflite": "irc.backends.tflite.backend",
    "xla": "irc.backends.xla",
    "cuda": "irc.backends.cuda",
    "tpu": "irc.backends.tpu",
}


def get_backend(name: str):
    """The backend module for target ``name``."""
    if name not in BACKENDS:
        raise UsageError(f"unknown target {name!r} (targets: {', '.join(BACKENDS)})")
    return importlib.import_module(BACKENDS[name])
