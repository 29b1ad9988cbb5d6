"""Small TF models for the tfgraph tests, built once per process (functools.cache) in a temp dir,
and a comparison of two neutral graphs."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np


@functools.cache
def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="irc-tfgraph-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


@functools.cache
def cnn_model():
    """Conv2D + BatchNormalization + Dense, with non-trivial BN statistics."""
    keras = _keras()
    layers = keras.layers
    keras.utils.set_random_seed(1)
    inp = keras.Input((12, 12, 3), name="image")
    x = layers.Conv2D(4, 3, name="conv1")(inp)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    out = layers.Dense(5, name="dense_1")(x)
    model = keras.Model(inp, out, name="cnn")
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.linspace(-1, 1, 4).astype("float32"))
    bn.moving_variance.assign(np.linspace(0.5, 2, 4).astype("float32"))
    return model


@functools.cache
def cnn_savedmodel() -> Path:
    path = workdir() / "cnn_sm"
    cnn_model().export(str(path), verbose=False)
    return path


@functools.cache
def cnn_keras_file() -> Path:
    path = workdir() / "cnn.keras"
    cnn_model().save(str(path))
    return path


@functools.cache
def lambda_keras_file() -> Path:
    keras = _keras()
    inp = keras.Input((4,), name="x")
    out = keras.layers.Lambda(lambda t: t * 2.0, name="double_it")(inp)
    path = workdir() / "lambda.keras"
    keras.Model(inp, out).save(str(path))
    return path


def copy_savedmodel(src: Path, name: str) -> Path:
    dst = workdir() / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    return dst


def _same_value(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.array_equal(a, b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _same_nodes(left, right, where: str) -> None:
    assert [n.name for n in left] == [n.name for n in right], where
    for a, b in zip(left, right):
        assert (a.op, a.inputs, a.layer) == (b.op, b.inputs, b.layer), f"{where}: {a.name}"
        assert sorted(a.attrs) == sorted(b.attrs), f"{where}: {a.name}"
        for key in a.attrs:
            assert _same_value(a.attrs[key], b.attrs[key]), f"{where}: {a.name}.{key}"


def assert_same_graph(a, b) -> None:
    """Two neutral graphs with the same nodes, ops, edges, attrs (constants by value) and functions."""
    assert a.inputs == b.inputs
    assert a.outputs == b.outputs
    _same_nodes(a.nodes, b.nodes, "graph")
    assert sorted(a.functions) == sorted(b.functions)
    for name, fa in a.functions.items():
        fb = b.functions[name]
        assert (fa.inputs, fa.outputs) == (fb.inputs, fb.outputs), name
        _same_nodes(fa.nodes, fb.nodes, name)
