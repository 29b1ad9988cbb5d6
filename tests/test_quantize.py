"""The quantize pass on IR graphs, without TensorFlow: parameters, observers, calibration data checks, TFLite's
operator constraints, keep-float selectors, integer I/O, dynamic-range and float16, and the error report."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from irc.errors import PassError, QuantizationError, UsageError
from irc.ir.graph import Graph, Location
from irc.ir.interpreter import run
from irc.ir.types import DType, TensorType
from irc.ir.verify import verify
from irc.passes import run_pipeline
from irc.passes.quantize import (
    Quantize,
    apply_quantization,
    calibrate,
    load_calibration,
    prepare_for_quantization,
    quantize_graph,
)
from irc.passes.quantize import constraints as C
from irc.passes.quantize.observers import SAMPLE_SIZE, MeanSquaredError, MinMax, Percentile, make_observer
from irc.passes.quantize.report import quant_report

RNG = np.random.default_rng(0)


def _w(*shape, scale=0.3):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def cnn(batch=None) -> Graph:
    """conv1 (relu) -> conv2 (relu6) -> pool -> flatten -> fc -> prob, with Keras layer names."""
    g = Graph("cnn")
    x = g.add_input("image", TensorType(DType.f32, (batch, 8, 8, 3)))

    def at(layer):
        return Location((f"model/{layer}/op",), (layer,))

    def conv(v, cin, cout, layer, act):
        return g.add("tfl.conv2d", [v, g.const(_w(3, 3, cin, cout)), g.const(_w(cout, scale=0.1))],
                     {"strides": (1, 1), "padding": "SAME", "fused_activation": act}, loc=at(layer)).result

    h = conv(x, 3, 8, "conv1", "relu")
    h = conv(h, 8, 8, "conv2", "relu6")
    h = g.add("avg_pool", [h], {"ksize": (2, 2), "strides": (2, 2), "padding": "VALID"}, loc=at("pool")).result
    h = g.add("reshape", [h], {"shape": (-1, 128)}, loc=at("flatten")).result
    h = g.add("matmul", [h, g.const(_w(128, 10, scale=0.1)), g.const(_w(10))], loc=at("fc")).result
    g.set_output("prob", g.add("softmax", [h], loc=at("prob")).result)
    return g


def images(n=16, batch=1):
    return [{"image": RNG.random((batch, 8, 8, 3)).astype(np.float32)} for _ in range(n)]


def node_of(graph, layer, op=None):
    return next(n for n in graph.nodes if layer in n.loc.layers and (op is None or op in (n.op, n.core_op)))


# ----- parameter arithmetic ---------------------------------------------------------------------------------------
def test_int8_activation_params_match_tflite():
    q = C.activation_params(0.0, 1.0, DType.i8)
    assert q.scale == pytest.approx((1 / 255,)) and q.zero_point == (-128,)
    q = C.activation_params(0.5, 2.0, DType.i8)  # the range is stretched to hold 0 exactly
    assert q.zero_point == (-128,) and q.scale[0] == pytest.approx(2 / 255)
    q = C.activation_params(-3.0, 1.0, DType.i8)
    assert -128 < q.zero_point[0] < 127
    assert (q.zero_point[0] - -128) * q.scale[0] == pytest.approx(3.0, abs=q.scale[0])


def test_int16_params_are_symmetric_and_degenerate_ranges_are_usable():
    q = C.activation_params(-0.5, 2.0, DType.i16)
    assert q.zero_point == (0,) and q.scale[0] == pytest.approx(2.0 / 32767)
    q = C.activation_params(0.0, 0.0, DType.i8)
    assert q.scale[0] > 0


def test_weights_are_symmetric_per_channel_and_bias_fits_int32():
    w = _w(3, 3, 4, 5)
    w[..., 2] = 0.0  # an all-zero channel
    scales = C.weight_scales(w, 3)
    assert scales.shape == (5,) and scales[2] == 1.0
    q = C.quantize_weights(w, scales, 3)
    assert q.dtype == np.int8 and q.min() >= -127 and np.abs(q).max(axis=(0, 1, 2))[[0, 1, 3, 4]].tolist() == [127] * 4
    np.testing.assert_allclose(q * scales, w, atol=scales.max() / 2 + 1e-7)
    bias = np.asarray([1e9, 0, 0, 0, 0], np.float32)  # would overflow int32 at input scale 1e-3
    fitted = C.fit_bias(bias, scales, 1e-3, DType.i32)
    qb = C.quantize_bias(bias, 1e-3 * fitted, DType.i32)
    assert fitted[0] > scales[0] and abs(qb[0] * 1e-3 * fitted[0] - 1e9) < 1e9 * 1e-6


# ----- observers -----------------------------------------------------------------------------------------------------
def test_observers():
    data = np.concatenate([RNG.standard_normal(100_000), [40.0]]).astype(np.float32)
    mm, pc, mse = MinMax(), Percentile(99.9), MeanSquaredError()
    for obs in (mm, pc, mse):
        for chunk in np.array_split(data, 7):
            obs.observe(chunk)
    assert mm.range() == (float(data.min()), 40.0)
    lo, hi = pc.range()
    assert 2.5 < hi < 4.0 and -4.0 < lo < -2.5
    assert mse.range()[1] < 20.0  # clips the outlier
    assert len(mse.sample()) <= SAMPLE_SIZE
    assert make_observer("percentile:99")().percentile == 99.0
    with pytest.raises(UsageError, match="unknown observer"):
        make_observer("kl")
    with pytest.raises(UsageError):
        make_observer("percentile:20")


def test_observer_ignores_non_finite_values():
    obs = MinMax()
    obs.observe(np.asarray([np.nan, -np.inf, 1.0, 2.0]))
    assert obs.range() == (1.0, 2.0)


# ----- calibration data -----------------------------------------------------------------------------------------------
def test_load_calibration_forms(tmp_path):
    g = cnn()
    stacked = RNG.random((10, 8, 8, 3)).astype(np.float32)
    np.savez(tmp_path / "named.npz", image=stacked)
    np.savez(tmp_path / "unnamed.npz", stacked)
    np.save(tmp_path / "one.npy", stacked)
    for source in (tmp_path / "named.npz", str(tmp_path / "unnamed.npz"), tmp_path / "one.npy", stacked,
                   {"image": stacked}, [{"image": s} for s in stacked], list(stacked), (s for s in stacked)):
        samples = load_calibration(source, g)
        assert len(samples) == 10 and samples[3]["image"].shape == (1, 8, 8, 3)
    fixed = cnn(batch=2)
    assert len(load_calibration(stacked, fixed)) == 5
    with pytest.raises(QuantizationError, match="multiple of the model's batch size 2"):
        load_calibration(stacked[:3], fixed)


@pytest.mark.parametrize("source, message", [
    ({"img": np.zeros((4, 8, 8, 3), np.float32)}, "array 'img', which is not a model input"),
    ({}, "no array for model input 'image'"),
    ({"image": np.zeros((4, 8, 4, 3), np.float32)}, r"expects shape f32\[\?,8,8,3\]"),
    ({"image": np.zeros((4, 8, 8), np.float32)}, "has shape"),
    ({"image": np.zeros((4, 8, 8, 3), np.uint8)}, "is f32 but its calibration data is uint8"),
    ([{"image": np.zeros((1, 8, 8, 3), np.float32)}, {"x": np.zeros(3)}], "sample 1"),
    ([], "no samples"),
    (42, "must be a file"),
])
def test_bad_calibration_data_is_a_clear_error(source, message):
    with pytest.raises(QuantizationError, match=message):
        load_calibration(source, cnn())


def test_bad_calibration_fails_before_any_work(monkeypatch, tmp_path):
    from irc.passes import quantize

    def no_calibration(*args, **kwargs):
        raise AssertionError("calibration started")

    monkeypatch.setattr(quantize, "calibrate", no_calibration)
    g = cnn()
    before = (g.version, g.dump())
    np.savez(tmp_path / "bad.npz", image=np.zeros((4, 8, 8, 1), np.float32))
    with pytest.raises(QuantizationError, match="expects shape"):
        quantize_graph(g, "int8", calibration=tmp_path / "bad.npz")
    with pytest.raises(QuantizationError, match="no such calibration data file"):
        quantize_graph(g, "int8", calibration=tmp_path / "missing.npz")
    with pytest.raises(QuantizationError, match="needs calibration data"):
        quantize_graph(g, "int8")
    with pytest.raises(QuantizationError, match="matches no layer"):
        quantize_graph(g, "int8", calibration=images(2), keep_float=["conv9"])
    with pytest.raises(UsageError, match="unknown quantization mode"):
        quantize_graph(g, "int4", calibration=images(2))
    assert (g.version, g.dump()) == before


def test_calibration_batches_samples_when_the_batch_is_free():
    from irc.passes.quantize.calibration import batches

    g = cnn()
    ranges = calibrate(g, images(40))
    seen = [count for _, count in batches(load_calibration(images(40), g), g)]
    assert seen == [32, 8]
    assert ranges[g.inputs[0]][0] >= 0.0 and ranges[g.inputs[0]][1] <= 1.0
    assert len(ranges) == 7  # the input and every node result


# ----- full integer ------------------------------------------------------------------------------------------------
def _params(v):
    return v.type.quant


def test_int8_cnn_structure_and_accuracy():
    g = cnn()
    data = images(32)
    want = [run(g, s)["prob"] for s in data[:8]]
    quantize_graph(g, "int8", calibration=data)
    verify(g)
    ops = g.op_histogram()
    assert ops["quantize"] == 1 and ops["dequantize"] == 1 and "requantize" not in ops
    conv = node_of(g, "conv1", "conv2d")
    x, w, b = conv.operands
    assert x.type.dtype is DType.i8 and w.type.dtype is DType.i8 and w.type.quant.axis == 3
    assert b.type.dtype is DType.i32 and b.type.quant.axis == 0 and b.type.quant.zero_point == (0,) * 8
    np.testing.assert_allclose(b.type.quant.scale, np.asarray(w.type.quant.scale) * x.type.quant.scale[0])
    fc = node_of(g, "fc", "matmul")
    assert fc.operands[1].type.quant.axis == 1  # [in, out]: per output channel
    pool, flatten = node_of(g, "pool"), node_of(g, "flatten")
    assert _params(pool.operands[0]) == _params(pool.result) == _params(flatten.result)  # same-scale ops
    prob = node_of(g, "prob", "softmax").result
    assert _params(prob).scale == (1 / 256,) and _params(prob).zero_point == (-128,)
    got = [run(g, s)["prob"] for s in data[:8]]
    assert max(np.abs(a - b).max() for a, b in zip(got, want)) < 0.05


def concat_graph():
    """concat(conv, sigmoid(conv)) -> reshape -> tanh: the sigmoid's fixed 1/256 must not reach the other input."""
    g = Graph("cat")
    x = g.add_input("x", TensorType(DType.f32, (1, 4, 4, 2)))
    a = g.add("conv2d", [x, g.const(_w(1, 1, 2, 3, scale=3.0))], {"padding": "SAME"},
              loc=Location(("a",), ("a",))).result
    s = g.add("sigmoid", [a], loc=Location(("gate",), ("gate",))).result
    c = g.add("concat", [a, s], {"axis": 3}, loc=Location(("cat",), ("cat",))).result
    r = g.add("reshape", [c], {"shape": (1, -1)}).result
    g.set_output("y", g.op("tanh", r))
    return g


