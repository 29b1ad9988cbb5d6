"""Quantization ops. ``real = scale * (q - zero_point)``, per tensor (axis -1) or per channel along ``axis``.

- ``quantize(x) {dtype, scale, zero_point, axis=-1}``: float -> integer; the result type carries the parameters.
- ``dequantize(x)``: integer -> f32, with the parameters of the operand's type (infer requires a quantized operand).
- ``requantize(x) {dtype, scale, zero_point, axis=-1}``: quantized -> quantized with new parameters.
- ``fake_quant(x) {min, max, num_bits=8, narrow_range=false}``: float -> float, TensorFlow's FakeQuantWithMinMax*
  (quantization-aware training): per tensor, or per channel of the last axis.

Kernels do not see types, so the ones that read the operand's parameters (dequantize, requantize) take them from
the attribute ``_types``: ``(operand_types, result_types)``, lists of TensorType, which the interpreter adds for
quant ops (``irc.ir.interpreter.run_node``). quantize needs only its own attributes. Rounding is to nearest, ties
to even (``np.rint``) in float64, then clipped to the dtype's range: the same as the interpreter's quantize.
``quantize_array`` and ``dequantize_array`` are that arithmetic, for anyone who needs it on arrays.
"""

from __future__ import annotations

import numpy as np

from irc.ir.types import DType, QuantParams, TensorType
from irc.ops.base import PURE, Attr, OpDef, normalize_axis, register

QUANT_DTYPES = (DType.i8, DType.u8, DType.i16, DType.i32)


