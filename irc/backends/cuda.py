"""The cuda target: the graph rebuilt as a TensorFlow function placed on ``/GPU:0``, for TensorFlow's CUDA kernels.

``irc lower MODEL --emit cuda -o out/`` writes ``out/`` as a SavedModel plus ``out/loader.py``, which turns on GPU
memory growth, loads the model and, on a machine without a GPU, says so once and runs it on the CPU. Every conv2d
and matmul, with its bias (or a zero one) and its activation where TensorFlow's kernels take it, becomes
``_FusedConv2D`` / ``_FusedMatMul`` (``cuda_fusion.py``).

Options: ``layout="nchw"`` runs irc's layout pass first (GPU convolutions prefer channels-first); ``precision``
``fp16`` or ``bf16`` computes in half precision with half-precision weights (``precision.py``); ``jit=True``
compiles the GPU function with XLA (which fuses on its own: no fused TF ops then).

TensorFlow's CPU kernels take neither NCHW convolutions nor float16 fused ones, so such a model's ``serving_default``
signature is the portable one (NHWC, the graph before the layout pass, fused as the CPU kernels allow, on whatever
device TensorFlow picks) and ``serving_gpu`` the GPU one placed on ``/GPU:0``; both share the weights. ``loader.py`` picks ``serving_gpu`` when there is a GPU.

``emit`` returns a ``CudaModel``: call it with tensors by input name, or ``.run`` it on numpy arrays.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections import Counter
from pathlib import Path

from irc.backends import cuda_fusion, register_backend
from irc.backends import precision as _precision
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
         quantize: str | None = None, layout: str = "nhwc", precision: str | None = None, jit: bool = False,
         force: bool = False, **options) -> CudaModel:
    """Lowers ``graph`` to a GPU-placed TensorFlow function; writes a SavedModel and its loader to ``output``
    (``force``: replacing what is there, see irc/outputs.py)."""
    reject_options("cuda", options)
    if output is not None:
        check_output(output, DIRECTORY, force)
    layout = (layout or "nhwc").lower()
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r} for the cuda target (layouts: {', '.join(LAYOUTS)})")
    dtype = _precision.parse(precision)
    graph = prepare(graph, passes, quantize, DEFAULT_PIPELINE)
    legalize(graph, "cuda")
    _precision.to_half(graph, dtype)
    model = build(graph, layout, jit=jit)
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

    def notes(self, graph: Graph) -> list[str]:
        return notes(graph)


def notes(graph: Graph | None = None) -> list[str]:
    """One line when this TensorFlow cannot run the cuda output on a GPU (no CUDA build, or no GPU visible)."""
    from irc.backends.tfemit.model import tf

    tf_ = tf()
    if not tf_.test.is_built_with_cuda():
        line = (f"this TensorFlow ({tf_.__version__}) is built without CUDA, so the cuda output will run on the CPU "
                "here; for GPUs install irc[cuda] (TensorFlow with CUDA) instead of irc[tf]")
        return [line]
    if not tf_.config.list_physical_devices("GPU"):
        return ["TensorFlow is built with CUDA but sees no GPU here, so the cuda output will run on the CPU"]
    return []


def build(graph: Graph, layout: str = "nhwc", *, jit: bool = False) -> CudaModel:
    """The GPU model for an optimized graph, and the portable one where the CPU cannot run the GPU one."""
    from irc.backends.tfemit.model import TFModel

    gpu_graph = graph.copy()
    if layout == "nchw":
        from irc.passes import run_pipeline

        run_pipeline(gpu_graph, LAYOUT_PIPELINE)
    gpu_fused = Counter() if jit else cuda_fusion.fuse(gpu_graph, "gpu")  # XLA fuses on its own
    gpu = TFModel(generate(gpu_graph, EmitOptions()), device=DEVICE, jit_compile=jit)
    cpu_graph = graph.copy()
    cpu_fused = cuda_fusion.fuse(cpu_graph, "cpu")
    cpu = None
    # TensorFlow's CPU kernels take neither NCHW convolutions and pools nor float16 fused convolutions
    if layout == "nchw" or cpu_fused != gpu_fused:
        cpu = TFModel(generate(cpu_graph, EmitOptions(nchw_as_nhwc=True)), share=gpu.module.weights)
    return CudaModel(gpu, cpu, layout)


def save(model: CudaModel, output: str | os.PathLike, force: bool = False) -> Path:
    """Writes the SavedModel and ``loader.py``: ``serving_default`` runs anywhere; a GPU function the CPU cannot
    run (NCHW, float16 fused convolutions) is ``serving_gpu``."""
    with atomic_dir(output, force=force) as tmp:
        if model.cpu is not None:
            model.cpu.module.gpu = model.gpu.module
            model.cpu.save(tmp, {"serving_gpu": model.gpu.concrete_function()})
        else:
            model.gpu.save(tmp)
        shutil.copyfile(Path(__file__).parent / "tfemit" / "cuda_loader.py", tmp / "loader.py")
    return Path(output)


def load(path: str | os.PathLike):
    """The serving function of a SavedModel written by this target (see ``loader.py`` beside it)."""
    from irc.backends.tfemit.cuda_loader import load as load_cuda

    return load_cuda(path)


class CudaModel:
    """The GPU function, and the portable one (None where the GPU one runs anywhere). Calls go to the GPU when
    there is one; without, the first call warns once and runs the portable function on the CPU."""

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
