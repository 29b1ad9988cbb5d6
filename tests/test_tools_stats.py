"""irc stats: op histogram, parameters, size, MACs and FLOPs per layer."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import irc
from irc.cli import main
from irc.tools.stats import graph_stats
from tests.test_tools_graphs import mini_resnet


def one_node(text: str):
    return graph_stats(irc.parse(text))


def test_convolution_macs():
    s = one_node('graph @g(%x: f32[1,8,8,3]) {\n'
                 '  %0 = const() {value = dense<f32[3,3,3,16] sha256:0123456789abcdef>} : f32[3,3,3,16]\n'
                 '  %1 = const() {value = dense<f32[16] sha256:0123456789abcdee>} : f32[16]\n'
                 '  %2 = conv2d(%x, %0, %1) {padding = "SAME"} : f32[1,8,8,16] loc("c" in "conv")\n'
                 '  return %2 as "y"\n}')
    out = 8 * 8 * 16
    assert s.macs == out * 3 * 3 * 3
    assert s.flops == 2 * s.macs + out  # the bias add
    assert s.parameters == 3 * 3 * 3 * 16 + 16 and s.bytes == 4 * s.parameters
    assert [layer.name for layer in s.layers] == ["conv"]


def test_depthwise_and_batched_matmul_macs():
    s = one_node('graph @g(%x: f32[1,8,8,4]) {\n'
                 '  %0 = const() {value = dense<f32[3,3,4,2] sha256:0123456789abcdef>} : f32[3,3,4,2]\n'
                 '  %1 = depthwise_conv2d(%x, %0) {padding = "SAME"} : f32[1,8,8,8]\n'
                 '  return %1 as "y"\n}')
    assert s.macs == 8 * 8 * 8 * 9
    s = one_node('graph @g(%a: f32[2,3,5], %b: f32[2,5,7]) {\n'
                 '  %0 = batch_matmul(%a, %b) : f32[2,3,7]\n  return %0 as "y"\n}')
    assert s.macs == 2 * 3 * 7 * 5 and s.parameters == 0


def test_dynamic_batch_counts_per_example():
    s = one_node('graph @g(%x: f32[batch,4]) {\n'
                 '  %0 = const() {value = dense<f32[4,2] sha256:0123456789abcdef>} : f32[4,2]\n'
                 '  %1 = matmul(%x, %0) : f32[batch,2]\n  return %1 as "y"\n}')
    assert s.dynamic and s.macs == 8
    assert "per example" in s.format()


def test_quantized_weights_count_their_stored_bytes():
    s = one_node('graph @g(%x: f32[1,4]) {\n'
                 '  %0 = const() {value = dense<i8[4,2] [1, 2, 3, 4, 5, 6, 7, 8]>} : i8[4,2] q(0.5, 0)\n'
                 '  %1 = dequantize(%0) : f32[4,2]\n'
                 '  %2 = matmul(%x, %1) : f32[1,2]\n  return %2 as "y"\n}')
    assert s.parameters == 8 and s.bytes == 8 and s.dtypes == {"i8": 8}


def test_layers_and_histogram_of_a_small_resnet():
    g = mini_resnet(blocks=2)
    s = graph_stats(g)
    assert s.histogram["conv2d"] == 5 and s.ops == len([n for n in g.nodes if n.op != "const"])
    names = [layer.name for layer in s.layers]
    assert names[0] == "stem" and names[-1] == "dense"
    stem = s.layers[0]
    assert stem.parameters == 3 * 3 * 3 * 8 + 8 and stem.macs == 16 * 16 * 8 * 27
    text = s.format(top=2)
    assert "layers (top 2 by MACs)" in text and "conv2d" in text


def test_command_text_and_json(tmp_path):
    model = tmp_path / "m.irc"
    model.write_text(mini_resnet().dump())
    runner = CliRunner()
    result = runner.invoke(main, ["stats", str(model)])
    assert result.exit_code == 0 and "parameters" in result.output and "block2_conv2" in result.output
    data = json.loads(runner.invoke(main, ["stats", str(model), "--json"]).output)
    assert data["histogram"]["softmax"] == 1 and data["macs"] == sum(x["macs"] for x in data["layers"])


@pytest.mark.slow
def test_resnet50_numbers(zoo_models):
    s = graph_stats(irc.load(zoo_models.saved_model("resnet50", size=96)))
    # 25.6M parameters (batch norms folded to a scale and an offset: 53k fewer than Keras counts)
    assert 25_500_000 < s.parameters < 25_700_000
    # ResNet50 is 4.1 GMACs at 224x224; at 96x96 that scales by (96/224)^2 (the head barely changes)
    assert 0.65e9 < s.macs < 0.78e9
    assert s.histogram["conv2d"] == 53
