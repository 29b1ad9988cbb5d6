"""Op by op: small tf.functions lowered to irc and run in the interpreter against TensorFlow.

Each case names the TF ops it must contain (so a test cannot silently stop covering its lowering), lowers
the function through the TF path, verifies the graph and compares every output within 1e-4 relative.
"""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.frontends.tensorflow import read_tf
from irc.ir.interpreter import run
from tests.test_frontend_support import assert_close, check_graph

tf = pytest.importorskip("tensorflow")
F32, I32 = tf.float32, tf.int32


def spec(shape, dtype=F32, name=None):
    return tf.TensorSpec(shape, dtype, name=name)


def sample(specs, seed=0, batch=2):
    rng = np.random.default_rng(seed)
    arrays = []
    for s in specs:
        shape = [batch if d is None else d for d in s.shape.as_list()]
        if s.dtype.is_floating:
            arrays.append(rng.standard_normal(shape).astype(s.dtype.as_numpy_dtype))
        elif s.dtype == tf.bool:
            arrays.append(rng.random(shape) < 0.5)
        else:
            arrays.append(rng.integers(0, 5, shape).astype(s.dtype.as_numpy_dtype))
    return arrays


def lower(fn, specs, ops=(), **load_options):
    """The lowered graph of tf.function ``fn`` over ``specs``, after checking its TF graph holds ``ops``."""
    function = tf.function(fn, input_signature=specs)
    if ops:
        tfgraph = read_tf(function)
        found = {n.op for n in tfgraph.nodes} | {n.op for f in tfgraph.functions.values() for n in f.nodes}
        assert set(ops) <= found, f"the TF graph lacks {sorted(set(ops) - found)} (has {sorted(found)})"
    graph = irc.load(function, **load_options)
    check_graph(graph, opaque=load_options.get("allow_tf_ops", False))
    return graph, function


def check(fn, specs, ops=(), seed=0, batch=2, rel=1e-4, **load_options):
    graph, function = lower(fn, specs, ops, **load_options)
    arrays = sample(specs, seed, batch)
    ref = function(*arrays)
    if not isinstance(ref, dict):
        ref = {"output_0": ref}
    ref = {k: np.asarray(v) for k, v in ref.items()}
    out = run(graph, dict(zip([v.name for v in graph.inputs], arrays)))
    assert_close(out, ref, rel)
    return graph


# ----- elementwise and activations ---------------------------------------------------------------------------
BINARY_CASES = {
    "AddV2": tf.add, "Sub": tf.subtract, "Mul": tf.multiply, "RealDiv": tf.divide, "Maximum": tf.maximum,
    "Minimum": tf.minimum, "SquaredDifference": tf.math.squared_difference,
    "Pow": lambda x, y: tf.pow(tf.abs(x) + 0.5, y), "FloorDiv": lambda x, y: tf.math.floordiv(x, tf.abs(y) + 0.5),
    "FloorMod": lambda x, y: tf.math.floormod(x, tf.abs(y) + 0.5), "DivNoNan": tf.math.divide_no_nan,
}


@pytest.mark.parametrize("op", BINARY_CASES)
def test_binary(op):
    check(lambda x, y: BINARY_CASES[op](x, y), [spec([None, 3, 4]), spec([4])], ops=[op])


UNARY_CASES = {
    "Neg": tf.negative, "Abs": tf.abs, "Sqrt": lambda x: tf.sqrt(tf.abs(x)), "Rsqrt": lambda x: tf.math.rsqrt(
        tf.abs(x) + 0.1), "Exp": tf.exp, "Log": lambda x: tf.math.log(tf.abs(x) + 0.1), "Square": tf.square,
    "Sin": tf.sin, "Cos": tf.cos, "Floor": tf.floor, "Ceil": tf.math.ceil, "Round": tf.round, "Sign": tf.sign,
    "Erf": tf.math.erf, "Erfc": tf.math.erfc, "Reciprocal": lambda x: tf.math.reciprocal(x + 10.0),
    "Log1p": lambda x: tf.math.log1p(tf.abs(x)), "Expm1": tf.math.expm1, "Relu": tf.nn.relu,
    "Relu6": lambda x: tf.nn.relu6(x * 4), "Elu": tf.nn.elu, "Selu": tf.nn.selu, "Softplus": tf.nn.softplus,
    "Softsign": tf.nn.softsign, "LeakyRelu": lambda x: tf.nn.leaky_relu(x, 0.1), "Sigmoid": tf.sigmoid,
    "Tanh": tf.tanh, "Softmax": tf.nn.softmax, "LogSoftmax": tf.nn.log_softmax,
}


