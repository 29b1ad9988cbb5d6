"""Dims unknown until run time: scaled symbols (``batch_x16``), inputs' own symbols past the batch, the
``dynamic_reshape`` op, and models whose signature leaves the batch and the sequence length open.

The converted .tflite files run in TFLite's interpreter at two sizes each: its signature runner resizes the inputs
(``ResizeInputTensor``, as ``resize_tensor_input``) and reallocates before every call.
"""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.frontends.lowering import input_dim
from irc.frontends.lowering.array import reshape_target
from irc.ir import DType, Graph, SymDim, TensorType
from irc.ir.parser import parse
from irc.ir.printer import print_graph
from irc.ir.types import divide_dim, scale_dim, split_sym
from irc.ops import infer_types, run_kernel

B = SymDim("batch")
S = SymDim("token_ids_1")
TOLERANCE = 1e-4


# ----- scaled symbols -----------------------------------------------------------------------------------------------
def test_scaled_symbols_multiply_and_divide():
    assert split_sym(SymDim("batch_x16")) == (B, 16)
    assert split_sym(B) == (B, 1)
    for name in ("batch_x1", "batch_x0", "batch_x04", "x_", "batch_xy"):  # not a factor > 1: a name of its own
        assert split_sym(SymDim(name)) == (SymDim(name), 1)
    assert scale_dim(B, 16) == SymDim("batch_x16")
    assert scale_dim(SymDim("batch_x4"), 4) == SymDim("batch_x16")
    assert scale_dim(B, 1) == B and scale_dim(3, 4) == 12
    assert scale_dim(B, 0) is None and scale_dim(None, 2) is None
    assert divide_dim(SymDim("batch_x16"), 4) == SymDim("batch_x4")
    assert divide_dim(SymDim("batch_x16"), 16) == B
    assert divide_dim(SymDim("batch_x16"), 3) is None  # not exact: unknown
    assert divide_dim(B, 2) is None and divide_dim(7, 2) == 3


def test_reshape_target_follows_scaled_symbols():
    # Swin's window partition: [batch, 8, 8, 4] -> [-1, 4, 4, 4] is batch*4 windows, and back
    assert reshape_target((B, 2, 4, 2, 4, 4), (-1, 4, 4, 4)) == ((-1, 4, 4, 4), (SymDim("batch_x4"), 4, 4, 4))
    assert reshape_target((SymDim("batch_x4"), 4, 4, 4), (-1, 8, 8, 4)) == ((-1, 8, 8, 4), (B, 8, 8, 4))
    # the attention's reshape: the run-time batch_x4 read from the shape, the -1 solved
    assert reshape_target((SymDim("batch_x4"), 16, 12), (SymDim("batch_x4"), 16, 3, 1, -1)) == \
        ((-1, 16, 3, 1, 4), (SymDim("batch_x4"), 16, 3, 1, 4))
    # two symbols: both stay, and the attribute has two -1 (a dynamic_reshape then)
    assert reshape_target((B, S, 2, 8), (B, S, -1)) == ((-1, -1, 16), (B, S, 16))
    # an unknown dim (no symbol) leaves the -1 unknown
    assert reshape_target((None, 4), (-1, 2, 2)) == ((-1, 2, 2), (None, 2, 2))


def test_input_dims_are_named_identifiers():
    assert input_dim("token_ids", 0) == B
    assert input_dim("token_ids", 1) == S
    assert input_dim("serving:0/x", 2) == SymDim("serving_0_x_2")
    assert input_dim("0", 1) == SymDim("in_0_1")
    assert split_sym(input_dim("a_x", 1)) == (SymDim("a_x_1"), 1)


