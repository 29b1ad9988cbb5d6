"""Weight-only and dynamic int8/int4 weights, per tensor, per channel and blockwise (irc/passes/quantize/weights.py):
the arithmetic, the IR and TFLite encodings, LiteRT running every scheme SUPPORTED lists (both interpreters), and
the refusals of the ones it does not."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from irc.errors import InputError, QuantizationError, UsageError
from irc.ir.graph import Graph, Location
from irc.ir.interpreter import run
from irc.ir.types import DType, TensorType
from irc.ir.verify import verify
from irc.passes import run_pipeline
from irc.passes.quantize import quantize_graph
from irc.passes.quantize.weights import (
    BLOCK_SIZES,
    GRANULARITIES,
    SUPPORTED,
    block_scales,
    quantize_weights,
    quantized_weights,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
RNG = np.random.default_rng(3)


def mlp() -> Graph:
    """x[1, 64] -> fc1 (matmul [64, 128]) -> relu -> fc2 (matmul [128, 32]); and an embedding lookup."""
    g = Graph("mlp")
    x = g.add_input("x", TensorType(DType.f32, (1, 64)))
    ids = g.add_input("ids", TensorType(DType.i32, (1, 4)))
    w1 = (RNG.standard_normal((64, 128)) * 0.2).astype(np.float32)
    w2 = (RNG.standard_normal((128, 32)) * 0.2).astype(np.float32)
    table = RNG.standard_normal((50, 64)).astype(np.float32)
    h = g.add("matmul", [x, g.const(w1)], loc=Location(("m/fc1/MatMul",), ("fc1",))).result
    h = g.add("relu", [h], loc=Location(("m/fc1/Relu",), ("fc1",))).result
    g.set_output("y", g.add("matmul", [h, g.const(w2)], loc=Location(("m/fc2/MatMul",), ("fc2",))).result)
    e = g.add("gather", [g.const(table), ids], {"axis": 0, "batch_dims": 0},
              loc=Location(("m/embed/Gather",), ("embed",))).result
    g.set_output("e", e)
    return g


def inputs():
    return {"x": RNG.standard_normal((1, 64)).astype(np.float32), "ids": np.array([[0, 7, 49, 3]], np.int32)}


def node(graph: Graph, layer: str):
    return next(n for n in graph.nodes if layer in n.loc.layers and n.op != "const")


# ----- the arithmetic ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("axis, block", [(None, None), (1, None), (0, None), (1, 32), (0, 32), (1, 64)])
def test_quantized_weights_round_within_half_a_step(bits, axis, block):
    w = (RNG.standard_normal((128, 96)) * 0.1).astype(np.float32)
    w[3, 5] = 2.0  # an outlier: its group's scale, not everyone's
    q, params = quantized_weights(w, bits, axis, block)
    qmax = {8: 127, 4: 7}[bits]
    assert q.dtype == np.int8 and np.abs(q).max() <= qmax
    from irc.ops.quant import dequantize_array

    back = dequantize_array(q, params)
    scales = np.asarray(params.scale)
    groups = 1 if axis is None else w.shape[axis] * (w.shape[1 - axis] // block if block else 1)
    assert scales.size == groups and params.block_size == block and params.axis == axis
    err = np.abs(back - w)
    clipped = np.abs(w) > qmax * scales.max()  # the scale search may clip a few outliers on purpose
    assert err[~clipped].max() <= scales.max() / 2 * 1.0001
    if block:  # the file holds float16 block scales, which LiteRT's XNNPACK kernels truncate to bfloat16
        assert np.array_equal(scales, scales.astype(np.float16).astype(np.float64))
        assert np.array_equal(scales, block_scales(scales))


def test_finer_granularity_means_less_weight_error():
    w = (RNG.standard_normal((256, 64)) * RNG.uniform(0.01, 1, 64)).astype(np.float32)  # channels of many sizes
    from irc.ops.quant import dequantize_array

    def rms(axis, block):
        q, params = quantized_weights(w, 4, axis, block)
        return float(np.sqrt(np.mean((dequantize_array(q, params) - w) ** 2)))

    assert rms(1, 32) < rms(1, None) < rms(None, None)


def test_scale_search_beats_max_scaling():
    w = RNG.standard_normal((1, 4096)).astype(np.float32)  # a gaussian row: the peak is a rare outlier
    q, params = quantized_weights(w, 4, None, None)
    plain = np.clip(np.rint(w / (np.abs(w).max() / 7)), -7, 7) * (np.abs(w).max() / 7)
    ours = q * params.scale[0]
    assert np.mean((ours - w) ** 2) < 0.8 * np.mean((plain - w) ** 2)


@pytest.mark.parametrize("axis, block, per_tensor", [(1, None, False), (1, None, True), (1, 32, False),
                                                     (0, 32, False)])
def test_gptq_rounds_to_less_output_error_on_correlated_inputs(axis, block, per_tensor):
    from irc.ops.quant import dequantize_array
    from irc.passes.quantize.weights import gptq_weights

    rng = np.random.default_rng(11)
    x = rng.standard_normal((512, 16)) @ rng.standard_normal((16, 96))  # 96 inputs, strongly correlated
    x[:, 5] = 0.0  # an input that never fires
    w = rng.standard_normal((96, 40)) * 0.1  # [inputs, outputs]
    if axis == 0:
        w = w.T.copy()  # [outputs, inputs]: transpose_b
    hessian = x.T @ x / len(x)
    q, params = gptq_weights(w, 4, axis, per_tensor, block, hessian)
    plain_q, plain = quantized_weights(w, 4, None if per_tensor else axis, block)
    assert q.dtype == np.int8 and np.abs(q).max() <= 7 and q.shape == w.shape
    assert (params.axis, params.block_size, len(params.scale)) == (plain.axis, plain.block_size, len(plain.scale))
    if block:
        assert np.array_equal(np.asarray(params.scale), block_scales(np.asarray(params.scale)))

    def output_error(ints, quant):
        delta = dequantize_array(ints, quant) - w
        return float(np.mean((x @ (delta if axis == 1 else delta.T)) ** 2))

    assert output_error(q, params) < 0.6 * output_error(plain_q, plain)


def test_moment_shrinkage_is_ledoit_wolfs():
    covariance = pytest.importorskip("sklearn.covariance")
    from irc.passes.quantize.weights import shrink_moments

    rng = np.random.default_rng(5)
    x = rng.standard_normal((50, 30)) @ rng.standard_normal((30, 30))
    want, share = covariance.ledoit_wolf(x, assume_centered=True)
    got = shrink_moments(x.T @ x / len(x), float(np.mean(np.sum(x ** 2, axis=1) ** 2)), len(x))
    assert 0.1 < share < 0.9
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


def test_calibration_data_rounds_weight_only_layers_to_their_inputs():
    g, data = mlp(), [inputs() for _ in range(8)]
    want = [run(g, d)["y"] for d in data]
    plain = quantize_graph(g.copy(), "int4-weight-only")
    report = run_pipeline(g, "quantize{mode=int4-weight-only calibration=random:64}")
    assert report.stats["weights rounded to calibrated inputs"] == 2  # fc1 and fc2; the embedding table as before
    table = next(n for n in g.nodes if n.op == "gather").operands[0].producer.operands[0]
    plain_table = next(n for n in plain.nodes if n.op == "gather").operands[0].producer.operands[0]
    assert np.array_equal(table.constant, plain_table.constant)

    def error(graph):
        return np.mean([np.mean((run(graph, d)["y"] - y) ** 2) for d, y in zip(data, want)])

    assert error(g) < 0.8 * error(plain)


def test_int4_packing_matches_ai_edge_quantizer():
    from irc.backends.tflite.backend import pack_int4

    values = np.array([-8, 7, -1, 0, 3, -5, 6], np.int8)  # odd length: the last byte half empty
    packed = pack_int4(values)
    assert packed.tolist() == [0x78, 0x0F, 0xB3, 0x06]  # first value in the low nibble
    aeq = pytest.importorskip("ai_edge_quantizer.transformations.transformation_utils")
    assert np.array_equal(packed, aeq.pack_data(4, values.view(np.uint8)))


# ----- the graph rewrite -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dynamic, granularity, block", [(False, "per-channel", None), (True, "blockwise", 32)])
def test_quantize_weights_in_the_graph(dynamic, granularity, block):
    g = mlp()
    x = inputs()
    expect = run(g, x)
    stats = quantize_weights(g, [node(g, "fc1"), node(g, "fc2")], bits=4, granularity=granularity,
                             block_size=block, dynamic=dynamic)
    verify(g)
    kind = "dynamic" if dynamic else "weight-only"
    assert stats[f"weights quantized (int4 {kind} {granularity}{' 32' if block else ''})"] == 2
    fc1 = node(g, "fc1")
    w = fc1.operands[1]
    stored = w if dynamic else w.producer.operands[0]
    assert stored.type.dtype is DType.i4 and stored.type.quant.block_size == block
    assert np.abs(stored.constant).max() <= 7
    assert (w.producer.op == "const") == dynamic
    assert node(g, "embed").operands[0].type.dtype is DType.f32  # not asked for
    got = run(g, x)
    rms = np.sqrt(np.mean((got["y"] - expect["y"]) ** 2)) / np.sqrt(np.mean(expect["y"] ** 2))
    assert 0.005 < rms < 0.2  # int4: some 10% error per weight, averaged over 64 and 128 inputs
    assert np.array_equal(got["e"], expect["e"])
    text = g.dump(full=True)
    assert "i4[64,128] q(axis=1, " + ("block=32, [" if block else "[") in text
    from irc.ir.parser import parse

    assert parse(text).dump(full=True) == text


def test_every_eligible_node_by_default_and_the_pass():
    g = mlp()
    stats = quantize_weights(g, bits=8, granularity="per-channel", block_size=None, dynamic=False)
    assert stats["weights quantized (int8 weight-only per-channel)"] == 3  # fc1, fc2, embed
    table = node(g, "embed").operands[0].producer.operands[0]
    assert table.type.dtype is DType.i8 and table.type.quant.axis == 0  # a scale per embedding row
    g = mlp()
    report = run_pipeline(g, "quantize-weights{bits=4 granularity=blockwise block-size=32 dynamic=true}")
    assert report.stats["weights quantized (int4 dynamic blockwise 32)"] == 2  # the gather stays float
    assert report.stats["weights left float"] == 1


def test_quantize_graph_modes_and_keep_float():
    g = mlp()
    quantize_graph(g, "int4-weight-only", granularity="per-tensor", keep_float=["fc2"])
    assert node(g, "fc2").operands[1].producer.op == "const"
    assert node(g, "fc1").operands[1].producer.op == "dequantize"
    with pytest.raises(UsageError, match="go with int8-weight-only"):
        quantize_graph(mlp(), "int8", calibration="random:2", granularity="per-tensor")
    with pytest.raises(UsageError, match="block size of 32, 64, 128, 256"):
        quantize_graph(mlp(), "dynamic-int4", granularity="blockwise")
    with pytest.raises(UsageError, match="integer inputs and outputs"):
        quantize_graph(mlp(), "int4-weight-only", int8_io=True)


# ----- refusals --------------------------------------------------------------------------------------------------------
def test_unsupported_pairs_are_one_line_errors_naming_the_layer():
    g = mlp()
    before = g.dump(full=True)
    with pytest.raises(QuantizationError) as e:  # LiteRT has no hybrid embedding lookup
        quantize_weights(g, [node(g, "fc1"), node(g, "embed")], bits=4, granularity="blockwise", block_size=32,
                         dynamic=True)
    message = str(e.value)
    assert "\n" not in message and "m/embed/Gather" in message and "Keras layer embed" in message
    assert "LiteRT cannot run gather with int4 dynamic blockwise 32 weights (it runs them on: matmul" in message
    assert g.dump(full=True) == before  # checked before anything changed
    with pytest.raises(QuantizationError, match="relu has no weights"):
        quantize_weights(g, [next(n for n in g.nodes if n.op == "relu")], bits=8, granularity="per-tensor",
                         block_size=None, dynamic=False)
    with pytest.raises(QuantizationError, match="do not split into blocks of 256"):
        quantize_weights(g, [node(g, "fc1")], bits=4, granularity="blockwise", block_size=256, dynamic=True)


def test_no_eligible_node_is_an_error():
    g = Graph("conv")
    x = g.add_input("x", TensorType(DType.f32, (1, 8, 8, 4)))
    w = RNG.standard_normal((3, 3, 4, 8)).astype(np.float32)
    g.set_output("y", g.add("conv2d", [x, g.const(w)], {"strides": (1, 1), "padding": "SAME"}).result)
    with pytest.raises(QuantizationError, match="no layer of the model takes int4 dynamic blockwise 32 weights"):
        quantize_graph(g, "dynamic-int4", granularity="blockwise", block_size=32)


def test_support_table_is_complete():
    ops = {op for op, *_ in SUPPORTED}
    assert len(SUPPORTED) == len(ops) * 2 * len(GRANULARITIES) * 2
    assert BLOCK_SIZES == (32, 64, 128, 256)
    assert SUPPORTED[("matmul", 4, "blockwise", True)] and not SUPPORTED[("matmul", 4, "blockwise", False)]


def test_cli_refusals_come_before_loading(tmp_path):
    from tests.hostile import assert_refused, run_irc

    missing = tmp_path / "no_such_model"
    outcome = run_irc(["lower", missing, "-o", tmp_path / "m.tflite", "--quantize", "int8", "--granularity",
                       "blockwise"], cwd=tmp_path)
    assert_refused(outcome, codes=(2,), fragment="--granularity and --block-size go with")
    outcome = run_irc(["lower", missing, "-o", tmp_path / "m.tflite", "--quantize", "dynamic-int4",
                       "--granularity", "blockwise"], cwd=tmp_path)
    assert_refused(outcome, codes=(2,), fragment="block size of 32, 64, 128, 256")


# ----- LiteRT --------------------------------------------------------------------------------------------------------
SUPPORTED_SCHEMES = [key for key, ok in SUPPORTED.items() if ok]
UNSUPPORTED_SCHEMES = [("depthwise_conv2d", 8, "per-tensor", True), ("depthwise_conv2d", 4, "per-channel", True),
                       ("matmul", 4, "blockwise", False), ("matmul", 8, "blockwise", True)]


@pytest.mark.slow
@pytest.mark.parametrize("op, bits, granularity, dynamic", SUPPORTED_SCHEMES)
def test_litert_runs_every_supported_scheme(op, bits, granularity, dynamic):
    pytest.importorskip("ai_edge_litert")
    import weight_support

    block_sizes = BLOCK_SIZES if granularity == "blockwise" else (None,)
    for size in block_sizes:
        result = weight_support.try_scheme(op, bits, granularity, dynamic, size)
        assert result["runs"], result
        assert result["litert"] <= weight_support.TOLERANCE[dynamic]


@pytest.mark.slow
@pytest.mark.parametrize("op, bits, granularity, dynamic", UNSUPPORTED_SCHEMES)
def test_unsupported_schemes_really_fail_in_litert(op, bits, granularity, dynamic):
    """The refusals are not overcautious: these files, forced out, crash or compute garbage in LiteRT."""
    pytest.importorskip("ai_edge_litert")
    import weight_support

    assert not SUPPORTED[(op, bits, granularity, dynamic)]
    result = weight_support.try_scheme(op, bits, granularity, dynamic, 32 if granularity == "blockwise" else None)
    assert not result["runs"]


@pytest.mark.slow
def test_blockwise_file_is_encoded_as_ai_edge_quantizer_encodes_it(tmp_path):
    """irc's dynamic int4 blockwise dense layer against AEQ's on TF's float file: same encoding, no more error."""
    tf = pytest.importorskip("tensorflow")
    pytest.importorskip("ai_edge_quantizer")
    import weight_support
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_quantizer import qtyping, quantizer

    from irc.backends.tflite.backend import emit

    graph, dense = weight_support.lowered("matmul")
    x = weight_support.sample(graph)
    (expect,) = run(graph, x).values()
    float_model = tf.lite.TFLiteConverter.from_keras_model(weight_support.keras_model("matmul")).convert()
    quantize_weights(graph, [dense], bits=4, granularity="blockwise", block_size=32, dynamic=True)
    ours = emit(graph, passes="O0")
    q = quantizer.Quantizer(bytearray(float_model))
    q.add_dynamic_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=4,
                         granularity=qtyping.QuantGranularity.BLOCKWISE_32)
    theirs = bytes(q.quantize(enable_progress_bar=False).quantized_model)

    def weights(data: bytes):
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
        sub = model.subgraphs[0]
        (t,) = [t for t in sub.tensors if t.type == schema.TensorType.INT4]
        scales = sub.tensors[t.quantization.details.scales]
        return t, scales, len(model.buffers[t.buffer].data)

    (t1, s1, n1), (t2, s2, n2) = weights(ours), weights(theirs)
    assert list(t1.shape) == list(t2.shape) == [64, 256] and n1 == n2 == 64 * 256 // 2
    assert t1.quantization.detailsType == t2.quantization.detailsType == 2  # BlockwiseQuantization
    assert t1.quantization.details.blockSize == t2.quantization.details.blockSize == 32
    assert t1.quantization.details.zeroPoints == t2.quantization.details.zeroPoints == -1
    assert s1.type == s2.type == schema.TensorType.FLOAT16 and list(s1.shape) == list(s2.shape) == [64, 8]
    assert len(ours) <= len(theirs)
    errors = []
    for data in (ours, theirs):
        got = weight_support.run_tflite("litert", data, x)
        errors.append(float(np.sqrt(np.mean((got.reshape(expect.shape) - expect) ** 2))))
    assert errors[0] <= errors[1] * 1.05, errors


