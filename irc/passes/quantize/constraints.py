"""What TFLite's quantized kernels accept, as tables the quantize pass reads.

- ``INT8_OPS`` / ``INT16_OPS``: the irc ops whose TFLite kernels run on int8 (int16) activations. Anything else
  stays float between a DEQUANTIZE and a QUANTIZE.
- ``SAME_SCALE``: ops whose kernels move integers without rescaling, so the listed operands and every result must
  share one scale and zero point (TFLite checks this when it prepares the model: concat, pools, reshape ...).
- ``FIXED``: results whose parameters the kernel fixes (softmax and logistic int8 output 1/256 with zero point
  -128; tanh 1/128 with 0; the int16 versions 1/32768 with 0).
- ``weight_axis``: the per-channel axis of a filter or weight matrix (the output channels), or None where TFLite
  takes per-tensor weights only.

The parameter arithmetic follows TFLite's: activations are asymmetric int8 over a range nudged to hold 0 exactly,
int16 activations symmetric (zero point 0), weights symmetric int8 in [-127, 127] (``narrow_range``), biases
int32 (int64 with int16 activations) with scale input_scale * weight_scale and zero point 0.
"""

from __future__ import annotations

import math

import numpy as np

from irc.ir.graph import Node
from irc.ir.types import DType, QuantParams

MODES = ("float16", "dynamic-int8", "int8", "int16x8", "int8-weight-only", "int4-weight-only", "dynamic-int4")
WEIGHT_ONLY_MODES = ("int8-weight-only", "int4-weight-only", "dynamic-int4")  # weights.py: no calibration
ACTIVATION_DTYPE = {"int8": DType.i8, "int16x8": DType.i16}
BIAS_DTYPE = {"int8": DType.i32, "int16x8": DType.i64}

WEIGHT_OPS = frozenset({"conv2d", "depthwise_conv2d", "conv2d_transpose", "matmul", "batch_matmul"})
BIAS_OPERAND = 2  # conv2d, depthwise_conv2d, conv2d_transpose and matmul take (x, filter, bias?)
NEEDS_BIAS = ("conv2d", "depthwise_conv2d")  # TFLite's integer kernels fail without one

# ops with int8 TFLite kernels (their emitters write one operator per node, or several that share parameters)
INT8_OPS = frozenset({
    "conv2d", "depthwise_conv2d", "conv2d_transpose", "matmul", "batch_matmul",
    "add", "sub", "mul", "maximum", "minimum",
    "relu", "relu6", "leaky_relu", "hard_swish", "sigmoid", "tanh", "softmax", "log_softmax",
    "max_pool", "avg_pool", "mean", "sum", "max", "min",
    "reshape", "squeeze", "expand_dims", "transpose", "concat", "split", "pack", "unpack", "slice",
    "strided_slice", "gather", "pad", "resize", "tile", "broadcast_to",
    "shape", "argmax",
})
# TFLite's 16x8 kernels: a smaller set (int16 activations with int8 weights)
INT16_OPS = frozenset({
    "conv2d", "depthwise_conv2d", "matmul",
    "add", "sub", "mul", "maximum", "minimum",
    "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "softmax",
    "max_pool", "avg_pool", "mean", "sum", "max", "min",
    "reshape", "squeeze", "transpose", "concat", "split", "pack", "unpack", "slice", "strided_slice",
    "gather", "pad", "resize",
    "shape",
})
OPS = {"int8": INT8_OPS, "int16x8": INT16_OPS}

ALL = None  # every operand
# op -> the operands that share parameters with the results (TFLite's same-scale operators)
SAME_SCALE: dict[str, tuple[int, ...] | None] = {
    "reshape": (0,), "squeeze": (0,), "expand_dims": (0,), "transpose": (0,), "max_pool": (0,),
    "avg_pool": (0,), "max": (0,), "min": (0,), "split": (0,), "unpack": (0,), "slice": (0,),
    "strided_slice": (0,), "gather": (0,), "pad": (0,), "resize": (0,), "tile": (0,), "broadcast_to": (0,),
    "concat": ALL, "pack": ALL, "maximum": ALL, "minimum": ALL,
}