@pytest.mark.parametrize("op", UNARY_CASES)
def test_unary(op):
    check(UNARY_CASES[op], [spec([None, 6])], ops=[op])


def test_comparisons_select_and_logic():
    def fn(x, y):
        a, b = tf.less(x, y), tf.greater_equal(x, 0.0)
        c = tf.logical_or(tf.logical_and(a, b), tf.logical_not(tf.equal(x, y)))
        d = tf.logical_and(tf.not_equal(x, 0.5), tf.less_equal(y, 1.0)) | tf.greater(y, x)
        return {"where": tf.where(c, x, y), "cast": tf.cast(d, tf.int32)}

    check(fn, [spec([None, 5]), spec([None, 5])],
          ops=["Less", "GreaterEqual", "LogicalOr", "LogicalAnd", "LogicalNot", "Equal", "NotEqual", "SelectV2",
               "Cast", "LessEqual", "Greater"])


def test_bias_add_and_add_n():
    check(lambda x, b: tf.add_n([tf.nn.bias_add(x, b), x, x]), [spec([None, 4, 4, 3]), spec([3])],
          ops=["BiasAdd", "AddN"])


# ----- reductions ----------------------------------------------------------------------------------------------
def test_reductions():
    def fn(x):
        return {"mean": tf.reduce_mean(x, axis=[1, 2]), "sum": tf.reduce_sum(x, axis=-1, keepdims=True),
                "max": tf.reduce_max(x, axis=1), "min": tf.reduce_min(x, axis=0), "prod": tf.reduce_prod(x, axis=2),
                "all": tf.reduce_all(x > -1.0, axis=1), "any": tf.reduce_any(x > 1.0, axis=[0, 2]),
                "argmax": tf.argmax(x, axis=1), "argmin": tf.argmin(x, axis=-1, output_type=tf.int32)}

    check(fn, [spec([None, 3, 4])], ops=["Mean", "Sum", "Max", "Min", "Prod", "All", "Any", "ArgMax", "ArgMin"])


# ----- nn ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("padding, strides, dilations", [("SAME", 1, 1), ("VALID", 2, 1), ("SAME", 1, 2),
                                                         ("SAME", 2, 1), ([[0, 0], [1, 2], [2, 0], [0, 0]], 1, 1)])
def test_conv2d(padding, strides, dilations):
    w = np.random.default_rng(1).standard_normal((3, 3, 4, 5)).astype(np.float32)
    check(lambda x: tf.nn.conv2d(x, w, strides, padding, dilations=dilations), [spec([None, 9, 9, 4])],
          ops=["Conv2D"])


@pytest.mark.parametrize("padding, strides", [("SAME", 1), ("VALID", 2), ("SAME", 2)])
def test_depthwise_conv2d(padding, strides):
    w = np.random.default_rng(2).standard_normal((3, 3, 4, 2)).astype(np.float32)
    check(lambda x: tf.nn.depthwise_conv2d(x, w, [1, strides, strides, 1], padding), [spec([None, 8, 8, 4])],
          ops=["DepthwiseConv2dNative"])


@pytest.mark.parametrize("padding, stride, size", [("SAME", 2, 2), ("VALID", 2, 3), ("SAME", 1, 3)])
def test_conv2d_transpose(padding, stride, size):
    import keras

    layer = keras.layers.Conv2DTranspose(6, size, strides=stride, padding=padding.lower())
    layer.build((None, 5, 5, 4))
    check(lambda x: layer(x), [spec([None, 5, 5, 4])], ops=["Conv2DBackpropInput"])


