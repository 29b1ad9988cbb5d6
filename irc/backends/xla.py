"""The xla target: the graph rebuilt as a TensorFlow function compiled with XLA (``jit_compile=True``).

``irc lower MODEL --emit xla -o out/`` writes ``out/`` as a SavedModel whose ``serving_default`` signature is that
function, plus ``out/model.hlo.txt`` and ``out/model.stablehlo.mlir`` (the HLO module XLA receives and its
StableHLO form, instructions tagged with the model's op names) and ``out/model.py`` (the generated TensorFlow
source, to read). XLA compiles static shapes only: the HLO is for the first of ``batch`` (batch sizes, default 1)
where the model's batch is not fixed, and every further size gets ``model.b<N>.hlo.txt`` and
``model.b<N>.stablehlo.mlir``. ``emit`` returns the compiled callable, a ``TFModel``: call it with tensors by
input name, or ``.run`` it on numpy arrays.

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
from irc.errors import TargetError, UsageError
from irc.ir.graph import Graph
from irc.outputs import DIRECTORY, atomic_dir, check_output

DEFAULT_PIPELINE = "xla"
# ops XLA runs markedly slower than TensorFlow's own CPU kernels, and by how much (jit / tf.function, median per
# call): measured with ``benchmarks/backends.py --ops`` (TensorFlow 2.21, x86-64, 1 thread). Every other op timed
# there (conv2d, matmul, batch_matmul, avg_pool, softmax, relu6) ran faster or as fast under XLA.
CPU_SLOWER_OPS = {"depthwise_conv2d": 2.1}


def emit(graph: Graph, *, output: str | os.PathLike | None = None, passes: str | None = None,
         quantize: str | None = None, batch: str | int | list[int] | None = None, force: bool = False,
         **options):
    """Lowers ``graph`` to an XLA-compiled TensorFlow function; writes a SavedModel, HLO and StableHLO to
    ``output`` if given (``force``: replacing what is there, see irc/outputs.py)."""
    reject_options("xla", options)
    if output is not None:
        check_output(output, DIRECTORY, force)
    graph = prepare(graph, passes, quantize, DEFAULT_PIPELINE)
    legalize(graph, "xla")
    model = build(graph, EmitOptions(), jit_compile=True)
    sizes = batch_sizes(model, batch)
    # an op XLA cannot compile fails here, before anything is written
    model.xla_irs = {size: (compile_hlo(model, size), compile_hlo(model, size, "stablehlo")) for size in sizes}
    if output is not None:
        save(model, output, force=force)
    return model


def save(model, output: str | os.PathLike, force: bool = False) -> None:
    """Writes the SavedModel, the HLO and StableHLO of each batch size ``emit`` compiled (batch 1 for a model
    from elsewhere) and ``model.py`` as the directory ``output`` (atomically; ``force``: replacing what is there,
    see irc/outputs.py)."""
    irs = getattr(model, "xla_irs", None) or {1: (compile_hlo(model), compile_hlo(model, 1, "stablehlo"))}
    with atomic_dir(output, force=force) as tmp:
        model.save(tmp)
        for i, (size, (hlo, stablehlo)) in enumerate(irs.items()):
            stem = "model" if i == 0 else f"model.b{size}"
            (tmp / f"{stem}.hlo.txt").write_text(hlo, encoding="utf-8")
            (tmp / f"{stem}.stablehlo.mlir").write_text(stablehlo, encoding="utf-8")
        (tmp / "model.py").write_text(model_module_source(model), encoding="utf-8")


@register_backend
class XLABackend(Backend):
    """A TensorFlow SavedModel compiled with XLA, with its HLO and StableHLO text and generated source."""

    name = "xla"
    default_pipeline = DEFAULT_PIPELINE
    writes = "directory"

    def emit(self, graph: Graph, options):
        return emit(graph, **options)

    def write(self, artifact, path, force: bool = False) -> None:
        save(artifact, path, force=force)

    def check(self, graph: Graph):
        return check(graph)

    def notes(self, graph: Graph) -> list[str]:
        return notes(graph)


def batch_sizes(model, batch) -> list[int]:
    """The batch sizes to compile for: ``batch`` ("1,8", an int or a list; default 1), checked against the
    model's own batch dimension (a fixed one allows only itself)."""
    if batch is None or batch == "":
        sizes = [1]
    else:
        try:
            items = str(batch).split(",") if isinstance(batch, (str, int)) else batch
            sizes = [int(b) for b in items]
        except ValueError:
            raise UsageError(f"--batch takes batch sizes separated by commas, e.g. 1,8; got {batch!r}") from None
    if not sizes or any(b < 1 for b in sizes):
        raise UsageError(f"batch sizes must be positive, got {batch!r}")
    fixed = {spec.shape[0] for spec in model.source.inputs if spec.shape}
    fixed.discard(None)
    if fixed and (batch is not None and batch != "") and set(sizes) != fixed:
        raise UsageError(f"the model's batch is fixed at {', '.join(map(str, sorted(fixed)))}: it cannot be compiled "
                         f"for batch {', '.join(map(str, sizes))}")
    if fixed:
        sizes = sorted(fixed)
    from irc.limits import check_array

    for size in sizes:  # XLA traces on example inputs of each size: refuse one that cannot fit before making it
        for spec in model.source.inputs:
            check_array(spec.example_shape(size), spec.type.dtype.numpy.itemsize,
                        f"an example input {spec.name!r} for batch {size}")
    return list(dict.fromkeys(sizes))


def notes(graph: Graph) -> list[str]:
    """One line when XLA will run on a CPU here and the model has ops XLA is measured to run slower there."""
    from irc.backends.tfemit.model import tf

    slow = sorted(op for op in CPU_SLOWER_OPS if any(node.op == op for node in graph.nodes))
    if not slow or tf().config.list_physical_devices("GPU"):
        return []
    ratio = max(CPU_SLOWER_OPS[op] for op in slow)
    line = (f"XLA on this CPU runs {', '.join(slow)} up to {ratio:.1f}x slower than TensorFlow's own kernels "
            "(benchmarks/backends.py --ops); a plain tf.function, or the cuda target, may serve this model faster")
    return [line]


def check(graph: Graph):
    """(node, status, reason) for every node: native, fallback or unsupported under XLA."""
    return _check(graph, "xla")


def compile_hlo(model, batch: int = 1, stage: str = "hlo") -> str:
    """The model's HLO (or StableHLO, ``stage="stablehlo"``) text for ``batch`` examples; an XLA compilation
    failure becomes a TargetError quoting XLA's reason."""
    from irc.backends.tfemit.model import tf

    try:
        if batch == 1 and stage == "hlo":
            return model.hlo()  # cached by the model
        arrays = model.example_inputs(batch)
        return model.function.experimental_get_compiler_ir(*[tf().constant(a) for a in arrays])(stage=stage)
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
