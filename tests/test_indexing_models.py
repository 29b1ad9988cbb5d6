"""Models that need the indexing ops, exported as SavedModels, lowered without TensorFlow and run in TFLite's
interpreter against Keras: a model calling keras.ops.cumsum, keras-hub's Falcon (Cumsum for its ALiBi positions)
and Swin transformer (Roll, and XlaDynamicUpdateSlice for its shifted-window mask), small, with random weights."""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.backends.tflite.backend import emit
from irc.formats.tflite.flatbuffer import read_model

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
RNG = np.random.default_rng(0)


def cumsum_model():
    x = keras.Input((6, 8))
    h = keras.layers.Dense(8)(x)
    y = keras.layers.Concatenate()([keras.ops.cumsum(h, axis=1), keras.ops.cumsum(h, axis=-1)])
    return keras.Model(x, keras.layers.Dense(4)(y)), [RNG.standard_normal((2, 6, 8)).astype(np.float32)], False


def falcon_model():
    keras_hub = pytest.importorskip("keras_hub")
    model = keras_hub.models.FalconBackbone(vocabulary_size=100, num_layers=2, num_attention_heads=2, hidden_dim=16,
                                            intermediate_dim=32)
    mask = np.ones((2, 8), np.int32)
    mask[1, 6:] = 0
    inputs = {"token_ids": RNG.integers(1, 100, (2, 8)).astype(np.int32), "padding_mask": mask}
    return model, inputs, True  # a fixed sequence length: its Range needs one


def swin_model():
    keras_hub = pytest.importorskip("keras_hub")
    model = keras_hub.models.SwinTransformerBackbone(image_shape=(32, 32, 3), embed_dim=16, depths=(2, 2),
                                                     num_heads=(2, 2), window_size=4, patch_size=2)
    # a fixed batch: irc cannot yet reshape by batch * windows
    return model, [RNG.standard_normal((1, 32, 32, 3)).astype(np.float32)], True


MODELS = {"cumsum": (cumsum_model, {"Cumsum"}, {"CUMSUM"}), "falcon": (falcon_model, {"Cumsum"}, {"CUMSUM"}),
          "swin": (swin_model, {"Roll", "XlaDynamicUpdateSlice"}, set())}


def tf_ops(path) -> set[str]:
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    graph = fn.graph.as_graph_def()
    return {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_converts_and_matches_in_tflite(tmp_path, name):
    build, needs, builtins = MODELS[name]
    model, inputs, fixed = build()
    path = tmp_path / name
    model.export(str(path), verbose=False)
    assert needs <= tf_ops(path)
    ref = np.asarray(model(inputs if isinstance(inputs, dict) else inputs[0]))
    names = sorted(tf.saved_model.load(str(path)).signatures["serving_default"].structured_input_signature[1])
    feed = inputs if isinstance(inputs, dict) else dict(zip(names, inputs))
    graph = irc.load(path, fast=True, input_shapes={k: v.shape for k, v in feed.items()} if fixed else None)
    data = emit(graph)
    for resolver in (tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                     tf.lite.experimental.OpResolverType.AUTO):
        runner = tf.lite.Interpreter(model_content=data, experimental_op_resolver_type=resolver).get_signature_runner()
        (got,) = runner(**feed).values()
        assert np.max(np.abs(got - ref)) <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))
    model_ = read_model(data)
    assert builtins <= {model_.operator_codes[op.opcode_index].builtin_code for op in model_.subgraphs[0].operators}
