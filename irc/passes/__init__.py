"""irc's passes and the pass manager.

    from irc.passes import run_pipeline
    report = run_pipeline(graph, "canonicalize,fold-constants,fuse,dce")
    print(report.timing_table())

The registry (``PASSES``, an ``irc.registry.Registry``) imports the modules of the built-in passes and the
``irc.passes`` plugins before its first lookup. Passes written outside irc register themselves with
``@register_pass`` (on a Pass dataclass, a function over the graph, or a rewrite-rule pass), and are found through
``irc --load FILE.py`` or the ``irc.passes`` entry point group of an installed package (docs/extending.md).
"""

from __future__ import annotations

from irc.errors import PipelineError
from irc.passes.base import Pass, Stats, check_pass_class, option
from irc.passes.manager import PipelineReport, run_pipeline
from irc.registry import Registry, load_file, owner_of

# Built-in passes: name -> the module that registers it (the registry imports them before its first lookup).
BUILTIN_PASSES = {
    "canonicalize": "irc.passes.canonicalize",
    "fold-constants": "irc.passes.fold_constants",
    "cse": "irc.passes.cse",
    "dce": "irc.passes.dce",
    "fold-batchnorm": "irc.passes.fold_batchnorm",
    "fuse": "irc.passes.fuse",
    "tfl-fuse": "irc.passes.tfl_fuse",
    "tfl-fuse-lstm": "irc.passes.tfl_lstm",
    "layout": "irc.passes.layout",
    "quantize": "irc.passes.quantize",
    "quantize-weights": "irc.passes.quantize.weights",
    "split-complex": "irc.passes.split_complex",
    "hoist-invariants": "irc.passes.loops",
    "unroll-loops": "irc.passes.loops",
    # Passes a backend brings (its ``passes``); they run in its default pipeline and, by name, anywhere.
    "tflite-idioms": "irc.backends.tflite.legalize",
}

_SIMPLIFY = "canonicalize,fold-constants"
_CLEANUP = "cse,dce"
# Named pipelines, usable wherever a pass name is (``O2,layout{target=nchw}``) and as ``--pipeline NAME``.
PIPELINES = {
    "O0": "",
    "O1": f"{_SIMPLIFY},{_CLEANUP}",
    "O2": f"{_SIMPLIFY},fold-batchnorm,fuse,{_CLEANUP}",
    "O3": f"{_SIMPLIFY},fold-batchnorm,layout{{target=nhwc}},{_SIMPLIFY},fuse,{_CLEANUP}",
    # TFLite: LSTM loops as TFLite's fused LSTM, every batch norm folded, bias/pad fused into conv, depthwise and
    # matmul, then activations into conv, depthwise, matmul and arithmetic as tfl.* ops (the TFLite dialect).
    # Complex values become f32 pairs (TFLite's complex kernels are few, the transforms would be Flex ops, and its
    # RFFT2D was seen to overwrite other tensors under XNNPACK: docs/tflite.md).
    "tflite": f"{_SIMPLIFY},split-complex,tfl-fuse-lstm,fold-batchnorm,layout{{target=nhwc}},{_SIMPLIFY},"
              "fuse,tfl-fuse{activations=relu,relu6,relu_n1_to_1,tanh},cse,dce",
    # XLA fuses elementwise ops itself: fold what is constant and drop batch norms, keep the graph NHWC.
    "xla": f"{_SIMPLIFY},fold-batchnorm,layout{{target=nhwc}},{_SIMPLIFY},{_CLEANUP}",
    # CUDA: core ops with their biases fused; the backend's own fusion (irc/backends/cuda_fusion.py) then makes
    # TF's _FusedConv2D/_FusedMatMul from conv2d/matmul + bias + the activation op that follows.
    "cuda": f"{_SIMPLIFY},fold-batchnorm,layout{{target=nhwc}},{_SIMPLIFY},fuse,{_CLEANUP}",
}


def _adopt(name: str, obj) -> None:
    """An ``irc.passes`` entry point naming a Pass subclass or a pass function (named as the entry point)."""
    if isinstance(obj, type) and issubclass(obj, Pass):
        register_pass(obj)
    elif callable(obj):
        register_pass(obj, name=name)
    else:
        raise TypeError(f"expected a Pass subclass, a pass function or a module, got {obj!r}")


PASSES: Registry[type[Pass]] = Registry("pass", BUILTIN_PASSES.values(), "irc.passes", _adopt)


def register_pass(target=None, *, name: str | None = None, walks_regions: str | None = None):
    """Registers a pass. Use it bare or with a name, on a Pass dataclass or on a function.

    A function pass takes the graph and keyword-only options with defaults (their annotations are the option
    types); it may return a dict of statistics::

        @register_pass(name="drop-softmax")
        def drop_softmax(graph, *, keep_last: bool = False) -> dict: ...

    A name that is taken (by irc or a plugin) is refused, naming both definitions. ``walks_regions="each"`` has
    the manager apply the pass to every region graph (a loop body, an if's branches) too, innermost first; the
    default, ``"top"``, gives it the top graph only (docs/writing-passes.md, "Regions").
    """
    if walks_regions not in (None, "each", "top", "self"):
        raise ValueError(f"register_pass: walks_regions is {walks_regions!r}, not 'each', 'top' or 'self'")

    def decorate(obj):
        if isinstance(obj, type):
            if not issubclass(obj, Pass):
                raise TypeError(f"register_pass: class {obj.__qualname__} is not a Pass: derive it from "
                                "irc.passes.Pass (and make it a @dataclass(frozen=True))")
            cls = obj
            if name:
                cls.name = name
            check_pass_class(cls)
            if walks_regions:
                cls.walks_regions = walks_regions
        elif callable(obj):
            from irc.passes.custom import function_pass

            cls = function_pass(obj, name)
            cls.walks_regions = walks_regions or "top"
        else:
            raise TypeError(f"register_pass takes a Pass subclass or a function, got {obj!r}")
        if not cls.name:
            raise TypeError(f"pass {cls.__qualname__} has no name: set name = \"my-pass\" in the class")
        if cls.name in PIPELINES:
            raise ValueError(f"'{cls.name}' is the name of a pipeline")
        PASSES.add(cls.name, cls, owner_of(obj))
        return obj

    if target is not None:
        return decorate(target)
    return decorate


def get_pass(name: str) -> type[Pass]:
    """The pass class registered as ``name``; a PipelineError listing the valid names when there is none."""
    cls = PASSES.get(name)
    if cls is None:
        from irc.passes.pipeline import unknown_pass_error

        raise unknown_pass_error(name, PASSES.names(), list(PIPELINES))
    return cls


def available_passes() -> dict[str, type[Pass]]:
    """Every pass irc knows: built-ins (backends' included), installed plugins' and those registered since."""
    return PASSES.items()


def load_pass_file(path, option: str = "--load-pass") -> list[str]:
    """Imports a Python file that registers passes (and anything else); returns the pass names it registered."""
    before = PASSES.items()
    load_file(path, option)
    return [n for n, cls in PASSES.items().items() if before.get(n) is not cls]


__all__ = [
    "BUILTIN_PASSES", "PASSES", "PIPELINES", "Pass", "PipelineError", "PipelineReport", "Stats", "available_passes",
    "get_pass", "load_pass_file", "option", "register_pass", "run_pipeline",
]
