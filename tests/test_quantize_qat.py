"""Quantization-aware-trained models: FakeQuant ops as float simulations, and int8 from their trained ranges.

The QAT model is a small CNN trained on sklearn's digits, made QAT with tfmot's ``quantize_model`` and fine-tuned
an epoch (tests/qat_digits.py, run in a subprocess: tfmot needs Keras 2, see there). It is built once per
machine and cached beside the zoo's SavedModels.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import irc
import tests.tf_crafted as craft
from irc.errors import QuantizationError
from irc.ops.quant import fake_quant_array, nudged_range
from tests.hostile import assert_refused, run_irc

ROOT = Path(__file__).resolve().parent.parent
BUILDER = ROOT / "tests" / "qat_digits.py"


# ----- the QAT model ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def qat_model() -> Path:
    key = hashlib.sha256(BUILDER.read_bytes() + tf.__version__.encode()).hexdigest()[:12]
    cache = Path(os.environ.get("IRC_TEST_CACHE", Path(tempfile.gettempdir()) / "irc-test-cache")) / f"qat-{key}"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cache / "data.npz").exists():
            env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
            done = subprocess.run([sys.executable, str(BUILDER), str(cache)], env=env, capture_output=True,
                                  text=True, timeout=600, check=False)
            assert done.returncode == 0, done.stderr[-3000:]
    return cache


def _tf_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    return next(iter(fn(input_1=tf.constant(x)).values())).numpy()


def _tflite(model: bytes, x: np.ndarray):
    it = tf.lite.Interpreter(model_content=model)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], x.shape)
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]), it


def _operators(it) -> list[tuple]:
    """(op, operand and result dtypes, their quantization scales and zero points) of each operator."""
    tensors = it.get_tensor_details()

    def describe(i):
        t = tensors[i]
        q = t["quantization_parameters"]
        return t["dtype"].__name__, tuple(np.round(q["scales"], 7)), tuple(q["zero_points"].tolist())

    return [(op["op_name"], [describe(i) for i in op["inputs"] if i >= 0], [describe(i) for i in op["outputs"]])
            for op in it._get_ops_details() if op["op_name"] != "DELEGATE"]


@pytest.mark.slow
def test_float_lowering_matches_tensorflow(qat_model):
    data = np.load(qat_model / "data.npz")
    x = data["x_test"][:64]
    want = _tf_outputs(qat_model / "saved_model", x)
    tol = 1e-4 * np.abs(want).max()
    for fast in (True, False):
        graph = irc.load(qat_model / "saved_model", fast=fast, unsafe=not fast)
        assert sum(n.op == "fake_quant" for n in graph.nodes) == 6  # the weights' fake quants folded
        got = next(iter(irc.run(graph, {"input_1": x}).values()))
        np.testing.assert_allclose(got, want, atol=tol)
    got, it = _tflite(irc.lower(qat_model / "saved_model", emit="tflite"), x)
    np.testing.assert_allclose(got, want, atol=tol)
    assert [op for op, _, _ in _operators(it)].count("FAKE_QUANT") == 6


@pytest.fixture(scope="session")
def qat_int8(qat_model, tmp_path_factory):
    """irc's int8 file (no calibration data) and TF's converter's, for the same QAT model."""
    out = tmp_path_factory.mktemp("qat") / "irc.tflite"
    outcome = run_irc(["lower", str(qat_model / "saved_model"), "--emit", "tflite", "--quantize", "int8",
                       "-o", str(out)], cwd=out.parent, timeout=300)
    assert outcome.returncode == 0, outcome.describe()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(qat_model / "saved_model"))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return out.read_bytes(), converter.convert()


@pytest.mark.slow
def test_int8_without_calibration_matches_tfs_converter(qat_model, qat_int8):
    ours, theirs = qat_int8
    data = np.load(qat_model / "data.npz")
    x, y = data["x_test"], data["y_test"]
    got, it = _tflite(ours, x)
    want, tf_it = _tflite(theirs, x)
    assert _operators(it) == _operators(tf_it)  # operators, tensor types and quantization parameters
    ours_acc, tf_acc = np.mean(got.argmax(1) == y), np.mean(want.argmax(1) == y)
    assert abs(ours_acc - tf_acc) <= 0.002, (ours_acc, tf_acc)
    assert abs(ours_acc - float(data["accuracy"])) <= 0.02  # the QAT model's own (simulated) accuracy
    assert len(ours) <= len(theirs) * 1.01


