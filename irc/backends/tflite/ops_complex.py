"""TFLite emitters for complex numbers and Fourier transforms.

TFLite has builtins for ``real``, ``imag``, ``complex_abs`` (REAL, IMAG, COMPLEX_ABS, any rank) and for the
real 2-D transform RFFT2D, whose kernel (Ooura's rdft2d) takes power-of-two lengths of at least 2 only.
TensorFlow's converter writes ``rfft`` as an RFFT2D over a [1, n] plane, outside that contract: in TFLite's
interpreter with XNNPACK such a file was seen to overwrite another tensor's data, so irc does not (and TFLite's
SLICE takes no complex tensor to cut a taller plane down). The complex transforms, the inverse real ones,
``rfft`` and ``complex`` are Flex ops (a NodeDef irc writes itself), as TensorFlow's converter makes them, which
need the Flex delegate at run time; the ``tflite`` pipeline's ``split-complex`` pass leaves none of them where
the dims are static. ``complex(x, 0)`` (how Keras' fft2 starts from a real tensor) is a CAST.
"""

from __future__ import annotations

import numpy as np

from irc.backends.tflite.ops import emits
from irc.formats.tflite.flatbuffer import FLEX_PREFIX, flex_options
from irc.formats.tflite.opnames import COMPLEX_PARTS, FLEX_CORE
from irc.formats.tfproto import MESSAGES
from irc.ir.graph import Node
from irc.passes.split_complex import power_of_two

# The type attributes of each Flex op's NodeDef; the values are TF's DataType enum (float 1, complex64 8)
TYPE_ATTRS = {
    "complex": {"T": 1, "Tout": 8},
    **{op: {"Tcomplex": 8} for op in ("fft", "ifft", "fft2d", "ifft2d")},
    **{op: {"Treal": 1, "Tcomplex": 8} for op in ("rfft", "irfft", "rfft2d", "irfft2d")},
}


@emits(*COMPLEX_PARTS)
def part(b, node):
    b.op(COMPLEX_PARTS[node.op], [b.tensor(node.operands[0])], [b.result(node.result)])


def node_def(node: Node, inputs: list[str]) -> bytes:
    """The serialized NodeDef of ``node``'s TensorFlow op, for its Flex operator."""
    tf_op = FLEX_CORE[node.op]
    msg = MESSAGES["NodeDef"](name=f"{tf_op}_{node.seq}", op=tf_op, input=inputs)
    for key, dtype in TYPE_ATTRS[node.op].items():
        msg.attr.add(key=key, value=MESSAGES["AttrValue"](type=dtype))
    return msg.SerializeToString(deterministic=True)


def flex(b, node: Node, inputs: list[int], names: list[str]) -> None:
    tf_op = FLEX_CORE[node.op]
    b.op("CUSTOM", inputs, [b.result(node.result)], custom_code=FLEX_PREFIX + tf_op,
         custom_options=flex_options(tf_op, node_def(node, names)))


def _zero(v) -> bool:
    return v.is_constant and not np.any(v.constant)


def _complex_check(node: Node) -> str | None:
    re, im = (v.type for v in node.operands)
    if re.shape != im.shape and not _zero(node.operands[1]):
        return "TensorFlow's Complex kernel (a Flex op) does not broadcast: give both parts one shape"
    return None


@emits("complex", check=_complex_check)
def complex_(b, node):
    re, im = node.operands
    out = node.result
    if _zero(im) and re.type.shape == out.type.shape:
        b.op("CAST", [b.tensor(re)], [b.result(out)], {"in_data_type": "FLOAT32", "out_data_type": "COMPLEX64"})
        return
    flex(b, node, [b.tensor(re), b.tensor(im)], ["real", "imag"])


@emits("fft", "ifft", "fft2d", "ifft2d")
def transform(b, node):
    flex(b, node, [b.tensor(node.operands[0])], ["input"])


@emits("rfft", "rfft2d", "irfft", "irfft2d")
def real_transform(b, node):
    x = node.operands[0]
    lengths = list(node.attr("fft_length"))
    if node.op != "rfft2d" or not power_of_two(lengths):
        flex(b, node, [b.tensor(x), b.int_vector(lengths)], ["input", "fft_length"])
        return
    b.op("RFFT2D", [b.tensor(x), b.int_vector(lengths)], [b.result(node.result)])
