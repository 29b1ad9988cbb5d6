"""The xla target: the graph rebuilt as a TensorFlow function compiled with XLA (``jit_compile=True``).

``irc lower MODEL --emit xla -o out/`` writes ``out/`` as a SavedModel whose ``serving_default`` signature is that
function, plus ``out/model.hlo.txt`` (the HLO module XLA receives, its instructions tagged with the model's op
names) and ``out/model.py`` (the generated TensorFlow source, to read). ``emit`` returns the compiled callable,
a ``TFModel``: call it with tensors by input name, or ``.run`` it on numpy arrays.

An op XLA cannot compile is reported by name before anything is written (``check`` lists them per node).
"""

from __future__ import annotations

import os

from irc.backends import register_backend
from irc.backends.base import Backend
from irc.backends.tfemit import EmitOptions, build
from irc.backends.tfemit.support import check as _check
from irc.backends.tfemit.support import legalize
from irc.backends.tfemit.target import prepare, reject_options
from irc.errors import TargetError
from irc.ir.graph import Graph
from irc.outputs import DIRECTORY, atomic_dir, check_output

DEFAULT_PIPELINE = "xla"


def emit(graph: Graph, *, output: str | os.PathLike | None = None, passes: str | None = None,
         quantize: str | None = None, force: bool = False, **options):
    """Lowers ``graph`` to an XLA-compiled TensorFlow function; writes a SavedModel + HLO to ``output`` if given
    (``force``: replacing what is there, see irc/outputs.py)."""
    reject_options("xla", options)
    if output is not None:
        check_output(output, DIRECTORY, force)
    graph = prepare(graph, passes, quantize, DEFAULT_PIPELINE)
    legalize(graph, "xla")
    model = build(graph, EmitOptions(), jit_compile=True)
    hlo = compile_hlo(model)  # an op XLA cannot compile fails here, before anything is written
    if output is not None:
        save(model, output, hlo, force)
    return model


def save(model, output: str | os.PathLike, hlo: str | None = None, force: bool = False) -> None:
    """Writes the SavedModel, ``model.hlo.txt`` and ``model.py`` as the directory ``output`` (atomically;
    ``force``: replacing what is there, see irc/outputs.py)."""
    hlo = compile_hlo(model) if hlo is None else hlo
    with atomic_dir(output, force=force) as tmp:
        model.save(tmp)
        (tmp / "model.hlo.txt").write_text(hlo, encoding="utf-8")
        (tmp / "model.py").write_text(model_module_source(model), encoding="utf-8")


@register_backend
class XLABackend(Backend):
    """A TensorFlow SavedModel compiled with XLA, with its HLO text and generated source."""

    name = "xla"
    default_pipeline = DEFAULT_PIPELINE
    writes = "directory"

    def emit(self, graph: Graph, options):
        return emit(graph, **options)

    def write(self, artifact, path, force: bool = False) -> None:
        save(artifact, path, force=force)

    def check(self, graph: Graph):
        return check(graph)


def check(graph: Graph):
    """(node, status, reason) for every node: native, fallback or unsupported under XLA."""
    return _check(graph, "xla")


def compile_hlo(model) -> str:
    """The model's HLO text; an XLA compilation failure becomes a TargetError quoting XLA's reason."""
    from irc.backends.tfemit.model import tf

    try:
        return model.hlo()
    except (tf().errors.OpError, ValueError, TypeError) as e:
        message = getattr(e, "message", None) or str(e)
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        raise TargetError(f"XLA cannot compile this model: {' '.join(lines[:3])[:600]}") from None


def model_module_source(model) -> str:
    """The generated function as a readable module (it is not needed to load the SavedModel)."""
    source = model.source
    header = (f'"""{source.name} as irc rebuilt it for TensorFlow: the function behind serving_default."""\n\n'
              "import tensorflow as tf\n")
    helpers = f"\n\n{source.helper_source()}" if source.helpers else ""
    return f"{header}{helpers}\n\n{source.code}"