@pytest.mark.parametrize("mode, dtype", [("int8", DType.i8), ("int16x8", DType.i16)])
def test_concat_of_a_fixed_output_gets_a_requantize(mode, dtype):
    g = concat_graph()
    stats = Counter()
    data = [{"x": RNG.standard_normal((1, 4, 4, 2)).astype(np.float32)} for _ in range(8)]
    prepare_for_quantization(g, mode)
    apply_quantization(g, mode, calibrate(g, data), stats=stats)
    cat = node_of(g, "cat", "concat")
    sig = node_of(g, "gate", "sigmoid").result
    a, s = cat.operands
    assert s.producer.op == "requantize" and s.producer.operands[0] is sig
    assert _params(a) == _params(s) == _params(cat.result)
    assert _params(sig).scale == ((1 / 256,) if dtype is DType.i8 else (1 / 32768,))
    assert _params(cat.result).scale[0] > 2 * _params(sig).scale[0]  # the conv's range, not [0, 1]
    tanh = next(n for n in g.nodes if n.op == "tanh")
    assert _params(tanh.result).scale == ((1 / 128,) if dtype is DType.i8 else (1 / 32768,))
    assert stats["requantize nodes"] == 1
    if dtype is DType.i16:
        assert all(v.type.quant.zero_point == (0,) for n in g.nodes for v in n.results
                   if v.type.quant and v.type.dtype is DType.i16)