def test_conv2d_transpose_static_batch():
    w = np.random.default_rng(3).standard_normal((3, 3, 2, 4)).astype(np.float32)
    graph = check(lambda x: tf.nn.conv2d_transpose(x, w, [2, 10, 10, 2], 2, "SAME"), [spec([2, 5, 5, 4])],
                  ops=["Conv2DBackpropInput"])
    (node,) = [n for n in graph.nodes if n.op == "conv2d_transpose"]
    assert node.attrs["output_shape"] == (2, 10, 10, 2)


def test_matmul_variants():
    def fn(a, b, c):
        return {"mm": tf.matmul(a, b, transpose_b=True), "mm_t": tf.matmul(a, b, transpose_a=True,
                                                                           transpose_b=False)[:1],
                "bmm": tf.matmul(c, c, adjoint_b=True), "bmm_a": tf.linalg.matmul(c, c, adjoint_a=True)}

    check(fn, [spec([4, 4]), spec([4, 4]), spec([None, 3, 4, 4])], ops=["MatMul", "BatchMatMulV2"])


@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("padding, size, stride", [("VALID", 2, 2), ("SAME", 3, 2), ("SAME", 3, 1)])
def test_pools(pool, padding, size, stride):
    fn = tf.nn.max_pool2d if pool == "max" else tf.nn.avg_pool2d
    check(lambda x: fn(x, size, stride, padding), [spec([None, 7, 7, 3])],
          ops=["MaxPool" if pool == "max" else "AvgPool"])


def test_fused_batch_norm():
    rng = np.random.default_rng(4)
    scale, offset, mean = (rng.standard_normal(3).astype(np.float32) for _ in range(3))
    variance = rng.random(3).astype(np.float32) + 0.5

    def fn(x):
        return tf.compat.v1.nn.fused_batch_norm(x, scale, offset, mean, variance, epsilon=1e-3, is_training=False)[0]

    check(fn, [spec([None, 4, 4, 3])], ops=["FusedBatchNormV3"])


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
@pytest.mark.parametrize("align, half", [(False, False), (True, False), (False, True)])
def test_resize(method, align, half):
    op = tf.compat.v1.image.resize_bilinear if method == "bilinear" else tf.compat.v1.image.resize_nearest_neighbor
    check(lambda x: op(x, [7, 10], align_corners=align, half_pixel_centers=half), [spec([None, 4, 5, 2])],
          ops=["ResizeBilinear" if method == "bilinear" else "ResizeNearestNeighbor"])


def test_pads():
    def fn(x):
        return {"pad": tf.pad(x, [[0, 0], [1, 2], [0, 1]]), "value": tf.pad(x, [[0, 0], [1, 1], [2, 0]],
                                                                            constant_values=1.5),
                "reflect": tf.pad(x, [[0, 0], [2, 1], [1, 1]], mode="REFLECT"),
                "symmetric": tf.pad(x, [[0, 0], [3, 0], [0, 2]], mode="SYMMETRIC")}

    check(fn, [spec([None, 4, 3])], ops=["Pad", "PadV2", "MirrorPad"])


