"""Models that need the indexing ops, exported as SavedModels, lowered without TensorFlow and run in TFLite's
interpreter against Keras: a model calling keras.ops.cumsum, and keras-hub's Swin transformer (Roll, and
XlaDynamicUpdateSlice for its shifted-window mask) at a small size with random weights."""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.backends.tflite.backend import emit
from irc.formats.tflite.flatbuffer import read_model

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def cumsum_model():
    x = keras.Input((6, 8))
    h = keras.layers.Dense(8)(x)
    y = keras.layers.Concatenate()([keras.ops.cumsum(h, axis=1), keras.ops.cumsum(h, axis=-1)])
    return keras.Model(x, keras.layers.Dense(4)(y)), (2, 6, 8), False


def swin_model():
    keras_hub = pytest.importorskip("keras_hub")
    model = keras_hub.models.SwinTransformerBackbone(image_shape=(32, 32, 3), embed_dim=16, depths=(2, 2),
                                                     num_heads=(2, 2), window_size=4, patch_size=2)
    return model, (1, 32, 32, 3), True  # a fixed batch: irc cannot yet reshape by batch * windows


MODELS = {"cumsum": (cumsum_model, {"Cumsum"}), "swin": (swin_model, {"Roll", "XlaDynamicUpdateSlice"})}


def tf_ops(path) -> set[str]:
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    graph = fn.graph.as_graph_def()
    return {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_converts_and_matches_in_tflite(tmp_path, name):
    build, needs = MODELS[name]
    model, shape, fixed_batch = build()
    path = tmp_path / name
    model.export(str(path), verbose=False)
    assert needs <= tf_ops(path)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    ref = np.asarray(model(x))
    (input_name,) = tf.saved_model.load(str(path)).signatures["serving_default"].structured_input_signature[1]
    graph = irc.load(path, fast=True, input_shapes={input_name: shape} if fixed_batch else None)
    data = emit(graph)
    for resolver in (tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                     tf.lite.experimental.OpResolverType.AUTO):
        runner = tf.lite.Interpreter(model_content=data, experimental_op_resolver_type=resolver).get_signature_runner()
        (got,) = runner(**{next(iter(runner.get_input_details())): x}).values()
        assert np.max(np.abs(got - ref)) <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))
    codes = {read_model(data).operator_codes[op.opcode_index].builtin_code
             for op in read_model(data).subgraphs[0].operators}
    assert ("CUMSUM" in codes) == (name == "cumsum")
