"""Loops and conditionals from TensorFlow kept as while/if regions: Keras RNNs, tf.while_loop, tf.cond, nested loops.

Each model goes through the IR text (print, parse, print again: the same text) and the reference interpreter, and
must match TensorFlow within 1e-4 of its output's scale on random inputs. The IR-level tests (text form, verifier,
interpreter) are in tests/test_ir_regions.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.ir.interpreter import run
from irc.ir.parser import parse
from irc.ir.printer import print_graph
from tests.test_frontend_support import assert_close, check_graph

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
L = keras.layers


def round_trip(graph):
    """The graph read back from its full text, which prints the same."""
    text = print_graph(graph, full=True)
    back = parse(text, "<round trip>")
    assert print_graph(back, full=True) == text
    check_graph(back)
    return back


def ops_in(graph) -> list[str]:
    return [n.op for n in graph.walk(recursive=True)]


def compare(graph, reference, inputs: dict, rel: float = 1e-4):
    """The interpreter's outputs against TensorFlow's (a dict, a list or one tensor), in the graph's output order."""
    out = run(graph, inputs)
    ref = reference(*inputs.values())
    if isinstance(ref, dict):
        ref = {k: np.asarray(v) for k, v in ref.items()}
    else:
        ref = dict(zip(out, [np.asarray(r) for r in (ref if isinstance(ref, (list, tuple)) else [ref])]))
    assert set(out) == set(ref)
    return assert_close(out, ref, rel)


