import numpy as np
import pytest
import tensorflow as tf

from irc.ir.types import DType, QuantParams, SymDim, TensorType
from irc.ops import get_op, infer_types, run_kernel
from irc.ops.base import QUANT_PRESERVING
from tests.op_oracle import check, infer_shape, rand, tf_run

B = SymDim("batch")
NCHW = (0, 3, 1, 2)
NHWC = (0, 2, 3, 1)
ACT = {"none": lambda v: v, "relu": tf.nn.relu, "relu6": tf.nn.relu6, "tanh": tf.tanh, "sigmoid": tf.sigmoid,
       "relu_n1_to_1": lambda v: tf.clip_by_value(v, -1.0, 1.0)}


def in_format(x: np.ndarray, fmt: str) -> np.ndarray:
    return x if fmt == "NHWC" else np.ascontiguousarray(x.transpose(NCHW))


# ----- conv2d ------------------------------------------------------------------------------------------------------
CONV_CASES = [  # (h, w, kh, kw, cin, cout, strides, dilations, padding)
    (7, 8, 3, 3, 3, 4, (1, 1), (1, 1), "SAME"),
    (7, 8, 3, 3, 3, 4, (1, 1), (1, 1), "VALID"),
    (9, 8, 3, 2, 2, 5, (2, 2), (1, 1), "SAME"),
    (9, 10, 4, 4, 2, 3, (2, 3), (1, 1), "SAME"),
    (9, 10, 3, 3, 2, 3, (3, 2), (1, 1), "VALID"),
    (10, 9, 3, 3, 2, 3, (1, 1), (2, 2), "SAME"),
    (10, 9, 3, 2, 2, 3, (1, 1), (2, 3), "VALID"),
    (6, 6, 1, 1, 4, 3, (2, 2), (1, 1), "VALID"),
    (5, 5, 5, 5, 1, 2, (1, 1), (1, 1), "VALID"),
]


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d(case, fmt):
    h, w, kh, kw, cin, cout, strides, dilations, padding = case
    x, f, b = rand(2, h, w, cin, seed=1), rand(kh, kw, cin, cout, seed=2), rand(cout, seed=3)
    want = tf_run(lambda v, k, bias: tf.nn.conv2d(v, k, strides, padding, dilations=dilations) + bias, x, f, b)[0]
    attrs = {"strides": strides, "dilations": dilations, "padding": padding, "data_format": fmt}
    check("conv2d", [in_format(x, fmt), f, b], attrs, in_format(want, fmt))


@pytest.mark.parametrize("activation", sorted(ACT))
def test_conv2d_activation_no_bias(activation):
    x, f = rand(1, 5, 5, 2, seed=4, low=-3, high=3), rand(3, 3, 2, 3, seed=5)
    want = tf_run(lambda v, k: ACT[activation](tf.nn.conv2d(v, k, 1, "SAME")), x, f)
    check("tfl.conv2d", [x, f], {"padding": "SAME", "fused_activation": activation}, want)


def test_grouped_conv2d():
    x, f = rand(1, 6, 6, 4, seed=6), rand(3, 3, 2, 6, seed=7)
    groups = [tf.nn.conv2d(x[..., 2 * g:2 * g + 2], f[..., 3 * g:3 * g + 3], 1, "SAME") for g in range(2)]
    check("conv2d", [x, f], {"padding": "SAME"}, np.concatenate([g.numpy() for g in groups], axis=-1))


