"""The tpu target: a self-contained Python program that runs the model on Cloud TPU with ``TPUStrategy``.

``irc lower MODEL --emit tpu -o out/`` renders ``templates/run_tpu.py.j2`` into ``out/run_tpu.py`` and writes the
weights to ``out/weights.npz`` (plain arrays, no pickle). The program holds the model as readable TensorFlow code
(the same emitter as the xla and cuda targets), connects with ``TPUClusterResolver`` (``--tpu ADDRESS``), creates
the weights under ``TPUStrategy``'s scope, feeds a batched tf.data pipeline sharded over the cores and runs
``strategy.run``. Without a reachable TPU it says so and runs under the default strategy.

``emit`` returns a ``TpuProgram`` (the program text and weights; ``write(dir)`` writes them). Options: ``tpu``, the
default address baked into the program; ``batch_size``, its default --batch-size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irc.backends import register_backend
from irc.backends.base import Backend
from irc.backends.tfemit import EmitOptions, ModelSource, generate
from irc.backends.tfemit.support import check as _check
from irc.backends.tfemit.support import legalize
from irc.backends.tfemit.target import prepare, reject_options
from irc.errors import UsageError
from irc.ir.graph import Graph
from irc.ir.types import DType
from irc.outputs import DIRECTORY, atomic_dir, check_output

DEFAULT_PIPELINE = "xla"  # TPUs run everything through XLA
PROGRAM = "run_tpu.py"
WEIGHTS = "weights.npz"
TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class TpuProgram:
    """The rendered program and the weights it loads."""

    source: str
    weights: dict[str, np.ndarray]
    model: ModelSource

    def write(self, output: str | os.PathLike, force: bool = False) -> Path:
        """Writes ``run_tpu.py`` and ``weights.npz`` as the directory ``output`` (atomically; ``force``: replacing
        what is there, see irc/outputs.py)."""
        with atomic_dir(output, force=force) as tmp:
            (tmp / PROGRAM).write_text(self.source, encoding="utf-8")
            (tmp / PROGRAM).chmod(0o755)
            np.savez(tmp / WEIGHTS, **self.weights)
        return Path(output)


def emit(graph: Graph, *, output: str | os.PathLike | None = None, passes: str | None = None,
         quantize: str | None = None, tpu: str | None = None, batch_size: int | None = None,
         force: bool = False, **options) -> TpuProgram:
    """Renders the TPU program for ``graph``; writes it with its weights into ``output`` if given."""
    reject_options("tpu", options)
    if output is not None:
        check_output(output, DIRECTORY, force)
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"batch_size must be positive, got {batch_size}")
    graph = prepare(graph, passes, quantize, DEFAULT_PIPELINE)
    legalize(graph, "tpu")
    program = render(generate(graph, EmitOptions(quant_float64=False)), tpu=tpu, batch_size=batch_size or 8, origin=graph.name)
    if output is not None:
        program.write(output, force)
    return program


def check(graph: Graph):
    """(node, status, reason) for every node: native, fallback or unsupported on a TPU."""
    return _check(graph, "tpu")


@register_backend
class TPUBackend(Backend):
    """A Python program that runs the model on Cloud TPU, with its weights."""

    name = "tpu"
    default_pipeline = DEFAULT_PIPELINE
    writes = "directory"

    def emit(self, graph: Graph, options) -> TpuProgram:
        return emit(graph, **options)

    def write(self, artifact: TpuProgram, path, force: bool = False) -> None:
        artifact.write(path, force)

    def check(self, graph: Graph):
        return check(graph)


def render(model: ModelSource, *, tpu: str | None = None, batch_size: int = 8, origin: str = "") -> TpuProgram:
    """The program text for a generated model (``run_tpu.py.j2``)."""
    import jinja2

    from irc import __version__

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined, autoescape=False)
    from irc.backends.tfemit.codegen import lit

    env.filters["py"] = lit  # a Python literal, in the generated code's style
    bfloat16 = sorted(k for k, v in model.weights.items() if v.dtype.name == "bfloat16")
    weights = {k: (v.astype(np.float32) if k in bfloat16 else v) for k, v in model.weights.items()}
    text = env.get_template("run_tpu.py.j2").render(
        name=model.name, version=__version__, origin=origin or model.name, weights_file=WEIGHTS,
        inputs=[_spec(s.name, s.type) for s in model.inputs],
        outputs=[_spec(name, type) for name, type in model.output_types.items()],
        model_batch=_model_batch(model), bfloat16=bfloat16, model_code=model.code.rstrip("\n"),
        helpers=model.helper_source().rstrip("\n"), tpu=tpu, batch_size=batch_size,
    )
    return TpuProgram(text, weights, model)


def _spec(name: str, type) -> dict:
    dtype = "string" if type.dtype is DType.str else type.dtype.numpy.name
    shape = None if type.shape is None else tuple(d if isinstance(d, int) else None for d in type.shape)
    return {"name": name, "dtype": dtype, "shape": repr(shape)}


def _model_batch(model: ModelSource) -> int | None:
    """The fixed number of examples the model takes at a time, when every input fixes the same one."""
    firsts = {s.type.shape[0] if s.type.shape else None for s in model.inputs}
    if len(firsts) == 1:
        (first,) = firsts
        return first if isinstance(first, int) else None
    return None