def test_fused_tanh_is_split_off_so_it_gets_fixed_parameters():
    g = Graph("t")
    x = g.add_input("x", TensorType(DType.f32, (1, 4, 4, 2)))
    y = g.add("tfl.conv2d", [x, g.const(_w(3, 3, 2, 4)), g.const(_w(4))],
              {"padding": "SAME", "fused_activation": "tanh"}, loc=Location(("c",), ("conv",))).result
    g.set_output("y", y)
    quantize_graph(g, "int8", calibration="random:4")
    conv, tanh = node_of(g, "conv", "conv2d"), node_of(g, "conv", "tanh")
    assert "fused_activation" not in conv.attrs and tanh.operands[0] is conv.result
    assert _params(tanh.result).scale == (1 / 128,) and _params(conv.result) != _params(tanh.result)


def test_integer_io():
    g = cnn()
    quantize_graph(g, "int8", calibration=images(8), int8_io=True)
    assert g.inputs[0].type.dtype is DType.i8 and g.outputs["prob"].type.dtype is DType.i8
    assert "quantize" not in g.op_histogram() and "dequantize" not in g.op_histogram()
    g = cnn()
    quantize_graph(g, "int8", calibration=images(8), int8_io="uint8")
    x, y = g.inputs[0], g.outputs["prob"]
    assert x.type.dtype is DType.u8 and y.type.dtype is DType.u8
    assert x.type.quant.zero_point == (0,) and y.type.quant.zero_point == (0,)  # int8's -128 shifted
    assert x.uses[0][0].op == "requantize" and y.producer.op == "requantize"
    g = cnn()
    quantize_graph(g, "int16x8", calibration=images(8), int8_io=True)
    assert g.inputs[0].type.dtype is DType.i16
    with pytest.raises(UsageError, match="uint8"):
        quantize_graph(cnn(), "int16x8", calibration=images(2), int8_io="uint8")