def export(model, path):
    model.export(str(path), verbose=False)
    return path


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Keras models built once per session and exported with model.export: {name: (keras model, path)}."""
    root = tmp_path_factory.mktemp("control_flow")
    built = {}

    def get(name):
        if name not in built:
            keras.utils.set_random_seed(7)
            model = MODELS[name]()
            built[name] = model, export(model, root / name)
        return built[name]

    return get


def lstm_gru():
    i = keras.Input((64, 32), batch_size=1)
    x = L.LSTM(128, return_sequences=True)(i)
    x = L.GRU(64)(x)
    return keras.Model(i, L.Dense(10)(x))


def bidirectional_classifier():
    i = keras.Input((20,), dtype="int32")
    x = L.Embedding(500, 16)(i)
    x = L.Bidirectional(L.LSTM(24))(x)
    return keras.Model(i, L.Dense(4, activation="softmax")(x))


def lstm_with_state():
    i = keras.Input((12, 8))
    seq, h, c = L.LSTM(16, return_sequences=True, return_state=True)(i)
    return keras.Model(i, [seq, h, c])


def gru_any_length():
    i = keras.Input((None, 32))
    return keras.Model(i, L.GRU(24, return_sequences=True)(i))


MODELS = {"lstm_gru": lstm_gru, "bidirectional": bidirectional_classifier, "lstm_state": lstm_with_state,
          "gru_any_length": gru_any_length}


def random_input(shape, seed=0, dtype=np.float32, high=None):
    rng = np.random.default_rng(seed)
    if high is not None:
        return rng.integers(0, high, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.slow
def test_lstm_then_gru_keeps_two_loops(exported):
    model, path = exported("lstm_gru")
    graph = round_trip(irc.load(path))
    assert graph.op_histogram()["while"] == 2
    bodies = [n.regions[1] for n in graph.walk("while")]
    assert [n.op for n in bodies[0].walk()].count("matmul") == 2  # one LSTM cell per iteration, not 64
    for seed in range(2):
        compare(graph, lambda x: model(x), {graph.inputs[0].name: random_input((1, 64, 32), seed)})
    traced = round_trip(irc.load(model))  # the TF path (the Keras model itself) shares the lowering
    assert traced.op_histogram()["while"] == 2
    compare(traced, lambda x: model(x), {traced.inputs[0].name: random_input((1, 64, 32), 3)})


@pytest.mark.slow
def test_bidirectional_lstm_classifier(exported):
    model, path = exported("bidirectional")
    graph = round_trip(irc.load(path))
    assert graph.op_histogram()["while"] == 2  # forward and backward
    compare(graph, lambda x: model(x), {graph.inputs[0].name: random_input((2, 20), 1, np.int32, 500)})


@pytest.mark.slow
def test_lstm_returning_its_state(exported):
    model, path = exported("lstm_state")
    graph = round_trip(irc.load(path))
    assert len(graph.outputs) == 3
    compare(graph, lambda x: model(x), {graph.inputs[0].name: random_input((3, 12, 8), 2)})


@pytest.mark.slow
def test_gru_with_unknown_time_dimension_runs_at_two_lengths(exported):
    model, path = exported("gru_any_length")
    graph = round_trip(irc.load(path))
    assert not isinstance(graph.inputs[0].type.shape[1], int)  # lowered once, the time dimension left to run time
    traced = round_trip(irc.load(model))  # the TF path, from the Keras model
    for length in (16, 100):
        x = random_input((1, length, 32), length)
        compare(graph, lambda x: model(x), {graph.inputs[0].name: x})
        compare(traced, lambda x: model(x), {traced.inputs[0].name: x})


def lower(fn, *specs):
    function = tf.function(fn, input_signature=list(specs))
    return round_trip(irc.load(function)), function


def test_data_dependent_while_loop_counts_steps():
    def steps_until_large(x):
        # doubles x until its sum exceeds 100: the trip count depends on the input's values
        def body(i, y):
            return i + 1, y * 2.0

        return tf.while_loop(lambda i, y: tf.reduce_sum(y) < 100.0, body, [tf.constant(0), x])

    graph, function = lower(steps_until_large, tf.TensorSpec([4], tf.float32))
    assert "while" in ops_in(graph)
    trips = set()
    for start in (0.1, 1.0, 7.0, 30.0):
        x = np.full(4, start, np.float32)
        compare(graph, function, {graph.inputs[0].name: x})
        trips.add(int(run(graph, {graph.inputs[0].name: x})[next(iter(graph.outputs))]))
    assert len(trips) == 4  # each input took a different number of steps


def test_cond_on_an_input_value():
    def gate(x, flag):
        return tf.cond(flag > 0, lambda: tf.nn.relu(x) * 3.0, lambda: tf.tanh(x) - 1.0)

    graph, function = lower(gate, tf.TensorSpec([None, 5], tf.float32), tf.TensorSpec([], tf.int32))
    assert ops_in(graph).count("if") == 1
    x = random_input((3, 5), 3)
    for flag in (-2, 0, 4):
        compare(graph, function, {graph.inputs[0].name: x, graph.inputs[1].name: np.int32(flag)})


def test_case_becomes_nested_ifs():
    def pick(x, index):
        return tf.switch_case(index, [lambda: x + 1.0, lambda: x * 2.0, lambda: tf.exp(x)])

    graph, function = lower(pick, tf.TensorSpec([3], tf.float32), tf.TensorSpec([], tf.int32))
    assert ops_in(graph).count("if") == 2
    x = random_input((3,), 4)
    for index in (0, 1, 2, 7, -1):  # out of range takes the last branch, as in TensorFlow
        compare(graph, function, {graph.inputs[0].name: x, graph.inputs[1].name: np.int32(index)})


def test_nested_loops_with_a_tensor_array():
    def triangle(x, n):
        def outer(i, acc, ta):
            inner = tf.while_loop(lambda j, a: j < i, lambda j, a: (j + 1, a + x * tf.cast(j, tf.float32)),
                                  [tf.constant(0), tf.zeros_like(x)])[1]
            return i + 1, acc + inner, ta.write(i, inner)

        ta = tf.TensorArray(tf.float32, size=n)
        _, acc, ta = tf.while_loop(lambda i, *_: i < n, outer, [tf.constant(0), tf.zeros_like(x), ta])
        return {"acc": acc, "rows": ta.stack()}

    graph, function = lower(triangle, tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([], tf.int32))
    (loop,) = graph.walk("while")
    assert "while" in [n.op for n in loop.regions[1].walk()]  # the inner loop is in the outer one's body
    x = random_input((2, 3), 5)
    for n in (1, 2, 4):  # (TensorFlow cannot stack an empty list of this element shape)
        compare(graph, function, {graph.inputs[0].name: x, graph.inputs[1].name: np.int32(n)})
