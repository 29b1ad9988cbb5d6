import numpy as np
import pytest
import tensorflow as tf

from irc.ir.types import DType, QuantParams, SymDim, TensorType
from irc.ops import get_op, infer_types, run_kernel
from irc.ops.base import QUANT_PRESERVING
from tests.op_oracle import check, infer_shape, rand, tf_run

B = SymDim("batch")
ALL = ("unknown dims", "symbolic batch", "unknown rank")


@pytest.mark.parametrize("shape", [(6, 4), (-1, 8), (2, -1, 2), (24,), (1, 2, 3, 4)], ids=str)
def test_reshape(shape):
    x = rand(2, 3, 4)
    check("reshape", [x], {"shape": shape}, tf_run(lambda v: tf.reshape(v, shape), x))


def test_reshape_rules():
    assert infer_shape("reshape", [(B, 4, 4)], {"shape": (-1, 16)}) == (B, 16)
    assert infer_shape("reshape", [(B, 4, 4)], {"shape": (-1, 8)}) == (None, 8)
    assert infer_shape("reshape", [(None, 4)], {"shape": (-1, 2, 2)}) == (None, 2, 2)
    assert infer_shape("reshape", [None], {"shape": (3, -1)}) == (3, None)
    with pytest.raises(ValueError, match="cannot reshape 24"):
        infer_shape("reshape", [(2, 3, 4)], {"shape": (5, -1)})
    with pytest.raises(ValueError, match="cannot reshape 24"):
        infer_shape("reshape", [(2, 3, 4)], {"shape": (5, 5)})
    with pytest.raises(ValueError, match="at most one -1"):
        infer_shape("reshape", [(2, 3, 4)], {"shape": (-1, -1)})


@pytest.mark.parametrize("perm", [(1, 0, 2), (2, 0, 1), (0, 1, 2)], ids=str)
def test_transpose(perm):
    x = rand(2, 3, 4)
    check("transpose", [x], {"perm": perm}, tf_run(lambda v: tf.transpose(v, perm), x))
    assert infer_shape("transpose", [(B, 3, None)], {"perm": perm}) == tuple((B, 3, None)[p] for p in perm)
    with pytest.raises(ValueError, match="permutation"):
        infer_shape("transpose", [(2, 3, 4)], {"perm": (0, 0, 1)})


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis):
    xs = [rand(2, 3, 4, seed=1), rand(2, 3, 4, seed=2), rand(2, 3, 4, seed=3)]
    check("concat", xs, {"axis": axis}, tf_run(lambda *v: tf.concat(v, axis), *xs))
    check("tfl.concat", xs, {"axis": axis, "fused_activation": "relu"}, tf_run(lambda *v: tf.nn.relu(tf.concat(v, axis)), *xs))


def test_concat_rules():
    f = DType.f32
    types = [TensorType(f, (B, 3)), TensorType(f, (None, 5)), TensorType(f, None)]
    assert infer_types("concat", types, {"axis": 1})[0].shape == (B, None)
    assert infer_types("concat", types[:2], {"axis": 1})[0].shape == (B, 8)
    with pytest.raises(ValueError, match="dim 1 differ"):
        infer_shape("concat", [(2, 3), (2, 4)], {"axis": 0})
    with pytest.raises(ValueError, match="different ranks"):
        infer_shape("concat", [(2, 3), (2, 3, 1)], {"axis": 0})
    assert not get_op("concat").has(QUANT_PRESERVING)


@pytest.mark.parametrize("axis,sizes", [(0, (1, 3)), (1, (2, 2, 1)), (-1, (3, -1)), (2, (1, 1, 1, 1))], ids=str)
def test_split(axis, sizes):
    x = rand(4, 5, 4)
    check("split", [x], {"axis": axis, "sizes": sizes}, tf_run(lambda v: tf.split(v, sizes, axis), x))
    with pytest.raises(ValueError, match="add up"):
        infer_shape("split", [(4, 5, 4)], {"axis": axis, "sizes": (9, 9)})


@pytest.mark.parametrize("begin,size", [((0, 1, 0), (2, 2, -1)), ((1, 0, 2), (1, -1, 2)), ((0, 0, 0), (-1, -1, -1))])
def test_slice(begin, size):
    x = rand(2, 3, 4)
    check("slice", [x], {"begin": begin, "size": size}, tf_run(lambda v: tf.slice(v, begin, size), x))


def test_slice_rules():
    assert infer_shape("slice", [(B, 5)], {"begin": (0, 1), "size": (-1, 3)}) == (B, 3)
    assert infer_shape("slice", [(B, 5)], {"begin": (1, 1), "size": (-1, -1)}) == (None, 4)
    with pytest.raises(ValueError, match="out of bounds"):
        infer_shape("slice", [(2, 5)], {"begin": (0, 3), "size": (1, 3)})


