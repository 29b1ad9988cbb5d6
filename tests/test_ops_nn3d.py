"""conv3d, conv3d_transpose, max_pool3d and avg_pool3d: shape rules and reference kernels against TensorFlow."""

import numpy as np
import pytest
import tensorflow as tf

from irc.ir.types import SymDim
from tests.op_oracle import check, infer_shape, rand, tf_run

B = SymDim("batch")

CONV3D_CASES = [  # (d, h, w, k, cin, cout, strides, dilations, padding)
    (5, 6, 7, (3, 3, 3), 2, 4, (1, 1, 1), (1, 1, 1), "SAME"),
    (5, 6, 7, (3, 2, 3), 2, 3, (1, 1, 1), (1, 1, 1), "VALID"),
    (7, 6, 8, (3, 3, 2), 3, 2, (2, 1, 3), (1, 1, 1), "SAME"),
    (7, 8, 6, (2, 3, 3), 2, 2, (2, 2, 2), (1, 1, 1), "VALID"),
    (7, 8, 9, (3, 2, 2), 2, 3, (1, 1, 1), (2, 3, 1), "SAME"),
    (8, 7, 9, (2, 3, 2), 2, 3, (1, 1, 1), (3, 1, 2), "VALID"),
    (5, 7, 6, (1, 2, 1), 2, 3, (1, 4, 3), (1, 1, 1), "SAME"),  # windows narrower than the stride: SAME crops
]


def dilated(f: np.ndarray, dilations) -> np.ndarray:
    """The filter with zeros between its taps: TensorFlow's CPU Conv3D has no dilation, this is the same sum."""
    out = np.zeros([(k - 1) * d + 1 for k, d in zip(f.shape[:3], dilations)] + list(f.shape[3:]), f.dtype)
    out[::dilations[0], ::dilations[1], ::dilations[2]] = f
    return out


@pytest.mark.parametrize("case", CONV3D_CASES, ids=lambda c: f"{c[3]}s{c[6]}d{c[7]}{c[8]}")
def test_conv3d(case):
    d, h, w, k, cin, cout, strides, dilations, padding = case
    x, f, b = rand(2, d, h, w, cin, seed=1), rand(*k, cin, cout, seed=2), rand(cout, seed=3)
    want = tf_run(lambda v, kk: tf.nn.conv3d(v, kk, (1, *strides, 1), padding), x, dilated(f, dilations))[0] + b
    check("conv3d", [x, f, b], {"strides": strides, "dilations": dilations, "padding": padding}, want)


CONV3D_T_CASES = [  # (d, h, w, k, cin, cout, strides, padding)
    (3, 4, 5, (3, 3, 3), 4, 2, (2, 2, 2), "SAME"),
    (3, 4, 5, (2, 3, 3), 3, 2, (1, 2, 3), "VALID"),
    (4, 3, 2, (3, 2, 3), 2, 3, (2, 1, 2), "VALID"),
    (4, 3, 3, (3, 3, 2), 2, 3, (3, 2, 1), "SAME"),
]


@pytest.mark.parametrize("case", CONV3D_T_CASES, ids=lambda c: f"{c[3]}s{c[6]}{c[7]}")
def test_conv3d_transpose(case):
    d, h, w, k, cin, cout, strides, padding = case
    x, f, b = rand(2, d, h, w, cin, seed=1), rand(*k, cout, cin, seed=2), rand(cout, seed=3)
    spatial = [n * s if padding == "SAME" else (n - 1) * s + kk for n, s, kk in zip((d, h, w), strides, k)]
    out_shape = (2, *spatial, cout)
    want = tf_run(lambda v, kk: tf.nn.conv3d_transpose(v, kk, out_shape, (1, *strides, 1), padding), x, f)[0] + b
    attrs = {"output_shape": (-1, *spatial, -1), "strides": strides, "padding": padding}
    check("conv3d_transpose", [x, f, b], attrs, want)


def test_conv3d_transpose_explicit_output_shape():
    # a stride-2 VALID transposed conv may give either of two sizes: the larger one takes the extra row
    x, f = rand(1, 3, 3, 3, 2, seed=4), rand(3, 3, 3, 4, 2, seed=5)
    want = tf_run(lambda v, kk: tf.nn.conv3d_transpose(v, kk, (1, 8, 7, 8, 4), (1, 2, 2, 2, 1), "VALID"), x, f)[0]
    check("conv3d_transpose", [x, f], {"output_shape": (1, 8, 7, 8, 4), "strides": (2, 2, 2)}, want,
          relax=("unknown dims", "symbolic batch"))


POOL3D_CASES = [  # (ksize, strides, padding)
    ((2, 2, 2), (2, 2, 2), "VALID"),
    ((3, 3, 3), (2, 2, 2), "SAME"),
    ((3, 2, 1), (1, 2, 3), "SAME"),
    ((2, 3, 2), (3, 1, 2), "VALID"),
    ((1, 1, 2), (1, 4, 3), "SAME"),
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL3D_CASES, ids=lambda c: f"k{c[0]}s{c[1]}{c[2]}")
def test_pool3d(kind, case):
    ksize, strides, padding = case
    x = rand(2, 5, 7, 6, 3, seed=6)
    fn = tf.nn.max_pool3d if kind == "max" else tf.nn.avg_pool3d
    want = tf_run(lambda v: fn(v, (1, *ksize, 1), (1, *strides, 1), padding), x)[0]
    check(f"{kind}_pool3d", [x], {"ksize": ksize, "strides": strides, "padding": padding}, want)


def test_shape_rules():
    assert infer_shape("conv3d", [(B, 8, 8, 8, 3), (3, 3, 3, 3, 5)], {"padding": "SAME", "strides": (2, 2, 2)}) \
        == (B, 4, 4, 4, 5)
    assert infer_shape("max_pool3d", [(B, None, 6, 6, 3)], {"ksize": (2, 2, 2), "strides": (2, 2, 2)}) \
        == (B, None, 3, 3, 3)
    with pytest.raises(ValueError, match="rank 5"):
        infer_shape("conv3d", [(1, 8, 8, 3), (3, 3, 3, 3, 5)], {})
    with pytest.raises(ValueError, match="in-channels"):
        infer_shape("conv3d", [(1, 8, 8, 8, 4), (3, 3, 3, 3, 5)], {})
    with pytest.raises(ValueError, match="three positive"):
        infer_shape("avg_pool3d", [(1, 8, 8, 8, 4)], {"ksize": (2, 2)})
    with pytest.raises(ValueError, match="does not give input"):
        infer_shape("conv3d_transpose", [(1, 3, 3, 3, 2), (3, 3, 3, 4, 2)],
                    {"output_shape": (1, 20, 7, 7, 4), "strides": (2, 2, 2)})
