"""The indexing ops (cumsum, roll, dynamic slices, top_k, gather_nd and the scatters) against TensorFlow."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla

from irc.ir.types import DType, SymDim, TensorType
from irc.ops import infer_types, run_kernel
from tests.op_oracle import check, infer_shape, rand, tf_run

B = SymDim("batch")
F32, I32 = DType.f32, DType.i32


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_cumsum(axis, exclusive, reverse):
    x = rand(3, 4, 5)
    want = tf_run(lambda v: tf.math.cumsum(v, axis=axis, exclusive=exclusive, reverse=reverse), x)
    check("cumsum", [x], {"axis": axis, "exclusive": exclusive, "reverse": reverse}, want)


def test_cumsum_integers_and_rules():
    x = rand(4, 6, dtype=np.int32, low=-50, high=50)
    attrs = {"axis": 1, "exclusive": True, "reverse": True}
    check("cumsum", [x], attrs, tf_run(lambda v: tf.math.cumsum(v, 1, exclusive=True, reverse=True), x))
    with pytest.raises(ValueError, match="out of range"):
        infer_shape("cumsum", [(2, 3)], {"axis": 2})
    with pytest.raises(ValueError, match="rank 1 or more"):
        infer_shape("cumsum", [()], {"axis": 0})


@pytest.mark.parametrize("shifts, axes", [((2,), (0,)), ((1, -2), (1, 2)), ((-7, 3), (-1, -1)), ((0,), (1,)),
                                          ((13, -1, 2), (0, 1, 2))], ids=str)
def test_roll(shifts, axes):
    x = rand(3, 4, 5)
    check("roll", [x], {"shifts": shifts, "axes": axes}, tf_run(lambda v: tf.roll(v, shifts, axes), x))


@pytest.mark.parametrize("begin", [(0, 0), (1, 2), (3, 5), (-2, 1), (9, -9)], ids=str)
def test_dynamic_slice_clamps_as_xla(begin):
    x = rand(4, 6)
    b = np.array(begin, np.int32)
    want = tf_run(lambda v, s: xla.dynamic_slice(v, s, [2, 3]), x, b)
    check("dynamic_slice", [x, b], {"size": (2, 3)}, want)


@pytest.mark.parametrize("begin", [(0, 0, 0), (1, 2, 0), (5, 5, 5), (-3, 1, 2)], ids=str)
def test_dynamic_update_slice_clamps_as_xla(begin):
    x, u = rand(4, 6, 3), rand(2, 3, 3, seed=1)
    b = np.array(begin, np.int64)
    want = tf_run(lambda v, w, s: xla.dynamic_update_slice(v, w, s), x, u, b)
    check("dynamic_update_slice", [x, u, b], {}, want)


def shapes_of(op, *types, **attrs):
    return [t.shape for t in infer_types(op, [TensorType(d, s) for d, s in types], attrs)]


def test_dynamic_slice_rules():
    assert shapes_of("dynamic_slice", (F32, (B, 6)), (I32, (2,)), size=(1, 3)) == [(1, 3)]
    assert shapes_of("dynamic_update_slice", (F32, (B, 6)), (F32, (1, 3)), (I32, (2,))) == [(B, 6)]
    with pytest.raises(ValueError, match="exceeds dim 1"):
        shapes_of("dynamic_slice", (F32, (4, 2)), (I32, (2,)), size=(1, 3))
    with pytest.raises(ValueError, match="exceeds the operand"):
        shapes_of("dynamic_update_slice", (F32, (4, 2)), (F32, (4, 3)), (I32, (2,)))
    with pytest.raises(ValueError, match="offsets' length"):
        shapes_of("dynamic_update_slice", (F32, (4, 2)), (F32, (4, 1)), (I32, (3,)))
    with pytest.raises(ValueError, match="must be i32 or i64"):
        shapes_of("dynamic_slice", (F32, (4, 2)), (F32, (2,)), size=(1, 1))


@pytest.mark.parametrize("k", [1, 3, 7])
def test_top_k(k):
    x = rand(2, 3, 7)
    x[0, 0, 2] = x[0, 0, 5]  # a tie: the lower index comes first
    check("top_k", [x], {"k": k}, tf_run(lambda v: list(tf.math.top_k(v, k)), x))


def test_top_k_integers():
    x = rand(4, 9, dtype=np.int32, low=-3, high=3)  # many ties
    check("top_k", [x], {"k": 9}, tf_run(lambda v: list(tf.math.top_k(v, 9)), x))
    with pytest.raises(ValueError, match="exceeds the last dim"):
        infer_shape("top_k", [(2, 3)], {"k": 4})


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_gather_nd(depth):
    x = rand(4, 5, 3)
    idx = np.stack([rand(2, 3, seed=i, dtype=np.int32, low=0, high=x.shape[i]) for i in range(depth)], axis=-1)
    check("gather_nd", [x, idx], {}, tf_run(tf.gather_nd, x, idx))


def test_scatter_nd_adds_repeated_indices():
    idx = np.array([[1, 0], [3, 2], [1, 0]], np.int32)
    upd = rand(3, 4)
    check("scatter_nd", [idx, upd], {"shape": (5, 3, 4)}, tf_run(lambda i, u: tf.scatter_nd(i, u, [5, 3, 4]),
                                                                  idx, upd))


def test_tensor_scatter_add_and_update():
    x = rand(5, 3, 4)
    idx = np.array([[4], [0], [4], [2]], np.int64)
    upd = rand(4, 3, 4, seed=2)
    check("tensor_scatter_add", [x, idx, upd], {}, tf_run(tf.tensor_scatter_nd_add, x, idx, upd))
    unique = idx[[0, 1, 3]]
    check("tensor_scatter_update", [x, unique, upd[[0, 1, 3]]], {},
          tf_run(tf.tensor_scatter_nd_update, x, unique, upd[[0, 1, 3]]))
    # repeated indices: TensorFlow's CPU kernel writes in order, and so does the reference kernel
    (got,) = run_kernel("tensor_scatter_update", [x, idx, upd], {})
    np.testing.assert_array_equal(got, tf_run(tf.tensor_scatter_nd_update, x, idx, upd)[0])


def test_scatter_rules():
    assert shapes_of("gather_nd", (F32, (B, 5, 3)), (I32, (7, 2))) == [(7, 3)]
    assert shapes_of("tensor_scatter_add", (F32, (B, 5, 3)), (I32, (7, 2)), (F32, (7, 3))) == [(B, 5, 3)]
    with pytest.raises(ValueError, match="updates' dim 1"):
        shapes_of("scatter_nd", (I32, (3, 2)), (F32, (3, 5)), shape=(4, 4, 4))
    with pytest.raises(ValueError, match="address 3 dims of a rank-2"):
        shapes_of("gather_nd", (F32, (4, 4)), (I32, (3, 3)))
    with pytest.raises(ValueError, match="outside shape"):
        run_kernel("gather_nd", [rand(2, 3), np.array([[2, 0]], np.int32)], {})