# ----- dynamic_reshape ----------------------------------------------------------------------------------------------
def test_dynamic_reshape_rule_and_kernel():
    x = TensorType(DType.f32, (B, S, 2, 8))
    shape = TensorType(DType.i32, (3,))
    assert infer_types("dynamic_reshape", [x, shape], {}) == [TensorType(DType.f32, (None, None, None))]
    known = np.array([-1, 4, 16], np.int32)
    assert infer_types("dynamic_reshape", [TensorType(DType.f32, (2, 4, 2, 8)), shape], {}, [None, known]) == \
        [TensorType(DType.f32, (2, 4, 16))]
    data = np.arange(3 * 5 * 16, dtype=np.float32).reshape(3, 5, 2, 8)
    (out,) = run_kernel("dynamic_reshape", [data, np.array([3, 5, 16], np.int32)], {})
    np.testing.assert_array_equal(out, data.reshape(3, 5, 16))
    with pytest.raises(ValueError, match="cannot reshape 240"):
        run_kernel("dynamic_reshape", [data, np.array([7, -1], np.int32)], {})
    with pytest.raises(ValueError, match="i32 or i64 vector"):
        infer_types("dynamic_reshape", [x, TensorType(DType.f32, (3,))], {})


def test_text_form_round_trips_symbolic_dims_and_dynamic_reshape():
    g = Graph("dyn")
    x = g.add_input("x", TensorType(DType.f32, (SymDim("batch_x16"), S, 16)))
    vector = g.add("shape", [x]).result
    y = g.add("dynamic_reshape", [x, vector], types=[TensorType(DType.f32, (SymDim("batch_x16"), S, 16))]).result
    g.set_output("y", y)
    text = print_graph(g)
    assert "f32[batch_x16,token_ids_1,16]" in text
    assert print_graph(parse(text)) == text


# ----- whole models -------------------------------------------------------------------------------------------------
def _run_everywhere(path, tmp_path, feeds: list[dict], reference) -> list[float]:
    """Errors of the reference interpreter and of TFLite's interpreter against TensorFlow, one per feed."""
    from benchmarks.coverage import relative_error
    from tests.tflite_subprocess import run_tflite_models

    graph = irc.load(path, fast=True)  # an error here rather than a fallback to TensorFlow's loader
    wants = [reference(feed) for feed in feeds]
    for feed, want in zip(feeds, wants):
        assert relative_error(irc.run(graph, feed), want) <= TOLERANCE, "reference interpreter"
    ours = tmp_path / "irc.tflite"
    irc.lower(graph, "tflite", output=ours)
    back = irc.load(ours)  # irc's TFLite reader: a RESHAPE of more than one run-time dim is a dynamic_reshape
    for feed, want in zip(feeds, wants):
        assert relative_error(irc.run(back, feed), want) <= TOLERANCE, "the .tflite read back by irc"
    gots = run_tflite_models([(ours, feed) for feed in feeds])
    return [relative_error(got, want) for got, want in zip(gots, wants)]


def _tf_reference(path):
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda feed: {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in feed.items()}).items()}