STRIDED = [  # begin, end, strides, masks (begin, end, ellipsis, new_axis, shrink)
    ((0, 1, 0), (2, 3, 4), (1, 1, 2), (0, 0, 0, 0, 0)),
    ((1, -1, 3), (2, 0, 0), (1, -1, -1), (0, 0, 0, 0, 0)),
    ((0, 0, 0), (0, 0, 0), (1, 1, 1), (7, 7, 0, 0, 0)),
    ((0, 2, 1), (0, 0, 0), (1, -1, 1), (1, 7, 0, 0, 0)),  # x[:, 2::-1, 1:]
    ((1, 0), (2, 0), (1, 1), (0, 0, 2, 0, 1)),  # x[1, ...]
    ((0, 0, 1), (0, 0, 3), (1, 1, 1), (0, 0, 1, 2, 0)),  # x[..., newaxis, 1:3]
    ((0, -1), (0, 0), (1, 1), (1, 1, 0, 0, 2)),  # x[:, -1]
    ((0, 0, 0, 0), (0, 2, 0, 0), (1, 1, 1, 1), (0, 8, 0, 5, 0)),  # x[newaxis, :2, newaxis, :]
    ((-10, 5), (10, -10), (2, -2), (0, 0, 0, 0, 0)),  # out-of-range begin/end clamp
    ((0,), (0,), (1,), (0, 0, 1, 0, 0)),  # x[...]
    ((0, 1), (0, 2), (1, 1), (0, 0, 0, 1, 0)),  # x[newaxis, 1:2]
    ((2, 1, 0), (3, 2, 0), (1, 1, 1), (0, 4, 0, 0, 3)),  # x[2, 1, :]
    ((0, 5), (0, 0), (1, 1), (1, 1, 0, 0, 2)),  # x[:, 5]: out of range
]


@pytest.mark.parametrize("spec", STRIDED, ids=str)
def test_strided_slice(spec):
    begin, end, strides, (bm, em, el, na, sh) = spec
    x = rand(3, 4, 5)
    masks = {"begin_mask": bm, "end_mask": em, "ellipsis_mask": el, "new_axis_mask": na, "shrink_axis_mask": sh}
    try:
        want = tf_run(lambda v: tf.strided_slice(v, begin, end, strides, **masks), x)
    except tf.errors.InvalidArgumentError:
        with pytest.raises(ValueError):
            infer_shape("strided_slice", [x.shape], {"begin": begin, "end": end, "strides": strides, **masks})
        return
    check("strided_slice", [x], {"begin": begin, "end": end, "strides": strides, **masks}, want)


def test_strided_slice_rules():
    attrs = {"begin": (0, 1), "end": (0, 3), "strides": (1, 1), "begin_mask": 1, "end_mask": 1}
    assert infer_shape("strided_slice", [(B, 5, 6)], attrs) == (B, 2, 6)
    assert infer_shape("strided_slice", [(B, None, 6)], attrs) == (B, None, 6)
    assert infer_shape("strided_slice", [(B, 5)], {**attrs, "shrink_axis_mask": 2}) == (B,)
    with pytest.raises(ValueError, match="out of range"):
        infer_shape("strided_slice", [(3, 1)], {**attrs, "shrink_axis_mask": 2})
    with pytest.raises(ValueError, match="non-zero"):
        infer_shape("strided_slice", [(3, 5)], {**attrs, "strides": (1, 0)})


@pytest.mark.parametrize("axis,batch_dims,ishape", [(0, 0, (2, 3)), (1, 0, (4,)), (2, 0, ()), (-1, 0, (2, 2)),
                                                    (1, 1, (3, 2)), (2, 1, (3, 4)), (2, 2, (3, 4, 2))], ids=str)
def test_gather(axis, batch_dims, ishape):
    params = rand(3, 4, 5)
    limit = params.shape[axis]
    indices = rand(*ishape, seed=2, dtype=np.int32, low=0, high=limit)
    want = tf_run(lambda p, i: tf.gather(p, i, axis=axis, batch_dims=batch_dims), params, indices)
    check("gather", [params, indices], {"axis": axis, "batch_dims": batch_dims}, want)


def test_gather_rules():
    f, i = DType.f32, DType.i32
    t = infer_types("gather", [TensorType(f, (10, 8)), TensorType(i, (B, 7))], {})[0]
    assert t.shape == (B, 7, 8)
    with pytest.raises(ValueError, match="batch dim 0"):
        infer_types("gather", [TensorType(f, (3, 8)), TensorType(i, (4, 2))], {"axis": 1, "batch_dims": 1})
    with pytest.raises(ValueError, match="i32 or i64"):
        infer_types("gather", [TensorType(f, (3, 8)), TensorType(f, (4,))], {})
    q = QuantParams((0.5,), (1,))
    assert infer_types("gather", [TensorType(DType.i8, (3, 8), q), TensorType(i, (4,))], {})[0].quant == q


@pytest.mark.parametrize("axes", [(), (1,), (1, -1), (0, 1, 3)], ids=str)
def test_squeeze(axes):
    x = rand(1, 1, 3, 1)
    check("squeeze", [x], {"axes": axes}, tf_run(lambda v: tf.squeeze(v, list(axes) or None), x))


