"""Builds a quantization-aware-trained digits CNN with tfmot and exports it as a SavedModel.

Run as a script in a process of its own: ``python tests/qat_digits.py OUT_DIR``. tfmot supports only Keras 2
(``tf_keras``) and, on import, sets ``TF_USE_LEGACY_KERAS=1``, which would turn ``tf.keras`` into Keras 2 for the
rest of the process; a subprocess keeps the test session's Keras 3 untouched. Writes ``OUT_DIR/saved_model`` and
``OUT_DIR/data.npz`` (held-out images and labels, and the QAT model's own accuracy and predictions on them).
"""

from __future__ import annotations

import os
import sys


def main(out: str) -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"  # what tfmot sets itself; set before TensorFlow reads it
    import numpy as np
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(0)
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    y = data.target
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1400], order[1400:]

    model = keras.Sequential([
        keras.layers.InputLayer(input_shape=(8, 8, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dwconv"),
        keras.layers.Conv2D(16, 3, activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(2, name="pool"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(32, activation="relu", name="fc1"),
        keras.layers.Dense(10, name="logits"),
        keras.layers.Softmax(name="probs"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[train], y[train], epochs=8, batch_size=32, verbose=0)

    qat = tfmot.quantization.keras.quantize_model(model)
    qat.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    qat.fit(x[train], y[train], epochs=1, batch_size=32, verbose=0)

    probs = qat.predict(x[test], verbose=0)
    accuracy = float(np.mean(probs.argmax(1) == y[test]))
    qat.save(os.path.join(out, "saved_model"), save_format="tf")
    np.savez(os.path.join(out, "data.npz"), x_test=x[test], y_test=y[test], x_train=x[train][:200],
             probs=probs, accuracy=accuracy)
    print(f"qat accuracy {accuracy:.4f}, tf {tf.__version__}")


if __name__ == "__main__":
    main(sys.argv[1])
