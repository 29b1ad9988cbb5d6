"""TFLite emitters for recurrent layers and sequence ops: ``tfl.unidirectional_sequence_lstm`` and ``reverse``.

UNIDIRECTIONAL_SEQUENCE_LSTM takes 24 inputs in a fixed order (TFLite's ``lstm_shared.h``): the input, four
input-to-gate and four recurrent-to-gate weight matrices ([units, features] and [units, units], gates input,
forget, cell, output), three peephole weights (omitted: -1), four gate biases, projection weights and bias
(omitted), the output state and the cell state, and four layer-norm coefficients (omitted). The two states are
variable tensors: TFLite updates them in place, step by step, and they start at zero. They also keep their last
value from one invoke to the next, so irc writes the initial state into them with a RESHAPE at the start of every
invoke (which a non-zero initial state needs anyway); TensorFlow's converter does not, and its files give
different outputs on a second invoke.
"""

from __future__ import annotations

import numpy as np

from irc.backends.tflite.kernel_limits import LIMITS
from irc.backends.tflite.ops import emits
from irc.backends.tflite.ops_nn import reshaped
from irc.ir.graph import Node

LSTM_INPUTS = 24
_OUTPUT_STATE, _CELL_STATE = 18, 19


def _lstm_check(node: Node) -> str | None:
    x, kernel, recurrent, bias = node.operands[:4]
    if not all(v.is_constant for v in (kernel, recurrent, bias)):
        return "UNIDIRECTIONAL_SEQUENCE_LSTM needs constant weights and biases"
    if x.type.dtype.value != "f32" or x.type.quant is not None:
        return "irc writes UNIDIRECTIONAL_SEQUENCE_LSTM in float32 only"
    if x.type.rank != 3 or any(v.type.shape is None or sum(not isinstance(d, int) for d in v.type.shape) > 1
                               for v in node.operands[4:]):
        return "UNIDIRECTIONAL_SEQUENCE_LSTM needs a rank-3 input and states with at most the batch unknown"
    return None


def _gates(array: np.ndarray) -> list[np.ndarray]:
    """Keras's [rows, 4 units] (gates i, f, g, o) as TFLite's four [units, rows] matrices (a bias: four vectors)."""
    return [np.ascontiguousarray(part.T) for part in np.split(array, 4, axis=-1)]


@emits("tfl.unidirectional_sequence_lstm", check=_lstm_check)
def unidirectional_sequence_lstm(b, node):
    x, kernel, recurrent, bias, h0, c0 = node.operands
    weights = [b.constant(w, name=f"{b.name_of(node)}/{kind}_{gate}")
               for kind, array in (("kernel", kernel.constant), ("recurrent_kernel", recurrent.constant))
               for gate, w in zip("ifco", _gates(array))]
    biases = [b.constant(v, name=f"{b.name_of(node)}/bias_{gate}") for gate, v in zip("ifco", _gates(bias.constant))]
    states = []
    for value, suffix in ((h0, "output_state"), (c0, "cell_state")):
        state = b.variable(value.type, suffix)
        b.op("RESHAPE", [b.tensor(value), b.int_vector([d if isinstance(d, int) else -1
                                                          for d in value.type.shape])], [state])
        states.append(state)
    inputs = [-1] * LSTM_INPUTS
    inputs[0] = b.tensor(x)
    inputs[1:9] = weights
    inputs[12:16] = biases
    inputs[_OUTPUT_STATE], inputs[_CELL_STATE] = states
    fields = {"fused_activation_function": "TANH", "cell_clip": float(node.attr("cell_clip")),
              "time_major": bool(node.attr("time_major"))}
    b.op("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, [b.result(node.result)], fields)


@emits("reverse")
def reverse(b, node):
    x = node.operands[0]
    axes = sorted({a % x.type.rank for a in node.attr("axes")})
    runs = [[axes[0]]] if axes else [[]]  # TFLite's kernel takes contiguous axes only: one operator per run
    for axis in axes[1:]:
        if axis == runs[-1][-1] + 1:
            runs[-1].append(axis)
        else:
            runs.append([axis])
    current = b.tensor(x)
    for i, run in enumerate(runs):
        out = b.result(node.result) if i == len(runs) - 1 else b.temp(node.result.type, f"reverse{i}")
        _reverse_run(b, node, current, run, out)
        current = out


def _reverse_run(b, node: Node, x: int, run: list[int], out: int) -> None:
    """REVERSE_V2 of tensor ``x`` over contiguous axes ``run``. Past the kernel's 8 dims (reverse.cc) the tensor is
    reshaped to [before, run, after] around it: reversing a run of axes reverses their merged axis."""
    dims = list(b.tensors[x].shape_signature or b.tensors[x].shape)
    if len(dims) <= LIMITS["REVERSE_V2"].rank or sum(d < 0 for d in dims) > 1 or not run:
        b.op("REVERSE_V2", [x, b.int_vector(run)], [out])  # (kernel_limits refuses what is still too big)
        return
    groups = (dims[:run[0]], dims[run[0]:run[-1] + 1], dims[run[-1] + 1:])
    merged = [-1 if any(d < 0 for d in g) else int(np.prod(g, dtype=np.int64)) for g in groups]
    inner = reshaped(b, x, node.result.type, merged, "merged")
    reversed_ = b.temp(node.result.type.with_shape(tuple(None if d < 0 else d for d in merged)), "merged_reversed")
    b.op("REVERSE_V2", [inner, b.int_vector([1])], [reversed_])
    b.op("RESHAPE", [reversed_, b.int_vector(dims)], [out])
