"""The tflite backend's contract: signature and metadata, legalization that names every unsupported op at once,
Flex ops under --allow-tf-ops, idiom rewrites, outputs that are inputs or constants, atomic output, the large-model
layout, and ``irc lower ... --emit tflite`` end to end."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from irc import __version__
from irc.backends import get_backend
from irc.backends.tflite.backend import DEFAULT_PIPELINE, check, emit
from irc.backends.tflite.legalize import rewrite_idioms
from irc.errors import UnsupportedOpError, UsageError
from irc.formats.tflite import schema
from irc.formats.tflite.flatbuffer import parse_flex_options, read_model
from irc.ir.graph import Graph, Location
from irc.ir.interpreter import run as interpret
from irc.ir.types import DType, TensorType
from tests.test_backend_tflite_ops import assert_close, ops_of, run_tflite

tf = pytest.importorskip("tensorflow")
F32 = DType.f32


def small_graph() -> Graph:
    r = np.random.default_rng(0)
    g = Graph("small")
    x = g.add_input("pixels", TensorType(F32, (1, 4, 4, 2)))
    y = g.op("tfl.conv2d", x, g.const(r.standard_normal((3, 3, 2, 3)).astype(np.float32)), padding="SAME",
             fused_activation="relu")
    g.set_output("features", y)
    g.set_output("score", g.op("mean", y, axes=(1, 2, 3)))
    return g


def opaque_node(g: Graph, op: str, x, name: str):
    from tensorflow.core.framework import node_def_pb2

    node_def = node_def_pb2.NodeDef(name=name, op=op, input=["x"])
    node_def.attr["T"].type = 1
    return g.add(f"tf.{op}", [x], {"node_def": node_def.SerializeToString()}, types=[x.type]).result


def test_registered_as_the_tflite_target():
    backend = get_backend("tflite")
    assert backend.default_pipeline == DEFAULT_PIPELINE == "tflite,tflite-idioms"
    assert backend.emit(small_graph(), {}) == emit(small_graph())


def test_signature_metadata_and_producer():
    data = emit(small_graph())
    model = read_model(data)
    assert model.metadata[schema.PRODUCER] == f"irc {__version__}".encode()
    assert model.metadata[schema.MIN_RUNTIME_VERSION].rstrip(b"\0") == b"1.6.0"  # MEAN
    interpreter = tf.lite.Interpreter(model_content=data)
    signature = interpreter.get_signature_list()["serving_default"]
    assert signature == {"inputs": ["pixels"], "outputs": ["features", "score"]}
    x = np.random.default_rng(1).standard_normal((1, 4, 4, 2)).astype(np.float32)
    assert_close(interpreter.get_signature_runner()(pixels=x), interpret(small_graph(), {"pixels": x}))


def test_caller_graph_is_not_changed():
    g = small_graph()
    before = g.dump()
    emit(g)
    assert g.dump() == before


def test_identical_constants_share_a_buffer():
    g = Graph("shared")
    x = g.add_input("x", TensorType(F32, (2, 8)))
    w = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    y = g.op("matmul", g.op("matmul", x, g.const(w)), g.const(w.copy()))
    g.set_output("y", y)
    model = read_model(emit(g, passes="O0"))
    assert sum(1 for b in model.buffers if b.nbytes == w.nbytes) == 1


def test_outputs_that_are_inputs_constants_or_repeated():
    g = Graph("edges")
    x = g.add_input("x", TensorType(F32, (3,)))
    y = g.op("relu", x)
    g.set_output("same", x)
    g.set_output("const", g.const(np.array([1.0, 2.0, 3.0], np.float32)))
    g.set_output("y", y)
    g.set_output("y_again", y)
    out = run_tflite(emit(g, passes="O0"), {"x": np.array([-1.0, 0.5, 2.0], np.float32)})
    np.testing.assert_array_equal(out["same"], [-1.0, 0.5, 2.0])
    np.testing.assert_array_equal(out["const"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(out["y"], out["y_again"])


def test_unknown_option_is_a_usage_error():
    with pytest.raises(UsageError, match="no option 'layout'"):
        emit(small_graph(), layout="nchw")


# ----- legalization --------------------------------------------------------------------------------------------------
def unsupported_graph() -> Graph:
    g = Graph("mixed")
    x = g.add_input("x", TensorType(F32, (4,)))
    a = opaque_node(g, "Erfinv", x, "model/erfinv_1")
    b = opaque_node(g, "Erfinv", a, "model/erfinv_2")
    c = opaque_node(g, "Lgamma", b, "model/lgamma")
    wide = g.op("cast", c, to=DType.f64)
    g.set_output("y", g.op("cast", g.op("add", wide, wide), to=F32))
    return g


def test_every_unsupported_op_is_named_at_once():
    with pytest.raises(UnsupportedOpError) as info:
        emit(unsupported_graph(), passes="O0")
    message = str(info.value)
    assert "\n" not in message
    assert "3 op type(s)" in message
    for part in ("tf.Erfinv x2", "tf.Lgamma x1", "add x1", "f64", "--allow-tf-ops"):
        assert part in message, part


def test_failed_lowering_writes_nothing(tmp_path):
    out = tmp_path / "model.tflite"
    with pytest.raises(UnsupportedOpError):
        emit(unsupported_graph(), passes="O0", output=out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_flex_ops_with_allow_tf_ops():
    g = Graph("flex")
    x = g.add_input("x", TensorType(F32, (4,)))
    g.set_output("y", g.op("relu", opaque_node(g, "Erfinv", x, "model/erfinv")))
    data = emit(g, passes="O0", allow_tf_ops=True)
    model = read_model(data)
    custom = next(op for op in model.subgraphs[0].operators
                  if model.operator_codes[op.opcode_index].builtin_code == "CUSTOM")
    assert model.operator_codes[custom.opcode_index].custom_code == "FlexErfinv"
    name, node_def = parse_flex_options(custom.custom_options)
    assert name == "Erfinv" and node_def == g.nodes[0].attrs["node_def"]


def test_check_reports_status_per_node():
    report = {node.op: (status, reason) for node, status, reason in check(unsupported_graph())}
    assert report["tf.Erfinv"][0] == "fallback" and "Flex" in report["tf.Erfinv"][1]
    assert report["add"][0] == "unsupported"
    assert report["cast"][0] == "native"


# ----- idioms --------------------------------------------------------------------------------------------------------
def test_gelu_and_hard_swish_idioms():
    g = Graph("idioms")
    x = g.add_input("x", TensorType(F32, (2, 8)))
    half = g.op("mul", x, g.const(np.float32(0.5)))
    erf = g.op("erf", g.op("mul", g.op("neg", x), g.const(np.float32(np.sqrt(0.5)))))
    g.set_output("gelu", g.op("mul", half, g.op("sub", g.const(np.float32(1.0)), erf)))
    gate = g.op("tfl.add", x, g.const(np.float32(3.0)), fused_activation="relu6")
    g.set_output("hard_swish", g.op("mul", x, g.op("div", gate, g.const(np.float32(6.0)))))
    gate2 = g.op("relu6", g.op("add", x, g.const(np.float32(3.0))))
    g.set_output("hard_swish2", g.op("mul", g.op("mul", x, gate2), g.const(np.float32(1 / 6))))
    inputs = {"x": np.linspace(-5, 5, 16, dtype=np.float32).reshape(2, 8)}
    want = interpret(g, inputs)
    data = emit(g, passes="O0")
    assert sorted(ops_of(data)) == ["GELU", "HARD_SWISH", "HARD_SWISH"]
    assert_close(run_tflite(data, inputs), want, rtol=1e-5)


@pytest.mark.parametrize("fused", [False, True])
def test_tanh_gelu_idiom(fused):
    # ALBERT's gelu_new as TensorFlow writes it: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); tfl-fuse may
    # have put the tanh into its mul
    g = Graph("gelu_new")
    x = g.add_input("x", TensorType(F32, (2, 8)))
    cubic = g.op("add", x, g.op("mul", g.const(np.float32(0.044715)), g.op("pow", x, g.const(np.float32(3.0)))))
    c = g.const(np.float32(np.sqrt(2 / np.pi)))
    tanh = g.op("tfl.mul", c, cubic, fused_activation="tanh") if fused else g.op("tanh", g.op("mul", c, cubic))
    g.set_output("y", g.op("mul", g.op("mul", g.const(np.float32(0.5)), x), g.op("add", g.const(np.float32(1.0)), tanh)))
    inputs = {"x": np.linspace(-5, 5, 16, dtype=np.float32).reshape(2, 8)}
    want = interpret(g, inputs)
    data = emit(g, passes="O0")
    assert ops_of(data) == ["GELU"]
    assert_close(run_tflite(data, inputs), want, rtol=1e-5)


def test_tensor_names_drop_function_call_scopes():
    # TF's converter names tensors "model/dense/Relu", not "StatefulPartitionedCall/model/dense/Relu": as many
    # bytes per name as the scope is long, 2-3% of a small transformer's file
    g = Graph("named")
    x = g.add_input("x", TensorType(F32, (2, 8)))
    loc = Location(("StatefulPartitionedCall/model/dense/Relu", "PartitionedCall_1/model/dense/BiasAdd"))
    g.set_output("y", g.op("relu", g.op("neg", x), loc=loc))
    names = [t.name for t in read_model(emit(g, passes="O0")).subgraphs[0].tensors]
    assert "model/dense/Relu;model/dense/BiasAdd" in names
    assert not any("PartitionedCall" in name for name in names)


def test_input_scale_folds_into_the_filter():
    r = np.random.default_rng(0)
    g = Graph("rescale")
    x = g.add_input("x", TensorType(F32, (1, 5, 5, 3)))
    scaled = g.op("mul", x, g.const(np.array([0.5, 2.0, -1.0], np.float32)))
    g.set_output("y", g.op("conv2d", scaled, g.const(r.standard_normal((3, 3, 3, 4)).astype(np.float32)),
                           padding="SAME"))
    want = interpret(g, {"x": np.ones((1, 5, 5, 3), np.float32)})
    stats = rewrite_idioms(g)
    assert stats["input scales folded into filters"] == 1 and "mul" not in g.op_histogram()
    assert_close(interpret(g, {"x": np.ones((1, 5, 5, 3), np.float32)}), want, rtol=1e-5)


# ----- large models, the command line --------------------------------------------------------------------------------
def test_weights_past_the_flatbuffer_limit_go_after_it(monkeypatch):
    import irc.formats.tflite.flatbuffer as fb

    monkeypatch.setattr(fb, "FLATBUFFER_LIMIT", 0)  # pretend the weights pass 2 GiB
    g = small_graph()
    data = emit(g)
    x = np.random.default_rng(1).standard_normal((1, 4, 4, 2)).astype(np.float32)
    assert_close(run_tflite(data, {"pixels": x}), interpret(g, {"pixels": x}))


def test_irc_lower_cli(tmp_path):
    from irc.cli import main
    from irc.ir.printer import print_graph

    source = tmp_path / "small.irc"
    source.write_text(print_graph(small_graph(), full=True))
    out = tmp_path / "small.tflite"
    result = CliRunner().invoke(main, ["lower", str(source), "--emit", "tflite", "-o", str(out)])
    assert result.exit_code == 0, result.output
    x = np.random.default_rng(1).standard_normal((1, 4, 4, 2)).astype(np.float32)
    assert_close(run_tflite(out.read_bytes(), {"pixels": x}), interpret(small_graph(), {"pixels": x}))
    result = CliRunner().invoke(main, ["lower", str(source), "--emit", "tflite", "--quantize", "float16",
                                       "-o", str(tmp_path / "half.tflite")])
    assert result.exit_code == 0, result.output
    assert "DEQUANTIZE" in ops_of((tmp_path / "half.tflite").read_bytes())


@pytest.mark.parametrize("mode, tolerance", [("dynamic-int8", 0.01), ("int8", 0.05), ("int16x8", 0.01)])
def test_quantized_models_emit_and_run(zoo_models, mode, tolerance):
    """irc's quantizer, then the same emitters: int8/int16 tensors carry their parameters, versions fit TFLite."""
    import irc

    graph = irc.load(zoo_models.saved_model("small_cnn"))
    calibration = {"calibration": "random:16"} if mode != "dynamic-int8" else {}
    data = emit(graph, quantize=mode, **calibration)
    x = np.random.default_rng(3).standard_normal((1, 8, 8, 1)).astype(np.float32)
    got = run_tflite(data, {"image": x})
    want = interpret(graph, {"image": x})
    for name in want:
        assert np.max(np.abs(got[name] - want[name])) <= tolerance
    model = read_model(data)
    types = {t.type for t in model.subgraphs[0].tensors}
    assert {"dynamic-int8": "INT8", "int8": "INT8", "int16x8": "INT16"}[mode] in types


def test_quantize_options_need_an_integer_mode():
    with pytest.raises(UsageError, match="calibration go with"):
        emit(small_graph(), quantize="float16", calibration="random:4")