@pytest.mark.parametrize("selector", ["conv2", "model/conv2/op", "/conv[2]/", "conv2.*", "op:conv2d"])
def test_keep_float_selectors(selector):
    g = cnn()
    quantize_graph(g, "int8", calibration=images(8), keep_float=[selector])
    conv2 = node_of(g, "conv2", "conv2d")
    assert conv2.result.type.quant is None and conv2.operands[1].type.dtype is DType.f32
    assert conv2.operands[0].type.dtype is DType.f32
    assert node_of(g, "fc", "matmul").result.type.quant is not None
    assert node_of(g, "pool").operands[0].producer.op == "quantize"


def test_keep_float_typo_suggests_layers():
    with pytest.raises(QuantizationError, match="did you mean conv2"):
        quantize_graph(cnn(), "int8", calibration=images(2), keep_float=["conv_2"])


def test_ops_without_integer_kernels_stay_float_between_dequantize_and_quantize():
    g = Graph("e")
    x = g.add_input("x", TensorType(DType.f32, (1, 8)))
    h = g.add("matmul", [x, g.const(_w(8, 8))]).result
    e = g.op("exp", h)  # no int8 EXP in the quantize pass's table
    g.set_output("y", g.add("matmul", [e, g.const(_w(8, 4))]).result)
    quantize_graph(g, "int8", calibration="random:4")
    exp = next(n for n in g.nodes if n.op == "exp")
    assert exp.operands[0].producer.op == "dequantize" and exp.result.uses[0][0].op == "quantize"