# ----- shapes and slicing ----------------------------------------------------------------------------------------
def test_shape_ops():
    def fn(x, i):
        y = tf.reshape(x, [-1, 12])
        parts = tf.split(y, 3, axis=1)
        a, b = tf.split(y, [5, -1], axis=1)
        return {
            "concat": tf.concat([parts[2], parts[0], a], axis=-1), "b": b,
            "transpose": tf.transpose(x, [2, 0, 1]), "squeeze": tf.squeeze(tf.expand_dims(x, 2), axis=2),
            "tile": tf.tile(x, [1, 2, 1]), "broadcast": tf.broadcast_to(x[:1, :1], [3, 3, 4]),
            "stack": tf.stack([x, x * 2], axis=1), "unstack": tf.unstack(x, axis=1)[2],
            "slice": tf.slice(x, [0, 1, 1], [-1, 2, 3]), "gather": tf.gather(x, [2, 0], axis=1),
            "gather_i": tf.gather(x, i % 4, axis=2), "reverse": tf.reverse(x, [1, 2]),
            "one_hot": tf.one_hot(i, 4, on_value=2.0, off_value=-1.0), "range": tf.range(1, 10, 3) * 2,
            "zeros": tf.zeros_like(x) + 1.0, "ones": tf.ones_like(i),
        }

    check(fn, [spec([None, 3, 4]), spec([None, 3], I32)],
          ops=["Reshape", "Split", "SplitV", "ConcatV2", "Transpose", "Squeeze", "ExpandDims", "Tile", "BroadcastTo",
               "Pack", "Unpack", "Slice", "GatherV2", "ReverseV2", "OneHot", "Range", "ZerosLike", "OnesLike"])


def test_more_array_ops():
    def fn(x, m):
        return {
            "d2s": tf.nn.depth_to_space(x, 2), "s2d": tf.nn.space_to_depth(tf.nn.depth_to_space(x, 2) * 3.0, 2),
            "clip": tf.raw_ops.ClipByValue(t=x, clip_value_min=-0.5, clip_value_max=0.5),
            "band": tf.linalg.band_part(m, -1, 0) + tf.linalg.band_part(m, 1, 2),
            "select_v1": tf.raw_ops.Select(condition=tf.reduce_sum(m, axis=[1, 2]) > 0, x=m, y=-m),
            "bmm_v3": tf.raw_ops.BatchMatMulV3(x=m, y=m, Tout=tf.float32, adj_y=True),
            "shape_n": tf.cast(tf.shape_n([x, m])[1], tf.float32),
        }

    check(fn, [spec([None, 4, 6, 8]), spec([None, 5, 5])],
          ops=["DepthToSpace", "SpaceToDepth", "ClipByValue", "MatrixBandPart", "Select", "BatchMatMulV3", "ShapeN"])


# ----- cumsum, roll, dynamic slices, top-k, gather_nd and scatters ----------------------------------------------
def indexing_fn(x, i):
    """Every indexing op, with run-time offsets and indices (i holds small non-negative ints)."""
    from tensorflow.compiler.tf2xla.python import xla

    rows = tf.reshape(i[:1, :2] % 3, [2, 1])  # run-time indices into dim 0 of a [3, ...] tensor, maybe repeated
    t = x[0]  # [3, 4, 5]
    upd = tf.ones([2, 4, 5]) * x[1, :2]
    return {
        "cumsum": tf.math.cumsum(x, axis=-1), "cumsum_rev_ex": tf.math.cumsum(x, axis=1, exclusive=True, reverse=True),
        "cumsum_int": tf.math.cumsum(i, axis=0, reverse=True),
        "roll": tf.roll(x, shift=[1, -2, 7], axis=[1, 2, -1]), "roll1": tf.roll(x, 3, axis=-2),
        "dslice": xla.dynamic_slice(x, tf.stack([0, i[0, 0], i[0, 1] - 2, i[0, 2] * 3]), [2, 2, 3, 4]),
        "dupdate": xla.dynamic_update_slice(x, x[:, :1, :2, :3] * 10.0, tf.stack([0, i[0, 1], i[0, 0] - 1, 2])),
        "top_k": tf.math.top_k(x, 3).values, "top_k_idx": tf.math.top_k(x, 5).indices,
        "gather_nd": tf.gather_nd(t, rows), "gather_nd2": tf.gather_nd(t, tf.concat([rows, rows], axis=1)),
        "scatter_nd": tf.scatter_nd(rows, upd, [3, 4, 5]),
        "ts_add": tf.tensor_scatter_nd_add(t, rows, upd),
        "ts_update": tf.tensor_scatter_nd_update(t, rows[:1], upd[:1]),
    }