def test_conv2d_shape_rules():
    f = (3, 3, 4, 8)
    assert infer_shape("conv2d", [(B, 32, 32, 4), f], {"padding": "SAME"}) == (B, 32, 32, 8)
    assert infer_shape("conv2d", [(B, 32, 31, 4), f], {"padding": "SAME", "strides": (2, 2)}) == (B, 16, 16, 8)
    assert infer_shape("conv2d", [(B, None, 32, 4), f], {"padding": "VALID"}) == (B, None, 30, 8)
    assert infer_shape("conv2d", [(B, B, 32, 4), f], {"padding": "SAME"}) == (B, B, 32, 8)
    assert infer_shape("conv2d", [(1, 4, 32, 32), f], {"data_format": "NCHW", "padding": "VALID"}) == (1, 8, 30, 30)
    assert infer_shape("conv2d", [(B, 9, 9, 4), f], {"dilations": (2, 2)}) == (B, 5, 5, 8)
    assert infer_shape("conv2d", [None, f], {}) == (None, None, None, 8)
    assert infer_shape("depthwise_conv2d", [(B, 8, 8, 4), (3, 3, 4, 2)], {"padding": "SAME"}) == (B, 8, 8, 8)
    with pytest.raises(ValueError, match="multiple"):
        infer_shape("conv2d", [(1, 8, 8, 3), f])
    with pytest.raises(ValueError, match="does not fit"):
        infer_shape("conv2d", [(1, 2, 8, 4), f])
    with pytest.raises(ValueError, match="rank-4"):
        infer_shape("conv2d", [(8, 8, 4), f])
    with pytest.raises(ValueError, match="bias length"):
        infer_shape("conv2d", [(1, 8, 8, 4), f, (7,)])
    with pytest.raises(ValueError, match="strides"):
        infer_shape("conv2d", [(1, 8, 8, 4), f], {"strides": (1, 1, 1, 1)})


# ----- depthwise ---------------------------------------------------------------------------------------------------
DW_CASES = [  # (h, w, kh, kw, c, mult, strides, dilations, padding)
    (7, 8, 3, 3, 3, 1, (1, 1), (1, 1), "SAME"),
    (7, 8, 3, 3, 3, 2, (2, 2), (1, 1), "SAME"),
    (9, 8, 3, 2, 2, 3, (2, 2), (1, 1), "VALID"),
    (9, 9, 3, 3, 2, 1, (1, 1), (2, 2), "SAME"),
    (9, 9, 3, 3, 2, 2, (1, 1), (2, 3), "VALID"),
]


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("case", DW_CASES, ids=str)
def test_depthwise_conv2d(case, fmt):
    h, w, kh, kw, c, m, strides, dilations, padding = case
    x, f, b = rand(2, h, w, c, seed=1), rand(kh, kw, c, m, seed=2), rand(c * m, seed=3)
    want = tf_run(lambda v, k, bias: tf.nn.relu6(tf.nn.depthwise_conv2d(
        v, k, (1,) + strides + (1,), padding, dilations=dilations) + bias), x, f, b)[0]
    attrs = {"strides": strides, "dilations": dilations, "padding": padding, "data_format": fmt,
             "fused_activation": "relu6"}
    check("tfl.depthwise_conv2d", [in_format(x, fmt), f, b], attrs, in_format(want, fmt))


def test_depthwise_unequal_strides():
    """TensorFlow's CPU kernel wants equal strides: with VALID padding, stride (2, 1) subsamples stride 1."""
    x, f = rand(1, 9, 8, 2, seed=1), rand(3, 2, 2, 3, seed=2)
    want = tf_run(lambda v, k: tf.nn.depthwise_conv2d(v, k, (1, 1, 1, 1), "VALID"), x, f)[0][:, ::2]
    check("depthwise_conv2d", [x, f], {"strides": (2, 1)}, want)


# ----- conv2d_transpose --------------------------------------------------------------------------------------------
TCONV_CASES = [  # (x h, w), (out h, w), (kh, kw), strides, padding
    ((4, 5), (8, 10), (3, 3), (2, 2), "SAME"),
    ((4, 5), (7, 9), (3, 3), (2, 2), "SAME"),
    ((4, 5), (9, 11), (3, 3), (2, 2), "VALID"),
    ((4, 5), (10, 12), (3, 3), (2, 2), "VALID"),
    ((3, 4), (3, 4), (3, 2), (1, 1), "SAME"),
    ((3, 4), (10, 8), (4, 2), (3, 2), "VALID"),
]


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("case", TCONV_CASES, ids=str)
def test_conv2d_transpose(case, fmt):
    (h, w), (oh, ow), (kh, kw), strides, padding = case
    x, f, b = rand(2, h, w, 3, seed=1), rand(kh, kw, 4, 3, seed=2), rand(4, seed=3)
    out_shape = (2, oh, ow, 4)
    want = tf_run(lambda v, k: tf.nn.conv2d_transpose(v, k, out_shape, strides, padding), x, f)[0] + b
    attrs = {"strides": strides, "padding": padding, "data_format": fmt,
             "output_shape": out_shape if fmt == "NHWC" else (2, 4, oh, ow)}
    check("conv2d_transpose", [in_format(x, fmt), f, b], attrs, in_format(want, fmt))