def test_matmul_of_two_activations_has_a_symmetric_right_side():
    g = Graph("mm")
    a, b = (g.add_input(n, TensorType(DType.f32, s)) for n, s in (("a", (2, 8)), ("b", (8, 3))))
    g.set_output("y", g.op("matmul", a, g.op("relu", b)))
    quantize_graph(g, "int8", calibration="random:4")
    mm = next(n for n in g.nodes if n.op == "matmul")
    assert mm.operands[1].type.quant.zero_point == (0,) and mm.operands[0].type.quant.zero_point != (0,)


def cancelling_add() -> Graph:
    """x + (-x): inputs of range ~100, an output that is always 0."""
    g = Graph("cancel")
    x = g.add_input("x", TensorType(DType.f32, (1, 16)))
    g.set_output("y", g.op("add", x, g.op("mul", x, g.const(np.asarray(-1.0, np.float32)))))
    return g


@pytest.mark.parametrize("mode, shift", [("int8", 20), ("int16x8", 15)])
def test_add_output_scale_stays_within_tflite_rescaling(mode, shift):
    g = cancelling_add()
    stats = Counter()
    prepare_for_quantization(g, mode)
    apply_quantization(g, mode, calibrate(g, [{"x": RNG.uniform(-100, 100, (1, 16)).astype(np.float32)}]),
                       stats=stats)
    add = next(n for n in g.nodes if n.op == "add")
    biggest = max(v.type.quant.scale[0] for v in add.operands)
    assert add.result.type.quant.scale[0] > 2 * biggest / 2**shift
    assert stats["add outputs widened"] == 1


def test_range_override_decides_the_shared_parameters():
    g = cnn()
    data = images(8)
    prepare_for_quantization(g, "int8")
    ranges = calibrate(g, data)
    assert ranges.override(g, "conv2", 0.0, 0.5) == 1
    apply_quantization(g, "int8", ranges)
    assert _params(node_of(g, "flatten").result).scale[0] == pytest.approx(0.5 / 255)


# ----- dynamic-range and float16 ---------------------------------------------------------------------------------------
def test_dynamic_int8_quantizes_large_weights_only():
    g = cnn()
    data = images(4)
    want = run(g, data[0])["prob"]
    stats = Counter()
    prepare_for_quantization(g, "dynamic-int8")
    apply_quantization(g, "dynamic-int8", stats=stats, min_elements=500)
    assert stats["weights quantized"] == 2  # conv2 (576) and fc (1280); conv1 (216) stays float
    fc = node_of(g, "fc", "matmul")
    assert fc.operands[1].type.dtype is DType.i8 and fc.operands[1].type.quant.axis == 1
    assert fc.operands[0].type.dtype is DType.f32 and fc.operands[2].type.dtype is DType.f32
    assert node_of(g, "conv1", "conv2d").operands[1].type.dtype is DType.f32
    assert "quantize" not in g.op_histogram()
    assert np.abs(run(g, data[0])["prob"] - want).max() < 0.02


def test_float16_casts_float_constants():
    g = cnn()
    data = images(2)
    want = run(g, data[0])["prob"]
    quantize_graph(g, "float16")
    consts = [n for n in g.nodes if n.op == "const"]
    assert consts and all(n.result.type.dtype is DType.f16 for n in consts)
    assert all(n.result.uses[0][0].op == "cast" for n in consts)
    np.testing.assert_allclose(run(g, data[0])["prob"], want, atol=1e-3)


# ----- the pass ------------------------------------------------------------------------------------------------------
def test_quantize_pass_in_a_pipeline(tmp_path):
    np.savez(tmp_path / "cal.npz", image=RNG.random((8, 8, 8, 3)).astype(np.float32))
    g = cnn()
    report = run_pipeline(g, f"quantize{{mode=int8 calibration={tmp_path / 'cal.npz'} keep-float=fc,prob}}")
    assert report.stats["nodes quantized"] == 4 and report.stats["weights quantized"] == 2  # conv1 .. flatten
    assert str(Quantize(mode="int16x8", keep_float=("a", "b"))) == "quantize{mode=int16x8 keep-float=a,b}"
    with pytest.raises(PassError, match="needs calibration data"):
        run_pipeline(cnn(), "quantize")
    run_pipeline(cnn(), "quantize{mode=dynamic-int8}")


