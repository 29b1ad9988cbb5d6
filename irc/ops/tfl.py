"""The ``tfl`` dialect: TFLite's operators that fuse an activation into an arithmetic, convolution, matmul, pool or
concatenation (``tfl.conv2d {fused_activation = "relu6"}``).

Core ops are target-neutral and carry no activation. The TFLite target's ``tfl-fuse`` pass (irc/passes/tfl_fuse.py)
turns ``relu(conv2d(...))`` into ``tfl.conv2d {fused_activation = "relu"}``, and the TFLite reader produces these ops
from a ``.tflite`` file's fused operators. Each ``tfl.X`` takes the operands and attributes of core op ``X`` plus
``fused_activation``; it shares ``X``'s shape rule and reference kernel, the activation applied after it (see
``Fusable``), so the interpreter, verifier, diff and stats work on TFLite-legalized graphs. A rewrite rule written
for a core op never matches a ``tfl`` form, so it cannot drop a fused activation it does not know about.

``tfl.unidirectional_sequence_lstm`` is TFLite's fused LSTM layer: the ``while`` a Keras ``LSTM`` lowers to,
recognized by the ``tfl-fuse-lstm`` pass (irc/passes/tfl_lstm.py) and written as one UNIDIRECTIONAL_SEQUENCE_LSTM.
"""

from __future__ import annotations

import numpy as np

from irc.ir.types import TensorType
from irc.ops import elementwise, nn, shape  # noqa: F401  (the core ops extended here)
from irc.ops.activation import Fusable
from irc.ops.base import Attr, OpDef, fused_activation_attr, lookup, register
from irc.ops.shape import merge_dims

DIALECT = "tfl"
# core ops TFLite fuses an activation into (its operators' fused_activation_function option)
FUSABLE_OPS = ("add", "sub", "mul", "div", "conv2d", "depthwise_conv2d", "conv2d_transpose", "conv3d",
               "conv3d_transpose", "matmul", "max_pool", "avg_pool", "concat")


def fused_name(core: str) -> str:
    """``conv2d`` -> ``tfl.conv2d``."""
    return f"{DIALECT}.{core}"


def _declare(core: str, **overrides) -> None:
    base = type(lookup(core))
    assert issubclass(base, Fusable), core
    register(type(f"Tfl{base.__name__}", (base,), {
        "name": fused_name(core),
        "dialect": DIALECT,
        "core": core,
        "attrs": {**base.attrs, "fused_activation": fused_activation_attr()},
        "summary": f"TFLite's {core} with a fused activation: {base.summary}",
        "__doc__": f"``{core}`` followed by its ``fused_activation``.",
        **overrides,
    }))


def _fully_connected_infer(self, types, attrs, consts):
    """As matmul's, but ``a`` may have more than two dims: TFLite's FULLY_CONNECTED with keep_num_dims multiplies
    over a's last dim and keeps the others (``[..., k] @ [k, n] -> [..., n]``), so the reshapes that TensorFlow's
    Tensordot puts around a matmul need not be written (the tflite-idioms pass folds them)."""
    a = types[0]
    if a.shape is None or len(a.shape) <= 2:
        return nn.MatMul.infer(self, types, attrs, consts)
    if attrs["transpose_a"]:
        raise ValueError(f"transpose_a takes a rank-2 a, a has rank {len(a.shape)}")
    [out] = nn.MatMul.infer(self, [a.with_shape((None, a.shape[-1])), *types[1:]], attrs, consts)
    return [out.with_shape(a.shape[:-1] + out.shape[-1:])]


for _core in FUSABLE_OPS:
    if _core == "matmul":
        _declare(_core, infer=_fully_connected_infer,
                 summary="TFLite's FULLY_CONNECTED: matmul with a fused activation; a may have leading dims, kept "
                         "(keep_num_dims).")
    else:
        _declare(_core)


# ----- fused recurrent layers ----------------------------------------------------------------------------------------
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@register
class UnidirectionalSequenceLSTM(OpDef):
    """Keras's LSTM over a whole sequence: for each step t, ``z = x[t] @ kernel + h @ recurrent_kernel + bias``
    split into gates i, f, g, o (Keras's order); ``c = sigmoid(f) * c + sigmoid(i) * tanh(g)`` (clipped to
    ``[-cell_clip, cell_clip]`` when ``cell_clip > 0``), ``h = sigmoid(o) * tanh(c)``; the result is every h.

    The weights keep Keras's layout (``kernel`` [features, 4 units], ``recurrent_kernel`` [units, 4 units]); the
    TFLite emitter splits them per gate as UNIDIRECTIONAL_SEQUENCE_LSTM takes them. TFLite keeps the state in
    variable tensors that start at zero, so ``h0`` and ``c0`` are written into them before the operator when they
    are not constant zeros.
    """

    name = "tfl.unidirectional_sequence_lstm"
    dialect = DIALECT
    summary = "TFLite's fused LSTM layer over a sequence (Keras gate order i, f, g, o); every step's h."
    operands = ("x", "kernel", "recurrent_kernel", "bias", "h0", "c0")
    attrs = {"time_major": Attr("bool", False), "cell_clip": Attr("float", 0.0)}

    def infer(self, types, attrs, consts):
        x, kernel, recurrent, bias, h0, c0 = types
        if len({t.dtype for t in types}) != 1 or not x.dtype.is_float:
            raise ValueError(f"takes float operands of one dtype, got {', '.join(t.dtype.value for t in types)}")
        for t, rank, name in [(x, 3, "x"), (kernel, 2, "kernel"), (recurrent, 2, "recurrent_kernel"),
                              (bias, 1, "bias"), (h0, 2, "h0"), (c0, 2, "c0")]:
            if t.shape is not None and len(t.shape) != rank:
                raise ValueError(f"{name} must have rank {rank}, got {t}")
        units = recurrent.shape[0] if recurrent.shape is not None else None
        if isinstance(units, int):
            for t, name in [(kernel, "kernel"), (recurrent, "recurrent_kernel"), (bias, "bias")]:
                if t.shape is not None:
                    merge_dims(t.shape[-1], 4 * units, f"{name}'s last dimension and 4 x units")
        if x.shape is None:
            return [TensorType(x.dtype, None)]
        time, batch = (x.shape[0], x.shape[1]) if attrs["time_major"] else (x.shape[1], x.shape[0])
        if kernel.shape is not None:
            merge_dims(x.shape[2], kernel.shape[0], "x's features and kernel's rows")
        for t, name in [(h0, "h0"), (c0, "c0")]:
            if t.shape is not None:
                batch = merge_dims(batch, t.shape[0], f"{name}'s batch and x's")
                merge_dims(t.shape[1], units, f"{name}'s units and recurrent_kernel's")
        dims = (time, batch, units) if attrs["time_major"] else (batch, time, units)
        return [TensorType(x.dtype, dims)]

    def kernel(self, inputs, attrs):
        x, kernel, recurrent, bias, h, c = inputs
        if not attrs["time_major"]:
            x = np.swapaxes(x, 0, 1)
        clip = float(attrs["cell_clip"])
        outputs = []
        for step in x:
            i, f, g, o = np.split(step @ kernel + h @ recurrent + bias, 4, axis=-1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            if clip > 0:
                c = np.clip(c, -clip, clip)
            h = _sigmoid(o) * np.tanh(c)
            outputs.append(h)
        y = np.stack(outputs).astype(x.dtype) if outputs else np.zeros((0,) + h.shape, x.dtype)
        return [y if attrs["time_major"] else np.swapaxes(y, 0, 1)]