def test_conv2d_transpose_shape_rules():
    f = (3, 3, 4, 8)
    attrs = {"output_shape": (-1, -1, -1, -1), "strides": (2, 2), "padding": "SAME"}
    assert infer_shape("conv2d_transpose", [(B, 5, 6, 8), f], attrs) == (B, 10, 12, 4)
    attrs = {"output_shape": (-1, 11, 13, 4), "strides": (2, 2), "padding": "VALID"}
    assert infer_shape("conv2d_transpose", [(B, 5, 6, 8), f], attrs) == (B, 11, 13, 4)
    out = run_kernel("conv2d_transpose", [rand(1, 5, 6, 8), rand(*f)], attrs)[0]
    assert out.shape == (1, 11, 13, 4)
    with pytest.raises(ValueError, match="does not give"):
        infer_shape("conv2d_transpose", [(1, 5, 6, 8), f], {"output_shape": (1, 20, 12, 4), "strides": (2, 2)})
    with pytest.raises(ValueError, match="channels"):
        infer_shape("conv2d_transpose", [(1, 5, 6, 8), f], {"output_shape": (1, 7, 8, 5)})


# ----- matmul ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul(ta, tb):
    a = rand(*((5, 3) if ta else (3, 5)), seed=1)
    b = rand(*((4, 5) if tb else (5, 4)), seed=2)
    bias = rand(4, seed=3)
    want = tf_run(lambda x, y, z: tf.nn.relu(tf.matmul(x, y, transpose_a=ta, transpose_b=tb) + z), a, b, bias)
    check("tfl.matmul", [a, b, bias], {"transpose_a": ta, "transpose_b": tb, "fused_activation": "relu"}, want)
    check("matmul", [a, b], {"transpose_a": ta, "transpose_b": tb},
          tf_run(lambda x, y: tf.matmul(x, y, transpose_a=ta, transpose_b=tb), a, b))


def test_matmul_shape_rules():
    assert infer_shape("matmul", [(B, 8), (8, 3)]) == (B, 3)
    assert infer_shape("matmul", [(8, B), (8, 3)], {"transpose_a": True}) == (B, 3)
    with pytest.raises(ValueError, match="inner"):
        infer_shape("matmul", [(2, 8), (7, 3)])
    with pytest.raises(ValueError, match="rank-2"):
        infer_shape("matmul", [(2, 2, 8), (8, 3)])


@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 5)), ((3, 4), (2, 4, 5))], ids=str)
@pytest.mark.parametrize("adj", [(False, False), (True, False), (False, True), (True, True)], ids=str)
def test_batch_matmul(shapes, adj):
    sa, sb = list(shapes[0]), list(shapes[1])
    if adj[0]:
        sa[-2:] = sa[-1:-3:-1]
    if adj[1]:
        sb[-2:] = sb[-1:-3:-1]
    a, b = rand(*sa, seed=1), rand(*sb, seed=2)
    want = tf_run(lambda x, y: tf.matmul(x, y, adjoint_a=adj[0], adjoint_b=adj[1]), a, b)
    check("batch_matmul", [a, b], {"adj_x": adj[0], "adj_y": adj[1]}, want)