def test_quantize_pass_takes_every_cli_mode_and_the_weight_options():
    from typing import get_args, get_type_hints

    from irc.errors import PipelineError
    from irc.passes.quantize import MODES
    from irc.passes.quantize.weights import channel_axis

    assert get_args(get_type_hints(Quantize)["mode"]) == MODES  # the pass option and --quantize stay in step
    for mode in MODES:  # each --quantize mode runs as a pass option (calibration only where it is needed)
        g = cnn()
        calibration = " calibration=random:2" if mode in ("int8", "int16x8") else ""
        run_pipeline(g, f"quantize{{mode={mode}{calibration}}}")
    g = cnn()
    report = run_pipeline(g, "quantize{mode=dynamic-int4 granularity=blockwise block-size=32}")
    assert report.stats["weights quantized (int4 dynamic blockwise 32)"] == 1  # fc; LiteRT has no blockwise conv
    fc = next(n for n in g.nodes if n.core_op == "matmul")
    assert fc.operands[1].type.dtype is DType.i4 and fc.operands[1].type.quant.block_size == 32
    assert fc.operands[1].type.quant.axis == channel_axis(fc)
    g = cnn()
    run_pipeline(g, "quantize{mode=int4-weight-only granularity=per-tensor}")
    assert all(len(n.result.type.quant.scale) == 1 for n in g.nodes if n.op == "const" and n.result.type.quant)
    with pytest.raises(PipelineError, match="expected one of float16, dynamic-int8, int8, int16x8, int8-weight-only, "
                                            "int4-weight-only, dynamic-int4, got 'int3'"):
        run_pipeline(cnn(), "quantize{mode=int3}")
    with pytest.raises(PassError, match="go with int8-weight-only, int4-weight-only, dynamic-int4"):
        run_pipeline(cnn(), "quantize{mode=dynamic-int8 granularity=blockwise}")
    with pytest.raises(PassError, match="block size of 32, 64, 128, 256"):
        run_pipeline(cnn(), "quantize{mode=dynamic-int4 granularity=blockwise block-size=48}")


def test_irc_passes_lists_the_quantize_modes():
    from click.testing import CliRunner

    from irc.cli import main

    out = CliRunner().invoke(main, ["passes"]).output
    line = next(line for line in out.splitlines() if line.strip().startswith("mode: float16"))
    assert "int8-weight-only|int4-weight-only|dynamic-int4" in line
    assert "granularity: str" in out and "block-size: int = 0" in out


# ----- the report ------------------------------------------------------------------------------------------------------
def test_report_puts_a_badly_calibrated_layer_first():
    g = cnn()
    data = images(16)
    good = quant_report(g, data, "int8")
    assert {t.layer for t in good.tensors} >= {"conv1", "conv2", "fc", "prob", "pool", "flatten"}
    assert good.tensors[-1].layer_sqnr_db is None  # a reshape adds no error
    bad = quant_report(g, data, "int8", overrides={"conv1": (0.0, 0.05)})
    assert bad.worst()[0].layer == "conv1"
    assert bad.worst()[0].layer_sqnr_db < 10 < min(t.layer_sqnr_db for t in bad.tensors[1:]
                                                   if t.layer_sqnr_db is not None)
    doc = bad.to_json()
    assert doc["tensors"][0]["layer"] == "conv1" and {"sqnr_db", "rel_rmse", "layer_rel_rmse"} <= set(doc["tensors"][0])
    text = bad.text(limit=3)
    assert "conv1" in text and "more tensor(s)" in text


def test_report_lists_float_layers_and_other_modes():
    g = cnn()
    report = quant_report(g, images(4), "int8", keep_float=["fc"])
    assert report.kept_float == ["fc"]
    dynamic = quant_report(g, images(4), "dynamic-int8")
    assert [t.layer for t in dynamic.tensors] == ["fc"]  # the only weights with TF's 1024 elements or more
    half = quant_report(g, images(4), "float16")
    assert {t.layer for t in half.tensors} == {"conv1", "conv2", "fc"}
    assert all(t.sqnr_db > 40 for t in half.tensors)
