"""Recurrent layers and control flow on the TFLite side: the fused LSTM (``tfl.unidirectional_sequence_lstm``)
against Keras, its UNIDIRECTIONAL_SEQUENCE_LSTM in TFLite's interpreter and read back, TensorFlow's own fused-LSTM
files read by irc, and the TF targets' rules for it."""

from __future__ import annotations

import numpy as np
import pytest

from irc.backends.tflite.backend import emit
from irc.formats.tflite.flatbuffer import read_model
from irc.frontends.tflite import graph_of
from irc.ir.graph import Graph
from irc.ir.interpreter import run as interpret
from irc.ir.types import DType, TensorType
from tests.test_backend_tflite_ops import assert_close, run_tflite

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
F32 = DType.f32


def codes(data: bytes, subgraph: int = 0) -> list[str]:
    model = read_model(data)
    return [model.operator_codes[op.opcode_index].builtin_code for op in model.subgraphs[subgraph].operators]


def lstm_case(batch=2, time=7, features=5, units=6, seed=0, state=True):
    """A Keras LSTM's weights, inputs (and an initial state) and its output."""
    keras.utils.set_random_seed(seed)
    layer = keras.layers.LSTM(units, return_sequences=True)
    r = np.random.default_rng(seed)
    x = r.standard_normal((batch, time, features)).astype(np.float32)
    h0, c0 = (0.5 * r.standard_normal((batch, units)).astype(np.float32) for _ in range(2))
    if not state:
        h0, c0 = np.zeros_like(h0), np.zeros_like(c0)
    want = layer(x, initial_state=[h0, c0]).numpy()
    return [w.numpy() for w in layer.weights], x, h0, c0, want


def lstm_graph(weights, x, h0, c0, state_inputs=True, **attrs) -> Graph:
    g = Graph("lstm")
    xi = g.add_input("x", TensorType(F32, x.shape))
    if state_inputs:
        h, c = g.add_input("h0", TensorType(F32, h0.shape)), g.add_input("c0", TensorType(F32, c0.shape))
    else:
        h, c = g.const(h0), g.const(c0)
    kernel, recurrent, bias = (g.const(w) for w in weights)
    g.set_output("y", g.op("tfl.unidirectional_sequence_lstm", xi, kernel, recurrent, bias, h, c, **attrs))
    return g


@pytest.fixture(scope="module")
def case():
    return lstm_case()


def test_lstm_kernel_matches_keras(case):
    weights, x, h0, c0, want = case
    got = interpret(lstm_graph(weights, x, h0, c0), {"x": x, "h0": h0, "c0": c0})
    assert_close(got, {"y": want}, rtol=1e-5)


def test_lstm_time_major_and_shape_rule(case):
    weights, x, h0, c0, want = case
    g = lstm_graph(weights, x.transpose(1, 0, 2), h0, c0, time_major=True)
    assert g.outputs["y"].type.shape == (7, 2, 6)
    got = interpret(g, {"x": x.transpose(1, 0, 2), "h0": h0, "c0": c0})
    assert_close(got, {"y": want.transpose(1, 0, 2)}, rtol=1e-5)
    with pytest.raises(ValueError, match="kernel's last dimension"):
        lstm_graph([weights[0][:, :8], *weights[1:]], x, h0, c0)


def test_lstm_cell_clip_bounds_the_cell():
    weights, x, h0, c0, _ = lstm_case(seed=3)
    weights = [5 * weights[0], 5 * weights[1], weights[2] + 3]
    free = interpret(lstm_graph(weights, 4 * x, h0, c0), {"x": 4 * x, "h0": h0, "c0": c0})["y"]
    clipped = interpret(lstm_graph(weights, 4 * x, h0, c0, cell_clip=0.5), {"x": 4 * x, "h0": h0, "c0": c0})["y"]
    assert np.abs(clipped).max() <= np.tanh(0.5) + 1e-6 < np.abs(free).max()
    data = emit(lstm_graph(weights, 4 * x, h0, c0, cell_clip=0.5), passes="O0")
    assert_close(run_tflite(data, {"x": 4 * x, "h0": h0, "c0": c0}), {"y": clipped}, rtol=1e-5)