# op -> activation operands that must be symmetric (zero point 0): TFLite's BATCH_MATMUL ignores the right-hand
# side's zero point
SYMMETRIC: dict[str, tuple[int, ...]] = {"matmul": (1,), "batch_matmul": (1,)}

# (op, activation dtype) -> (scale, zero point) of its result
FIXED: dict[tuple[str, DType], tuple[float, int]] = {
    ("softmax", DType.i8): (1.0 / 256, -128),
    ("sigmoid", DType.i8): (1.0 / 256, -128),
    ("tanh", DType.i8): (1.0 / 128, 0),
    ("log_softmax", DType.i8): (16.0 / 256, 127),
    ("softmax", DType.i16): (1.0 / 32768, 0),
    ("sigmoid", DType.i16): (1.0 / 32768, 0),
    ("tanh", DType.i16): (1.0 / 32768, 0),
}

MIN_RANGE = 2e-6  # narrower calibrated ranges are widened to this (TF's converter does the same)
# TFLite quantizes a fused activation's bounds (up to 6 for RELU6) with the output scale into int32: a scale
# below 6 / 2**31 fails its overflow check. int8's MIN_RANGE gives 7.8e-9; int16 (symmetric, 32767 steps) gets
# the same floor rather than 3e-11.
MIN_SCALE = MIN_RANGE / 255

# TFLite's integer ADD/SUB rescale both inputs to 2 * max(input scales) / 2**shift and need the output multiplier
# below 1: the output scale must exceed 2 * max(input scales) / 2**shift (shift 20 for int8, 15 for int16)
RESCALED_ADD = ("add", "sub")
ADD_SHIFT = {DType.i8: 20, DType.i16: 15}

# activations the TFLite emitter cannot fuse into a quantized operator (it writes them as separate operators,
# which need parameters of their own): the quantize pass splits them off before calibrating
UNFUSABLE = ("tanh", "sigmoid")


def same_scale_operands(node: Node) -> tuple[int, ...]:
    spec = SAME_SCALE.get(node.core_op, ())
    return tuple(range(len(node.operands))) if spec is ALL else spec


def weight_axis(node: Node) -> int | None:
    """The output-channel axis of the node's weights operand (operand 1), or None for per-tensor weights."""
    w = node.operands[1].type
    if node.core_op == "conv2d":
        return 3
    if node.core_op == "depthwise_conv2d":
        # per channel only without a multiplier: TFLite's channel c*mult+m spans two irc axes otherwise
        return 2 if w.shape is not None and w.shape[3] == 1 else None
    if node.core_op == "conv2d_transpose":
        return 2
    if node.core_op == "matmul":
        return 0 if node.attr("transpose_b") else 1
    if node.core_op == "batch_matmul" and w.shape is not None and all(d == 1 for d in w.shape[:-2]):
        return len(w.shape) - (2 if node.attr("adj_y") else 1)
    return None


def output_channels(node: Node) -> int:
    """The output channel count of a conv2d or depthwise_conv2d (from its constant filter)."""
    shape = node.operands[1].type.shape
    return int(shape[3]) if node.core_op == "conv2d" else int(shape[2]) * int(shape[3])


def has_weights(node: Node) -> bool:
    """Whether operand 1 is a constant weight tensor of a conv or fully-connected (not a second activation)."""
    return node.core_op in WEIGHT_OPS and len(node.operands) > 1 and node.operands[1].is_constant