def _param_arrays(q: QuantParams, ndim: int, shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point as float64 arrays that broadcast against an array of rank ``ndim`` (per axis: along
    ``q.axis``; blockwise: of ``shape``, one value per element). The one place that does this: the kernels here
    and the interpreter's quantized nodes use it."""
    scale = np.asarray(q.scale, dtype=np.float64)
    zp = np.asarray(q.zero_point, dtype=np.float64)
    if q.block_size is not None:
        return _blockwise(scale, q, shape), _blockwise(zp, q, shape)
    if q.axis is not None and ndim:
        shape = [1] * ndim
        shape[q.axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return scale, zp


def _blockwise(values: np.ndarray, q: QuantParams, shape) -> np.ndarray:
    """Per-block ``values`` ([channels, blocks], row by row) spread over a 2-D tensor of ``shape``."""
    if shape is None or len(shape) != 2:
        raise ValueError("blockwise quantization applies to 2-D tensors only")
    channels, length = shape[q.axis], shape[1 - q.axis]
    if length % q.block_size or values.size != channels * (length // q.block_size):
        raise ValueError(f"{values.size} block scales do not fit a {list(shape)} tensor in blocks of "
                         f"{q.block_size} along axis {1 - q.axis}")
    spread = np.repeat(values.reshape(channels, -1), q.block_size, axis=1)
    return spread if q.axis == 0 else spread.T


def quantize_array(x: np.ndarray, dtype: DType, q: QuantParams) -> np.ndarray:
    scale, zp = _param_arrays(q, x.ndim, np.shape(x))
    lo, hi = dtype.int_range
    with np.errstate(all="ignore"):
        out = np.rint(np.asarray(x, np.float64) / scale) + zp
    return np.clip(out, lo, hi).astype(dtype.numpy)


def dequantize_array(x: np.ndarray, q: QuantParams) -> np.ndarray:
    return _real(x, q).astype(np.float32)


def _real(x: np.ndarray, q: QuantParams) -> np.ndarray:
    scale, zp = _param_arrays(q, x.ndim, np.shape(x))
    return (x.astype(np.float64) - zp) * scale


def params_from_attrs(attrs: dict, x: TensorType) -> QuantParams:
    """The QuantParams that ``{dtype, scale, zero_point, axis}`` describe for an operand of type ``x``."""
    if attrs["dtype"] not in QUANT_DTYPES:
        raise ValueError(f"quantized dtype must be one of {', '.join(d.value for d in QUANT_DTYPES)}, "
                         f"got {attrs['dtype'].value}")
    scale, zp = tuple(float(s) for s in attrs["scale"]), tuple(attrs["zero_point"])
    if any(not s > 0 for s in scale):
        raise ValueError(f"scales must be positive, got {list(scale)}")
    info = np.iinfo(attrs["dtype"].numpy)
    if any(not info.min <= z <= info.max for z in zp):
        raise ValueError(f"zero points {list(zp)} are out of range for {attrs['dtype'].value}")
    axis = None
    if attrs["axis"] != -1:
        if x.shape is None:
            raise ValueError("per-axis quantization needs an operand of known rank")
        axis = normalize_axis(attrs["axis"], len(x.shape))
        if isinstance(x.shape[axis], int) and len(scale) != x.shape[axis]:
            raise ValueError(f"{len(scale)} scales for dim {axis} of size {x.shape[axis]}")
    return QuantParams(scale, zp, axis)  # checks the counts


def _operand_params(attrs: dict) -> QuantParams:
    types = attrs.get("_types")
    if types is None or types[0][0].quant is None:
        raise ValueError("this kernel needs the operand's quantized type in attribute _types "
                         "((operand_types, result_types), as the interpreter passes)")
    return types[0][0].quant


def _quant_attrs() -> dict[str, Attr]:
    return {"dtype": Attr("dtype"), "scale": Attr("floats"), "zero_point": Attr("ints"), "axis": Attr("int", -1)}


@register
class Quantize(OpDef):
    name = "quantize"
    summary = "Float to integer: round(x / scale) + zero_point, clipped; the result type carries the parameters."
    operands = ("x",)
    attrs = _quant_attrs()
    traits = frozenset({PURE})

    def infer(self, types, attrs, consts):
        x = types[0]
        if not x.dtype.is_float or x.quant is not None:
            raise ValueError(f"quantize takes a float operand, got {x}")
        return [TensorType(attrs["dtype"], x.shape, params_from_attrs(attrs, x))]

    def kernel(self, inputs, attrs):
        x = inputs[0]
        q = params_from_attrs(attrs, TensorType(DType.from_numpy(x.dtype), x.shape))
        return [quantize_array(x, attrs["dtype"], q)]


@register
class Dequantize(OpDef):
    name = "dequantize"
    summary = "Integer to f32 with the operand's quantization parameters: scale * (x - zero_point)."
    operands = ("x",)
    traits = frozenset({PURE})

    def infer(self, types, attrs, consts):
        x = types[0]
        if x.quant is None:
            raise ValueError(f"dequantize takes a quantized operand, got {x}")
        return [TensorType(DType.f32, x.shape)]

    def kernel(self, inputs, attrs):
        return [dequantize_array(inputs[0], _operand_params(attrs))]


@register
class Requantize(OpDef):
    name = "requantize"
    summary = "Changes a quantized tensor's parameters (and dtype): quantize(dequantize(x))."
    operands = ("x",)
    attrs = _quant_attrs()
    traits = frozenset({PURE})

    def infer(self, types, attrs, consts):
        x = types[0]
        if x.quant is None:
            raise ValueError(f"requantize takes a quantized operand, got {x}")
        return [TensorType(attrs["dtype"], x.shape, params_from_attrs(attrs, x))]

    def kernel(self, inputs, attrs):
        x = inputs[0]
        real = _real(x, _operand_params(attrs))
        q = params_from_attrs(attrs, TensorType(DType.from_numpy(x.dtype), x.shape))
        return [quantize_array(real, attrs["dtype"], q)]


# ----- fake quantization (quantization-aware training) -----------------------------------------------------------------
def nudged_range(lo, hi, num_bits: int, narrow_range: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """TensorFlow's FakeQuant nudging, in float32 as TF computes it: the range [lo, hi] moved so that 0 falls on a
    grid point. Returns (nudged_min, nudged_max, scale, zero_point) as float32 arrays shaped like ``lo``; the zero
    point counts from 0 (or 1 with ``narrow_range``) up to 2**num_bits - 1, as TF's unsigned grid does."""
    lo, hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    qmin, qmax = np.float32(1 if narrow_range else 0), np.float32((1 << num_bits) - 1)
    with np.errstate(all="ignore"):
        scale = ((hi - lo) / (qmax - qmin)).astype(np.float32)
        zero_from_min = qmin - lo / scale
        # std::round: half away from zero (zero_from_min >= qmin >= 0 where it is used)
        zero = np.where(zero_from_min < qmin, qmin, np.where(zero_from_min > qmax, qmax,
                                                              np.floor(zero_from_min + np.float32(0.5))))
        zero = zero.astype(np.float32)
        return ((qmin - zero) * scale).astype(np.float32), ((qmax - zero) * scale).astype(np.float32), scale, zero


def fake_quant_array(x: np.ndarray, lo, hi, num_bits: int, narrow_range: bool) -> np.ndarray:
    """TensorFlow's FakeQuantWithMinMax* in float32, bit for bit: clamp to the nudged range, snap to its grid,
    ``(floor((clamped - nudged_min) / scale + 0.5) - zero_point + qmin) * scale`` (TF 2.21's arithmetic). ``lo``
    and ``hi`` are scalars or per-channel vectors along the last axis. A channel with min = max = 0 gives zeros."""
    x = np.asarray(x, np.float32)
    lo, hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    nmin, nmax, scale, zero = nudged_range(lo, hi, num_bits, narrow_range)
    qmin = np.float32(1 if narrow_range else 0)
    with np.errstate(all="ignore"):
        inv = np.float32(1) / scale
        clamped = np.minimum(np.maximum(x, nmin), nmax)
        steps = np.floor((clamped - nmin) * inv + np.float32(0.5))
        out = (steps - (zero - qmin)) * scale
    return np.where((lo == 0) & (hi == 0), np.float32(0), out).astype(np.float32)


def check_fake_quant(lo, hi, num_bits: int) -> str | None:
    """Why these fake-quant parameters are invalid, or None."""
    if not 2 <= num_bits <= 16:
        return f"num_bits is {num_bits}; TensorFlow takes 2 to 16"
    lo, hi = np.asarray(lo, np.float64).reshape(-1), np.asarray(hi, np.float64).reshape(-1)
    if lo.size != hi.size or not lo.size:
        return f"min and max hold {lo.size} and {hi.size} values"
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return "its min and max must be finite"
    bad = np.flatnonzero(lo > hi)
    if bad.size:
        i = int(bad[0])
        where = f" (channel {i})" if lo.size > 1 else ""
        return f"min {lo[i]:g} is above max {hi[i]:g}{where}"
    return None


def _fake_quant_attrs() -> dict[str, Attr]:
    return {"min": Attr("floats"), "max": Attr("floats"), "num_bits": Attr("int", 8),
            "narrow_range": Attr("bool", False)}


@register
class FakeQuant(OpDef):
    name = "fake_quant"
    summary = ("Float quantization simulation (TF's FakeQuantWithMinMax*): clamp to [min, max] nudged so that 0 is "
               "on the grid, round to one of 2**num_bits levels (narrow_range: one fewer), back to float. min and "
               "max hold one value (per tensor) or one per channel of the last axis.")
    operands = ("x",)
    attrs = _fake_quant_attrs()
    traits = frozenset({PURE})

    def infer(self, types, attrs, consts):
        x = types[0]
        if x.dtype is not DType.f32 or x.quant is not None:
            raise ValueError(f"fake_quant takes a float32 operand, got {x}")
        lo, hi = attrs["min"], attrs["max"]
        if len(lo) != len(hi) or not lo:
            raise ValueError(f"min and max must hold the same number (at least one) of values, got {len(lo)} and "
                             f"{len(hi)}")
        why = check_fake_quant(lo, hi, attrs["num_bits"])
        if why is not None:
            raise ValueError(why)
        if len(lo) > 1:
            last = x.shape[-1] if x.shape else None
            if x.shape is not None and (not x.shape or (isinstance(last, int) and last != len(lo))):
                raise ValueError(f"{len(lo)} per-channel ranges for a last dimension of {last if x.shape else 'none'}")
        return [x]

    def kernel(self, inputs, attrs):
        return [fake_quant_array(inputs[0], attrs["min"], attrs["max"], attrs["num_bits"], attrs["narrow_range"])]