@pytest.mark.slow
def test_calibration_only_fills_the_ranges_a_qat_model_lacks(qat_model):
    from irc.backends.tflite.backend import prepare
    from irc.passes.quantize import qat

    data = np.load(qat_model / "data.npz")
    plain = prepare(irc.load(qat_model / "saved_model"), quantize="int8")
    calibrated = prepare(irc.load(qat_model / "saved_model"), quantize="int8", calibration=data["x_train"][:50])
    types = [[str(r.type) for r in n.results] for n in plain.topo_order()]
    assert types == [[str(r.type) for r in n.results] for n in calibrated.topo_order()]

    # quant-report quantizes with the trained ranges too
    from irc.passes.cli_options import run_from_options
    from irc.passes.quantize.report import quant_report

    graph = irc.load(qat_model / "saved_model")
    run_from_options(graph, "tflite")  # as irc quant-report does
    report = quant_report(graph, data["x_train"][:20])
    trained = {tuple(n.loc.layers): r.type.quant for n in plain.nodes for r in n.results
               if n.op != "const" and r.type.quant is not None}
    rows = {row.layer: (row.scale, row.zero_point) for row in report.tensors}
    for layer in ("quant_conv1", "quant_fc1", "quant_logits"):
        assert rows[layer] == (trained[(layer,)].scale[0], trained[(layer,)].zero_point[0])

    # one activation fake quant gone: its range must come from calibration, named when there is none
    def without_fc1_range():
        graph = irc.load(qat_model / "saved_model")
        node = next(n for n in graph.nodes if n.op == "fake_quant" and "quant_fc1" in n.loc.layers)
        graph.replace_all_uses(node.result, node.operands[0])
        graph.erase(node)
        return graph

    with pytest.raises(QuantizationError, match="needs calibration data for .*quant_fc1"):
        prepare(without_fc1_range(), quantize="int8")
    graph = prepare(without_fc1_range(), quantize="int8", calibration=data["x_train"][:50])
    assert not qat.has_fake_quants(graph)
    got = next(iter(irc.run(graph, {"input_1": data["x_test"]}).values()))
    assert np.mean(got.argmax(1) == data["y_test"]) >= float(data["accuracy"]) - 0.03


# ----- the three ops, one at a time ------------------------------------------------------------------------------------
EDGES = np.array([0.0, -0.0, 1e-30, -1e-30, 1.0, -1.0, 6.0, -6.0, 1e6, -1e6, np.inf, -np.inf], np.float32)


def _inputs(seed: int, lo, hi) -> np.ndarray:
    x = np.random.default_rng(seed).normal(0, 2, 300).astype(np.float32)
    return np.concatenate([x, EDGES, np.ravel(lo), np.ravel(hi)]).astype(np.float32)


def _ties(x, lo, hi, bits: int, narrow: bool) -> np.ndarray:
    """Where x sits (within float32 rounding) on a half step of the grid: TF's kernels round these either way
    (its Args and Vars kernels disagree on some), so there one step of difference is allowed."""
    nmin, nmax, scale, _ = nudged_range(lo, hi, bits, narrow)
    with np.errstate(all="ignore"):
        clamped = np.clip(x, nmin, nmax)
        steps = (clamped.astype(np.float64) - nmin) / scale
        # float32 rounding of (clamped - nmin) * (1 / scale), in steps
        slack = 2 * (np.spacing(np.abs(clamped)) + np.spacing(np.abs(nmin))) / scale + 4 * np.spacing(
            np.float32(np.maximum(steps, 1)))
        return np.abs(steps - np.floor(steps) - 0.5) <= slack


def _assert_matches(got, want, x, lo, hi, bits: int, narrow: bool, max_ties: float = 0.05) -> None:
    """Equal (NaN where TF gives NaN: min = max != 0), except one step at exact half-step ties."""
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ties = _ties(x, lo, hi, bits, narrow)
    assert ties.mean() <= max_ties  # the exception stays one
    np.testing.assert_array_equal(got[~ties], want[~ties])
    step = np.broadcast_to(nudged_range(lo, hi, bits, narrow)[2], x.shape)[ties]
    assert np.all(np.abs(got[ties].astype(np.float64) - want[ties]) <= step * 1.001)