INDEXING_SPECS = [spec([2, 3, 4, 5]), spec([2, 3], I32)]
INDEXING_OPS = ["Cumsum", "Roll", "XlaDynamicSlice", "XlaDynamicUpdateSlice", "TopKV2", "GatherNd", "ScatterNd",
                "TensorScatterAdd", "TensorScatterUpdate"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_indexing_ops(seed):
    check(indexing_fn, INDEXING_SPECS, ops=INDEXING_OPS, seed=seed)


def test_indexing_ops_on_the_fast_path_and_in_tflite(tmp_path):
    """A SavedModel of every indexing op, read without TensorFlow, run by irc and by TFLite's interpreter."""
    from irc.backends.tflite.backend import emit

    module = tf.Module()
    module.f = tf.function(indexing_fn, input_signature=INDEXING_SPECS)
    tf.saved_model.save(module, str(tmp_path / "model"), signatures=module.f)
    graph = irc.load(tmp_path / "model", fast=True)
    arrays = sample(INDEXING_SPECS, seed=3)
    ref = {k: np.asarray(v) for k, v in module.f(*arrays).items()}
    named = {"x": arrays[0], "i": arrays[1]}
    assert_close(run(graph, named), ref, 1e-4)
    runner = tf.lite.Interpreter(model_content=emit(graph)).get_signature_runner()
    assert_close({k: np.asarray(v) for k, v in runner(**named).items()}, ref, 1e-4)


def test_indexing_ops_need_constant_parameters():
    with pytest.raises(irc.errors.UnsupportedOpError, match="Cumsum .*the axis is computed at run time"):
        lower(lambda x, a: tf.math.cumsum(x, axis=a), [spec([3, 4]), spec([], I32)])
    with pytest.raises(irc.errors.UnsupportedOpError, match="TopKV2 .*k is computed at run time"):
        lower(lambda x, k: tf.math.top_k(x, k).values, [spec([3, 4]), spec([], I32)])


@pytest.mark.parametrize("index", [
    (slice(None), slice(1, None, 2)), (Ellipsis, 0), (slice(None), None, slice(-2, None)), (1,),
    (slice(None), slice(None, None, -1), slice(None, 2)), (Ellipsis, None, slice(1, 3)), (slice(None), -1, 1)])
def test_strided_slice(index):
    check(lambda x: x[index] + 0.0, [spec([4, 5, 6])], ops=["StridedSlice"])


def test_shape_arithmetic_folds_with_a_symbolic_batch():
    """Shape -> StridedSlice -> Pack/Mul -> Reshape/Fill chains become attributes; the batch stays symbolic."""

    def fn(x):
        n = tf.shape(x)[0]
        flat = tf.reshape(x, tf.stack([n, -1]))
        rows = tf.reshape(x, [-1, tf.shape(x)[2]])
        zeros = tf.fill(tf.stack([n, 7]), 2.0)
        size = tf.cast(tf.size(x), tf.float32) / tf.cast(tf.shape(x)[0], tf.float32)
        return {"flat": flat, "rows": rows, "zeros": zeros, "size": flat * 0 + size,
                "rank": tf.rank(x) + tf.reduce_prod(tf.shape(x)[1:]), "broadcast": tf.broadcast_to(
                    tf.constant([1.0, 2.0]), tf.stack([n, 2]))}

    graph, _ = lower(fn, [spec([None, 3, 4])], ops=["Shape", "StridedSlice", "Pack", "Fill", "Reshape", "Size",
                                                     "Prod", "BroadcastTo"])
    shapes = {name: v.type.shape for name, v in graph.outputs.items()}
    batch = graph.inputs[0].type.shape[0]
    assert shapes["flat"] == (batch, 12) and shapes["zeros"] == (batch, 7)
    reshapes = [n for n in graph.nodes if n.op == "reshape" and n.loc.names[0].startswith("Reshape")]
    assert sorted(n.attrs["shape"] for n in reshapes) == [(-1, 4), (-1, 12)]
    assert len([n for n in graph.nodes if n.op == "select"]) == 2  # Fill and BroadcastTo to [batch, k]
    for batch_size in (1, 3):
        x = np.random.default_rng(batch_size).standard_normal((batch_size, 3, 4)).astype(np.float32)
        ref = tf.function(fn)(x)
        assert_close(run(graph, {graph.inputs[0].name: x}), {k: np.asarray(v) for k, v in ref.items()})


# ----- einsum ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("equation, shapes", [
    ("bij,bjk->bik", [(None, 3, 4), (None, 4, 5)]),
    ("abc,cde->abde", [(None, 3, 4), (4, 2, 5)]),
    ("BTNH,BSNH->BNTS", [(None, 3, 2, 4), (None, 5, 2, 4)]),
    ("BNTS,BSNH->BTNH", [(None, 2, 3, 5), (None, 5, 2, 4)]),
    ("abcd,cde->abe", [(None, 3, 2, 4), (2, 4, 6)]),
    ("ij->ji", [(3, 4)]), ("bij->bj", [(None, 3, 4)]),
    ("...ij,...jk->...ik", [(None, 2, 3, 4), (None, 2, 4, 5)]),
    ("bi,bi->b", [(None, 4), (None, 4)]), ("i,j->ij", [(3,), (4,)]),
    ("ij,jk", [(3, 4), (4, 5)]), ("abc,cd->abd", [(None, 3, 4), (4, 6)]),
    ("bik,kj,jl->bil", [(None, 2, 3), (3, 4), (4, 5)]),
])
def test_einsum(equation, shapes):
    specs = [spec(s) for s in shapes]
    graph = check(lambda *xs: tf.einsum(equation, *xs), specs, ops=["Einsum"], batch=3)
    assert "tf.Einsum" not in graph.op_histogram()


