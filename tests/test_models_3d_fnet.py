"""Whole models of the 3-D and complex ops: keras-hub's FNet backbone (small config, random weights) and a small
Keras 3-D CNN, exported as SavedModels, lowered with ``irc lower --emit tflite`` and run in TFLite's interpreter
against TensorFlow (1e-4 of the output's scale). TensorFlow's own converter needs Flex for both (FFT2D, MaxPool3D),
which this TFLite interpreter does not link; irc's files are builtins only."""

from __future__ import annotations

import numpy as np
import pytest

from irc.formats.tflite.flatbuffer import read_model
from tests.hostile import run_irc

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytestmark = pytest.mark.slow


def fnet(path):
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.FNetBackbone(vocabulary_size=100, num_layers=2, hidden_dim=32, intermediate_dim=64,
                                             max_sequence_length=16)
    inputs = {name: keras.Input((16,), dtype="int32", name=name) for name in ("token_ids", "segment_ids")}
    keras.Model(inputs, backbone(inputs)["sequence_output"]).export(str(path), format="tf_saved_model")


def cnn3d(path):
    keras.utils.set_random_seed(0)
    keras.Sequential([
        keras.Input((8, 16, 16, 2)),
        keras.layers.Conv3D(8, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling3D(2),
        keras.layers.Conv3D(8, (2, 3, 3), strides=(1, 2, 2), activation="relu"),
        keras.layers.Conv3D(8, 3, dilation_rate=2, padding="same"),
        keras.layers.AveragePooling3D((1, 2, 2), padding="same"),
        keras.layers.Conv3DTranspose(4, 3, strides=2, padding="same"),
        keras.layers.GlobalAveragePooling3D(),
        keras.layers.Dense(5),
    ]).export(str(path), format="tf_saved_model")


@pytest.mark.parametrize("build", [fnet, cnn3d], ids=["fnet", "cnn3d"])
def test_lowered_model_runs_in_tflite(tmp_path, build):
    saved = tmp_path / "model"
    build(saved)
    out = tmp_path / "model.tflite"
    outcome = run_irc(["lower", saved, "--emit", "tflite", "-o", out], cwd=tmp_path, timeout=120)
    assert outcome.returncode == 0, outcome.stderr
    data = out.read_bytes()
    model = read_model(data)
    codes = {model.operator_codes[op.opcode_index].builtin_code for op in model.subgraphs[0].operators}
    assert "CUSTOM" not in codes, codes

    signature = tf.saved_model.load(str(saved)).signatures["serving_default"]
    rng = np.random.default_rng(0)
    inputs = {}
    for name, spec in signature.structured_input_signature[1].items():
        shape = [2 if d is None else d for d in spec.shape]
        high = 4 if "segment" in name else 100  # FNet's segment ids index its 4 segment embeddings
        inputs[name] = (rng.integers(0, high, shape).astype(np.int32) if spec.dtype.is_integer
                        else rng.standard_normal(shape).astype(np.float32))
    want = {k: v.numpy() for k, v in signature(**inputs).items()}
    got = tf.lite.Interpreter(model_content=data).get_signature_runner()(**inputs)
    for key, ref in want.items():
        err = float(np.max(np.abs(got[key] - ref)))
        assert err <= 1e-4 * float(np.max(np.abs(ref))), f"{key}: max abs error {err}"
