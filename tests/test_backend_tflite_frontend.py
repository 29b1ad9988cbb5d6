"""Reading .tflite files into the IR: irc's own files round-trip exactly, TensorFlow's converter output (MobileNetV2,
the transformer, the U-Net, float16) reads and is written again by irc with the same results, and bad files give
one-line InputErrors, never a crash."""

from __future__ import annotations

import fcntl
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irc.backends.tflite.backend import emit
from irc.errors import InputError, UnsupportedOpError
from irc.formats.tflite.flatbuffer import (
    Buffer,
    Operator,
    OperatorCode,
    SignatureDef,
    SubGraph,
    Tensor,
    TFLModel,
    flex_options,
    options,
    read_model,
    write_model,
)
from irc.frontends.tflite import read_tflite
from irc.ir.interpreter import random_inputs
from irc.outputs import atomic_file
from tests.test_backend_tflite_ops import CASES, assert_close, build, inputs_for, quantized_graph, run_tflite

tf = pytest.importorskip("tensorflow")


def counts(data: bytes) -> Counter:
    model = read_model(data)
    return Counter(model.operator_codes[op.opcode_index].builtin_code for op in model.subgraphs[0].operators)


def reread(tmp_path, data: bytes, name: str = "model.tflite"):
    path = tmp_path / name
    path.write_bytes(data)
    return read_tflite(path)


# ----- irc's own files -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_irc_files_round_trip(tmp_path, name):
    """emit -> read -> emit gives the same operators and the same results."""
    g = build(name)
    first = emit(g, passes="O0")
    again = emit(reread(tmp_path, first), passes="O0")
    if name == "conv3d":
        # TFLite's 3-D SAME padding is never negative, TensorFlow's is (a window narrower than its stride): the
        # reader makes such a CONV_3D an explicit PAD and a VALID one (frontends/tflite.py's _same_3d), which -O0
        # writes back as they are.
        assert counts(again) - counts(first) <= Counter({"PAD": 1}) and counts(first) - counts(again) == Counter()
    else:
        assert counts(again) == counts(first)
    inputs = inputs_for(g)
    assert_close(run_tflite(again, inputs), run_tflite(first, inputs), rtol=1e-6)


def test_names_and_locations_survive(tmp_path):
    g = build("conv")
    graph = reread(tmp_path, emit(g, passes="O0"))
    assert [v.name for v in graph.inputs] == ["x"]
    assert list(graph.outputs) == list(g.outputs)
    assert graph.inputs[0].type == g.inputs[0].type
    convs = [n for n in graph.nodes if n.op == "conv2d"]
    assert convs and all(n.loc.names for n in convs)


