"""irc check: per-layer target support, the verdict and its exit code."""

from __future__ import annotations

import json
import types

import pytest
from click.testing import CliRunner

import irc
from irc.cli import main
from irc.tools.check import CheckReport, OpStatus, check_graph
from tests.test_tools_graphs import mini_resnet

RUNNER = CliRunner()


def fake_backend(statuses: dict[str, tuple[str, str]]):
    """A backend module whose check() answers by op name (native when not listed)."""
    def check(graph):
        return [(n, *statuses.get(n.op, ("native", ""))) for n in graph.topo_order()]

    return types.SimpleNamespace(check=check)


@pytest.fixture
def fake_target(monkeypatch):
    def use(statuses):
        monkeypatch.setattr("irc.backends.get_backend", lambda name: fake_backend(statuses))
    return use


def test_grouped_by_layer_in_model_order(fake_target):
    fake_target({"mean": ("fallback", "CPU kernel")})
    report = check_graph(mini_resnet(blocks=2), "tflite")
    layers = [layer for layer, _ in report.by_layer()]
    assert layers[:3] == ["stem", "block0_conv1", "block0_conv2"] and layers[-2:] == ["pool", "dense"]
    assert all(row.node.op != "const" for row in report.rows) and report.hidden > 0
    assert report.counts() == {"native": len(report.rows) - 1, "fallback": 1, "unsupported": 0}
    assert report.converts and not CheckReport("t", report.rows, strict=True).converts
    table = report.table()
    assert ("stem", "conv2d", "native", "") in table and ("pool", "mean", "fallback", "CPU kernel") in table
    assert ("", "softmax", "native", "") in table  # the second op of layer dense
    assert report.table(problems_only=True) == [("pool", "mean", "fallback", "CPU kernel")]


def test_repeated_ops_in_a_layer_are_counted():
    g = irc.parse('graph @g(%x: f32[4]) {\n  %0 = relu(%x) : f32[4] loc("a" in "L")\n'
                  '  %1 = relu(%0) : f32[4] loc("b" in "L")\n  return %1 as "y"\n}')
    report = CheckReport("t", [OpStatus(n, "native") for n in g.nodes])
    assert report.table() == [("L", "relu x2", "native", "")]


def test_an_unsupported_op_stops_the_conversion(fake_target, tmp_path):
    fake_target({"softmax": ("unsupported", "no kernel for softmax")})
    model = tmp_path / "m.irc"
    model.write_text(mini_resnet().dump(full=True))
    result = RUNNER.invoke(main, ["check", str(model), "--target", "tflite"])
    assert result.exit_code == 1
    assert "softmax  unsupported  no kernel for softmax" in result.output
    assert result.output.rstrip().endswith("will not convert to tflite")
    problems = RUNNER.invoke(main, ["check", str(model), "--problems"])
    assert len(problems.output.strip().splitlines()) == 3  # header, the softmax row, the summary
    data = json.loads(RUNNER.invoke(main, ["check", str(model), "--json"]).output)
    assert data["converts"] is False and data["counts"]["unsupported"] == 1
    dense = next(layer for layer in data["layers"] if layer["layer"] == "dense")
    assert {"op": "softmax", "status": "unsupported", "reason": "no kernel for softmax",
            "loc": ["model/dense/Softmax"]} in dense["ops"]


def test_real_backends_on_the_example_model():
    for target in ("tflite", "xla"):
        result = RUNNER.invoke(main, ["check", "examples/classifier.irc", "-t", target])
        assert result.exit_code == 0, result.output
        assert "3 ops in 2 layers: 3 native; will convert" in result.output


def test_bad_target_is_a_usage_error():
    result = RUNNER.invoke(main, ["check", "examples/classifier.irc", "-t", "nope"])
    assert result.exit_code == 2


@pytest.fixture(scope="module")
def lgamma_model(tmp_path_factory):
    """A Keras model with a layer calling tf.math.lgamma: TensorFlow has the op, TFLite has no builtin for it."""
    tf = pytest.importorskip("tensorflow")
    import keras

    from irc import zoo

    class LogGamma(keras.layers.Layer):
        def call(self, x):
            return tf.math.lgamma(x)

    inputs = keras.Input((8,), name="x")
    h = keras.layers.Dense(4, name="dense")(inputs)
    h = LogGamma(name="log_gamma")(keras.layers.Activation("softplus", name="soft")(h))
    outputs = keras.layers.Dense(2, activation="softmax", name="head")(h)
    path = tmp_path_factory.mktemp("lgamma") / "model"
    return zoo.export(keras.Model(inputs, outputs), path)


def test_tflite_flags_an_op_it_has_no_builtin_for(lgamma_model):
    result = RUNNER.invoke(main, ["check", str(lgamma_model), "--target", "tflite"])
    assert result.exit_code == 1, result.output
    row = next(line for line in result.output.splitlines() if "tf.Lgamma" in line)
    assert row.startswith("log_gamma") and "fallback" in row and "Flex" in row
    assert "will not convert to tflite (1 TensorFlow op irc does not lower; --allow-tf-ops keeps them, as Flex ops)" \
        in result.output
    allowed = RUNNER.invoke(main, ["check", str(lgamma_model), "--allow-tf-ops"])
    assert allowed.exit_code == 0 and "will convert to tflite" in allowed.output
    strict = RUNNER.invoke(main, ["check", str(lgamma_model), "--allow-tf-ops", "--strict", "--problems"])
    assert strict.exit_code == 1 and "dense" not in strict.output
