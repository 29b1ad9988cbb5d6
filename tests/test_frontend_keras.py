"""Keras layers beyond the zoo, lowered through the TF path and run against Keras.

Each model mixes layers whose TF graphs use different ops: dilated convolutions (SpaceToBatchND /
BatchToSpaceND), bidirectional and masked RNNs (ReverseV2, SelectV2 and ZerosLike inside the loop), causal
attention (MatrixBandPart, Einsum), Conv1D (ExpandDims + Conv2D + Squeeze), Conv1DTranspose, and so on.
"""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.ir.interpreter import run
from irc.ir.types import SymDim
from tests.test_frontend_support import assert_close, check_graph

keras = pytest.importorskip("keras")
L = keras.layers


def image_model():
    i = keras.Input((16, 16, 3), name="image")
    x = L.ZeroPadding2D(2)(i)
    x = L.Cropping2D(1)(x)
    x = L.SeparableConv2D(8, 3, padding="same")(x)
    x = L.Conv2D(8, 3, dilation_rate=2, padding="same")(x)
    x = L.DepthwiseConv2D(3)(x)
    x = L.PReLU()(x)
    x = L.UpSampling2D(interpolation="bilinear")(x)
    x = L.BatchNormalization()(x)
    x = L.LeakyReLU()(x)
    a, b = L.GlobalMaxPooling2D()(x), L.GlobalAveragePooling2D()(x)
    x = L.Concatenate()([L.Maximum()([a, b]), L.Average()([a, b]), L.Multiply()([a, b])])
    return keras.Model(i, L.Dense(4, activation="hard_sigmoid", name="out")(x))


def sequence_model():
    i = keras.Input((10, 8), name="frames")
    x = L.Conv1D(6, 3, padding="causal", dilation_rate=2)(i)
    x = L.MaxPooling1D(2)(x)
    x = L.UpSampling1D(2)(x)
    x = L.Bidirectional(L.LSTM(5, return_sequences=True))(x)
    x = L.SimpleRNN(4, return_sequences=True)(x)
    x = L.Attention()([x, x])
    x = L.LayerNormalization()(x)
    x = L.Permute((2, 1))(x)
    x = L.Flatten()(x)
    x = L.RepeatVector(3)(x)
    x = L.Reshape((-1, 4))(x)
    x = L.GlobalMaxPooling1D()(x)
    x = L.Dense(3, activation="swish")(x)
    return keras.Model(i, L.Softmax(axis=-1, name="out")(x))


def activation_model():
    i = keras.Input((10, 8), name="frames")
    x = L.GRU(6, return_sequences=True, go_backwards=True)(i)
    x = L.Conv1DTranspose(4, 3, strides=2)(x)
    x = L.Dot(axes=(2, 2))([x, x])
    for name in ("gelu", "selu", "softsign", "mish", "hard_swish", "relu6", "elu", "softplus", "log_softmax"):
        x = L.Activation(name)(x)
    return keras.Model(i, L.Identity(name="out")(x))


def masked_lstm_model():
    i = keras.Input((12,), dtype="int32", name="tokens")
    x = L.Embedding(50, 8, mask_zero=True)(i)
    return keras.Model(i, L.LSTM(4, name="out")(x))


def causal_attention_model():
    i = keras.Input((12,), dtype="int32", name="tokens")
    x = L.Embedding(50, 16)(i)
    x = L.MultiHeadAttention(2, 8)(x, x, use_causal_mask=True)
    x = L.Conv1D(8, 1)(x)
    return keras.Model(i, L.GlobalAveragePooling1D(name="out")(x))


MODELS = {"image": image_model, "sequence": sequence_model, "activations": activation_model,
          "masked_lstm": masked_lstm_model, "causal_attention": causal_attention_model}


@pytest.mark.parametrize("name", MODELS)
def test_keras_layers(name):
    keras.utils.set_random_seed(0)
    model = MODELS[name]()
    graph = irc.load(model)
    check_graph(graph)
    rng = np.random.default_rng(1)
    (value,) = graph.inputs
    shape = (3,) + tuple(value.type.shape[1:])
    if value.type.dtype.is_float:
        x = rng.standard_normal(shape).astype(np.float32)
    else:  # token ids with padding (0) at the end, for the masked LSTM
        x = rng.integers(1, 50, shape).astype(np.int32)
        x[:, -3:] = 0
    out = run(graph, {value.name: x})
    assert_close(out, {"out": np.asarray(model(x))})
    assert graph.outputs["out"].type.shape[0] == SymDim("batch")
