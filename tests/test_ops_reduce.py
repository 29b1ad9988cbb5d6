import numpy as np
import pytest
import tensorflow as tf

from irc.ir.types import SymDim
from tests.op_oracle import check, infer_shape, rand, tf_run

B = SymDim("batch")
REDUCE = {"mean": tf.reduce_mean, "sum": tf.reduce_sum, "max": tf.reduce_max, "min": tf.reduce_min,
          "prod": tf.reduce_prod}


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axes", [(1,), (0, 2), (-1,), (0, 1, 2), ()], ids=str)
@pytest.mark.parametrize("name", sorted(REDUCE))
def test_reduce(name, axes, keepdims):
    x = rand(3, 4, 5, seed=1, low=0.5, high=1.5)
    want = tf_run(lambda v: REDUCE[name](v, axis=list(axes), keepdims=keepdims), x)
    check(name, [x], {"axes": axes, "keepdims": keepdims}, want)


@pytest.mark.parametrize("name", sorted(REDUCE))
def test_reduce_int(name):
    x = rand(4, 6, seed=2, dtype=np.int32, low=-9, high=9)
    check(name, [x], {"axes": (1,)}, tf_run(lambda v: REDUCE[name](v, axis=1), x))


def test_reduce_rules():
    assert infer_shape("mean", [(B, 7, 7, 64)], {"axes": (1, 2)}) == (B, 64)
    assert infer_shape("sum", [(B, 7, None)], {"axes": (-1,), "keepdims": True}) == (B, 7, 1)
    assert infer_shape("max", [None], {"axes": (0,)}) is None
    with pytest.raises(ValueError, match="out of range"):
        infer_shape("min", [(2, 3)], {"axes": (2,)})
    with pytest.raises(ValueError, match="missing required attribute 'axes'"):
        infer_shape("prod", [(2, 3)], {})