@pytest.mark.slow
def test_litert_computes_with_the_block_scales_irc_chose():
    """LiteRT's XNNPACK kernel truncates float16 block scales to bfloat16; irc's are exact in both, so the file
    computes with the weights irc chose: LiteRT's output is the dense layer on irc's dequantized weights and the
    input rounded as its hybrid kernel does (asymmetric int8 per row), to float rounding."""
    pytest.importorskip("ai_edge_litert")
    import weight_support

    from irc.backends.tflite.backend import emit
    from irc.ops.quant import dequantize_array

    graph, dense = weight_support.lowered("matmul")
    quantize_weights(graph, [dense], bits=4, granularity="blockwise", block_size=32, dynamic=True)
    w = dense.operands[1]
    weights = dequantize_array(w.constant, w.type.quant)  # [256 inputs, 64 outputs]
    bias = dense.operands[2].constant if len(dense.operands) > 2 else 0.0
    x = weight_support.sample(graph)
    (row,) = x.values()
    row = row.astype(np.float64)
    lo, hi = min(row.min(), 0.0), max(row.max(), 0.0)
    step = (hi - lo) / 255
    zero = np.round(-128 - lo / step)
    rounded = (np.clip(np.round(row / step + zero), -128, 127) - zero) * step
    expect = rounded @ weights.astype(np.float64) + bias
    got = weight_support.run_tflite("litert", emit(graph, passes="O0"), x).reshape(expect.shape)
    assert np.abs(got - expect).max() <= 1e-5 * np.abs(expect).max()


