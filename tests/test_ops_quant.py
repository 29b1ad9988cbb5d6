import numpy as np
import pytest
import tensorflow as tf

from irc.ir.types import DType, QuantParams, SymDim, TensorType
from irc.ops import infer_types, run_kernel
from tests.op_oracle import assert_close, rand, tf_run

B = SymDim("batch")


def tf_quantize(x, scale, zp, dtype, axis=None):
    """round-half-even(x / scale) + zero_point, clipped to the dtype, in TensorFlow."""
    info = np.iinfo(dtype.numpy)
    shape = [1] * x.ndim
    if axis is not None:
        shape[axis] = -1
    scale = np.reshape(np.asarray(scale, np.float64), shape)
    zp = np.reshape(np.asarray(zp, np.float64), shape)
    q = tf_run(lambda v: tf.clip_by_value(tf.round(tf.cast(v, tf.float64) / scale) + zp, info.min, info.max), x)[0]
    return q.astype(dtype.numpy)


@pytest.mark.parametrize("dtype,zp", [(DType.i8, -3), (DType.u8, 128), (DType.i16, 0)])
def test_quantize_dequantize_per_tensor(dtype, zp):
    x = rand(2, 3, 4, seed=1, low=-2, high=2)
    x[0, 0, :4] = [0.025, 0.075, -0.025, 100.0]  # halves round to even; out of range clips
    attrs = {"dtype": dtype, "scale": (0.05,), "zero_point": (zp,)}
    t = infer_types("quantize", [TensorType(DType.f32, (B, 3, 4))], attrs)[0]
    assert t == TensorType(dtype, (B, 3, 4), QuantParams((0.05,), (zp,)))
    q = run_kernel("quantize", [x], attrs)[0]
    assert q.dtype == dtype.numpy
    np.testing.assert_array_equal(q, tf_quantize(x, 0.05, zp, dtype))
    back = run_kernel("dequantize", [q], {"_types": ([t], [t.with_dtype(DType.f32)])})[0]
    want = tf_run(lambda v: (tf.cast(v, tf.float32) - zp) * 0.05, q)[0]
    assert back.dtype == np.float32
    assert_close(back, want)
    assert infer_types("dequantize", [t], {})[0] == TensorType(DType.f32, (B, 3, 4))


def test_quantize_per_axis_and_requantize():
    x = rand(2, 3, 4, seed=2, low=-1, high=1)
    attrs = {"dtype": DType.i8, "scale": (0.01, 0.02, 0.03), "zero_point": (0, 1, -1), "axis": 1}
    t = infer_types("quantize", [TensorType(DType.f32, (2, 3, 4))], attrs)[0]
    assert t.quant == QuantParams((0.01, 0.02, 0.03), (0, 1, -1), axis=1)
    q = run_kernel("quantize", [x], attrs)[0]
    np.testing.assert_array_equal(q, tf_quantize(x, attrs["scale"], attrs["zero_point"], DType.i8, axis=1))
    new = {"dtype": DType.u8, "scale": (0.02,), "zero_point": (128,)}
    t2 = infer_types("requantize", [t], new)[0]
    assert t2 == TensorType(DType.u8, (2, 3, 4), QuantParams((0.02,), (128,)))
    r = run_kernel("requantize", [q], {**new, "_types": ([t], [t2])})[0]
    scale, zp = np.reshape(attrs["scale"], (1, 3, 1)), np.reshape(attrs["zero_point"], (1, 3, 1))
    real = tf_run(lambda v: (tf.cast(v, tf.float64) - zp) * scale, q)[0]  # float64: no double rounding
    np.testing.assert_array_equal(r, tf_quantize(real, 0.02, 128, DType.u8))


def test_quant_rules():
    f = TensorType(DType.f32, (2, 3))
    base = {"dtype": DType.i8, "scale": (0.1,), "zero_point": (0,)}
    with pytest.raises(ValueError, match="float operand"):
        infer_types("quantize", [TensorType(DType.i32, (2, 3))], base)
    with pytest.raises(ValueError, match="dtype must be"):
        infer_types("quantize", [f], {**base, "dtype": DType.f16})
    with pytest.raises(ValueError, match="positive"):
        infer_types("quantize", [f], {**base, "scale": (0.0,)})
    with pytest.raises(ValueError, match="out of range"):
        infer_types("quantize", [f], {**base, "zero_point": (300,)})
    with pytest.raises(ValueError, match="3 scales for dim 0 of size 2"):
        infer_types("quantize", [f], {**base, "scale": (1.0, 1.0, 1.0), "zero_point": (0, 0, 0), "axis": 0})
    with pytest.raises(ValueError, match="exactly one scale"):
        infer_types("quantize", [f], {**base, "scale": (1.0, 1.0), "zero_point": (0, 0)})
    with pytest.raises(ValueError, match="quantized operand"):
        infer_types("dequantize", [f], {})
    with pytest.raises(ValueError, match="quantized operand"):
        infer_types("requantize", [f], base)
    with pytest.raises(ValueError, match="_types"):
        run_kernel("dequantize", [np.zeros(3, np.int8)], {})


def test_matches_interpreter_arithmetic():
    from irc.ir import interpreter as interp

    x = rand(3, 4, seed=3, low=-3, high=3)
    t = TensorType(DType.i8, (3, 4), QuantParams((0.02, 0.03, 0.05), (1, 0, -2), axis=0))
    attrs = {"dtype": DType.i8, "scale": t.quant.scale, "zero_point": t.quant.zero_point, "axis": 0}
    q = run_kernel("quantize", [x], attrs)[0]
    np.testing.assert_array_equal(q, interp.quantize(x, t))
    np.testing.assert_array_equal(run_kernel("dequantize", [q], {"_types": ([t], [])})[0], interp.dequantize(q, t))