@pytest.mark.parametrize("seed", range(6))
def test_fake_quant_kernel_matches_tensorflow(seed):
    rng = np.random.default_rng(seed)
    for _ in range(25):
        bits, narrow = int(rng.integers(2, 17)), bool(rng.integers(0, 2))
        lo = np.float32(rng.uniform(-3, 0.5))
        hi = np.float32(lo + rng.choice([0.0, rng.uniform(0, 4)]))
        if rng.random() < 0.1:
            lo = hi = np.float32(0)
        x = _inputs(seed, lo, hi)
        want = tf.quantization.fake_quant_with_min_max_vars(x, lo, hi, num_bits=bits, narrow_range=narrow).numpy()
        _assert_matches(fake_quant_array(x, lo, hi, bits, narrow), want, x, lo, hi, bits, narrow)
        if lo < hi:
            want = tf.quantization.fake_quant_with_min_max_args(x, min=float(lo), max=float(hi), num_bits=bits,
                                                                narrow_range=narrow).numpy()
            _assert_matches(fake_quant_array(x, lo, hi, bits, narrow), want, x, lo, hi, bits, narrow)
    x = rng.normal(0, 2, (5, 4, 3)).astype(np.float32)
    lo, hi = np.float32([-1, 0, -2.5]), np.float32([1, 0, 0.3])
    want = tf.quantization.fake_quant_with_min_max_vars_per_channel(x, lo, hi, num_bits=8, narrow_range=True)
    np.testing.assert_array_equal(fake_quant_array(x, lo, hi, 8, True), want.numpy())


SINGLE_OPS = {
    "args": lambda x: tf.quantization.fake_quant_with_min_max_args(x, min=-1.3, max=2.1, num_bits=8),
    "args-narrow-4bit": lambda x: tf.quantization.fake_quant_with_min_max_args(x, min=-0.4, max=0.9, num_bits=4,
                                                                              narrow_range=True),
    "vars": lambda x: tf.quantization.fake_quant_with_min_max_vars(x, -2.0, 1.5, num_bits=8),
    "vars-zero": lambda x: tf.quantization.fake_quant_with_min_max_vars(x, 0.0, 0.0),
    "per-channel": lambda x: tf.quantization.fake_quant_with_min_max_vars_per_channel(
        x, [-1.0, -0.5, 0.0, -3.0], [1.0, 0.5, 0.0, 0.2], num_bits=6, narrow_range=True),
    "weights": lambda x: tf.matmul(x, tf.quantization.fake_quant_with_min_max_vars_per_channel(
        tf.constant(np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4)), [-1.0] * 4, [1.0] * 4,
        narrow_range=True)),
}


@pytest.mark.filterwarnings("ignore:invalid value encountered in matmul")  # inf inputs times weights: NaN, as TF
@pytest.mark.parametrize("name", list(SINGLE_OPS))
def test_each_fake_quant_op_lowers_and_emits_like_tensorflow(name):
    fn = tf.function(SINGLE_OPS[name]).get_concrete_function(tf.TensorSpec([6, 4], tf.float32))
    x = np.concatenate([np.random.default_rng(1).normal(0, 1.5, (3, 4)),
                        [[0, 1e-30, -6, 6], [np.inf, -np.inf, 0.5, -0.5], [1.0, -1.0, 2.1, -1.3]]]).astype(np.float32)
    want = fn(tf.constant(x)).numpy()
    graph = irc.load(fn)
    got = next(iter(irc.run(graph, [x]).values()))
    if name == "weights":  # numpy's and TF's float matmuls differ in the last bit
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    else:
        (node,) = [n for n in graph.nodes if n.op == "fake_quant"]
        a = node.attrs
        # the inputs hold the range ends, which the nudged grid may put on half steps
        _assert_matches(got, want, x, np.float32(a["min"]), np.float32(a["max"]), a["num_bits"], a["narrow_range"],
                        max_ties=0.15)
    # TFLite: FAKE_QUANT (per tensor) rounds half away from zero where TF adds 0.5 and floors: one step at ties
    lite, _ = _tflite(irc.lower(fn, emit="tflite"), x)
    finite = np.isfinite(want)
    assert np.array_equal(np.isfinite(lite), finite)
    step = 3.5 / 255 if name != "weights" else 0.0
    np.testing.assert_allclose(lite[finite], want[finite], atol=step + 1e-5 * np.abs(want[finite]).max())


def test_tflite_fake_quant_reads_back(tmp_path):
    fn = tf.function(SINGLE_OPS["vars"]).get_concrete_function(tf.TensorSpec([2, 3], tf.float32))
    path = tmp_path / "fq.tflite"
    path.write_bytes(irc.lower(fn, emit="tflite"))
    graph = irc.load(path)
    assert [n.op for n in graph.nodes] == ["fake_quant"]
    x = np.array([[-2.5, -0.3, 0.0], [0.71, 1.2, 4.0]], np.float32)
    np.testing.assert_array_equal(next(iter(irc.run(graph, [x]).values())), fn(tf.constant(x)).numpy())


