"""One emitter from irc IR to TensorFlow, shared by the xla, cuda and tpu backends.

- ``codegen.generate(graph)`` writes the graph as Python source of ``def model(w, <inputs>)`` over ``tf.*`` calls,
  with an emitter per op in ``rules.py``; opaque ``tf.<Op>`` nodes are re-created from their NodeDefs.
- ``model.TFModel`` builds that source into a ``tf.function`` over ``tf.Variable`` weights (optionally
  ``jit_compile`` or placed on a device), and saves it as a SavedModel.
- ``support.check(graph, target)`` says per node whether a target runs it natively, via fallback, or not at all.
"""

from __future__ import annotations

from irc.backends.tfemit.codegen import EmitOptions, ModelSource, generate

__all__ = ["EmitOptions", "ModelSource", "build", "generate"]


def build(graph, options: EmitOptions | None = None, *, jit_compile: bool = False, device: str | None = None):
    """The graph as a live ``TFModel`` (see ``model.py``)."""
    from irc.backends.tfemit.model import TFModel

    return TFModel(generate(graph, options), jit_compile=jit_compile, device=device)