@pytest.mark.slow
def test_quant_report_with_int4_weights(tmp_path):
    from irc.passes.quantize.report import quant_report

    g = mlp()
    data = [inputs() for _ in range(4)]
    report = quant_report(g, data, mode="dynamic-int4", granularity="blockwise", block_size=32)
    layers = {t.layer for t in report.tensors}
    assert {"fc1", "fc2"} <= layers  # the dense layers with int4 weights
    fc2 = next(t for t in report.tensors if t.layer == "fc2")
    assert 10 < fc2.layer_sqnr_db < 60


@pytest.mark.slow
def test_lower_cli_writes_int4_files_litert_runs(tmp_path):
    pytest.importorskip("ai_edge_litert")
    keras = pytest.importorskip("keras")
    import weight_support
    from click.testing import CliRunner

    from irc.cli import main

    keras.utils.set_random_seed(0)
    x = keras.Input((64,), batch_size=1, name="x")
    h = keras.layers.Dense(128, activation="relu", name="fc1")(x)
    model = keras.Model(x, keras.layers.Dense(32, name="fc2")(h))
    model.save(tmp_path / "mlp.keras")
    data = {"x": RNG.standard_normal((1, 64)).astype(np.float32)}
    expect = model.predict(data["x"], verbose=0)
    runner = CliRunner()
    sizes = {}
    for args in (["--quantize", "int4-weight-only"], ["--quantize", "int8-weight-only", "--granularity", "per-tensor"],
                 ["--quantize", "dynamic-int4", "--granularity", "blockwise", "--block-size", "64"]):
        out = tmp_path / f"{args[1]}.tflite"
        result = runner.invoke(main, ["lower", str(tmp_path / "mlp.keras"), "-o", str(out), *args])
        assert result.exit_code == 0, result.output
        got = weight_support.run_tflite("litert", out.read_bytes(), data)
        rel = np.sqrt(np.mean((got - expect) ** 2) / np.mean(expect ** 2))
        assert rel < (0.02 if args[1] == "int8-weight-only" else 0.2), (args, rel)
        sizes[args[1]] = out.stat().st_size
    # half a byte a weight saved; the per-channel int4 file pays a float32 scale and an int64 zero point a channel
    assert sizes["int8-weight-only"] - sizes["int4-weight-only"] >= (64 * 128 + 128 * 32) // 2 - (128 + 32) * 12
    np.savez(tmp_path / "cal.npz", x=RNG.standard_normal((64, 64)).astype(np.float32))
    out = tmp_path / "calibrated.tflite"  # calibration data: GPTQ rounding, the same layout
    result = runner.invoke(main, ["lower", str(tmp_path / "mlp.keras"), "-o", str(out), "--quantize", "dynamic-int4",
                                  "--granularity", "blockwise", "--block-size", "64", "--calibration",
                                  str(tmp_path / "cal.npz")])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size == sizes["dynamic-int4"]
    assert out.read_bytes() != (tmp_path / "dynamic-int4.tflite").read_bytes()  # the weights rounded otherwise
    got = weight_support.run_tflite("litert", out.read_bytes(), data)
    assert np.sqrt(np.mean((got - expect) ** 2) / np.mean(expect ** 2)) < 0.2
    result = runner.invoke(main, ["lower", str(tmp_path / "mlp.keras"), "-o", str(tmp_path / "bad.tflite"),
                                  "--quantize", "int4-weight-only", "--granularity", "blockwise", "--block-size", "32"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "no layer of the model takes int4 weight-only blockwise 32 weights" in lines[0], lines
    assert not (tmp_path / "bad.tflite").exists()


@pytest.mark.parametrize("quant, fragment", [
    ("q(axis=1, block=32, [0.5], [0])", "1 block scales do not fit a \\[64, 4\\] tensor in blocks of 32 along axis 0"),
    ("q(axis=1, block=0, [0.5], [0])", "positive block size"),
    ("q(axis=2, block=32, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], [0, 0, 0, 0, 0, 0, 0, 0])", "axis"),
])
def test_bad_blockwise_types_in_the_text_form_are_input_errors(quant, fragment):
    from irc.errors import InputError
    from irc.ir.parser import parse

    text = f"""graph @g(%x: f32[1,64]) {{
  %w = const() {{value = dense<i8[64,4] [{", ".join(["1"] * 256)}]>}} : i4[64,4] {quant}
  %d = dequantize(%w) : f32[64,4]
  %y = matmul(%x, %d) : f32[1,4]
  return %y as "y"
}}"""
    with pytest.raises(InputError, match=fragment):
        parse(text)


def test_int4_and_blockwise_files_read_back(tmp_path):
    """irc reads its own int4 and blockwise files: same results, and the same bytes when written again."""
    from irc.api import load
    from irc.backends.tflite.backend import emit
    from irc.formats.tflite.flatbuffer import read_model, write_model

    g = mlp()
    quantize_weights(g, [node(g, "fc1")], bits=4, granularity="blockwise", block_size=32, dynamic=True)
    quantize_weights(g, [node(g, "fc2"), node(g, "embed")], bits=4, granularity="per-channel", block_size=None,
                     dynamic=False)
    data = emit(g, passes="O0")
    (tmp_path / "m.tflite").write_bytes(data)
    back = load(tmp_path / "m.tflite")
    x = inputs()
    for name, value in run(g, x).items():
        np.testing.assert_allclose(run(back, x)[name], value, rtol=1e-5, atol=1e-6)
    assert emit(back, passes="O0") == data
    model = read_model(data)
    (weights,) = [t for t in model.subgraphs[0].tensors if t.quantization and t.quantization.blockwise]
    weights.quantization.blockwise = (10_000, -1, 32)  # a scales tensor that does not exist
    (tmp_path / "bad.tflite").write_bytes(write_model(model))
    with pytest.raises(InputError, match="blockwise parameters irc does not read"):
        load(tmp_path / "bad.tflite")


def test_recipes_mix_weight_schemes_per_layer():
    from irc.passes.quantize.recipe import Entry, Recipe

    g = mlp()
    recipe = Recipe("int8-weight-only", (Entry(("fc1",), "dynamic-int4", "blockwise", 32, "r.toml:2"),
                                         Entry(("embed",), "int4-weight-only", "per-tensor", None, "r.toml:6")))
    quantize_graph(g, recipe=recipe)
    fc1, fc2, embed = node(g, "fc1"), node(g, "fc2"), node(g, "embed")
    assert fc1.operands[1].type.dtype is DType.i4 and fc1.operands[1].type.quant.block_size == 32
    assert fc2.operands[1].producer.operands[0].type.dtype is DType.i8  # the default, per channel
    assert fc2.operands[1].producer.operands[0].type.quant.axis == 1
    table = embed.operands[0].producer.operands[0].type
    assert table.dtype is DType.i4 and table.quant.axis is None
    bad = Recipe("int8-weight-only", (Entry(("embed",), "dynamic-int4", "blockwise", 32, "r.toml:2"),))
    with pytest.raises(QuantizationError, match="Keras layer embed.*LiteRT cannot run gather with int4 dynamic"):
        quantize_graph(mlp(), recipe=bad)
