"""irc's passes and the pass manager.

    from irc.passes import run_pipeline
    report = run_pipeline(graph, "canonicalize,fold-constants,fuse{activations=relu,relu6},dce")
    print(report.timing_table())

The registry maps a pass name to the module that defines it, imported on first use. Passes written outside irc
register themselves with ``@register_pass`` (on a Pass dataclass, a function over the graph, or a rewrite-rule
pass), and are found through ``--load-pass FILE.py`` or the ``irc.passes`` entry point group of an installed package.
"""

from __future__ import annotations

import importlib

from irc.errors import PipelineError
from irc.passes.base import Pass, Stats, option
from irc.passes.manager import PipelineReport, run_pipeline

# Built-in passes: name -> module that registers it (imported lazily).
BUILTIN_PASSES = {
    "canonicalize": "irc.passes.canonicalize",
    "fold-constants": "irc.passes.fold_constants",
    "cse": "irc.passes.cse",
    "dce": "irc.passes.dce",
    "fold-batchnorm": "irc.passes.fold_batchnorm",
    "fuse": "irc.passes.fuse",
    "layout": "irc.passes.layout",
    "quantize": "irc.passes.quantize",
}

_SIMPLIFY = "canonicalize,fold-constants"
_CLEANUP = "cse,dce"
# Named pipelines, usable wherever a pass name is (``O2,layout{target=nchw}``) and as ``--pipeline NAME``.
PIPELINES = {
    "O0": "",
    "O1": f"{_SIMPLIFY},{_CLEANUP}",
    "O2": f"{_SIMPLIFY},fold-batchnorm,fuse,{_CLEANUP}",
    "O3": f"{_SIMPLIFY},fold-batchnorm,layout{{target=nhwc}},{_SIMPLIFY},fuse,{_CLEANUP}",
    # TFLite: every batch norm folded, bias/activation/pad fused into conv, depthwise, matmul and arithmetic.
    "tflite": f"{_SIMPLIFY},fold-batchnorm,layout{{target=nhwc}},{_SIMPLIFY},"
              "fuse{activations=relu,relu6,relu_n1_to_1,tanh},cse,dce",
    # XLA fuses elementwise ops itself: fold what is constant and drop batch norms, keep the graph NHWC.
    "xla": f"{_SIMPLIFY},fold-batchnorm,layout{{target=nhwc}},{_SIMPLIFY},{_CLEANUP}",
    # CUDA: TF's _FusedConv2D takes a bias and relu/relu6; append layout{target=nchw} for channels-first.
    "cuda": f"{_SIMPLIFY},fold-batchnorm,layout{{target=nhwc}},{_SIMPLIFY},fuse{{activations=relu,relu6}},"
            f"{_CLEANUP}",
}

_REGISTRY: dict[str, type[Pass]] = {}
_plugins_loaded = False


def register_pass(target=None, *, name: str | None = None):
    """Registers a pass. Use it bare or with a name, on a Pass dataclass or on a function.

    A function pass takes the graph and keyword-only options with defaults (their annotations are the option
    types); it may return a dict of statistics::

        @register_pass(name="drop-softmax")
        def drop_softmax(graph, *, keep_last: bool = False) -> dict: ...
    """

    def decorate(obj):
        if isinstance(obj, type) and issubclass(obj, Pass):
            cls = obj
            if name:
                cls.name = name
        elif callable(obj):
            from irc.passes.custom import function_pass

            cls = function_pass(obj, name)
        else:
            raise TypeError(f"register_pass takes a Pass subclass or a function, got {obj!r}")
        if not cls.name:
            raise TypeError(f"pass {cls.__qualname__} has no name")
        if cls.name in PIPELINES:
            raise ValueError(f"'{cls.name}' is the name of a pipeline")
        owner = BUILTIN_PASSES.get(cls.name)
        if owner is not None and owner != cls.__module__:
            raise ValueError(f"'{cls.name}' is a built-in pass; choose another name")
        _REGISTRY[cls.name] = cls  # a later registration of a user pass replaces an earlier one (reloads)
        return obj

    if target is not None:
        return decorate(target)
    return decorate


def get_pass(name: str) -> type[Pass]:
    """The pass class registered as ``name``; a PipelineError listing the valid names when there is none."""
    if name not in _REGISTRY and name in BUILTIN_PASSES:
        importlib.import_module(BUILTIN_PASSES[name])
    if name not in _REGISTRY:
        load_plugins()
    if name not in _REGISTRY:
        from irc.passes.pipeline import unknown_pass_error

        raise unknown_pass_error(name, sorted(available_passes()), list(PIPELINES))
    return _REGISTRY[name]


def available_passes() -> dict[str, type[Pass]]:
    """Every pass irc knows: built-ins, passes registered so far, and installed plugins'."""
    for module in BUILTIN_PASSES.values():
        importlib.import_module(module)
    load_plugins()
    return dict(sorted(_REGISTRY.items()))


def load_plugins() -> None:
    """Imports the ``irc.passes`` entry points of installed packages (once)."""
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        from irc.passes.custom import load_entry_points

        load_entry_points()


def load_pass_file(path) -> list[str]:
    """Imports a Python file that registers passes (``--load-pass``); returns the names it registered."""
    from irc.passes.custom import load_file

    return load_file(path)


__all__ = [
    "BUILTIN_PASSES", "PIPELINES", "Pass", "PipelineError", "PipelineReport", "Stats", "available_passes",
    "get_pass", "load_pass_file", "load_plugins", "option", "register_pass", "run_pipeline",
]