def test_tf_emitter_writes_fake_quant_back():
    from irc.backends import tfemit

    graph = irc.parse("""
graph @g(%x: f32[2,3]) {
  %0 = fake_quant(%x) {min = [-1.0, -2.0, 0.0], max = [1.0, 0.5, 0.0], num_bits = 5, narrow_range = true} : f32[2,3]
  %1 = fake_quant(%0) {min = [-1.5], max = [1.0]} : f32[2,3]
  return %1 as "y"
}""")
    x = np.array([[0.31, -1.7, 0.2], [-2.0, 0.26, 9.0]], np.float32)
    want = next(iter(irc.run(graph, [x]).values()))
    got = tfemit.build(graph).run([x])["y"]
    np.testing.assert_array_equal(got, want)


# ----- bad input -------------------------------------------------------------------------------------------------------
def _float_attr(value):
    return lambda attr: setattr(attr, "f", value)


def _int_attr(value):
    return lambda attr: setattr(attr, "i", value)


def _graph(kind: str) -> bytes:
    gd = craft.MESSAGES["GraphDef"]()
    craft.placeholder(gd, shape=(1, 4))
    if kind.startswith("args"):
        bits = 17 if kind == "args-bits" else 8
        lo, hi = (1.0, -1.0) if kind == "args-range" else (-1.0, 1.0)
        craft.add_node(gd, "fq", "FakeQuantWithMinMaxArgs", ["x"], min=_float_attr(lo), max=_float_attr(hi),
                       num_bits=_int_attr(bits))
    else:
        for name, value in (("lo", 2.0), ("hi", -1.0)):
            craft.add_node(gd, name, "Const", dtype=craft.FLOAT, value=craft.tensor_attr(craft.FLOAT, (),
                                                                                         float_val=(value,)))
        craft.add_node(gd, "fq", "FakeQuantWithMinMaxVars", ["x", "lo", "hi"],
                       num_bits=_int_attr(1 if kind == "vars-bits" else 8))
    return gd.SerializeToString()


@pytest.mark.parametrize(("kind", "fragment"), [
    ("args-bits", "FakeQuantWithMinMaxArgs node 'fq': num_bits is 17; TensorFlow takes 2 to 16"),
    ("args-range", "FakeQuantWithMinMaxArgs node 'fq': min 1 must be below max -1"),
    ("vars-bits", "FakeQuantWithMinMaxVars node 'fq': num_bits is 1; TensorFlow takes 2 to 16"),
    ("vars-range", "FakeQuantWithMinMaxVars node 'fq': min 2 is above max -1"),
])
def test_bad_fake_quant_parameters_are_one_line_errors(tmp_path, kind, fragment):
    model = tmp_path / "bad.pb"
    model.write_bytes(_graph(kind))
    outcome = run_irc(["lower", str(model), "--emit", "tflite", "-o", str(tmp_path / "out.tflite")], cwd=tmp_path)
    assert_refused(outcome, codes=(1,), fragment=fragment)
    assert not (tmp_path / "out.tflite").exists()


def test_int8_of_a_model_without_fake_quants_still_needs_calibration(tmp_path):
    model = tmp_path / "plain.pb"
    model.write_bytes(craft.const_graphdef((1,)))
    outcome = run_irc(["lower", str(model), "--emit", "tflite", "--quantize", "int8", "-o",
                       str(tmp_path / "out.tflite")], cwd=tmp_path)
    assert_refused(outcome, codes=(2,), fragment="--quantize int8 needs calibration data")


@pytest.mark.slow
def test_dynamic_int8_takes_the_trained_weight_grid(qat_model, qat_int8):
    """fc1's weights (the one tensor of 1024 elements or more) keep their per-tensor QAT scale, as in TF's file."""
    x = np.load(qat_model / "data.npz")["x_test"][:4]
    _, it = _tflite(irc.lower(qat_model / "saved_model", emit="tflite", quantize="dynamic-int8"), x)
    _, tf_it = _tflite(qat_int8[1], x)

    def fc_weights(ops):
        return [inputs[1] for op, inputs, _ in ops if op == "FULLY_CONNECTED" and inputs[1][0] == "int8"]

    ours, theirs = fc_weights(_operators(it)), fc_weights(_operators(tf_it))
    assert len(ours) == 1
    # the hybrid FULLY_CONNECTED is written with the scale repeated per output channel
    assert set(ours[0][1]) == set(theirs[0][1]) and set(ours[0][2]) == {0}