def test_batch_matmul_shape_rules():
    assert infer_shape("batch_matmul", [(B, 1, 3, 4), (5, 4, 2)]) == (B, 5, 3, 2)
    with pytest.raises(ValueError, match="inner"):
        infer_shape("batch_matmul", [(2, 3, 4), (2, 5, 2)])


# ----- pools -------------------------------------------------------------------------------------------------------
POOL_CASES = [  # (h, w), ksize, strides, padding
    ((6, 7), (2, 2), (2, 2), "VALID"), ((7, 7), (3, 3), (2, 2), "SAME"), ((7, 8), (3, 2), (1, 1), "SAME"),
    ((8, 8), (3, 3), (2, 3), "VALID"), ((5, 5), (5, 5), (1, 1), "VALID"), ((6, 5), (4, 4), (3, 3), "SAME"),
]


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("name,tf_fn", [("max_pool", tf.nn.max_pool2d), ("avg_pool", tf.nn.avg_pool2d)])
def test_pool(name, tf_fn, case, fmt):
    (h, w), k, s, padding = case
    x = rand(2, h, w, 3, seed=1, low=-5, high=1)
    want = tf_run(lambda v: tf_fn(v, k, s, padding), x)[0]
    attrs = {"ksize": k, "strides": s, "padding": padding, "data_format": fmt}
    check(name, [in_format(x, fmt), ], attrs, in_format(want, fmt))


def test_pool_activation_and_rules():
    x = rand(1, 4, 4, 2, seed=2, low=-3, high=3)
    want = tf_run(lambda v: tf.nn.relu6(tf.nn.avg_pool2d(v, 2, 2, "VALID")), x)
    check("tfl.avg_pool", [x], {"ksize": (2, 2), "strides": (2, 2), "fused_activation": "relu6"}, want)
    assert infer_shape("max_pool", [(B, 15, 16, 8)], {"ksize": (3, 3), "strides": (2, 2), "padding": "SAME"}) == \
        (B, 8, 8, 8)
    assert infer_shape("avg_pool", [(B, 8, 15, 16)], {"ksize": (3, 3), "strides": (2, 2),
                                                      "data_format": "NCHW"}) == (B, 8, 7, 7)
    q = QuantParams((0.1,), (3,))
    t = infer_types("max_pool", [TensorType(DType.i8, (1, 4, 4, 2), q)], {"ksize": (2, 2), "strides": (2, 2)})[0]
    assert t.quant == q and get_op("max_pool").has(QUANT_PRESERVING) and not get_op("avg_pool").has(QUANT_PRESERVING)


# ----- batch norm, resize, pad -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
def test_batch_norm(fmt):
    x = rand(2, 4, 5, 3, seed=1, low=-3, high=3)
    scale, offset, mean = rand(3, seed=2), rand(3, seed=3), rand(3, seed=4)
    var = rand(3, seed=5, low=0.1, high=2)
    want = tf_run(lambda *a: tf.compat.v1.nn.fused_batch_norm(*a, epsilon=0.01, is_training=False)[0],
                  x, scale, offset, mean, var)[0]
    check("batch_norm", [in_format(x, fmt), scale, offset, mean, var], {"epsilon": 0.01, "data_format": fmt},
          in_format(want, fmt))


def test_batch_norm_rank2_and_rules():
    x, p = rand(4, 3, seed=1), [rand(3, seed=s, low=0.1, high=1) for s in range(4)]
    want = tf_run(lambda v, s, o, m, var: tf.nn.batch_normalization(v, m, var, o, s, 0.001), x, *p)
    check("batch_norm", [x, *p], {}, want)
    with pytest.raises(ValueError, match="scale length"):
        infer_shape("batch_norm", [(1, 4, 4, 3), (4,), (3,), (3,), (3,)])
    assert infer_shape("batch_norm", [(B, 3, 4, 4)] + [(3,)] * 4, {"data_format": "NCHW"}) == (B, 3, 4, 4)


RESIZE_MODES = [(False, False), (True, False), (False, True)]


