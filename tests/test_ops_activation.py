import math

import numpy as np
import pytest
import tensorflow as tf

from irc.ir.types import DType, SymDim, TensorType
from irc.ops import get_op, infer_types
from irc.ops.activation import erf
from irc.ops.base import ELEMENTWISE, FUSABLE_ACTIVATION, LAYOUT_AGNOSTIC
from tests.op_oracle import check, rand, tf_run

UNARY = {
    "relu": (tf.nn.relu, {}), "relu6": (tf.nn.relu6, {}), "sigmoid": (tf.sigmoid, {}), "tanh": (tf.tanh, {}),
    "hard_swish": (lambda x: x * tf.nn.relu6(x + 3) / 6, {}), "elu": (tf.nn.elu, {}),
    "softplus": (tf.nn.softplus, {}), "silu": (tf.nn.silu, {}),
    "leaky_relu": (tf.nn.leaky_relu, {}),
    "leaky_relu-0.01": (lambda x: tf.nn.leaky_relu(x, 0.01), {"alpha": 0.01}),
    "gelu": (tf.nn.gelu, {}), "gelu-tanh": (lambda x: tf.nn.gelu(x, approximate=True), {"approximate": True}),
}


@pytest.mark.parametrize("key", sorted(UNARY))
def test_unary_activation(key):
    tf_fn, attrs = UNARY[key]
    x = rand(4, 6, seed=11, low=-8, high=8)
    x[0, :] = [-100, -20, -3, 0, 3, 100]  # overflow-prone values
    check(key.split("-")[0], [x], attrs, tf_run(tf_fn, x))


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_softmax(axis, beta):
    x = rand(3, 4, 5, seed=12, low=-30, high=30)
    check("softmax", [x], {"axis": axis, "beta": beta}, tf_run(lambda v: tf.nn.softmax(v * beta, axis=axis), x))


@pytest.mark.parametrize("axis", [-1, 1])
def test_log_softmax(axis):
    x = rand(3, 4, 5, seed=13, low=-30, high=30)
    check("log_softmax", [x], {"axis": axis}, tf_run(lambda v: tf.nn.log_softmax(v, axis=axis), x))


def test_softmax_large_values_are_stable():
    x = np.array([[1000.0, 1000.0, -1000.0]], np.float32)
    out = check("softmax", [x], {}, tf_run(tf.nn.softmax, x))[0]
    assert np.all(np.isfinite(out))


def test_softmax_axis_checked():
    with pytest.raises(ValueError, match="axis 3"):
        infer_types("softmax", [TensorType(DType.f32, (2, 3))], {"axis": 3})
    assert infer_types("softmax", [TensorType(DType.f32, (SymDim("b"), 3))], {})[0].shape == (SymDim("b"), 3)


def test_erf_matches_math_erf():
    x = np.concatenate([np.linspace(-8, 8, 4001), [0.0, -0.0, 1.9999999, 2.0, 2.0000001, 30.0, -30.0]])
    want = np.array([math.erf(v) for v in x])
    assert np.max(np.abs(erf(x) - want)) < 1e-13


def test_traits():
    for name in ("relu", "relu6", "tanh", "sigmoid"):
        assert get_op(name).has(FUSABLE_ACTIVATION)
    for name in ("hard_swish", "elu", "softplus", "silu", "leaky_relu", "gelu"):
        assert not get_op(name).has(FUSABLE_ACTIVATION)
        assert get_op(name).has(ELEMENTWISE) and get_op(name).has(LAYOUT_AGNOSTIC)
    assert not get_op("softmax").has(ELEMENTWISE)