def test_run_time_batch_and_sequence_shapes(tmp_path):
    """The shape idioms of Swin, Falcon and GPT-2 on a tf.function: windows of batch*4 rows and back, a reshape
    with two run-time dims, arange(sequence length), a broadcast onto [batch, seq, seq], the first seq rows of a
    table, BERT's einsum of two inputs' sum."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)

    class Model(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(rng.standard_normal((4, 12)).astype(np.float32))
            self.v = tf.Variable(rng.standard_normal((16, 16)).astype(np.float32))
            self.table = tf.Variable(rng.standard_normal((10, 16)).astype(np.float32))
            self.e = tf.Variable(rng.standard_normal((16, 2, 8)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 4], tf.float32, name="image"),
                                      tf.TensorSpec([None, None, 16], tf.float32, name="tokens"),
                                      tf.TensorSpec([None, None, 16], tf.float32, name="segments")])
        def serve(self, image, tokens, segments):
            b = tf.shape(image)[0]
            windows = tf.reshape(tf.transpose(tf.reshape(image, [b, 2, 4, 2, 4, 4]), [0, 1, 3, 2, 4, 5]), [-1, 16, 4])
            n = tf.shape(windows)[0]
            qkv = tf.reshape(windows @ self.w, [n, 16, 3, 1, -1])
            merged = tf.reduce_sum(qkv, axis=2)[:, :, 0, :]
            back = tf.reshape(merged, [n // 4, 2, 2, 4, 4, 4])
            image_out = tf.reshape(tf.transpose(back, [0, 1, 3, 2, 4, 5]), [b, 8, 8, 4])
            tb, ts = tf.shape(tokens)[0], tf.shape(tokens)[1]
            tokens += tf.slice(self.table, [1, 0], [ts, 16])  # GPT-2's position embedding
            heads = tf.reshape(tf.reshape(tokens, [-1, 16]) @ self.v, [tb, ts, 2, 8])
            positions = tf.range(tf.cast(ts, tf.float32))
            heads += positions[None, :, None, None]
            pairs = tf.broadcast_to((positions[:, None] - positions[None, :])[None], [tb, ts, ts])
            # BERT's embeddings: two inputs' lengths, which irc cannot tell are equal, meet in an einsum
            mixed = tf.einsum("abc,cde->abde", tokens + segments, self.e)
            return {"image": image_out, "tokens": tf.reshape(heads, [tb, ts, 16]), "pairs": pairs, "mixed": mixed}

    model = Model()
    path = tmp_path / "model"
    tf.saved_model.save(model, str(path), signatures=model.serve)
    graph = irc.load(path, fast=True)
    assert {v.name: str(v.type) for v in graph.inputs} == \
        {"image": "f32[batch,8,8,4]", "tokens": "f32[batch,tokens_1,16]", "segments": "f32[batch,segments_1,16]"}
    assert any(node.op == "dynamic_reshape" for node in graph.nodes)
    feeds = [{"image": rng.standard_normal((b, 8, 8, 4)).astype(np.float32),
              "tokens": rng.standard_normal((b, s, 16)).astype(np.float32),
              "segments": rng.standard_normal((b, s, 16)).astype(np.float32)} for b, s in ((1, 3), (3, 7))]
    errors = _run_everywhere(path, tmp_path, feeds, _tf_reference(path))
    assert all(e <= TOLERANCE for e in errors), errors


def test_over_rank_comparisons_of_run_time_dims(tmp_path):
    """TFLite's comparisons broadcast over 4 dims at most: a rank-5 one with several run-time dims is merged with
    shapes read at run time (Gemma's mask > 0; a [b*6, s, s] > [b*6, 1, s] merge), and restored the same way."""
    tf = pytest.importorskip("tensorflow")

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2, 3, None], tf.float32, name="x")])
        def serve(self, x):
            pairs = x[..., None] * x[:, :, :, None, :]  # [b, 2, 3, s, s]
            rows = x[:, :, :, None, :]  # [b, 2, 3, 1, s]
            return {"scalar": tf.cast(pairs > 0.25, tf.float32) + pairs,
                    "rows": tf.cast(tf.greater(pairs, rows), tf.float32) - rows}

    model = Model()
    path = tmp_path / "model"
    tf.saved_model.save(model, str(path), signatures=model.serve)
    rng = np.random.default_rng(5)
    feeds = [{"x": rng.standard_normal((b, 2, 3, s)).astype(np.float32)} for b, s in ((1, 4), (3, 7))]
    errors = _run_everywhere(path, tmp_path, feeds, _tf_reference(path))
    assert all(e <= TOLERANCE for e in errors), errors
    codes = _operator_codes(tmp_path / "irc.tflite")
    assert codes.count("GREATER") == 2 and "GATHER" in codes and "SHAPE" in codes


def test_over_rank_comparison_of_unrelated_run_time_dims_is_refused(tmp_path):
    """Two inputs' own lengths meet on one axis: either may be a broadcast 1 at run time, so no merge is sound."""
    tf = pytest.importorskip("tensorflow")
    from irc.errors import TargetError

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2, 3, None], tf.float32, name="x"),
                                      tf.TensorSpec([None, 2, 3, None], tf.float32, name="y")])
        def serve(self, x, y):
            return {"out": tf.cast(x[..., None] * x[:, :, :, None, :] > y[:, :, :, None, :], tf.float32)}

    model = Model()
    path = tmp_path / "model"
    tf.saved_model.save(model, str(path), signatures=model.serve)
    graph = irc.load(path, fast=True)
    with pytest.raises(TargetError, match="cannot tell which of this one's unknown dimensions are broadcast"):
        irc.lower(graph, "tflite", output=tmp_path / "irc.tflite")