def test_lstm_emitted_as_one_fused_operator(case):
    weights, x, h0, c0, want = case
    data = emit(lstm_graph(weights, x, h0, c0), passes="O0")
    # the initial state goes into the operator's two variable tensors first
    assert codes(data) == ["RESHAPE", "RESHAPE", "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    model = read_model(data)
    lstm = model.subgraphs[0].operators[-1]
    assert len(lstm.inputs) == 24
    assert [i for i, t in enumerate(lstm.inputs) if t < 0] == [9, 10, 11, 16, 17, 20, 21, 22, 23]
    tensors = model.subgraphs[0].tensors
    assert [tensors[lstm.inputs[k]].is_variable for k in (18, 19)] == [True, True]
    assert tensors[lstm.inputs[1]].shape == [6, 5] and tensors[lstm.inputs[5]].shape == [6, 6]
    interpreter = tf.lite.Interpreter(model_content=data, num_threads=1)
    runner = interpreter.get_signature_runner()
    for _ in range(2):  # the state does not leak from one invoke into the next
        assert_close(runner(x=x, h0=h0, c0=c0), {"y": want}, rtol=1e-5)


def test_lstm_zero_state_and_size(case):
    weights, x, h0, c0, _ = case
    h0, c0 = np.zeros_like(h0), np.zeros_like(c0)
    want = interpret(lstm_graph(weights, x, h0, c0), {"x": x, "h0": h0, "c0": c0})["y"]
    data = emit(lstm_graph(weights, x, h0, c0, state_inputs=False), passes="O0")
    assert_close(run_tflite(data, {"x": x}), {"y": want}, rtol=1e-5)
    weight_bytes = sum(w.nbytes for w in weights)
    assert weight_bytes < len(data) < weight_bytes + 6000


def test_lstm_read_back(case):
    weights, x, h0, c0, want = case
    data = emit(lstm_graph(weights, x, h0, c0), passes="O0")
    g = graph_of(read_model(data))
    (node,) = g.walk("tfl.unidirectional_sequence_lstm")
    np.testing.assert_array_equal(node.operands[1].constant, weights[0])
    np.testing.assert_array_equal(node.operands[2].constant, weights[1])
    assert_close(interpret(g, {"x": x, "h0": h0, "c0": c0}), {"y": want}, rtol=1e-5)
    assert codes(emit(g, passes="O0")) == codes(data)


def test_bidirectional_as_reverse_and_two_lstms():
    keras.utils.set_random_seed(1)
    layer = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))
    x = np.random.default_rng(1).standard_normal((1, 6, 3)).astype(np.float32)
    want = layer(x).numpy()
    fw, bw = layer.forward_layer.weights, layer.backward_layer.weights
    g = Graph("bidirectional")
    xi = g.add_input("x", TensorType(F32, x.shape))
    zeros = g.const(np.zeros((1, 4), np.float32))

    def lstm(inp, ws):
        return g.op("tfl.unidirectional_sequence_lstm", inp, *(g.const(w.numpy()) for w in ws), zeros, zeros)

    backward = g.op("reverse", lstm(g.op("reverse", xi, axes=(1,)), bw), axes=(1,))
    g.set_output("y", g.op("concat", lstm(xi, fw), backward, axis=-1))
    assert_close(interpret(g, {"x": x}), {"y": want}, rtol=1e-5)
    data = emit(g, passes="O0")
    assert codes(data).count("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2 and "REVERSE_V2" in codes(data)
    assert_close(run_tflite(data, {"x": x}), {"y": want}, rtol=1e-5)
    assert_close(interpret(graph_of(read_model(data)), {"x": x}), {"y": want}, rtol=1e-5)


def test_lstm_on_the_tf_targets(case):
    from irc.backends.tfemit.codegen import generate
    from irc.backends.tfemit.model import TFModel

    weights, x, h0, c0, want = case
    g = lstm_graph(weights, x, h0, c0)
    model = TFModel(generate(g), jit_compile=True)
    assert_close(model.run({"x": x, "h0": h0, "c0": c0}), {"y": want}, rtol=1e-5)


@pytest.mark.slow
def test_reads_tensorflows_fused_lstm(tmp_path):
    """tf_keras's LSTM is what TensorFlow's converter fuses: irc reads that file and computes what TFLite does."""
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(0)
    inp = tf_keras.Input((12,), batch_size=1, dtype="int32")
    x = tf_keras.layers.Embedding(50, 8)(inp)
    x = tf_keras.layers.Bidirectional(tf_keras.layers.LSTM(6))(x)
    model = tf_keras.Model(inp, tf_keras.layers.Dense(2)(x))
    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    assert codes(data).count("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2
    g = graph_of(read_model(data))
    tokens = np.random.default_rng(0).integers(0, 50, (1, 12)).astype(np.int32)
    (name,) = [v.name for v in g.inputs]
    interpreter = tf.lite.Interpreter(model_content=data)
    want = interpreter.get_signature_runner()(**{name: tokens})
    got = interpret(g, {name: tokens})
    assert_close(got, dict(want), rtol=1e-5)
    assert codes(emit(g)).count("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2


def test_lstm_with_unknown_sequence_length_runs_at_two_lengths(case):
    weights, _, _, _, _ = case
    zeros = np.zeros((1, 6), np.float32)
    g = Graph("lstm")
    xi = g.add_input("x", TensorType(F32, (1, None, 5)))
    y = g.op("tfl.unidirectional_sequence_lstm", xi, *(g.const(w) for w in weights), g.const(zeros), g.const(zeros))
    g.set_output("y", y)
    data = emit(g, passes="O0")
    model = read_model(data)
    x_tensor = model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]]
    assert x_tensor.shape_signature == [1, -1, 5]
    interpreter = tf.lite.Interpreter(model_content=data, num_threads=1)
    index = interpreter.get_input_details()[0]["index"]
    for length in (16, 100):
        x = np.random.default_rng(length).standard_normal((1, length, 5)).astype(np.float32)
        interpreter.resize_tensor_input(index, [1, length, 5])
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        assert_close({"y": got}, interpret(g, {"x": x}), rtol=1e-5)


# ----- control flow: WHILE and IF ----------------------------------------------------------------------------------
def run_by_position(data: bytes, arrays: list) -> list[np.ndarray]:
    """Runs a .tflite without a signature (TF's converter from concrete functions writes none)."""
    interpreter = tf.lite.Interpreter(model_content=data)
    interpreter.allocate_tensors()
    for detail, array in zip(interpreter.get_input_details(), arrays):
        interpreter.set_tensor(detail["index"], array)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def branching_graph() -> Graph:
    """y = x * 2 if sum(x) > 0 else relu(-x) + 1."""
    g = Graph("branch")
    x = g.add_input("x", TensorType(F32, (3,)))
    positive = g.op("greater", g.op("sum", x, axes=(0,)), g.const(np.float32(0)))
    then, other = Graph("then"), Graph("else")
    tx = then.add_input("x", TensorType(F32, (3,)))
    then.set_output("y", then.op("mul", tx, then.const(np.float32(2))))
    ex = other.add_input("x", TensorType(F32, (3,)))
    other.set_output("y", other.op("add", other.op("relu", other.op("neg", ex)), other.const(np.float32(1))))
    g.set_output("y", g.add("if", [positive, x], regions=[then, other]).result)
    return g


def test_while_written_with_its_subgraphs_runs_and_reads_back():
    from tests.test_ir_regions import counting_loop

    g = counting_loop()
    feeds = {"x": np.array([1.5, -2], np.float32), "n": np.int32(5)}
    want = interpret(g, feeds)
    data = emit(g)
    model = read_model(data)
    assert [codes(data, k) for k in range(3)] == [["WHILE"], ["LESS"], ["ADD", "ADD"]]
    (loop,) = model.subgraphs[0].operators
    assert (loop.builtin_options.cond_subgraph_index, loop.builtin_options.body_subgraph_index) == (1, 2)
    assert_close(run_tflite(data, feeds), want)
    back = graph_of(model)
    assert [n.op for n in back.walk(recursive=True) if n.op != "const"] == ["while", "less", "add", "add"]
    assert_close(interpret(back, feeds), want)


def test_bounded_while_carries_a_step_counter():
    from tests.test_ir_regions import counting_loop

    g = counting_loop()
    g.set_attr(next(g.walk("while")), "max_trip_count", 3)
    feeds = {"x": np.array([1.5, -2], np.float32), "n": np.int32(5)}
    want = interpret(g, feeds)
    assert int(want["count"]) == 3
    data = emit(g)
    assert codes(data, 1) == ["LESS", "LESS", "LOGICAL_AND"] and codes(data, 2) == ["ADD", "ADD", "ADD"]
    assert_close(run_tflite(data, feeds), want)


@pytest.mark.parametrize("x", [[1, -2, 2.5], [-1, -2, 0.5]])
def test_if_written_with_its_branches(x):
    g = branching_graph()
    feeds = {"x": np.array(x, np.float32)}
    want = interpret(g, feeds)
    data = emit(g)
    assert codes(data) == ["SUM", "GREATER", "IF"]
    assert_close(run_tflite(data, feeds), want)
    assert_close(interpret(graph_of(read_model(data)), feeds), want)


def _steps_until(x):
    """How many doublings until the sum passes 100: a data-dependent trip count."""
    def body(i, s):
        return i + 1, s * 2.0 + 1.0

    return dict(zip(("steps", "total"), tf.while_loop(lambda i, s: s < 100.0, body, [0, tf.reduce_sum(x)])))


def _branch(x):
    return {"y": tf.cond(tf.reduce_sum(x) > 0, lambda: x * 2.0, lambda: tf.nn.relu(-x) + 1.0)}


def _nested(x, n):
    def outer(i, acc):
        _, acc = tf.while_loop(lambda j, a: j < i, lambda j, a: (j + 1, a + x), [0, acc])
        return i + 1, acc

    return {"acc": tf.while_loop(lambda i, a: i < n, outer, [0, tf.zeros([2])])[1]}


TF_FUNCTIONS = {
    "while": (_steps_until, [tf.TensorSpec([3], tf.float32)], [np.array([1, 2, 0.5], np.float32)]),
    "if": (_branch, [tf.TensorSpec([3], tf.float32)], [np.array([1, -2, 0.5], np.float32)]),
    "nested": (_nested, [tf.TensorSpec([2], tf.float32), tf.TensorSpec([], tf.int32)],
               [np.array([1, 2], np.float32), np.int32(4)]),
}


@pytest.mark.parametrize("name", list(TF_FUNCTIONS))
def test_tensorflows_while_and_if_files_round_trip(name):
    fn, spec, arrays = TF_FUNCTIONS[name]
    concrete = tf.function(fn, input_signature=spec).get_concrete_function()
    data = tf.lite.TFLiteConverter.from_concrete_functions([concrete]).convert()
    assert len(read_model(data).subgraphs) > 2
    want = run_by_position(data, arrays)
    g = graph_of(read_model(data))
    got = interpret(g, dict(zip([v.name for v in g.inputs], arrays)))
    for a, b in zip(got.values(), want):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    again = emit(g)

    def control_flow(model_data):  # the same subgraphs, each with the same WHILE and IF operators, in any order
        subgraphs = range(len(read_model(model_data).subgraphs))
        return sorted([c for c in codes(model_data, k) if c in ("WHILE", "IF")] for k in subgraphs)

    assert control_flow(again) == control_flow(data)
    # and no more operators than TensorFlow's (irc's passes may simplify inside a loop body)
    assert sum(map(len, (codes(again, k) for k in range(len(read_model(again).subgraphs))))) <= \
        sum(map(len, (codes(data, k) for k in range(len(read_model(data).subgraphs)))))
    for a, b in zip(run_by_position(again, arrays), want):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_while_and_if_on_the_tf_targets():
    from irc.backends.tfemit.codegen import generate
    from irc.backends.tfemit.model import TFModel
    from tests.test_ir_regions import counting_loop

    g = counting_loop()
    feeds = {"x": np.array([1.5, -2], np.float32), "n": np.int32(5)}
    source = generate(g)
    assert "tf.while_loop(" in source.code
    assert_close(TFModel(source, jit_compile=True).run(feeds), interpret(g, feeds))
    b = branching_graph()
    for x in ([1, -2, 2.5], [-1, -2, 0.5]):
        feeds = {"x": np.array(x, np.float32)}
        assert_close(TFModel(generate(b), jit_compile=True).run(feeds), interpret(b, feeds))


def test_a_subgraph_that_runs_itself_is_refused():
    from irc.errors import InputError
    from tests.test_ir_regions import counting_loop

    model = read_model(emit(counting_loop()))
    body = model.subgraphs[2]
    loop = model.subgraphs[0].operators[0]
    body.operators.append(type(loop)(loop.opcode_index, list(body.inputs), list(body.outputs),
                                     type(loop.builtin_options)(cond_subgraph_index=1, body_subgraph_index=2)))
    with pytest.raises(InputError, match="subgraph 2 runs itself"):
        graph_of(model)


# ----- the LSTM recognizer ------------------------------------------------------------------------------------------
def keras_lstm_loop(weights, batch, time, features, backwards=False, gate="sigmoid") -> Graph:
    """The while Keras's LSTM lowers to (time-major sequence read at the step counter, h and c carried), as a
    graph with input x [batch, time, features] and output the final h."""
    kernel, recurrent, bias = weights
    units = recurrent.shape[0]
    seq_t = TensorType(F32, (time, batch, features))
    state_t = TensorType(F32, (batch, units))
    step_t = TensorType(DType.i32, ())
    g = Graph("keras_lstm")
    x = g.add_input("x", TensorType(F32, (batch, time, features)))
    seq = g.op("transpose", x, perm=(1, 0, 2))
    if backwards:
        seq = g.op("reverse", seq, axes=(0,))
    cond, body = Graph("cond"), Graph("body")
    t, _, _, _ = (cond.add_input(n, ty) for n, ty in [("t", step_t), ("seq", seq_t), ("h", state_t), ("c", state_t)])
    cond.set_output("go", cond.op("less", t, cond.const(np.int32(time))))
    t, s, h, c = (body.add_input(n, ty) for n, ty in [("t", step_t), ("seq", seq_t), ("h", state_t), ("c", state_t)])
    x_t = body.op("gather", s, t, axis=0)
    z = body.op("add", body.op("add", body.op("matmul", x_t, body.const(kernel)), body.op("matmul", h, body.const(recurrent))),
                body.const(bias))
    z0, z1, z2, z3 = body.add("split", [z], {"axis": 1, "sizes": (units,) * 4}).results
    i, f, o = (body.op(gate, v) for v in (z0, z1, z3))
    c_new = body.op("add", body.op("mul", f, c), body.op("mul", i, body.op("tanh", z2)))
    h_new = body.op("mul", o, body.op("tanh", c_new))
    for name, v in [("t", body.op("add", t, body.const(np.int32(1)))), ("seq", s), ("h", h_new), ("c", c_new)]:
        body.set_output(name, v)
    zeros = g.const(np.zeros((batch, units), np.float32))
    loop = g.add("while", [g.const(np.int32(0)), seq, zeros, zeros], regions=[cond, body])
    g.set_output("h", loop.results[2])
    return g


@pytest.mark.parametrize("backwards", [False, True])
def test_keras_lstm_loop_becomes_the_fused_op(case, backwards):
    from irc.passes import run_pipeline

    weights, x, _, _, _ = case
    layer = keras.layers.LSTM(6, go_backwards=backwards)
    layer.build(x.shape)
    layer.set_weights(weights)
    want = {"h": layer(x).numpy()}
    g = keras_lstm_loop(weights, *x.shape, backwards=backwards)
    assert_close(interpret(g, {"x": x}), want)
    run_pipeline(g, "tfl-fuse-lstm,dce")
    assert "while" not in g.op_histogram() and g.op_histogram()["tfl.unidirectional_sequence_lstm"] == 1
    (fused,) = g.walk("tfl.unidirectional_sequence_lstm")
    assert fused.attr("time_major") is False  # Keras's transposes to time-major and back are gone
    read = fused.operands[0]
    assert (read.producer.op == "reverse") if backwards else (read is g.inputs[0])
    assert_close(interpret(g, {"x": x}), want)
    data = emit(keras_lstm_loop(weights, *x.shape, backwards=backwards))
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in codes(data) and "WHILE" not in codes(data)
    assert_close(run_tflite(data, {"x": x}), want)


def test_a_loop_that_is_not_exactly_an_lstm_is_left_alone(case):
    from irc.passes import run_pipeline

    weights, x, _, _, _ = case
    g = keras_lstm_loop(weights, *x.shape, gate="hard_swish")  # not Keras's gate activation
    run_pipeline(g, "tfl-fuse-lstm")
    assert "while" in g.op_histogram()
    g = keras_lstm_loop(weights, *x.shape)
    (loop,) = g.walk("while")
    g.set_output("c", loop.results[3])  # the final c, which the fused op does not give
    run_pipeline(g, "tfl-fuse-lstm")
    assert "while" in g.op_histogram() and "tfl.unidirectional_sequence_lstm" not in g.op_histogram()
    want = interpret(keras_lstm_loop(weights, *x.shape), {"x": x})
    assert_close({"h": interpret(g, {"x": x})["h"]}, want)


# ----- Keras recurrent models end to end ----------------------------------------------------------------------------
def _lstm_gru(keras):
    inp = keras.Input((12, 8), batch_size=1)
    x = keras.layers.LSTM(16, return_sequences=True)(inp)
    x = keras.layers.GRU(8)(x)
    return keras.Model(inp, keras.layers.Dense(4)(x))


def _bilstm_classifier(keras):
    inp = keras.Input((10,), batch_size=1, dtype="int32")
    x = keras.layers.Embedding(50, 8)(inp)
    x = keras.layers.Bidirectional(keras.layers.LSTM(6))(x)
    return keras.Model(inp, keras.layers.Dense(2)(x))


def _lstm_state(keras):
    inp = keras.Input((7, 5), batch_size=1)
    out, h, c = keras.layers.LSTM(6, return_state=True)(inp)
    return keras.Model(inp, [out, h, c])


def _gru_any_length(keras):
    inp = keras.Input((None, 5), batch_size=1)
    return keras.Model(inp, keras.layers.GRU(4)(inp))


def _lstm_any_length(keras):
    inp = keras.Input((None, 5), batch_size=1)
    return keras.Model(inp, keras.layers.LSTM(6)(inp))


KERAS_MODELS = {"lstm_gru": _lstm_gru, "bilstm_classifier": _bilstm_classifier, "lstm_state": _lstm_state,
                "gru_any_length": _gru_any_length, "lstm_any_length": _lstm_any_length}


@pytest.fixture(scope="session")
def rnn_models(tmp_path_factory):
    """name -> (the Keras model, its SavedModel directory), seeded, exported once."""
    root = tmp_path_factory.mktemp("rnn_models")
    out = {}
    for name, build in KERAS_MODELS.items():
        keras.utils.set_random_seed(0)
        model = build(keras)
        model.export(str(root / name), verbose=False)
        out[name] = (model, root / name)
    return out


def _example(model, length=None) -> np.ndarray:
    spec = model.inputs[0]
    shape = tuple(length if d is None else d for d in spec.shape)
    rng = np.random.default_rng(1)
    if str(spec.dtype).startswith("int"):
        return rng.integers(0, 50, shape).astype(np.int32)
    return rng.standard_normal(shape).astype(np.float32)


def _check_everywhere(graph: Graph, x: np.ndarray, want: list[np.ndarray]) -> bytes:
    """The graph through its text form, the interpreter, the .tflite and xla, each matching ``want`` within 1e-4
    of the output scale; returns the .tflite."""
    from irc.backends import xla
    from irc.ir.parser import parse
    from irc.ir.printer import print_graph

    def close(got: list):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            a = np.asarray(a, np.float64).reshape(b.shape)
            assert np.max(np.abs(a - b)) <= 1e-4 * max(1.0, float(np.max(np.abs(b))))

    (name,) = [v.name for v in graph.inputs]
    text = print_graph(graph, full=True)
    again = parse(text)
    assert print_graph(again, full=True) == text
    close(list(interpret(again, {name: x}).values()))
    data = emit(graph)
    interpreter = tf.lite.Interpreter(model_content=data, num_threads=1)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    by_name = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    runner_names = interpreter.get_signature_runner().get_output_details()
    close([interpreter.get_tensor(runner_names[k]["index"]) for k in graph.outputs])
    assert by_name
    model = xla.emit(graph, passes=None)
    close(list(model.run({name: x}).values()))
    return data


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm_gru", "bilstm_classifier", "lstm_state"])
def test_keras_recurrent_models_everywhere(rnn_models, name):
    import irc

    model, saved = rnn_models[name]
    x = _example(model)
    want = model(x)
    want = [np.asarray(w) for w in (want if isinstance(want, (list, tuple)) else [want])]
    graph = irc.load(saved)
    data = _check_everywhere(graph, x, want)
    main_ops = codes(data)
    if name == "lstm_gru":  # the LSTM fused, the GRU a WHILE over fused fully-connected operators
        assert main_ops.count("UNIDIRECTIONAL_SEQUENCE_LSTM") == 1 and main_ops.count("WHILE") == 1
    elif name == "bilstm_classifier":  # two unidirectional LSTMs, as TensorFlow's converter writes them
        assert main_ops.count("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2 and "WHILE" not in main_ops
    else:  # the final c is an output, which the fused op does not give: the loop stays a WHILE
        assert "WHILE" in main_ops


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gru_any_length", "lstm_any_length"])
def test_unknown_sequence_length_runs_at_two_lengths(rnn_models, name):
    import irc

    model, saved = rnn_models[name]
    graph = irc.load(saved)
    data = None
    for length in (16, 100):
        x = _example(model, length)
        data = _check_everywhere(graph, x, [np.asarray(model(x))])
    tensors = read_model(data).subgraphs[0].tensors
    signature = tensors[read_model(data).subgraphs[0].inputs[0]].shape_signature
    assert signature is not None and signature[1] == -1
    fused = "UNIDIRECTIONAL_SEQUENCE_LSTM" in codes(data)
    assert fused == (name == "lstm_any_length") and (("WHILE" in codes(data)) != fused)


def test_a_fused_lstm_missing_an_input_is_one_clear_error(case):
    from irc.errors import InputError

    weights, x, h0, c0, _ = case
    model = read_model(emit(lstm_graph(weights, x, h0, c0), passes="O0"))
    model.subgraphs[0].operators[-1].inputs[6] = -1
    with pytest.raises(InputError, match="input 6 .* is missing"):
        graph_of(model)


@pytest.mark.parametrize("name", list(TF_FUNCTIONS))
def test_tensorflow_control_flow_through_irc_everywhere(name):
    """A data-dependent tf.while_loop, a tf.cond on an input value and nested loops, read by irc's frontend: the
    text form, the interpreter, the .tflite (WHILE/IF) and xla all match TensorFlow."""
    import irc
    from irc.backends import xla
    from irc.ir.parser import parse
    from irc.ir.printer import print_graph

    fn, spec, arrays = TF_FUNCTIONS[name]
    function = tf.function(fn, input_signature=spec)
    want = {k: np.asarray(v) for k, v in function(*arrays).items()}
    graph = irc.load(function)
    feeds = dict(zip([v.name for v in graph.inputs], arrays))
    assert any(n.op in ("while", "if") for n in graph.walk())
    again = parse(print_graph(graph, full=True))
    for got in (interpret(again, feeds), run_tflite(emit(graph), feeds), xla.emit(graph).run(feeds)):
        assert sorted(got) == sorted(want)
        for key, ref in want.items():
            np.testing.assert_allclose(np.asarray(got[key]), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    assert {"WHILE", "IF"} & set(codes(emit(graph)))


def test_a_while_whose_regions_do_not_fit_is_one_clear_error():
    from irc.errors import InputError
    from tests.test_ir_regions import counting_loop

    model = read_model(emit(counting_loop()))
    cond = model.subgraphs[1]
    cond.outputs.append(cond.inputs[0])  # cond returns two values
    with pytest.raises(InputError, match=r"operator 0 \(WHILE\).*cond"):
        graph_of(model)
    model = read_model(emit(counting_loop()))
    body = model.subgraphs[2]
    body.outputs.pop()  # the body returns fewer values than the loop carries
    with pytest.raises(InputError, match=r"operator 0 \(WHILE\).*body"):
        graph_of(model)