def integer_kernel(node: Node, mode: str) -> str | None:
    """None if TFLite has an integer kernel for this node in ``mode``, else why not."""
    if node.core_op not in OPS[mode]:
        return f"TFLite has no {mode} kernel for {node.op}"
    floats = [v for v in (*node.operands, *node.results) if v.type.dtype.is_float]
    if any(v.type.dtype is not DType.f32 or v.type.quant is not None for v in floats):
        return "only float32 tensors are quantized"
    if not any(v.type.dtype.is_float and not v.is_constant for v in node.operands):
        return "it has no float activation operand"
    if node.core_op in ("conv2d", "depthwise_conv2d", "conv2d_transpose"):
        if not node.operands[1].is_constant:
            return "its filter is computed, not constant"
        if len(node.operands) > 2 and not node.operands[2].is_constant:
            return "its bias is computed, not constant"
    if node.core_op == "matmul" and not node.operands[1].is_constant and len(node.operands) > 2:
        return "a matmul of two activations with a bias has no quantized TFLite kernel"
    if node.core_op == "matmul" and node.operands[1].is_constant and len(node.operands) > 2 \
            and not node.operands[2].is_constant:
        return "its bias is computed, not constant"
    return None


# ----- parameters ------------------------------------------------------------------------------------------------------
def activation_params(lo: float, hi: float, dtype: DType, symmetric: bool = False) -> QuantParams:
    """Per-tensor parameters for values in [lo, hi]: asymmetric int8/uint8 (unless ``symmetric``), symmetric int16."""
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"range [{lo}, {hi}] is not finite")
    if hi - lo < MIN_RANGE:
        # a (nearly) constant tensor: widen it as TF's converter does, so that its scale stays close to its
        # neighbours' (a scale far from theirs breaks TFLite's multiplier checks in ADD and the like)
        mid = (lo + hi) / 2
        lo, hi = mid - MIN_RANGE / 2, mid + MIN_RANGE / 2
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    info = np.iinfo(dtype.numpy)
    if symmetric or dtype is DType.i16:
        return QuantParams((max(max(-lo, hi) / info.max, MIN_SCALE),), (0,))
    scale = (hi - lo) / (info.max - info.min)
    zero = int(np.clip(round(info.min - lo / scale), info.min, info.max))
    return QuantParams((scale,), (zero,))


def weight_scales(w: np.ndarray, axis: int | None) -> np.ndarray:
    """Symmetric int8 scales (max |w| / 127), one per channel along ``axis`` or one for the tensor."""
    a = np.abs(np.asarray(w, np.float64))
    if axis is None:
        peak = np.asarray([a.max() if a.size else 0.0])
    else:
        peak = a.max(axis=tuple(i for i in range(a.ndim) if i != axis)) if a.size else np.zeros(w.shape[axis])
    scales = peak / 127.0
    return np.where(scales > 0, scales, 1.0)


def quantize_weights(w: np.ndarray, scales: np.ndarray, axis: int | None) -> np.ndarray:
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    q = np.rint(np.asarray(w, np.float64) / scales.reshape(shape) if axis is not None else w / scales[0])
    return np.clip(q, -127, 127).astype(np.int8)


def weight_params(scales: np.ndarray, axis: int | None) -> QuantParams:
    return QuantParams(tuple(float(s) for s in scales), (0,) * len(scales), axis)


def fit_bias(bias: np.ndarray | None, scales: np.ndarray, input_scale: float, dtype: DType) -> np.ndarray:
    """Weight scales raised where needed so that bias / (input_scale * scale) fits the bias dtype."""
    if bias is None:
        return scales
    limit = float(np.iinfo(dtype.numpy).max)
    need = np.abs(np.asarray(bias, np.float64)).reshape(-1) / (input_scale * limit)
    return np.maximum(scales, need) if need.size in (1, scales.size) else scales


def quantize_bias(bias: np.ndarray, scales: np.ndarray, dtype: DType) -> np.ndarray:
    info = np.iinfo(dtype.numpy)
    q = np.rint(np.asarray(bias, np.float64) / scales)
    return np.clip(q, info.min, info.max).astype(dtype.numpy)
