"""A generated model as a live TensorFlow program: a ``tf.Module`` holding the weights and a ``tf.function``.

``TFModel`` is what the xla and cuda backends return: call it like a signature function (keyword tensors by
input name, or positionally) to get a dict of output tensors, or ``run`` it on numpy arrays. ``save`` writes a
SavedModel whose ``serving_default`` signature is this function (``jit_compile`` and device placement included).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from irc.backends.tfemit.codegen import TF_DTYPES, ModelSource


def tf():
    """TensorFlow, imported on first use (``import irc`` stays TensorFlow-free), with its C++ logs quiet."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow

    return tensorflow


class TFModel:
    """``source`` built into a ``tf.function`` over ``tf.Variable`` weights.

    jit_compile: compile the function with XLA. device: place its ops (e.g. ``/GPU:0``); with TensorFlow's soft
    placement an op without a kernel there runs on the CPU. share: variables of another TFModel to reuse where a
    weight has the same name and value (two layouts of one model keep one copy of their common weights).
    """

    def __init__(self, source: ModelSource, *, jit_compile: bool = False, device: str | None = None,
                 share: Mapping | None = None):
        tf_ = tf()
        self.source = source
        self.jit_compile = jit_compile
        self.device = device
        self.module = tf_.Module(name=_module_name(source.name))
        weights = {}
        with tf_.device(device) if device else contextlib.nullcontext():
            for key, value in source.weights.items():
                old = (share or {}).get(key)
                if old is not None and tuple(old.shape) == value.shape and np.array_equal(old.numpy(), value):
                    weights[key] = old
                else:
                    weights[key] = tf_.Variable(value, trainable=False, name=_variable_name(key))
        self.module.weights = weights
        model = source.function()

        def serve(*args):
            if device:
                with tf_.device(device):
                    return model(weights, *args)
            return model(weights, *args)

        specs = [tf_.TensorSpec(spec.shape, _tf_dtype(spec.type.dtype), name=spec.arg) for spec in source.inputs]
        self.function = tf_.function(serve, input_signature=specs, jit_compile=jit_compile, autograph=False)
        self.module.serve = self.function
        self._hlo: str | None = None

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.source.inputs]

    @property
    def output_names(self) -> list[str]:
        return list(self.source.outputs)

    def concrete_function(self):
        return self.function.get_concrete_function()

    def __call__(self, *args, **kwargs) -> dict:
        """Runs the function: inputs positionally or by name (graph input names); returns output tensors by name."""
        if kwargs:
            by_arg = {spec.name: spec.arg for spec in self.source.inputs}
            named = {by_arg.get(k, k): v for k, v in kwargs.items()}
            missing = [s.name for s in self.source.inputs[len(args):] if s.arg not in named]
            if missing:
                raise TypeError(f"missing input(s): {', '.join(missing)}")
            args = list(args) + [named[s.arg] for s in self.source.inputs[len(args):]]
        return self.function(*args)

    def run(self, inputs) -> dict[str, np.ndarray]:
        """numpy in, numpy out, like ``irc.run``: ``inputs`` is a dict by input name, a list, or one array."""
        arrays = self._bind(inputs)
        return {k: v.numpy() for k, v in self.function(*arrays).items()}

    def example_inputs(self, batch: int = 1) -> list[np.ndarray]:
        """Zeros of each input's shape (unknown dims: ``batch`` for the first, else 1)."""
        return [np.zeros(spec.example_shape(batch), spec.type.dtype.numpy) for spec in self.source.inputs]

    def hlo(self, inputs=None) -> str:
        """The HLO module XLA receives for this function (on example inputs unless given), as text."""
        if inputs is None and self._hlo is not None:
            return self._hlo
        tf_ = tf()
        jitted = self.function if self.jit_compile else tf_.function(
            self.function.python_function, input_signature=self.function.input_signature, jit_compile=True,
            autograph=False)
        arrays = self._bind(inputs) if inputs is not None else self.example_inputs()
        text = jitted.experimental_get_compiler_ir(*[tf_.constant(a) for a in arrays])(stage="hlo")
        if inputs is None:
            self._hlo = text
        return text

    def save(self, path: str | os.PathLike, extra_signatures: Mapping[str, object] = ()) -> Path:
        """Writes a SavedModel: ``serving_default`` is this function; ``extra_signatures`` adds others by key."""
        tf_ = tf()
        signatures = {"serving_default": self.concrete_function()}
        for key, fn in dict(extra_signatures).items():
            signatures[key] = fn
        tf_.saved_model.save(self.module, str(path), signatures=signatures)
        return Path(path)

    def _bind(self, inputs) -> list[np.ndarray]:
        from irc.ir.graph import Graph
        from irc.ir.interpreter import bind_inputs

        shell = Graph()  # bind_inputs checks names, dtypes and shapes against typed inputs
        for spec in self.source.inputs:
            shell.add_input(spec.name, spec.type.with_quant(None) if spec.type.quant else spec.type)
        bound = bind_inputs(shell, inputs)
        return [bound[v] for v in shell.inputs]


def _tf_dtype(dtype):
    return getattr(tf(), TF_DTYPES[dtype].removeprefix("tf."))


def _module_name(name: str) -> str:
    text = re.sub(r"\W", "_", name)
    return text if text and not text[0].isdigit() else "model"


def _variable_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_./-]", "_", key)