def test_dense_on_a_run_time_sequence_is_one_fully_connected(tmp_path):
    """Tensordot and einsum over [batch, seq, k] reshape to [batch*seq, k] and back with a shape read at run time
    (a dynamic_reshape): FULLY_CONNECTED keeps the leading dims itself, so only the [.., heads, size] one stays."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(6)

    class Model(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(rng.standard_normal((16, 12)).astype(np.float32))
            self.bias = tf.Variable(rng.standard_normal(12).astype(np.float32))
            self.e = tf.Variable(rng.standard_normal((16, 2, 8)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, None, 16], tf.float32, name="tokens")])
        def serve(self, tokens):
            dense = tf.nn.relu(tf.tensordot(tokens, self.w, 1) + self.bias)
            heads = tf.einsum("abc,cde->abde", tokens, self.e)
            return {"dense": dense, "heads": heads}

    model = Model()
    path = tmp_path / "model"
    tf.saved_model.save(model, str(path), signatures=model.serve)
    feeds = [{"tokens": rng.standard_normal((b, s, 16)).astype(np.float32)} for b, s in ((1, 3), (2, 7))]
    errors = _run_everywhere(path, tmp_path, feeds, _tf_reference(path))
    assert all(e <= TOLERANCE for e in errors), errors
    codes = _operator_codes(tmp_path / "irc.tflite")
    assert codes.count("FULLY_CONNECTED") == 2 and codes.count("RESHAPE") == 1, codes


def test_window_lengths_over_a_symbol_are_symbols():
    from irc.ops.nn import window_out

    n = SymDim("audio_1")
    assert window_out(n, 3, 1, 1, "SAME") == n
    assert window_out(n, 3, 2, 1, "SAME") == SymDim("audio_1_ceildiv2")
    assert window_out(n, 3, 2, 2, "VALID") == SymDim("audio_1_window5_stride2")
    assert window_out(None, 3, 2, 1, "SAME") is None
    x = TensorType(DType.f32, (B, n, 4))
    assert infer_types("pad", [x], {"paddings": ((0, 0), (1, 1), (0, 0))})[0].shape == (B, SymDim("audio_1_plus2"), 4)


def test_strided_convolution_of_a_run_time_length(tmp_path):
    """Whisper's encoder idiom: pad, a stride-2 Conv1D, then the first (its output length) rows of a position
    table and a broadcast onto [batch, length, channels]."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(8)

    class Model(tf.Module):
        def __init__(self):
            super().__init__()
            self.f = tf.Variable(rng.standard_normal((3, 4, 6)).astype(np.float32))
            self.table = tf.Variable(rng.standard_normal((20, 6)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, None, 4], tf.float32, name="audio")])
        def serve(self, audio):
            x = tf.nn.conv1d(tf.pad(audio, [[0, 0], [1, 1], [0, 0]]), self.f, stride=2, padding="VALID")
            b, n = tf.shape(x)[0], tf.shape(x)[1]
            positions = tf.broadcast_to(tf.slice(self.table, [0, 0], [n, 6])[None], [b, n, 6])
            pooled = tf.nn.max_pool1d(x, 2, 2, "SAME")
            return {"x": x + positions, "pooled": pooled}

    model = Model()
    path = tmp_path / "model"
    tf.saved_model.save(model, str(path), signatures=model.serve)
    graph = irc.load(path, fast=True)
    assert str(graph.outputs["x"].type) == "f32[batch,audio_1_plus2_window3_stride2,6]"
    feeds = [{"audio": rng.standard_normal((b, s, 4)).astype(np.float32)} for b, s in ((1, 7), (3, 12))]
    errors = _run_everywhere(path, tmp_path, feeds, _tf_reference(path))
    assert all(e <= TOLERANCE for e in errors), errors


def _operator_codes(path) -> list[str]:
    from irc.formats.tflite.flatbuffer import read_model

    model = read_model(path.read_bytes())
    return [model.operator_codes[op.opcode_index].builtin_code for op in model.subgraphs[0].operators]


