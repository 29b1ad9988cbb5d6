"""Real model architectures built locally (random weights, nothing downloaded), for tests, benchmarks and demos.

    python -m irc.zoo mobilenet_v2 /tmp/mobilenet_v2      # writes a SavedModel

Every builder returns a Keras model with a fixed batch size of 1 unless asked otherwise; weights are
seeded, so two builds of the same model are identical.

Random weights alone make a poor test model: with Keras' initial batch-norm statistics (mean 0, variance 1)
activations fade or grow layer by layer, and MobileNetV2's softmax comes out exactly 1/1000 for every class on
every input, so comparing its outputs with anything checks nothing. ``build`` therefore re-estimates every batch
norm's statistics on one batch of random inputs (``calibrate_batchnorm``): activations stay O(1) and the outputs
depend on the input.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def _app(name: str, size: int, **kwargs):
    keras = _keras()
    builder = getattr(keras.applications, name)
    return builder(weights=None, input_shape=(size, size, 3), **kwargs)


def mobilenet_v2(size: int = 224):
    return _app("MobileNetV2", size)


def mobilenet_v3_small(size: int = 224):
    return _app("MobileNetV3Small", size, include_preprocessing=False)


def resnet50(size: int = 224):
    return _app("ResNet50", size)


def efficientnet_b0(size: int = 224):
    return _app("EfficientNetB0", size)


def densenet121(size: int = 224):
    return _app("DenseNet121", size)


def inception_v3(size: int = 299):
    return _app("InceptionV3", size)


def transformer_encoder(seq_len: int = 32, vocab: int = 1000, dim: int = 64, heads: int = 4, classes: int = 4):
    """A transformer encoder block text classifier: Embedding, MultiHeadAttention, LayerNorm, Dense, GELU."""
    keras = _keras()
    layers = keras.layers
    tokens = keras.Input((seq_len,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab, dim, name="embedding")(tokens)
    attention = layers.MultiHeadAttention(heads, dim // heads, name="attention")(x, x)
    x = layers.LayerNormalization(name="norm1")(x + layers.Dropout(0.1, name="drop1")(attention))
    ff = layers.Dense(dim * 4, activation="gelu", name="ff1")(x)
    ff = layers.Dense(dim, name="ff2")(ff)
    x = layers.LayerNormalization(name="norm2")(x + layers.Dropout(0.1, name="drop2")(ff))
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    out = layers.Dense(classes, activation="softmax", name="classifier")(x)
    return keras.Model(tokens, out, name="transformer_encoder")


def _rnn_classifier(cell: str, seq_len: int = 16, vocab: int = 500, dim: int = 32, units: int = 32):
    keras = _keras()
    layers = keras.layers
    tokens = keras.Input((seq_len,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab, dim, name="embedding")(tokens)
    x = getattr(layers, cell)(units, name=cell.lower())(x)
    out = layers.Dense(2, activation="softmax", name="classifier")(x)
    return keras.Model(tokens, out, name=f"{cell.lower()}_classifier")


def lstm_classifier(seq_len: int = 16):
    return _rnn_classifier("LSTM", seq_len)


def gru_classifier(seq_len: int = 16):
    return _rnn_classifier("GRU", seq_len)


def unet(size: int = 64, channels: int = 3, classes: int = 2):
    """A small U-Net: Conv2D down path, Conv2DTranspose and UpSampling2D up path, Concatenate skips."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((size, size, channels), name="image")
    c1 = layers.Conv2D(16, 3, padding="same", activation="relu", name="down1")(inputs)
    p1 = layers.MaxPooling2D(name="pool1")(c1)
    c2 = layers.Conv2D(32, 3, padding="same", activation="relu", name="down2")(p1)
    p2 = layers.MaxPooling2D(name="pool2")(c2)
    b = layers.Conv2D(64, 3, padding="same", activation="relu", name="bottleneck")(p2)
    u2 = layers.Conv2DTranspose(32, 2, strides=2, padding="same", name="up2")(b)
    u2 = layers.Concatenate(name="skip2")([u2, c2])
    c3 = layers.Conv2D(32, 3, padding="same", activation="relu", name="dec2")(u2)
    u1 = layers.UpSampling2D(name="up1")(c3)
    u1 = layers.Concatenate(name="skip1")([u1, c1])
    c4 = layers.Conv2D(16, 3, padding="same", activation="relu", name="dec1")(u1)
    out = layers.Conv2D(classes, 1, activation="softmax", name="mask")(c4)
    return keras.Model(inputs, out, name="unet")