def test_quantized_file_reads_with_parameters(tmp_path):
    g = quantized_graph()
    data = emit(g, passes="O0")
    graph = reread(tmp_path, data)
    conv = next(n for n in graph.nodes if n.op == "tfl.conv2d")  # CONV_2D with a fused RELU: TFLite's form
    assert conv.attr("fused_activation") == "relu"
    filt = conv.operands[1].type
    assert filt.quant is not None and filt.quant.axis == 3 and len(filt.quant.scale) == 4  # back to HWIO
    assert conv.result.type.quant.scale == (pytest.approx(0.1),)
    x = np.random.default_rng(5).uniform(-3, 3, (1, 6, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(run_tflite(emit(graph, passes="O0"), {"x": x})["y"], run_tflite(data, {"x": x})["y"])


def test_flex_ops_read_as_opaque_nodes(tmp_path):
    from tensorflow.core.framework import node_def_pb2

    node_def = node_def_pb2.NodeDef(name="model/Erfinv", op="Erfinv", input=["x"])
    node_def.attr["T"].type = 1
    model = TFLModel(
        operator_codes=[OperatorCode("CUSTOM", "FlexErfinv")],
        subgraphs=[SubGraph(tensors=[Tensor("x", [3]), Tensor("model/Erfinv", [3])], inputs=[0], outputs=[1],
                            operators=[Operator(0, [0], [1],
                                                custom_options=flex_options("Erfinv", node_def.SerializeToString()))])],
    )
    graph = reread(tmp_path, write_model(model))
    node = next(n for n in graph.nodes if n.is_opaque)
    assert node.op == "tf.Erfinv" and node.attrs["node_def"] == node_def.SerializeToString()
    x = np.array([-0.5, 0.0, 0.5], np.float32)
    np.testing.assert_allclose(graph_run(graph, x), tf.math.erfinv(x).numpy(), rtol=1e-6)
    rewritten = read_model(emit(graph, passes="O0", allow_tf_ops=True))
    assert rewritten.operator_codes[0].custom_code == "FlexErfinv"


def graph_run(graph, x):
    import irc

    return next(iter(irc.run(graph, [x], allow_tf_ops=True).values()))  # Flex ops run only with permission


# ----- TensorFlow's files --------------------------------------------------------------------------------------------
def converted(saved_model: Path, float16: bool = False) -> Path:
    """TF's converter output for a zoo SavedModel, made once per machine (converting takes seconds)."""
    path = saved_model.parent / f"{saved_model.name}.tf-{tf.__version__}{'-f16' if float16 else ''}.tflite"
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
            if float16:
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_types = [tf.float16]
            data = converter.convert()
            with atomic_file(path) as tmp:
                tmp.write_bytes(data)
    return path


def token_inputs(graph, vocab: int) -> dict:
    rng = np.random.default_rng(3)
    return {v.name: rng.integers(0, vocab, [d if isinstance(d, int) else 1 for d in v.type.shape]).astype(np.int32)
            for v in graph.inputs}


def test_mobilenet_v2_from_tensorflow_round_trips(zoo_models):
    """TF's .tflite of MobileNetV2, read into the IR and written again by irc: same operators, same results."""
    path = converted(zoo_models.saved_model("mobilenet_v2", size=96))
    theirs = path.read_bytes()
    graph = read_tflite(path)
    ops = graph.op_histogram()
    assert ops["tfl.conv2d"] + ops["conv2d"] == 35 and graph.inputs[0].type.shape[0].name == "batch"
    assert {n.attr("fused_activation") for n in graph.walk("tfl.conv2d")} == {"relu6"}
    ours = emit(graph)
    assert counts(ours) == counts(theirs)
    inputs = random_inputs(graph, seed=2)
    assert_close(run_tflite(ours, inputs), run_tflite(theirs, inputs), rtol=1e-5)
    assert len(ours) <= 1.01 * len(theirs)


@pytest.mark.parametrize("name, vocab", [("transformer_encoder", 1000), ("unet", 0)])
def test_dynamic_shape_arithmetic_from_tensorflow(zoo_models, name, vocab):
    """TF computes reshape and transposed-conv shapes at run time for a dynamic batch; irc folds them to attributes
    that keep the batch unknown, so the model still runs at any batch size."""
    path = converted(zoo_models.saved_model(name))
    graph = read_tflite(path)
    assert "shape" not in graph.op_histogram() and "pack" not in graph.op_histogram()
    ours = emit(graph)
    inputs = token_inputs(graph, vocab) if vocab else random_inputs(graph, seed=2)
    assert_close(run_tflite(ours, inputs), run_tflite(path.read_bytes(), inputs), rtol=1e-5)
    batch = {k: np.concatenate([v, v]) for k, v in inputs.items()}
    interpreter = tf.lite.Interpreter(model_content=ours)
    for detail, value in zip(interpreter.get_input_details(), batch.values()):
        interpreter.resize_tensor_input(detail["index"], value.shape)
    interpreter.allocate_tensors()
    out = next(iter(interpreter.get_signature_runner()(**batch).values()))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-5, atol=1e-6)


def test_float16_file_from_tensorflow(zoo_models):
    path = converted(zoo_models.saved_model("transformer_encoder"), float16=True)
    graph = read_tflite(path)
    assert graph.op_histogram().get("cast", 0) >= 7  # float16 weights widened where they are used
    theirs = path.read_bytes()
    inputs = token_inputs(graph, 1000)
    as_read = emit(graph, passes="O0")  # the casts of float16 constants are DEQUANTIZEs again
    assert counts(as_read)["DEQUANTIZE"] == counts(theirs)["DEQUANTIZE"]
    assert_close(run_tflite(as_read, inputs), run_tflite(theirs, inputs), rtol=1e-5)
    optimized = emit(graph, quantize="float16")  # folding widens the weights; float16 narrows them again
    assert len(optimized) <= 1.01 * len(theirs)
    assert_close(run_tflite(optimized, inputs), run_tflite(theirs, inputs), rtol=1e-5)


# ----- bad files -----------------------------------------------------------------------------------------------------
def tiny_model() -> TFLModel:
    """x[1,4] -> FULLY_CONNECTED(w[3,4], b[3]) -> RELU."""
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    return TFLModel(
        operator_codes=[OperatorCode("FULLY_CONNECTED"), OperatorCode("RELU")],
        subgraphs=[SubGraph(tensors=[Tensor("x", [1, 4]), Tensor("w", [3, 4], buffer=1), Tensor("b", [3], buffer=2),
                                     Tensor("fc", [1, 3]), Tensor("y", [1, 3])],
                            inputs=[0], outputs=[4],
                            operators=[Operator(0, [0, 1, 2], [3], options("FULLY_CONNECTED")),
                                       Operator(1, [3], [4])])],
        buffers=[Buffer(), Buffer(w), Buffer(np.ones(3, np.float32))],
        signature_defs=[SignatureDef({"x": 0}, {"y": 4})],
    )


BAD_KINDS = ["truncated", "truncated_by_one", "not_a_flatbuffer", "empty", "text", "bad_buffer_index",
             "bad_tensor_index", "bad_output_index"]


def bad_file(kind: str) -> bytes:
    good = write_model(tiny_model())
    simple = {"truncated": good[: len(good) // 2], "truncated_by_one": good[:-1],
              "not_a_flatbuffer": b"\x89PNG\r\n\x1a\n" + bytes(64), "empty": b"", "text": b"graph @main() {}\n" * 4}
    if kind in simple:
        return simple[kind]
    model = tiny_model()
    sg = model.subgraphs[0]
    if kind == "bad_buffer_index":
        sg.tensors[1].buffer = 777
    elif kind == "bad_tensor_index":
        sg.operators[0].inputs[0] = 555
    else:
        sg.outputs[0] = 444
    return _unchecked_write(model)


class _SameIndex(list):
    def __getitem__(self, i):
        return i


def _unchecked_write(model: TFLModel) -> bytes:
    """Writes a model that breaks validation, its indices as they are (the writer refuses such models)."""
    import irc.formats.tflite.flatbuffer as fb

    plan_of, problems = fb._Plan.of, fb.validate.problems

    def plan_keeping_indices(m):
        plan = plan_of(m)
        plan.buffer_of = _SameIndex()
        return plan

    fb._Plan.of, fb.validate.problems = plan_keeping_indices, lambda m: []
    try:
        return write_model(model)
    finally:
        fb._Plan.of, fb.validate.problems = plan_of, problems


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_files_are_one_line_input_errors(tmp_path, kind):
    path = tmp_path / f"{kind}.tflite"
    path.write_bytes(bad_file(kind))
    with pytest.raises(InputError) as info:
        read_tflite(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


@pytest.mark.parametrize("kind", ["truncated", "bad_buffer_index", "bad_tensor_index", "not_a_flatbuffer"])
def test_cli_reports_bad_files_in_one_line(tmp_path, kind):
    from irc.cli import main

    path = tmp_path / f"{kind}.tflite"
    path.write_bytes(bad_file(kind))
    result = CliRunner().invoke(main, ["dump", str(path)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read the file"):
        read_tflite(tmp_path / "nope.tflite")


def test_unreadable_operators_are_reported_together(tmp_path):
    model = tiny_model()
    sg = model.subgraphs[0]
    sg.tensors += [Tensor("s2d", [1, 1, 1, 4]), Tensor("l2", [1, 3])]
    model.operator_codes += [OperatorCode("L2_NORMALIZATION"), OperatorCode("SPACE_TO_DEPTH")]
    sg.operators += [Operator(2, [4], [6], options("L2_NORMALIZATION"))]
    sg.operators.insert(0, Operator(3, [0], [5], options("SPACE_TO_DEPTH", block_size=1)))
    with pytest.raises(UnsupportedOpError) as info:
        reread(tmp_path, write_model(model))
    assert "L2_NORMALIZATION" in str(info.value) and "SPACE_TO_DEPTH" in str(info.value)


def test_dump_prints_the_ir(tmp_path):
    from irc.cli import main

    path = tmp_path / "tiny.tflite"
    path.write_bytes(write_model(tiny_model()))
    result = CliRunner().invoke(main, ["dump", str(path)])
    assert result.exit_code == 0, result.output
    assert "matmul(%x" in result.output and "relu(" in result.output
    assert 'as "y"' in result.output


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_files_fail_cleanly(tmp_path_factory, data):
    """Bit flips and truncations of a real irc file: read_tflite returns a graph or raises InputError."""
    good = emit(build("conv"), passes="O0")
    blob = bytearray(good)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] ^= 1 << data.draw(st.integers(0, 7))
    blob = bytes(blob[: data.draw(st.integers(1, len(blob)))])
    path = tmp_path_factory.mktemp("fuzz") / "f.tflite"
    path.write_bytes(blob)
    try:
        read_tflite(path)
    except InputError as e:
        assert "\n" not in str(e)