def test_einsum_diagonal_is_reported():
    with pytest.raises(irc.errors.UnsupportedOpError, match=r"Einsum .*diagonal"):
        lower(lambda x: tf.einsum("ii->i", x), [spec([3, 3])])


# ----- control flow ----------------------------------------------------------------------------------------------
def test_while_loop_with_static_trip_count_stays_a_loop():
    def fn(x):
        def body(i, acc, ta):
            acc = tf.tanh(acc * 0.5 + x[:, i % 4])
            return i + 1, acc, ta.write(i, acc)

        ta = tf.TensorArray(tf.float32, size=6)
        _, acc, ta = tf.while_loop(lambda i, *_: i < 6, body, [0, tf.zeros_like(x[:, 0]), ta])
        return {"acc": acc, "stacked": ta.stack()}

    graph = check(fn, [spec([None, 4])], ops=["StatelessWhile", "TensorListReserve", "TensorListSetItem", "TensorListStack"])
    assert graph.op_histogram()["while"] == 1  # unrolling is a pass now (unroll-loops), not the frontend's
    assert [n.op for n in graph.walk(recursive=True)].count("tanh") == 1


def test_tensor_list_from_tensor_and_get_item():
    def fn(x):
        ta = tf.TensorArray(tf.float32, size=5).unstack(x)

        def body(i, acc):
            return i + 1, acc + ta.read(i) * tf.cast(i, tf.float32)

        return tf.while_loop(lambda i, _: i < 5, body, [0, tf.zeros([3])])[1]

    check(fn, [spec([5, 3])], ops=["TensorListFromTensor", "TensorListGetItem"])


def test_while_loop_with_a_run_time_trip_count():
    def fn(x, n):
        return tf.while_loop(lambda i, _: i < n, lambda i, a: (i + 1, a * 2.0), [0, x])[1]

    graph = check(fn, [spec([3]), spec([], I32)])
    (loop,) = graph.walk("while")
    assert [r.name for r in loop.regions] == ["cond", "body"]


def test_if_with_constant_and_run_time_conditions():
    def fn(x):
        constant = tf.cond(tf.constant(True), lambda: x * 2.0, lambda: x - 1.0)
        run_time = tf.cond(tf.reduce_sum(x) > 0, lambda: tf.exp(x), lambda: tf.abs(x))
        return {"constant": constant, "run_time": run_time}

    graph = check(fn, [spec([4])], ops=["StatelessIf"])
    for seed in range(3):  # both branches are taken on some input
        x = np.random.default_rng(seed).standard_normal(4).astype(np.float32)
        assert_close(run(graph, {graph.inputs[0].name: x}), {k: np.asarray(v) for k, v in tf.function(fn)(x).items()})


