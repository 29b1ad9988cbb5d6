"""The fast path (no TensorFlow) and the TF path give the same neutral graph for the same model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from tfgraph_models import assert_same_graph, cnn_keras_file, cnn_model, cnn_savedmodel, workdir

from irc.frontends.savedmodel_reader import read_graphdef_bytes, read_savedmodel_fast
from irc.frontends.tf_loader import load_tf


def _consts(graph) -> dict[str, np.ndarray]:
    return {n.name: n.attrs["value"] for n in graph.nodes if n.op == "Const"}


def test_cnn_fast_equals_tf():
    fast = read_savedmodel_fast(cnn_savedmodel())
    assert_same_graph(fast, load_tf(cnn_savedmodel(), unsafe=True))  # TF's loader: only with unsafe
    assert fast.inputs == [("image", "float32", (None, 12, 12, 3))]
    assert [name for name, _ in fast.outputs] == ["output_0"]
    ops = {n.op for n in fast.nodes}
    assert {"Conv2D", "MatMul", "Placeholder", "Const"} <= ops
    assert not ops & {"Identity", "IdentityN", "NoOp", "ReadVariableOp", "StatefulPartitionedCall", "VarHandleOp"}


def test_cnn_variables_bound_to_the_right_weights():
    model = cnn_model()
    graph = read_savedmodel_fast(cnn_savedmodel())
    conv = next(n for n in graph.nodes if n.op == "Conv2D")
    kernel = graph.node(conv.inputs[1])
    assert kernel.op == "Const" and kernel.layer == "conv1"
    np.testing.assert_array_equal(kernel.attrs["value"], model.get_layer("conv1").kernel.numpy())
    values = [v for v in _consts(graph).values() if v.shape == (4,)]
    mean = model.get_layer("bn").moving_mean.numpy()
    assert any(np.array_equal(v, mean) for v in values)


def test_layers_recovered_from_name_scopes():
    graph = read_savedmodel_fast(cnn_savedmodel())
    layer = {n.op: n.layer for n in graph.nodes}
    assert layer["Conv2D"] == "conv1"
    assert layer["MatMul"] == "dense_1"
    assert layer["Relu"] == "relu"
    assert graph.node("image").layer is None


def test_keras_object_and_file_agree():
    from_object = load_tf(cnn_model(), input_shapes={"image": (1, 12, 12, 3)})
    from_file = load_tf(cnn_keras_file(), input_shapes={"image": (1, 12, 12, 3)})
    assert from_object.inputs == [("image", "float32", (1, 12, 12, 3))]
    assert from_object.outputs[0][0] == "dense_1"
    assert [(n.op, n.layer) for n in from_object.nodes] == [(n.op, n.layer) for n in from_file.nodes]
    assert {n.layer for n in from_object.nodes if n.op == "Conv2D"} == {"conv1"}


def test_lstm_while_loop_and_functions(zoo_models):
    path = zoo_models.saved_model("lstm_classifier", seq_len=6)
    fast = read_savedmodel_fast(path)
    assert_same_graph(fast, load_tf(path, unsafe=True))
    (loop,) = [n for n in fast.nodes if n.op in ("While", "StatelessWhile")]
    assert loop.layer == "lstm"
    body, cond = fast.functions[loop.attrs["body"].name], fast.functions[loop.attrs["cond"].name]
    assert "resource" not in loop.attrs["T"]
    # The captured LSTM weights enter the loop as Consts and are plain float args of the body.
    weights = [i for i, t in enumerate(loop.attrs["T"]) if fast.node(loop.inputs[i]).op == "Const" and t == "float32"]
    assert len(weights) >= 2
    assert all(body.inputs[i][1] == "float32" for i in weights)
    assert any(n.op == "MatMul" for n in body.nodes)
    assert not any(n.op in ("ReadVariableOp", "Identity") for n in body.nodes + cond.nodes)
    assert all(n.layer == "lstm" for n in body.nodes)
    assert len(body.outputs) == len(loop.attrs["T"])


@pytest.mark.slow
def test_mobilenet_v2_fast_equals_tf(zoo_models):
    path = zoo_models.saved_model("mobilenet_v2", size=96)
    fast = read_savedmodel_fast(path)
    assert_same_graph(fast, load_tf(path, unsafe=True))
    assert sum(n.op == "DepthwiseConv2dNative" for n in fast.nodes) == 17
    assert {n.layer for n in fast.nodes if n.op == "DepthwiseConv2dNative"} >= {"expanded_conv_depthwise"}


def test_tf_module_and_function():
    import tensorflow as tf

    class Scale(tf.Module):
        def __init__(self):
            self.w = tf.Variable([[1.0, 2.0], [3.0, 4.0]])

        @tf.function(input_signature=[tf.TensorSpec((None, 2), tf.float32, name="x")])
        def __call__(self, x):
            return {"y": tf.matmul(x, self.w) + 1.0}

    module = Scale()
    graph = load_tf(module, input_shapes={"x": (3, 2)})
    assert graph.inputs == [("x", "float32", (3, 2))]
    assert [name for name, _ in graph.outputs] == ["y"]
    assert any(np.array_equal(v, module.w.numpy()) for v in _consts(graph).values())

    fn = tf.function(lambda a: tf.nn.relu(a) * 2.0, input_signature=[tf.TensorSpec((4,), tf.float32, name="a")])
    graph = load_tf(fn)
    assert graph.inputs == [("a", "float32", (4,))]
    assert sorted(n.op for n in graph.nodes) == ["Const", "Mul", "Placeholder", "Relu"]

    # The module saved and read back without TF gives the same graph as the module traced by TF.
    path = workdir() / "scale_sm"
    tf.saved_model.save(module, str(path))
    assert_same_graph(read_savedmodel_fast(path), load_tf(path, unsafe=True))


def test_frozen_graphdef_file():
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda a: tf.nn.softmax(tf.matmul(a, tf.ones((3, 2)))))
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(tf.TensorSpec((None, 3), name="a")))
    path = workdir() / "frozen.pb"
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    graph = load_tf(path, input_shapes={"a": (1, 3)})
    assert graph.inputs == [("a", "float32", (1, 3))]
    assert graph.node("a").attrs["shape"] == (1, 3)
    (out,) = graph.outputs
    assert graph.node(out[1].split(":")[0]).op == "Softmax"
    assert_same_graph(graph, read_graphdef_bytes(path.read_bytes(), str(path), input_shapes={"a": (1, 3)}))


def test_variables_in_while_and_if_and_gather():
    """Variables read inside While/If bodies and gathered (ResourceGather) become values on both paths."""
    import tensorflow as tf

    class Embed(tf.Module):
        def __init__(self):
            self.table = tf.Variable(tf.reshape(tf.range(12, dtype=tf.float32), (6, 2)))
            self.n = tf.Variable(3)

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.int32, name="ids")])
        def __call__(self, ids):
            x = tf.gather(self.table, ids)

            def body(i, acc):
                return i + 1, acc + tf.reduce_sum(tf.gather(self.table, ids))

            _, total = tf.while_loop(lambda i, acc: i < self.n, body, (0, 0.0))
            y = tf.cond(tf.reduce_sum(x) > 0, lambda: x * tf.cast(self.n, tf.float32), lambda: x)
            return {"y": y, "total": total}

    path = workdir() / "embed_sm"
    tf.saved_model.save(Embed(), str(path))
    fast = read_savedmodel_fast(path)
    assert_same_graph(fast, load_tf(path, unsafe=True))
    everywhere = fast.nodes + [n for fn in fast.functions.values() for n in fn.nodes]
    assert not {n.op for n in everywhere} & {"ResourceGather", "ReadVariableOp", "VarHandleOp"}
    assert sum(n.op == "GatherV2" for n in everywhere) == 2
    loop = next(n for n in fast.nodes if n.op == "While")
    assert "resource" not in loop.attrs["T"]
    branch = next(n for n in fast.nodes if n.op == "If")
    assert branch.attrs["Tin"][0] == "int32" and fast.node(branch.inputs[1]).attrs["value"] == 3