def small_cnn(size: int = 8, classes: int = 10):
    """A small CNN for 8x8 digit images (sklearn's load_digits), trained in the quantization tests."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((size, size, 1), name="image")
    x = layers.Conv2D(16, 3, padding="same", name="conv1")(inputs)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(32, activation="relu", name="fc1")(x)
    out = layers.Dense(classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, out, name="small_cnn")


@dataclass
class TrainedDigits:
    """``small_cnn`` trained on 1400 of sklearn's load_digits images; the other 397 are held out."""

    model: object  # the Keras model
    x_train: object
    x_test: object
    y_test: object
    accuracy: float  # float accuracy on the held-out digits


def trained_digits(epochs: int = 8, fold: int | None = None, folds: int = 5) -> TrainedDigits:
    """Trains ``small_cnn`` on load_digits (seconds, no download; needs scikit-learn) with a fixed split: 1400
    training digits and 397 held out, or, with ``fold``, the ``fold``-th of ``folds`` equal parts of the shuffled
    1,797 held out (so the folds together hold every digit out once)."""
    import numpy as np
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    order = np.random.default_rng(0).permutation(len(x))
    if fold is None:
        train, test = order[:1400], order[1400:]
    else:
        parts = np.array_split(order, folds)
        train, test = np.concatenate(parts[:fold] + parts[fold + 1:]), parts[fold]
    model = build("small_cnn")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x[train], data.target[train], epochs=epochs, batch_size=32, verbose=0)
    accuracy = float(np.mean(model.predict(x[test], verbose=0).argmax(1) == data.target[test]))
    return TrainedDigits(model, x[train], x[test], data.target[test], accuracy)


MODELS = {
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_small": mobilenet_v3_small,
    "resnet50": resnet50,
    "efficientnet_b0": efficientnet_b0,
    "densenet121": densenet121,
    "inception_v3": inception_v3,
    "transformer_encoder": transformer_encoder,
    "lstm_classifier": lstm_classifier,
    "gru_classifier": gru_classifier,
    "unet": unet,
    "small_cnn": small_cnn,
}


def build(name: str, seed: int = 0, **kwargs):
    """Builds zoo model ``name`` with seeded random weights and batch norms calibrated on random inputs."""
    keras = _keras()
    if name not in MODELS:
        raise KeyError(f"unknown zoo model {name!r} (known: {', '.join(MODELS)})")
    keras.utils.set_random_seed(seed)
    model = MODELS[name](**kwargs)
    calibrate_batchnorm(model, seed)
    return model


def _batch_norms(layer) -> list:
    keras = _keras()
    if isinstance(layer, keras.layers.BatchNormalization):
        return [layer]
    return [bn for inner in getattr(layer, "layers", []) for bn in _batch_norms(inner)]


def calibrate_batchnorm(model, seed: int = 0, batch: int = 8) -> None:
    """Sets every batch norm's moving mean and variance to those of one batch of standard-normal inputs, so that
    the batch norms normalize real activations (see the module docstring). Models without batch norms are kept."""
    import numpy as np

    norms = _batch_norms(model)
    if not norms:
        return
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal((batch, *x.shape[1:])).astype(np.float32) for x in model.inputs]
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.momentum = 0.0  # one training-mode call makes the moving statistics this batch's
    model(inputs[0] if len(inputs) == 1 else inputs, training=True)
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum


def export(model, path: str | os.PathLike, force: bool = False) -> Path:
    """Writes a Keras model as a SavedModel (its serving_default signature takes the model's named inputs)."""
    from irc.outputs import atomic_dir

    path = Path(path)
    with atomic_dir(path, force=force) as tmp:
        model.export(str(tmp), verbose=False)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m irc.zoo", description="Build a zoo model as a SavedModel.")
    parser.add_argument("name", choices=sorted(MODELS))
    parser.add_argument("output", help="SavedModel directory to write")
    parser.add_argument("--size", type=int, default=None, help="input image size for image models")
    parser.add_argument("--keras", action="store_true", help="write a .keras file instead of a SavedModel")
    parser.add_argument("--force", action="store_true", help="replace an existing output (a non-empty directory)")
    args = parser.parse_args(argv)
    from irc.errors import IrcError
    from irc.outputs import atomic_file, check_output

    try:
        check_output(args.output, "file" if args.keras else "directory", args.force)  # before minutes of work
        kwargs = {"size": args.size} if args.size else {}
        model = build(args.name, **kwargs)
        if args.keras:
            with atomic_file(args.output, force=args.force) as tmp:
                model.save(str(tmp.with_suffix(".keras")))
                tmp.with_suffix(".keras").replace(tmp)
        else:
            export(model, args.output, force=args.force)
    except IrcError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print(f"wrote {args.name} to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
