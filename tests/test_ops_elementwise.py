import numpy as np
import pytest
import tensorflow as tf

from irc.ir.types import DType, SymDim
from irc.ops import get_op
from irc.ops.base import COMMUTATIVE, ELEMENTWISE, LAYOUT_AGNOSTIC
from tests.op_oracle import check, infer_shape, rand, tf_run

B = SymDim("batch")

BINARY = {
    "add": tf.add, "sub": tf.subtract, "mul": tf.multiply, "div": tf.divide,
    "maximum": tf.maximum, "minimum": tf.minimum, "pow": tf.pow,
    "squared_difference": tf.math.squared_difference, "floor_div": tf.math.floordiv, "floor_mod": tf.math.floormod,
    "equal": tf.equal, "not_equal": tf.not_equal, "less": tf.less, "less_equal": tf.less_equal,
    "greater": tf.greater, "greater_equal": tf.greater_equal,
}
SHAPES = [((2, 3, 4), (4,)), ((2, 1, 4), (1, 3, 1)), ((3,), ()), ((2, 3), (2, 3))]


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_float(name, shapes):
    x, y = rand(*shapes[0], seed=1), rand(*shapes[1], seed=2)
    if name == "pow":
        x = np.abs(x) + 0.5
    if name in ("div", "floor_div", "floor_mod"):
        y = np.where(np.abs(y) < 0.1, 0.5, y).astype(np.float32)
    if name in ("equal", "not_equal", "less_equal", "greater_equal"):
        y = np.round(y)
        x = np.round(x)
    check(name, [x, y], {}, tf_run(BINARY[name], x, y))


@pytest.mark.parametrize("name,tf_fn", [
    ("div", tf.truncatediv), ("floor_div", tf.math.floordiv), ("floor_mod", tf.math.floormod),
    ("add", tf.add), ("mul", tf.multiply), ("maximum", tf.maximum), ("less", tf.less)])
def test_binary_int(name, tf_fn):
    x = rand(4, 5, seed=3, dtype=np.int32, low=-20, high=20)
    y = rand(5, seed=4, dtype=np.int32, low=1, high=7) * np.array([1, -1, 1, -1, 1], np.int32)
    check(name, [x, y], {}, tf_run(tf_fn, x, y))


@pytest.mark.parametrize("activation,tf_act", [
    ("relu", tf.nn.relu), ("relu6", tf.nn.relu6), ("relu_n1_to_1", lambda v: tf.clip_by_value(v, -1, 1)),
    ("tanh", tf.tanh), ("sigmoid", tf.sigmoid)])
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
def test_fused_activation(name, activation, tf_act):
    x, y = rand(3, 4, seed=5, low=-8, high=8), rand(4, seed=6, low=0.5, high=4)
    check(f"tfl.{name}", [x, y], {"fused_activation": activation}, tf_run(lambda a, b: tf_act(BINARY[name](a, b)), x, y))


@pytest.mark.parametrize("name,tf_fn", [("logical_and", tf.logical_and), ("logical_or", tf.logical_or)])
def test_logical(name, tf_fn):
    x, y = rand(2, 3, seed=1, dtype=np.bool_), rand(3, seed=2, dtype=np.bool_)
    check(name, [x, y], {}, tf_run(tf_fn, x, y))
    with pytest.raises(ValueError, match="bool"):
        infer_shape(name, [(3,), (3,)])


def test_logical_not():
    x = rand(2, 3, seed=1, dtype=np.bool_)
    check("logical_not", [x], {}, tf_run(tf.logical_not, x))
    with pytest.raises(ValueError, match="bool"):
        infer_shape("logical_not", [(3,)])


@pytest.mark.parametrize("shapes", [((2, 3), (2, 3), (2, 3)), ((3,), (2, 3), (1,)), ((2, 1), (1, 3), (2, 3))], ids=str)
def test_select(shapes):
    c, x, y = rand(*shapes[0], dtype=np.bool_), rand(*shapes[1], seed=1), rand(*shapes[2], seed=2)
    check("select", [c, x, y], {}, tf_run(tf.where, c, x, y))