# ----- inputs, outputs, errors, opaque ops ------------------------------------------------------------------------
def test_names_and_locations_come_from_the_model():
    import keras

    inputs = keras.Input((6,), name="features")
    hidden = keras.layers.Dense(4, activation="relu", name="hidden")(inputs)
    out = keras.layers.Dense(2, name="scores")(hidden)
    model = keras.Model(inputs, out)
    graph = irc.load(model)
    check_graph(graph)
    assert [v.name for v in graph.inputs] == ["features"]
    assert list(graph.outputs) == ["scores"]
    assert {layer for n in graph.nodes for layer in n.loc.layers} >= {"hidden", "scores"}
    (relu,) = [n for n in graph.nodes if n.op == "relu"]
    assert relu.loc.layers == ("hidden",) and relu.loc.names[0].endswith("Relu")


def _two_unsupported(x):
    y = tf.math.cumprod(x, axis=1) + tf.math.cumprod(x * 2.0, axis=1, reverse=True)
    return tf.math.lgamma(tf.nn.relu(y) + 1.0)


def test_unsupported_ops_are_listed_once():
    with pytest.raises(irc.errors.UnsupportedOpError) as info:
        lower(_two_unsupported, [spec([None, 5])])
    message = str(info.value)
    assert "2 TensorFlow op types irc cannot lower" in message
    assert "Cumprod (2 nodes, e.g. Cumprod" in message and "Lgamma (1 node, e.g. Lgamma" in message
    assert "--allow-tf-ops" in message


def test_unsupported_ops_name_their_keras_layer(tmp_path):
    import keras

    class Cumulative(keras.layers.Layer):
        def call(self, x):
            return tf.math.cumprod(x, axis=-1)

    inputs = keras.Input((5,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(Cumulative(name="running")(inputs)))
    with pytest.raises(irc.errors.UnsupportedOpError, match=r"Cumprod \(1 node, e\.g\. .*Cumprod in layer running\)"):
        irc.load(model)


def test_allow_tf_ops_keeps_opaque_nodes_that_run():
    graph, function = lower(_two_unsupported, [spec([None, 5])], allow_tf_ops=True)
    opaque = [n for n in graph.nodes if n.is_opaque]
    assert sorted(n.op for n in opaque) == ["tf.Cumprod", "tf.Cumprod", "tf.Lgamma"]
    assert all(n.attrs["node_def"] and n.results[0].type.shape == graph.inputs[0].type.shape for n in opaque)
    x = np.random.default_rng(5).standard_normal((3, 5)).astype(np.float32)
    with pytest.raises(irc.errors.InputError, match="Cumprod.*--allow-tf-ops"):  # running them needs the word too
        irc.run(graph, {graph.inputs[0].name: x})
    assert_close(irc.run(graph, {graph.inputs[0].name: x}, allow_tf_ops=True), {"output_0": function(x).numpy()})


def test_input_shape_errors():
    function = tf.function(lambda x: x * 2.0, input_signature=[spec([None, 3], name="x")])
    with pytest.raises(irc.errors.UsageError, match="not an input"):
        irc.load(function, input_shapes={"y": (1, 3)})
    graph = irc.load(function, input_shapes={"x": (4, 3)})
    assert graph.inputs[0].type.shape == (4, 3)


def test_input_shape_is_checked_against_a_savedmodel(zoo_models):
    path = zoo_models.saved_model("small_cnn")
    with pytest.raises(irc.errors.UsageError, match="rank 2"):
        irc.load(path, input_shapes={"image": (1, 64)})
    with pytest.raises(irc.errors.UsageError, match="contradicts"):
        irc.load(path, input_shapes={"image": (1, 9, 9, 1)})
