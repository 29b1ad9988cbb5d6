"""Keras' Dense on a sequence: TensorFlow's Tensordot (a reshape to 2-D, MatMul, a reshape back) and then the bias
add and the activation become one FULLY_CONNECTED with keep_num_dims, as TensorFlow's converter writes it (no
RESHAPE around it: these cost ALBERT and RoFormer 1% of their file over TF's)."""

from __future__ import annotations

import numpy as np
import pytest

from irc.formats.tflite.flatbuffer import read_model

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _operators(data: bytes) -> list[tuple[str, object]]:
    model = read_model(data)
    return [(model.operator_codes[op.opcode_index].builtin_code, op) for op in model.subgraphs[0].operators]


@pytest.fixture(scope="module")
def dense_model(tmp_path_factory):
    """[batch, 8, 16] -> Dense(32, relu) -> reshape [batch, 8, 4, 8] -> reshape [batch, 8, 32] -> Dense(16), random
    biases; the unknown batch makes TensorFlow compute Tensordot's shapes at run time."""
    from irc import zoo

    keras.utils.set_random_seed(3)
    x = keras.Input((8, 16))
    h = keras.layers.Dense(32, activation="relu", bias_initializer="random_normal")(x)
    h = keras.layers.Reshape((8, 32))(keras.layers.Reshape((8, 4, 8))(h))
    y = keras.layers.Dense(16, bias_initializer="random_normal")(h)
    model = keras.Model(x, y)
    return model, zoo.export(model, tmp_path_factory.mktemp("dense") / "saved_model")


def test_dense_on_a_sequence_is_one_fully_connected(dense_model):
    import irc

    model, path = dense_model
    data = irc.lower(str(path), emit="tflite")
    ops = _operators(data)
    assert [code for code, _ in ops] == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    first, second = (op for _, op in ops)
    assert first.builtin_options.keep_num_dims and second.builtin_options.keep_num_dims
    assert first.builtin_options.fused_activation_function == "RELU"
    assert len(first.inputs) == 3 and first.inputs[2] >= 0  # the bias is the operator's own

    x = np.random.default_rng(0).standard_normal((3, 8, 16)).astype(np.float32)  # batch 3: the dims are kept
    interpreter = tf.lite.Interpreter(model_content=data)
    runner = interpreter.get_signature_runner()
    [got] = runner(**{runner.get_input_details().popitem()[0]: x}).values()
    want = model(x).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
