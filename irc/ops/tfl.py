"""The ``tfl`` dialect: TFLite's operators that fuse an activation into an arithmetic, convolution, matmul, pool or
concatenation (``tfl.conv2d {fused_activation = "relu6"}``).

Core ops are target-neutral and carry no activation. The TFLite target's ``tfl-fuse`` pass (irc/passes/tfl_fuse.py)
turns ``relu(conv2d(...))`` into ``tfl.conv2d {fused_activation = "relu"}``, and the TFLite reader produces these ops
from a ``.tflite`` file's fused operators. Each ``tfl.X`` takes the operands and attributes of core op ``X`` plus
``fused_activation``; it shares ``X``'s shape rule and reference kernel, the activation applied after it (see
``Fusable``), so the interpreter, verifier, diff and stats work on TFLite-legalized graphs. A rewrite rule written
for a core op never matches a ``tfl`` form, so it cannot drop a fused activation it does not know about.
"""

from __future__ import annotations

from irc.ops import elementwise, nn, shape  # noqa: F401  (the core ops extended here)
from irc.ops.activation import Fusable
from irc.ops.base import fused_activation_attr, lookup, register

DIALECT = "tfl"
# core ops TFLite fuses an activation into (its operators' fused_activation_function option)
FUSABLE_OPS = ("add", "sub", "mul", "div", "conv2d", "depthwise_conv2d", "conv2d_transpose", "matmul",
               "max_pool", "avg_pool", "concat")


def fused_name(core: str) -> str:
    """``conv2d`` -> ``tfl.conv2d``."""
    return f"{DIALECT}.{core}"


def _declare(core: str) -> None:
    base = type(lookup(core))
    assert issubclass(base, Fusable), core
    register(type(f"Tfl{base.__name__}", (base,), {
        "name": fused_name(core),
        "dialect": DIALECT,
        "core": core,
        "attrs": {**base.attrs, "fused_activation": fused_activation_attr()},
        "summary": f"TFLite's {core} with a fused activation: {base.summary}",
        "__doc__": f"``{core}`` followed by its ``fused_activation``.",
    }))


for _core in FUSABLE_OPS:
    _declare(_core)