def test_squeeze_rules():
    assert infer_shape("squeeze", [(B, 1, 4)], {"axes": (1,)}) == (B, 4)
    assert infer_shape("squeeze", [(B, 1, 4)], {}) is None
    assert infer_shape("squeeze", [(B, 1, 4)], {"axes": (0,)}) == (1, 4)
    with pytest.raises(ValueError, match="cannot squeeze"):
        infer_shape("squeeze", [(2, 1, 4)], {"axes": (2,)})


@pytest.mark.parametrize("axis", [0, 1, 3, -1, -4])
def test_expand_dims(axis):
    x = rand(2, 3, 4)
    check("expand_dims", [x], {"axis": axis}, tf_run(lambda v: tf.expand_dims(v, axis), x))
    with pytest.raises(ValueError, match="out of range"):
        infer_shape("expand_dims", [(2, 3, 4)], {"axis": 5})


@pytest.mark.parametrize("multiples", [(1, 1, 1), (2, 1, 3), (1, 0, 2)], ids=str)
def test_tile(multiples):
    x = rand(2, 3, 4)
    check("tile", [x], {"multiples": multiples}, tf_run(lambda v: tf.tile(v, multiples), x))
    assert infer_shape("tile", [(B, 3, None)], {"multiples": multiples})[1] == 3 * multiples[1]


@pytest.mark.parametrize("xshape,shape", [((3,), (2, 3)), ((2, 1), (2, 4)), ((1, 1), (3, 2, 5)), ((), (2,))])
def test_broadcast_to(xshape, shape):
    x = rand(*xshape)
    check("broadcast_to", [x], {"shape": shape}, tf_run(lambda v: tf.broadcast_to(v, shape), x))
    with pytest.raises(ValueError, match="broadcast"):
        infer_shape("broadcast_to", [(4,)], {"shape": (2, 3)})


@pytest.mark.parametrize("dtype", [DType.i32, DType.i64])
def test_shape(dtype):
    x = rand(2, 3, 4)
    check("shape", [x], {"dtype": dtype}, tf_run(lambda v: tf.shape(v, out_type=dtype.numpy), x))
    assert infer_shape("shape", [None], {"dtype": dtype}) == (None,)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_pack_unpack(axis):
    xs = [rand(2, 3, seed=s) for s in range(4)]
    packed = check("pack", xs, {"axis": axis}, tf_run(lambda *v: tf.stack(v, axis), *xs))[0]
    check("unpack", [packed], {"axis": axis}, tf_run(lambda v: tf.unstack(v, axis=axis), packed),
          relax=("symbolic batch",) if axis != 0 else ())
    assert infer_shape("pack", [(B, 3), (None, 3)], {"axis": axis}) == ((2, B, 3), (B, 2, 3), (B, 3, 2))[axis]
    with pytest.raises(ValueError, match="known size"):
        infer_shape("unpack", [(B, 3)], {"axis": 0})


@pytest.mark.parametrize("axis,dtype", [(0, DType.i64), (1, DType.i32), (-1, DType.i64)])
def test_argmax(axis, dtype):
    x = rand(3, 4, 5)
    x[0, 0, :2] = 5.0  # ties: the first index wins
    check("argmax", [x], {"axis": axis, "dtype": dtype}, tf_run(lambda v: tf.argmax(v, axis, output_type=dtype.numpy), x))


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot(axis):
    idx = np.array([[0, 2, -1], [3, 1, 5]], np.int32)
    attrs = {"depth": 4, "axis": axis, "on_value": 2.0, "off_value": -1.0}
    want = tf_run(lambda v: tf.one_hot(v, 4, on_value=2.0, off_value=-1.0, axis=axis), idx)
    check("one_hot", [idx], attrs, want)
    check("one_hot", [idx], {"depth": 3, "dtype": DType.i32},
          tf_run(lambda v: tf.one_hot(v, 3, dtype=tf.int32), idx))


def test_quant_preserving_traits():
    preserving = {"reshape", "transpose", "squeeze", "expand_dims", "slice", "strided_slice", "gather", "split",
                  "unpack", "max_pool", "pad", "resize"}
    for name in preserving:
        assert get_op(name).has(QUANT_PRESERVING), name
    for name in ("concat", "pack", "tile", "argmax", "avg_pool"):
        assert not get_op(name).has(QUANT_PRESERVING), name
    q = QuantParams((0.5,), (1,))
    assert infer_types("reshape", [TensorType(DType.i8, (2, 3), q)], {"shape": (6,)})[0].quant == q
    per_axis = QuantParams((0.5, 0.25), (0, 0), axis=0)
    assert infer_types("transpose", [TensorType(DType.i8, (2, 3), per_axis)], {"perm": (1, 0)})[0].quant is None


def test_fill():
    dims, value = np.asarray([2, 3], np.int32), np.float32(1.5)
    (want,) = tf_run(lambda d, v: tf.fill(d, v), dims, value)
    types = [TensorType(DType.i32, (2,)), TensorType(DType.f32, ())]
    assert infer_types("fill", types, {}, [dims, None])[0].shape == (2, 3)  # known dims: a static shape
    assert infer_types("fill", types, {})[0].shape == (None, None)  # dims computed at run time
    (got,) = run_kernel("fill", [dims, value], {})
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="negative"):
        infer_types("fill", types, {}, [np.asarray([2, -1], np.int32), None])
