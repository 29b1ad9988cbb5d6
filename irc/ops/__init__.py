"""The op registry. Each op family lives in its own module; ``get_op(name)`` finds any op by its name.

Families: core (const), elementwise (add, mul, relu, ...), nn (conv2d, conv3d, pools, batch_norm, softmax, ...),
shape (reshape, transpose, concat, slice, ...), indexing (cumsum, roll, dynamic slices,
top_k, gather_nd, scatters), reduce (mean, sum, ...), quant (quantize, dequantize),
complex (complex, real, imag, the FFTs),
control (while, if: ops that own regions) and tf_opaque (``tf.<OpName>`` nodes kept from TensorFlow).
The registry (``OPS``, see ``irc/registry.py``) loads these families and the ``irc.ops`` plugins before its first
lookup; ``@register`` adds an op from anywhere (``docs/extending.md``).

Dialects: core ops are target-neutral and have plain names. A target's own forms live in its namespace:
``tfl.*`` (irc/ops/tfl.py) are TFLite's operators with a fused activation, ``tf.*`` opaque TensorFlow ops.
"""

from __future__ import annotations

from irc.ops.base import FAMILIES, OPS, OpDef, lookup, register, registered_ops


def get_op(name: str) -> OpDef:
    """The declaration of op ``name``; ``tf.<OpName>`` gives the opaque TensorFlow op."""
    if name.startswith("tf."):
        from irc.ops.tf_opaque import OPAQUE

        return OPAQUE
    op = lookup(name)
    if op is None:
        raise KeyError(f"unknown op {name!r}")
    return op


def all_ops() -> dict[str, OpDef]:
    return registered_ops()


def infer_types(name, types, attrs, consts=None, regions=()):
    """Result types of op ``name`` applied to operands of ``types`` (attribute defaults filled in); an op with
    regions (``while``, ``if``) reads them from its ``regions``."""
    op = get_op(name)
    if (why := op.check_arity(len(types))) is not None:
        raise ValueError(f"{name} {why}")
    if (why := op.check_region_count(len(regions))) is not None:
        raise ValueError(f"{name} {why}")
    problems = op.check_attrs(attrs)
    if problems:
        raise ValueError(f"{name}: {'; '.join(problems)}")
    if op.regions:
        return op.infer_regions(list(types), op.with_defaults(attrs), tuple(regions))
    consts = list(consts) if consts is not None else [None] * len(types)
    return op.infer(list(types), op.with_defaults(attrs), consts)


def run_kernel(name, inputs, attrs):
    """Runs op ``name``'s numpy reference kernel; returns a list of arrays."""
    op = get_op(name)
    return op.kernel(list(inputs), op.with_defaults(attrs))


__all__ = ["FAMILIES", "OPS", "OpDef", "all_ops", "get_op", "infer_types", "register", "run_kernel"]