UNARY = {
    "neg": (tf.negative, (-3, 3)), "abs": (tf.abs, (-3, 3)), "sqrt": (tf.sqrt, (0, 4)),
    "rsqrt": (tf.math.rsqrt, (0.1, 4)), "exp": (tf.exp, (-5, 5)), "log": (tf.math.log, (0.01, 9)),
    "square": (tf.square, (-3, 3)), "sin": (tf.sin, (-6, 6)), "cos": (tf.cos, (-6, 6)),
    "floor": (tf.floor, (-3, 3)), "ceil": (tf.math.ceil, (-3, 3)), "round": (tf.round, (-3, 3)),
    "sign": (tf.sign, (-3, 3)), "erf": (tf.math.erf, (-4, 4)), "reciprocal": (tf.math.reciprocal, (0.1, 3)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name):
    tf_fn, (low, high) = UNARY[name]
    x = rand(3, 5, seed=7, low=low, high=high)
    if name in ("round", "sign", "floor"):
        x[0, :] = [-2.5, -0.5, 0.0, 0.5, 1.5]
    check(name, [x], {}, tf_run(tf_fn, x))


def test_unary_special_values():
    x = np.array([0.0, -1.0, np.inf], np.float32)
    check("log", [x], {}, tf_run(tf.math.log, x))
    check("reciprocal", [x], {}, tf_run(tf.math.reciprocal, x))


@pytest.mark.parametrize("src,to", [(np.float32, DType.i32), (np.float32, DType.bool), (np.bool_, DType.f32),
                                    (np.int32, DType.f32), (np.float32, DType.u8), (np.int64, DType.i32)])
def test_cast(src, to):
    x = rand(3, 4, seed=8, dtype=src, low=0 if to is DType.u8 else -50, high=50)
    if src == np.float32 and to is DType.bool:
        x[0, :2] = 0
    check("cast", [x], {"to": to}, tf_run(lambda v: tf.cast(v, to.numpy), x))


def test_binary_shape_rules():
    assert infer_shape("add", [(B, 3), (3,)]) == (B, 3)
    assert infer_shape("add", [(None, 3), (1, 3)]) == (None, 3)
    assert infer_shape("mul", [(B, 1), (1, 4)]) == (B, 4)
    assert infer_shape("sub", [(None, 4), (B, 4)]) == (None, 4)
    assert infer_shape("add", [None, (3,)]) is None
    assert infer_shape("less", [(2, 3), (3,)]) == (2, 3)
    with pytest.raises(ValueError, match="broadcast"):
        infer_shape("add", [(2, 3), (4,)])
    from irc.ir.types import TensorType
    from irc.ops import infer_types
    with pytest.raises(ValueError, match="dtypes differ"):
        infer_types("add", [TensorType(DType.f32, (3,)), TensorType(DType.i32, (3,))], {})
    assert infer_types("equal", [TensorType(DType.f32, (3,))] * 2, {})[0].dtype is DType.bool
    assert infer_types("cast", [TensorType(DType.f32, (B, None))], {"to": DType.i8})[0] == \
        TensorType(DType.i8, (B, None))
    assert infer_types("select", [TensorType(DType.bool, (B, 1)), TensorType(DType.f32, (1, 3)),
                                  TensorType(DType.f32, (3,))], {})[0].shape == (B, 3)
    with pytest.raises(ValueError, match="unknown attribute"):
        infer_types("maximum", [TensorType(DType.f32, (3,))] * 2, {"activation": "relu"})
    with pytest.raises(ValueError, match="unknown attribute 'fused_activation'"):  # core ops are target-neutral
        infer_types("add", [TensorType(DType.f32, (3,))] * 2, {"fused_activation": "relu"})


def test_traits():
    commutative = {"add", "mul", "maximum", "minimum", "equal", "not_equal", "logical_and", "logical_or"}
    for name in list(BINARY) + ["logical_and", "logical_or"]:
        op = get_op(name)
        assert op.has(COMMUTATIVE) == (name in commutative), name
        assert op.has(ELEMENTWISE)
    for name in UNARY:
        assert get_op(name).has(ELEMENTWISE) and get_op(name).has(LAYOUT_AGNOSTIC)