@pytest.mark.parametrize("size", [(8, 10), (3, 4), (5, 13), (1, 1)], ids=str)
@pytest.mark.parametrize("mode", RESIZE_MODES, ids=["legacy", "align_corners", "half_pixel"])
@pytest.mark.parametrize("method", ["bilinear", "nearest"])
def test_resize(method, mode, size):
    corners, half = mode
    x = rand(2, 5, 6, 3, seed=1, low=-4, high=4)
    fn = tf.compat.v1.image.resize_bilinear if method == "bilinear" else tf.compat.v1.image.resize_nearest_neighbor
    want = tf_run(lambda v: fn(v, size, align_corners=corners, half_pixel_centers=half), x)
    attrs = {"size": size, "method": method, "align_corners": corners, "half_pixel_centers": half}
    check("resize", [x], attrs, want)


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
def test_resize_tf2(method):
    x = rand(1, 7, 5, 2, seed=3)
    want = tf_run(lambda v: tf.image.resize(v, (12, 3), method=method), x)
    check("resize", [x], {"size": (12, 3), "method": method, "half_pixel_centers": True}, want)


def test_resize_types():
    x = rand(1, 4, 4, 2, seed=4, dtype=np.int32, low=0, high=100)
    want = tf_run(lambda v: tf.compat.v1.image.resize_bilinear(v, (6, 6)), x)
    check("resize", [x], {"size": (6, 6)}, want)
    q = QuantParams((0.1,), (3,))
    t = infer_types("resize", [TensorType(DType.i8, (B, 4, 4, 2), q)], {"size": (8, 8)})[0]
    assert t == TensorType(DType.i8, (B, 8, 8, 2), q)
    with pytest.raises(ValueError, match="both"):
        infer_shape("resize", [(1, 4, 4, 1)], {"size": (2, 2), "align_corners": True, "half_pixel_centers": True})


@pytest.mark.parametrize("mode", ["constant", "reflect", "symmetric"])
def test_pad(mode):
    x = rand(2, 4, 5, seed=1)
    pads = ((0, 1), (2, 3), (1, 0))
    want = tf_run(lambda v: tf.pad(v, pads, mode=mode.upper(), constant_values=1.5 if mode == "constant" else 0), x)
    check("pad", [x], {"paddings": pads, "mode": mode, "constant_value": 1.5}, want)


def test_pad_rules():
    assert infer_shape("pad", [(B, 4)], {"paddings": ((0, 0), (1, 2))}) == (B, 7)
    assert infer_shape("pad", [(B, 4)], {"paddings": ((1, 0), (1, 2))}) == (SymDim("batch_plus1"), 7)  # a symbol of its own
    with pytest.raises(ValueError, match="too large"):
        infer_shape("pad", [(2, 4)], {"paddings": ((0, 0), (4, 0)), "mode": "reflect"})
    with pytest.raises(ValueError, match="pairs"):
        infer_shape("pad", [(2, 4)], {"paddings": ((0, 0),)})
    x = rand(3, 4, seed=2, dtype=np.int32, low=-5, high=5)
    check("pad", [x], {"paddings": ((1, 1), (0, 2)), "constant_value": 7.0},
          tf_run(lambda v: tf.pad(v, ((1, 1), (0, 2)), constant_values=7), x))


@pytest.mark.slow
def test_resnet50_sized_convs_are_fast():
    """The heaviest layers of ResNet50 at 224x224 (the whole network is ~50x this), on 2 cores."""
    import time

    x = rand(1, 224, 224, 3, seed=1)
    start = time.perf_counter()
    y = run_kernel("conv2d", [x, rand(7, 7, 3, 64, seed=2)], {"strides": (2, 2), "padding": "SAME"})[0]
    y = run_kernel("max_pool", [y], {"ksize": (3, 3), "strides": (2, 2), "padding": "SAME"})[0]
    for _ in range(3):
        y = run_kernel("tfl.conv2d", [y, rand(3, 3, 64, 64, seed=3)], {"padding": "SAME", "fused_activation": "relu"})[0]
    assert y.shape == (1, 56, 56, 64)
    assert time.perf_counter() - start < 3.0
