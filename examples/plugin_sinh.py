"""An irc plugin in one file: the op ``sinh``, from TensorFlow to TFLite.

    irc --load examples/plugin_sinh.py run model.irc --input x=x.npy     # irc's interpreter runs the kernel
    irc --load examples/plugin_sinh.py lower saved_model/ --emit tflite -o model.tflite

It adds
- the op ``sinh`` (its shape rule and its numpy kernel, which the interpreter, constant folding and
  ``irc run`` use),
- the lowering of TensorFlow's ``Sinh`` to it (``tf.math.sinh`` in a SavedModel, .pb or Keras model),
- its TFLite emitter: a custom op ``Sinh`` (TFLite has no builtin for it; the runtime that loads the file must
  register a kernel under that name).

docs/extending.md walks through it; tests/test_plugins.py runs it end to end.
"""

from __future__ import annotations

import numpy as np

from irc.backends.tflite.ops import emits
from irc.frontends.lowering import lowers
from irc.ops.base import ELEMENTWISE, PURE, OpDef, register


@register
class Sinh(OpDef):
    """sinh(x) = (exp(x) - exp(-x)) / 2, elementwise."""

    name = "sinh"
    summary = "Hyperbolic sine, elementwise."
    operands = ("x",)
    traits = frozenset({PURE, ELEMENTWISE})

    def infer(self, types, attrs, consts):
        (x,) = types
        if not x.dtype.is_float:
            raise ValueError(f"sinh takes a float tensor, got {x.dtype.value}")
        return [x]  # same shape and dtype as its operand

    def kernel(self, inputs, attrs):
        return [np.sinh(inputs[0])]


@lowers("Sinh")
def lower_sinh(cx, node, args):
    """TensorFlow's Sinh has one operand and no attributes irc needs."""
    return cx.op("sinh", args[0])


@emits("sinh")
def emit_sinh(b, node):
    """A TFLite custom op named ``Sinh`` over the operand's tensor."""
    b.op("CUSTOM", [b.tensor(node.operands[0])], [b.result(node.result)], custom_code="Sinh")
