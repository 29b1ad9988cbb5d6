"""Bad inputs give an InputError that names the file (and the layer), never a traceback."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")

from tfgraph_models import cnn_savedmodel, copy_savedmodel, lambda_keras_file

from irc.errors import InputError
from irc.frontends.savedmodel_reader import FastPathUnsupported, read_savedmodel_fast
from irc.frontends.tf_loader import load_tf


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_saved_model_pb(keep):
    path = copy_savedmodel(cnn_savedmodel(), f"truncated_{keep}")
    pb = path / "saved_model.pb"
    data = pb.read_bytes()
    pb.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError) as err:
        read_savedmodel_fast(path)
    assert str(path) in str(err.value)


def test_missing_variables_data():
    path = copy_savedmodel(cnn_savedmodel(), "no_data")
    (path / "variables" / "variables.data-00000-of-00001").unlink()
    with pytest.raises(InputError, match="variables.data-00000-of-00001"):
        read_savedmodel_fast(path)


def test_corrupt_variables_index():
    path = copy_savedmodel(cnn_savedmodel(), "bad_index")
    index = path / "variables" / "variables.index"
    data = bytearray(index.read_bytes())
    data[10] ^= 0xFF  # inside the first block: its checksum no longer matches
    index.write_bytes(bytes(data))
    with pytest.raises(InputError, match="variables.index.*corrupt"):
        read_savedmodel_fast(path)


def test_truncated_variables_data():
    path = copy_savedmodel(cnn_savedmodel(), "short_data")
    data = path / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(InputError, match="past the end"):
        read_savedmodel_fast(path)


def test_missing_path(tmp_path):
    for read in (read_savedmodel_fast, load_tf):
        with pytest.raises(InputError, match="no such file"):
            read(tmp_path / "nope")


def test_not_a_savedmodel(tmp_path):
    with pytest.raises(InputError, match="not a SavedModel"):
        read_savedmodel_fast(tmp_path)
    (tmp_path / "saved_model.pbtxt").write_text("meta_graphs {}")
    with pytest.raises(FastPathUnsupported, match="text-format"):
        read_savedmodel_fast(tmp_path)


def test_bad_signature_lists_the_available_ones():
    def tf_loader(path, signature):
        return load_tf(path, signature=signature, unsafe=True)  # TensorFlow's loader: only with unsafe

    for read in (read_savedmodel_fast, tf_loader):
        with pytest.raises(InputError, match="no signature 'predict'; available: serve, serving_default"):
            read(cnn_savedmodel(), signature="predict")


def test_lambda_layer_refused_unless_unsafe():
    path = lambda_keras_file()
    with pytest.raises(InputError) as err:
        load_tf(path)
    assert str(path) in str(err.value) and "double_it" in str(err.value) and "Lambda" in str(err.value)
    graph = load_tf(path, unsafe=True)
    assert any(n.op == "Mul" for n in graph.nodes)


def test_unregistered_custom_layer_refused(tmp_path):
    import keras

    class Triple(keras.layers.Layer):
        def call(self, x):
            return x * 3.0

    inp = keras.Input((4,), name="x")
    path = tmp_path / "custom.keras"
    keras.Model(inp, Triple(name="triple")(inp)).save(str(path))
    with pytest.raises(InputError, match=r"custom.keras: layer 'triple' uses custom class 'Triple'"):
        load_tf(path)


def test_unknown_file_kind(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\0")
    with pytest.raises(InputError, match="unknown model format"):
        load_tf(path)
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="model.keras"):
        load_tf(bad)
