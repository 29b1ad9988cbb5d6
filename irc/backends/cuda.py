"""The cuda target: the graph rebuilt as a TensorFlow function placed on ``/GPU:0``, for TensorFlow's CUDA kernels.

``irc lower MODEL --emit cuda -o out/`` writes ``out/`` as a SavedModel plus ``out/loader.py``, which turns on GPU
memory growth, loads the model and, on a machine without a GPU, says so once and runs it on the CPU. Convolutions
followed by relu (with their bias, or a zero one) become TensorFlow's ``_FusedConv2D``, cuDNN's fused
convolution-bias-activation; other combinations stay separate ops for TensorFlow's grappler to fuse.

``layout="nchw"`` runs irc's layout pass first (GPU convolutions prefer channels-first). TensorFlow's CPU
convolutions take only NHWC, so a model with NCHW ops also carries an NHWC ``serving_cpu`` signature for the
fallback (the graph before the layout pass); both share the weights.

``emit`` returns a ``CudaModel``: call it with tensors by input name, or ``.run`` it on numpy arrays.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

from irc.backends import register_backend
from irc.backends.base import Backend
from irc.backends.tfemit import EmitOptions, generate
from irc.backends.tfemit.support import check as _check
from irc.backends.tfemit.support import legalize
from irc.backends.tfemit.target import prepare, reject_options
from irc.errors import UsageError
from irc.ir.graph import Graph
from irc.outputs import DIRECTORY, atomic_dir, check_output

DEFAULT_PIPELINE = "cuda"
LAYOUT_PIPELINE = "layout{target=nchw},canonicalize,fold-constants,cse,dce"
DEVICE = "/GPU:0"
LAYOUTS = ("nhwc", "nchw")


def emit(graph: Graph, *, output: str | os.PathLike | None = None, passes: str | None = None,
         quantize: str | None = None, layout: str = "nhwc", force: bool = False, **options) -> CudaModel:
    """Lowers ``graph`` to a GPU-placed TensorFlow function; writes a SavedModel and its loader to ``output``
    (``force``: replacing what is there, see irc/outputs.py)."""
    reject_options("cuda", options)
    if output is not None:
        check_output(output, DIRECTORY, force)
    layout = (layout or "nhwc").lower()
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r} for the cuda target (layouts: {', '.join(LAYOUTS)})")
    graph = prepare(graph, passes, quantize, DEFAULT_PIPELINE)
    legalize(graph, "cuda")
    model = build(graph, layout)
    if output is not None:
        save(model, output, force)
    return model


def check(graph: Graph):
    """(node, status, reason) for every node: native on the GPU, CPU fallback, or unsupported."""
    return _check(graph, "cuda")


@register_backend
class CudaBackend(Backend):
    """A GPU-placed TensorFlow SavedModel with fused kernels, and its loader."""

    name = "cuda"
    default_pipeline = DEFAULT_PIPELINE
    writes = "directory"

    def emit(self, graph: Graph, options) -> CudaModel:
        return emit(graph, **options)

    def write(self, artifact: CudaModel, path, force: bool = False) -> None:
        save(artifact, path, force)

    def check(self, graph: Graph):
        return check(graph)


def build(graph: Graph, layout: str = "nhwc") -> CudaModel:
    """The GPU model for an optimized graph, and the CPU model it falls back to where it has NCHW ops."""
    from irc.backends.tfemit.model import TFModel

    gpu_graph = graph
    if layout == "nchw":
        from irc.passes import run_pipeline

        gpu_graph = graph.copy()
        run_pipeline(gpu_graph, LAYOUT_PIPELINE)
    gpu = TFModel(generate(gpu_graph, EmitOptions(fused_kernels=True)), device=DEVICE)
    cpu = None
    if has_nchw(gpu_graph):  # TensorFlow's CPU convolutions and pools take only NHWC
        cpu_options = EmitOptions(fused_kernels=True, nchw_as_nhwc=True)
        cpu = TFModel(generate(graph, cpu_options), device="/CPU:0", share=gpu.module.weights)
    return CudaModel(gpu, cpu, layout)


def has_nchw(graph: Graph) -> bool:
    return any(node.attrs.get("data_format") == "NCHW" for node in graph.nodes)


def save(model: CudaModel, output: str | os.PathLike, force: bool = False) -> Path:
    """Writes the SavedModel (``serving_default`` on the GPU, ``serving_cpu`` for NCHW models) and ``loader.py``."""
    with atomic_dir(output, force=force) as tmp:
        extra = {}
        if model.cpu is not None:
            model.gpu.module.cpu = model.cpu.module
            extra["serving_cpu"] = model.cpu.concrete_function()
        model.gpu.save(tmp, extra)
        shutil.copyfile(Path(__file__).parent / "tfemit" / "cuda_loader.py", tmp / "loader.py")
    return Path(output)


def load(path: str | os.PathLike):
    """The serving function of a SavedModel written by this target (see ``loader.py`` beside it)."""
    from irc.backends.tfemit.cuda_loader import load as load_cuda

    return load_cuda(path)


class CudaModel:
    """The GPU function, and the CPU one an NCHW model falls back to. Calls go to the GPU when there is one;
    without, the first call warns once and runs on the CPU."""

    def __init__(self, gpu, cpu, layout: str):
        self.gpu = gpu
        self.cpu = cpu
        self.layout = layout
        self._target = None

    @property
    def source(self):
        return self.gpu.source

    @property
    def target(self):
        """The TFModel calls run: the GPU one, or the CPU fallback where there is no GPU."""
        if self._target is None:
            from irc.backends.tfemit.model import tf

            if tf().config.list_physical_devices("GPU"):
                self._target = self.gpu
            else:
                warnings.warn("no GPU found: running irc's CUDA model on the CPU instead", RuntimeWarning,
                              stacklevel=3)
                self._target = self.cpu or self.gpu
        return self._target

    def __call__(self, *args, **kwargs) -> dict:
        return self.target(*args, **kwargs)

    def run(self, inputs):
        return self.target.run(inputs)
