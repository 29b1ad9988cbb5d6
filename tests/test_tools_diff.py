"""irc diff and irc.tools.diff: structural matching, change reports, numeric mode, the command's exit codes."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from click.testing import CliRunner

import irc
from irc.cli import main
from irc.ir.graph import Location
from irc.ir.types import DType, QuantParams, TensorType
from irc.tools.diff import diff_graphs
from tests.test_tools_graphs import mini_resnet, renumbered


def only_change(d):
    assert (len(d.changed), len(d.removed), len(d.added), d.interface) == (1, 0, 0, [])
    (_, _, changes), = d.changed
    return changes


# ----- matching ----------------------------------------------------------------------------------------------------
def test_a_graph_equals_itself_and_its_copy():
    g = mini_resnet()
    assert diff_graphs(g, g).equal
    d = diff_graphs(g, g.copy())
    assert d.equal and not d and d.unchanged == len(g)
    assert d.format().endswith(f"equal ({len(g)} nodes matched)\n")


@pytest.mark.parametrize("seed", range(5))
def test_renumbering_is_no_change(seed):
    g = mini_resnet(blocks=4)
    shuffled = renumbered(g, seed)
    assert shuffled.dump() != g.dump()  # every value prints under another number
    d = diff_graphs(g, shuffled)
    assert d.equal, d.format()


def test_renumbering_without_locations_is_no_change():
    g = mini_resnet(blocks=3)
    for node in g.nodes:
        node.loc = Location()
    assert diff_graphs(g, renumbered(g, 7)).equal


def test_through_the_text_form():
    g = mini_resnet()
    text = renumbered(g, 3).dump(full=True)
    assert diff_graphs(g, irc.parse(text)).equal


def test_one_changed_attribute_is_pinpointed():
    a = mini_resnet(blocks=3)
    b = renumbered(a, 1)
    conv = [n for n in b.walk("conv2d")][3]
    conv.graph.set_attr(conv, "dilations", (2, 2))
    changes = only_change(diff_graphs(a, b))
    assert [(c.kind, c.name, c.a, c.b) for c in changes] == [("attr", "attr dilations", "(default [1, 1])", "[2, 2]")]


def test_changed_weights_report_the_largest_difference():
    a = mini_resnet()
    b = a.copy()
    const = next(n for n in b.walk("const") if n.results[0].type.shape == (3, 3, 8, 8))
    value = const.attrs["value"].copy()
    value[0, 0, 0, 0] += 0.5
    const.graph.set_attr(const, "value", value)
    d = diff_graphs(a, b)
    (node, _, changes), = d.changed
    assert node.op == "const" and changes[0].kind == "value" and changes[0].detail == "max |diff| 0.5"
    assert "operand 1 of conv2d" in d.format()


def test_type_shape_and_quantization_changes():
    a = mini_resnet()
    b = a.copy()
    relu = next(b.walk("relu"))
    old = relu.results[0].type
    b.set_type(relu.results[0], old.with_quant(QuantParams((0.1,), (3,))))
    changes = only_change(diff_graphs(a, b))
    assert [c.kind for c in changes] == ["quant"] and "q(0.1, 3)" in changes[0].b
    b.set_type(relu.results[0], TensorType(DType.f16, old.shape))
    assert [c.kind for c in only_change(diff_graphs(a, b))] == ["dtype"]
    b.set_type(relu.results[0], old.with_shape((1, 16, 16, 9)))
    assert [c.kind for c in only_change(diff_graphs(a, b))] == ["shape"]


def test_added_removed_and_replaced_ops():
    a = mini_resnet(blocks=2)
    b = a.copy()
    relu = list(b.walk("relu"))[2]
    six = b.add("relu6", [relu.operands[0]], loc=Location.of("model/x/Relu6", "x"))
    b.replace_node(relu, six.results)
    extra = b.op("neg", b.outputs["probs"], loc=Location.of("model/neg", "neg"))
    b.set_output("probs", extra)
    d = diff_graphs(a, b)
    assert [n.op for n in d.removed] == ["relu"]
    assert sorted(n.op for n in d.added) == ["neg", "relu6"]
    assert d.unchanged == len(a) - 1  # everything after the replaced relu still matches
    text = d.format()
    assert "- relu %" in text and "+ relu6 %" in text and "+ neg %" in text
    assert text.index("- relu %") < text.index("+ relu6 %") < text.index("+ neg %")


def test_a_fused_graph_matches_its_unfused_source():
    """What a converter does (bias and ReLU fused into the convolutions) shows as changed convolutions and
    removed adds and relus, while everything after them still matches."""
    a, b = mini_resnet(blocks=3), mini_resnet(blocks=3, fused=True)
    d = diff_graphs(a, b)
    assert d.summary()["added"] == 0 and not d.interface
    assert sorted({n.op for n in d.removed}) == ["add", "relu"]
    assert len(d.removed) == 7 + 4  # every bias add, every relu right after a convolution
    changed_ops = {n.op for n, _, _ in d.changed}
    assert changed_ops == {"conv2d"}
    conv_changes = {c.name for _, _, cs in d.changed for c in cs}
    assert conv_changes <= {"op", "attr fused_activation", "operands"}  # conv2d -> tfl.conv2d {fused_activation}
    matched = {n.op for n in d.matching.nodes if n.op != "const"}
    assert {"mean", "matmul", "softmax"} <= matched


def test_renamed_inputs_and_outputs_are_interface_changes():
    a = mini_resnet()
    b = a.copy()
    b.inputs[0].name = "serving_default_image:0"
    b.outputs = {"Identity": b.outputs["probs"]}
    d = diff_graphs(a, b)
    assert not d.changed and not d.added and not d.removed
    assert [(c.name, c.a, c.b) for c in d.interface] == [
        ("input renamed", "image", "serving_default_image:0"), ("output renamed", "probs", "Identity")]


def test_a_rewired_operand_is_a_change():
    a = mini_resnet(blocks=2)
    b = a.copy()
    add = next(n for n in b.walk("add") if n.loc.layers == ("block1_add",))
    relu_out = next(n for n in b.walk("relu") if n.loc.layers == ("block0_out",))
    conv_in = next(n for n in b.walk("relu") if n.loc.layers == ("block1_conv1",))
    b.set_operand(add, 0, conv_in.result)
    assert relu_out.result.uses  # still used by block1_conv1
    changes = only_change(diff_graphs(a, b))
    assert [c.name for c in changes] == ["operand 0"]


def test_json_and_stat():
    a = mini_resnet()
    b = a.copy()
    b.set_attr(next(b.walk("softmax")), "beta", 0.5)
    d = diff_graphs(a, b)
    data = d.to_json()
    json.dumps(data)
    assert data["equal"] is False and data["summary"]["changed"] == 1
    assert data["changed"][0]["changes"][0] == {"kind": "attr", "name": "attr beta", "a": "(default 1.0)", "b": "0.5",
                                                "detail": ""}
    assert data["changed"][0]["a"]["layers"] == ["dense"]
    assert "softmax |    1 ~" in d.format_stat()


def test_numeric_mode_reports_max_error_per_output():
    a = mini_resnet()
    b = a.copy()
    d = diff_graphs(a, b, numeric=True)
    assert d.numeric_ok and d.numeric[0].max_abs == 0.0
    b.set_attr(next(b.walk("softmax")), "beta", 1.01)
    d = diff_graphs(a, b, numeric=True)
    (err,) = d.numeric
    assert err.a == "probs" and 0 < err.max_abs < 0.05 and not err.ok
    assert diff_graphs(a, b, numeric=True, atol=0.05).numeric_ok
    assert "max abs error" in d.format()


def test_numeric_mode_quantizes_for_a_quantized_input():
    a = irc.parse('graph @g(%x: f32[4]) {\n  %0 = relu(%x) : f32[4]\n  return %0 as "y"\n}')
    b = irc.parse('graph @g(%x: i8[4] q(0.05, 0)) {\n  %0 = dequantize(%x) : f32[4]\n'
                  '  %1 = relu(%0) : f32[4]\n  return %1 as "y"\n}')
    d = diff_graphs(a, b, numeric=True, atol=0.03)
    assert d.numeric_ok and d.numeric[0].max_abs <= 0.025 + 1e-6


def test_diff_is_fast_on_a_thousand_nodes():
    g = mini_resnet(blocks=150)
    assert len(g) > 1000
    other = renumbered(g, 2)
    start = time.perf_counter()
    d = diff_graphs(g, other)
    assert d.equal
    assert time.perf_counter() - start < 2.0


def test_api_diff_takes_paths_and_graphs(tmp_path):
    g = mini_resnet()
    path = tmp_path / "a.irc"
    path.write_text(g.dump(full=True))
    assert irc.diff(str(path), g).equal


# ----- the command -------------------------------------------------------------------------------------------------
@pytest.fixture
def pair(tmp_path):
    a = mini_resnet()
    b = renumbered(a, 4)
    b.set_attr(next(b.walk("softmax")), "beta", 2.0)
    pa, pb = tmp_path / "a.irc", tmp_path / "b.irc"
    pa.write_text(a.dump(full=True))
    pb.write_text(b.dump(full=True))
    return str(pa), str(pb)


def test_command_exit_codes(pair, tmp_path):
    a, b = pair
    runner = CliRunner()
    same = runner.invoke(main, ["diff", a, a])
    assert same.exit_code == 0 and "equal" in same.output
    different = runner.invoke(main, ["diff", a, b])
    assert different.exit_code == 1
    assert "~ softmax" in different.output and "attr beta: (default 1.0) -> 2.0" in different.output
    assert "\x1b[" not in different.output  # no color when not on a terminal
    colored = runner.invoke(main, ["diff", a, b, "--color"])
    assert "\x1b[" in colored.output
    trouble = runner.invoke(main, ["diff", a, str(tmp_path / "missing.irc")])
    assert trouble.exit_code == 2 and "no such file" in trouble.output


def test_command_json_stat_numeric_and_output(pair, tmp_path):
    a, b = pair
    runner = CliRunner()
    data = json.loads(runner.invoke(main, ["diff", a, b, "--json"]).output)
    assert data["summary"] == {"changed": 1, "removed": 0, "added": 0, "unchanged": len(mini_resnet()) - 1,
                               "interface": 0}
    stat = runner.invoke(main, ["diff", a, b, "--stat"])
    assert stat.exit_code == 1 and "softmax" in stat.output and "1 changed" in stat.output
    numeric = runner.invoke(main, ["diff", a, b, "--numeric"])
    assert numeric.exit_code == 1 and "DIFFERENT" in numeric.output
    assert runner.invoke(main, ["diff", a, b, "--numeric", "--atol", "1"]).exit_code == 0
    out = tmp_path / "d.txt"
    assert runner.invoke(main, ["diff", a, b, "-o", str(out)]).exit_code == 1
    assert "~ softmax" in out.read_text()


# ----- real models -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_resnet50_renumbered_is_equal_and_one_attribute_is_pinpointed(zoo_models):
    graph = irc.load(zoo_models.saved_model("resnet50", size=96))
    assert len(graph) > 400
    shuffled = renumbered(graph, 5)
    start = time.perf_counter()
    assert diff_graphs(graph, shuffled).equal
    assert time.perf_counter() - start < 1.0
    conv = [n for n in shuffled.walk("conv2d") if n.operands[1].type.shape[:2] == (1, 1)][7]
    conv.graph.set_attr(conv, "padding", "SAME" if conv.attr("padding") == "VALID" else "VALID")  # same shapes for a 1x1 kernel
    d = diff_graphs(graph, shuffled)
    changes = only_change(d)
    assert [c.name for c in changes] == ["attr padding"]
    (node, _, _), = d.changed
    assert node.loc.layers == conv.loc.layers


@pytest.mark.slow
def test_savedmodel_against_the_tflite_tensorflow_converts(zoo_models, tmp_path):
    import tensorflow as tf

    saved = zoo_models.saved_model("resnet50", size=96)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    tflite = tmp_path / "tf_converted.tflite"
    tflite.write_bytes(converter.convert())
    runner = CliRunner()
    result = runner.invoke(main, ["diff", str(saved), str(tflite), "--numeric", "--atol", "1e-3", "--rtol", "1e-3"])
    assert result.exit_code == 0, result.output
    assert "max abs error" in result.output and "ok" in result.output
    d = irc.diff(str(saved), str(tflite))
    matched = [n for n in d.matching.nodes if n.op == "conv2d"]
    assert len(matched) == 53  # every convolution found its counterpart in the flatbuffer
    assert np.isfinite([e.max_abs for e in diff_graphs(d.a, d.b, numeric=True).numeric]).all()


def test_dumps_with_elided_weights_compare_by_hash(tmp_path):
    a = mini_resnet()
    b = a.copy()
    const = next(n for n in b.walk("const") if n.results[0].type.shape == (3, 3, 8, 8))
    const.graph.set_attr(const, "value", const.attrs["value"] * 2)
    elided_a, elided_b = irc.parse(a.dump()), irc.parse(renumbered(b, 1).dump())
    assert diff_graphs(elided_a, irc.parse(renumbered(a, 1).dump())).equal
    assert diff_graphs(elided_a, a).equal  # an elided constant equals the array it was printed from
    (node, _, changes), = diff_graphs(elided_a, elided_b).changed
    assert node.op == "const" and changes[0].kind == "value" and "sha256:" in changes[0].a
    pa = tmp_path / "a.irc"
    pa.write_text(a.dump())
    result = CliRunner().invoke(main, ["diff", str(pa), str(pa), "--numeric"])
    assert result.exit_code == 2 and "elided" in result.output