def _export_keras_dynamic(name: str, workdir):
    """benchmarks/coverage.py's model ``name`` exported with every dim its Keras inputs leave open left open."""
    import keras
    import tensorflow as tf

    from benchmarks.coverage import MODELS

    keras.utils.set_random_seed(1)
    model = MODELS[name].build()
    keys = sorted(t.name.split(":")[0] for t in model.inputs)
    specs = {t.name.split(":")[0]: t for t in model.inputs}
    signature = [tf.TensorSpec(specs[k].shape, specs[k].dtype, name=k) for k in keys]

    def serve(*args):
        out = model(dict(zip(keys, args)) if len(keys) > 1 else args[0])
        return out if isinstance(out, dict) else {"output_0": out}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve, input_signature=signature)
    path = workdir / name
    archive.write_out(str(path), verbose=False)
    return path, signature


@pytest.mark.slow
def test_swin_with_a_run_time_batch(tmp_path):
    pytest.importorskip("keras_hub")
    path, signature = _export_keras_dynamic("swin", tmp_path)
    assert signature[0].shape.as_list() == [None, 32, 32, 3]
    rng = np.random.default_rng(3)
    feeds = [{signature[0].name: rng.standard_normal((b, 32, 32, 3)).astype(np.float32)} for b in (1, 3)]
    errors = _run_everywhere(path, tmp_path, feeds, _tf_reference(path))
    assert all(e <= TOLERANCE for e in errors), errors


@pytest.mark.slow
def test_falcon_with_a_run_time_batch_and_sequence_length(tmp_path):
    pytest.importorskip("keras_hub")
    path, signature = _export_keras_dynamic("falcon", tmp_path)
    assert [s.shape.as_list() for s in signature] == [[None, None], [None, None]]
    rng = np.random.default_rng(3)
    feeds = []
    for batch, length in ((1, 8), (3, 5)):
        mask = np.ones((batch, length), np.int32)
        mask[-1, length - 2:] = 0  # padding at the end of the last row: the ALiBi positions come from the mask
        feeds.append({"token_ids": rng.integers(0, 64, (batch, length)).astype(np.int32), "padding_mask": mask})
    errors = _run_everywhere(path, tmp_path, feeds, _tf_reference(path))
    assert all(e <= TOLERANCE for e in errors), errors


@pytest.mark.slow
def test_gemma_with_a_run_time_batch_and_sequence_length(tmp_path):
    """Gemma's attention compares a [batch, 1, 1, seq, seq] mask with a scalar: a rank-5 GREATER, which TFLite
    runs only after kernel_limits flattens it with a shape read at run time."""
    pytest.importorskip("keras_hub")
    path, signature = _export_keras_dynamic("gemma", tmp_path)
    assert [s.shape.as_list() for s in signature] == [[None, None], [None, None]]
    rng = np.random.default_rng(4)
    feeds = []
    for batch, length in ((1, 8), (2, 5)):
        mask = np.ones((batch, length), np.int32)
        mask[-1, length - 2:] = 0
        feeds.append({"token_ids": rng.integers(0, 64, (batch, length)).astype(np.int32), "padding_mask": mask})
    errors = _run_everywhere(path, tmp_path, feeds, _tf_reference(path))
    assert all(e <= TOLERANCE for e in errors), errors


@pytest.mark.slow
def test_whisper_with_run_time_lengths(tmp_path):
    """Whisper's encoder pads its features and runs a stride-2 Conv1D: the length after it is a symbol of its
    own (``encoder_features_1_plus2_window3_stride2``), which its position table's slice reads at run time."""
    pytest.importorskip("keras_hub")
    path, signature = _export_keras_dynamic("whisper", tmp_path)
    assert [s.shape.as_list() for s in signature] == [[None, None], [None, None], [None, None, 8]]
    rng = np.random.default_rng(7)
    feeds = []
    for batch, frames, length in ((1, 10, 4), (2, 16, 6)):
        mask = np.ones((batch, length), np.int32)
        mask[-1, length - 1:] = 0
        feeds.append({"encoder_features": rng.standard_normal((batch, frames, 8)).astype(np.float32),
                      "decoder_token_ids": rng.integers(0, 64, (batch, length)).astype(np.int32),
                      "decoder_padding_mask": mask})
    errors = _run_everywhere(path, tmp_path, feeds, _tf_reference(path))
    assert all(e <= TOLERANCE for e in errors), errors
