"""The TFLite flatbuffer layer: hand-built models run in TF's interpreter, converter output round-trips,
corrupt files fail with InputError only, and writing is fast."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irc.errors import InputError, TargetError
from irc.formats.tflite import flatbuffer as fb
from irc.formats.tflite import schema, validate
from irc.formats.tflite.flatbuffer import (
    Buffer,
    Operator,
    OperatorCode,
    Quantization,
    SignatureDef,
    SubGraph,
    Tensor,
    TFLModel,
    options,
    read_model,
    write_model,
)

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def run(tf, data: bytes, *inputs: np.ndarray) -> list[np.ndarray]:
    interpreter = tf.lite.Interpreter(model_content=data)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


# ---------------------------------------------------------------------------------------------------------
# Hand-built models


def add_model() -> TFLModel:
    return TFLModel(
        description="irc test",
        operator_codes=[OperatorCode("ADD")],
        subgraphs=[SubGraph(tensors=[Tensor("x", [2, 3]), Tensor("y", [2, 3]), Tensor("z", [2, 3])],
                            inputs=[0, 1], outputs=[2],
                            operators=[Operator(0, [0, 1], [2], options("ADD"))])],
        metadata={schema.MIN_RUNTIME_VERSION: schema.runtime_version("1.14.0"), schema.PRODUCER: b"irc test"},
        signature_defs=[SignatureDef({"a": 0, "b": 1}, {"sum": 2})],
    )


def conv_model(weights: np.ndarray, bias: np.ndarray) -> TFLModel:
    return TFLModel(
        operator_codes=[OperatorCode("CONV_2D")],
        subgraphs=[SubGraph(
            tensors=[Tensor("x", [1, 5, 5, 2], shape_signature=[-1, 5, 5, 2]),
                     Tensor("w", list(weights.shape), buffer=1), Tensor("b", [4], buffer=2),
                     Tensor("y", [1, 5, 5, 4])],
            inputs=[0], outputs=[3],
            operators=[Operator(0, [0, 1, 2], [3], options("CONV_2D", padding="SAME", stride_w=1, stride_h=1,
                                                          fused_activation_function="RELU"))])],
        buffers=[Buffer(), Buffer(weights), Buffer(bias)],
    )


def conv_reference(x, w, b):
    """NHWC input, OHWI filter, SAME padding, stride 1, then ReLU."""
    pad = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    out = np.zeros(x.shape[:3] + (w.shape[0],), np.float32)
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            out[:, i, j] = np.einsum("nhwc,ohwc->no", pad[:, i:i + 3, j:j + 3], w)
    return np.maximum(out + b, 0)


def fc_model(weights: np.ndarray, bias: np.ndarray) -> TFLModel:
    return TFLModel(
        operator_codes=[OperatorCode("FULLY_CONNECTED")],
        subgraphs=[SubGraph(tensors=[Tensor("x", [2, 3]), Tensor("w", [4, 3], buffer=1), Tensor("b", [4], buffer=2),
                                     Tensor("y", [2, 4])],
                            inputs=[0], outputs=[3],
                            operators=[Operator(0, [0, 1, 2], [3], options("FULLY_CONNECTED"))])],
        buffers=[Buffer(), Buffer(weights), Buffer(bias)],
    )


def quantized_model() -> TFLModel:
    """int8 ADD with per-tensor quantization, a constant operand and an omitted-input-free QUANTIZE chain."""
    q = Quantization(scale=[0.1], zero_point=[-3])
    return TFLModel(
        operator_codes=[OperatorCode("QUANTIZE"), OperatorCode("ADD", version=2), OperatorCode("DEQUANTIZE")],
        subgraphs=[SubGraph(
            tensors=[Tensor("x", [4]), Tensor("xq", [4], "INT8", quantization=q),
                     Tensor("c", [4], "INT8", buffer=1, quantization=q),
                     Tensor("sq", [4], "INT8", quantization=Quantization(scale=[0.2], zero_point=[1])),
                     Tensor("s", [4])],
            inputs=[0], outputs=[4],
            operators=[Operator(0, [0], [1]), Operator(1, [1, 2], [3], options("ADD")), Operator(2, [3], [4])])],
        buffers=[Buffer(), Buffer(np.array([7, 8, 9, 10], np.int8))],
    )


def test_add_runs_with_signature(tf):
    model = add_model()
    data = write_model(model)
    assert data[4:8] == b"TFL3"
    a, b = RNG.standard_normal((2, 2, 3), dtype=np.float32)
    assert np.array_equal(run(tf, data, a, b)[0], a + b)
    runner = tf.lite.Interpreter(model_content=data).get_signature_runner("serving_default")
    assert np.array_equal(runner(a=a, b=b)["sum"], a + b)
    assert read_model(data, "add.tflite") == model


def test_repeated_strings_are_written_once(tf):
    """Tensors that share a name (the ones an op expands into) and signature names equal to tensor names point at
    one copy of the string; the file runs and reads back the same."""
    name = "block/mixing/FFT2D" * 4
    model = add_model()
    model.subgraphs[0].tensors = [Tensor("input_alpha", [2, 3]), Tensor(name, [2, 3]), Tensor(name, [2, 3])]
    model.signature_defs = [SignatureDef({"input_alpha": 0, "b": 1}, {"sum": 2})]
    data = write_model(model)
    assert data.count(name.encode()) == 1 and data.count(b"input_alpha") == 1
    a, b = RNG.standard_normal((2, 2, 3), dtype=np.float32)
    runner = tf.lite.Interpreter(model_content=data).get_signature_runner("serving_default")
    assert np.array_equal(runner(input_alpha=a, b=b)["sum"], a + b)
    assert read_model(data) == model


def test_conv_with_fused_relu(tf):
    w = RNG.standard_normal((4, 3, 3, 2), dtype=np.float32)
    b = RNG.standard_normal(4, dtype=np.float32)
    x = RNG.standard_normal((1, 5, 5, 2), dtype=np.float32)
    data = write_model(conv_model(w, b))
    np.testing.assert_allclose(run(tf, data, x)[0], conv_reference(x, w, b), rtol=1e-5, atol=1e-5)
    assert read_model(data) == conv_model(w, b)


def test_fully_connected(tf):
    w = RNG.standard_normal((4, 3), dtype=np.float32)
    b = RNG.standard_normal(4, dtype=np.float32)
    x = RNG.standard_normal((2, 3), dtype=np.float32)
    np.testing.assert_allclose(run(tf, write_model(fc_model(w, b)), x)[0], x @ w.T + b, rtol=1e-5, atol=1e-5)


def test_quantized_add(tf):
    x = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
    data = write_model(quantized_model())
    expected = 0.1 * (np.array([7, 8, 9, 10]) + 3) + x
    np.testing.assert_allclose(run(tf, data, x)[0], expected, atol=0.2)
    assert read_model(data) == quantized_model()


def test_buffers_are_aligned_deduplicated_and_zero_copy():
    w = np.arange(24, dtype=np.float32).reshape(4, 3, 2, 1)
    model = fc_model(np.ones((4, 3), np.float32), np.ones(4, np.float32))
    model.buffers.append(Buffer(np.ones(4, np.float32)))  # a duplicate of buffer 2, unused
    model.buffers.append(Buffer(b""))  # empty: folds into the sentinel
    model.subgraphs[0].tensors.append(Tensor("w2", [4, 3, 2, 1], buffer=len(model.buffers)))
    model.buffers.append(Buffer(w))
    data = write_model(model)
    back = read_model(data)
    assert len(back.buffers) == 4  # sentinel, fc weights, bias, w
    assert [t.buffer for t in back.subgraphs[0].tensors] == [0, 1, 2, 0, 3]
    view = back.buffers[3].data
    assert not view.flags.owndata and np.shares_memory(view, np.frombuffer(data, np.uint8))
    assert (view.ctypes.data - np.frombuffer(data, np.uint8).ctypes.data) % 16 == 0
    assert np.array_equal(view.view(np.float32).reshape(w.shape), w)
    assert write_model(back) == write_model(read_model(write_model(back)))


def test_large_opcodes_use_both_fields(tf):
    model = add_model()
    model.operator_codes = [OperatorCode("GELU")]  # code 150, above the byte field's range
    model.subgraphs[0].inputs = [0]
    model.subgraphs[0].operators = [Operator(0, [0], [2], options("GELU", approximate=True))]
    model.signature_defs = []
    data = write_model(model)
    x = np.linspace(-3, 3, 6, dtype=np.float32).reshape(2, 3)
    ref = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(run(tf, data, x)[0], ref, atol=1e-4)
    assert read_model(data).operator_codes == [OperatorCode("GELU")]


def test_external_buffers_for_huge_models(tf, monkeypatch):
    monkeypatch.setattr(fb, "FLATBUFFER_LIMIT", 0)  # pretend the weights pass 2 GiB
    w = RNG.standard_normal((4, 3), dtype=np.float32)
    b = RNG.standard_normal(4, dtype=np.float32)
    data = write_model(fc_model(w, b))
    assert w.tobytes() not in data[:len(data) - 64]  # the data follows the flatbuffer
    x = RNG.standard_normal((2, 3), dtype=np.float32)
    np.testing.assert_allclose(run(tf, data, x)[0], x @ w.T + b, rtol=1e-5, atol=1e-5)
    assert read_model(data) == fc_model(w, b)


# ---------------------------------------------------------------------------------------------------------
# Options and custom ops


def _sample(f: schema.Field):
    """A non-default value for an options field."""
    if "subgraph" in f.name:
        return (1,) if f.element else 1
    if f.type == "[ubyte]":
        return b"\x01\x02"
    if f.element:
        return tuple(list(f.enum.codes)[-2:]) if f.enum else (1, 2) if f.scalar != "f" else (0.5, 1.5)
    if f.enum:
        return list(f.enum.codes)[-1]
    return {"?": not f.default, "f": 0.25, "d": 0.25}.get(f.scalar, "s" if f.type == "string" else 3)


def test_every_options_table_round_trips():
    ops = {schema.options_table(op): op for op in schema.BUILTIN_OPERATOR.codes if schema.options_table(op)}
    assert set(ops) == set(fb.OPTIONS)  # every table is reachable from some op
    codes, operators = [], []
    for i, (table, cls) in enumerate(fb.OPTIONS.items()):
        opts = cls(**{f.name: _sample(f) for f in cls.TABLE.fields})
        changed = [f for f in cls.TABLE.fields if f.default is not None and not (f.enum and len(f.enum.codes) == 1)]
        assert all(getattr(opts, f.name) != f.default for f in changed)
        codes.append(OperatorCode(ops[table]))
        operators.append(Operator(i, [0], [0], opts))
    model = TFLModel(operator_codes=codes,
                     subgraphs=[SubGraph(tensors=[Tensor("t", [1])], operators=operators), SubGraph("other")])
    assert read_model(write_model(model)) == model


def test_options_are_checked():
    assert options("Conv2DOptions") == options("CONV_2D")
    assert options("MEAN", keep_dims=1) == fb.OPTIONS["ReducerOptions"](keep_dims=True)
    with pytest.raises(ValueError, match="Padding"):
        options("CONV_2D", padding="HALF")
    with pytest.raises(ValueError, match="RELU"):
        options("RELU")
    assert options("SOFTMAX", beta=0.1).beta == float(np.float32(0.1))


def test_flex_options_encoding():
    from flatbuffers import flexbuffers
    for name, node_def in [("AddV2", b"\x0a\x03add"), ("X" * 300, bytes(range(256)) * 300)]:
        data = fb.flex_options(name, node_def)
        assert fb.parse_flex_options(data) == (name, node_def)
        items = flexbuffers.GetRoot(data).AsVector
        assert (items[0].AsString, items[1].AsStringBytes) == (name, node_def)
    with pytest.raises(InputError, match="Flex"):
        fb.parse_flex_options(b"\x00\x01\x02")


def run_flex(tf, data: bytes, x: np.ndarray, op: str) -> np.ndarray | None:
    """Run a model with Flex ops; None when this TF build's interpreter lacks the Flex delegate (pip TF 2.21)."""
    try:
        return run(tf, data, x)[0]
    except RuntimeError as e:
        if "Flex delegate" not in str(e):
            raise
        assert op in str(e)  # the runtime did recognise the op as a Flex op
        return None


def test_flex_op_built_by_hand(tf):
    node = tf.compat.v1.NodeDef(name="inv", op="MatrixInverse", input=["x"])
    node.attr["T"].type = tf.float32.as_datatype_enum
    node.attr["adjoint"].b = False
    custom = fb.flex_options("MatrixInverse", node.SerializeToString())
    model = TFLModel(
        operator_codes=[OperatorCode("CUSTOM", fb.FLEX_PREFIX + "MatrixInverse")],
        subgraphs=[SubGraph(tensors=[Tensor("x", [3, 3]), Tensor("y", [3, 3])], inputs=[0], outputs=[1],
                            operators=[Operator(0, [0], [1], custom_options=custom)])],
    )
    data = write_model(model)
    assert read_model(data) == model
    x = (np.eye(3) * 2 + RNG.standard_normal((3, 3)) * 0.1).astype(np.float32)
    y = run_flex(tf, data, x, "FlexMatrixInverse")
    if y is not None:
        np.testing.assert_allclose(y, np.linalg.inv(x), rtol=1e-4, atol=1e-5)


def test_converter_flex_op_round_trips(tf):
    fn = tf.function(lambda x: tf.linalg.inv(tf.reshape(x, [2, 2])),
                     input_signature=[tf.TensorSpec([4], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    data = converter.convert()
    model = read_model(data, "flex.tflite")
    assert fb.FLEX_PREFIX + "MatrixInverse" in [oc.custom_code for oc in model.operator_codes]
    flex = [op for op in model.subgraphs[0].operators if op.custom_options]
    name, node_def = fb.parse_flex_options(flex[0].custom_options)
    assert name == tf.compat.v1.NodeDef.FromString(node_def).op == "MatrixInverse"
    assert fb.flex_options(name, node_def) == flex[0].custom_options  # byte for byte what TF writes
    again = write_model(model)
    assert read_model(again) == model
    x = np.array([2, 1, 1, 3], np.float32)
    y = run_flex(tf, data, x, "FlexMatrixInverse")
    if y is not None:
        assert np.array_equal(y, run_flex(tf, again, x, "FlexMatrixInverse"))


# ---------------------------------------------------------------------------------------------------------
# Converter output


@pytest.fixture(scope="module")
def keras_models(tf):
    keras = tf.keras
    inputs = keras.Input((8, 8, 3), batch_size=1)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    y = keras.layers.MaxPooling2D(2)(x)
    z = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Concatenate()([y, z])
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="gelu")(x)
    x = keras.layers.Dense(10)(x)
    outputs = keras.layers.Softmax()(x)
    model = keras.Model(inputs, outputs)  # random weights: only the round trip matters
    float_data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([RNG.standard_normal((1, 8, 8, 3), dtype=np.float32)]
                                                for _ in range(20))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    int8_data = converter.convert()
    return {"float": float_data, "int8": int8_data}


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_converter_output_round_trips(tf, keras_models, kind):
    data = keras_models[kind]
    model = read_model(data, f"{kind}.tflite")
    assert "min_runtime_version" in model.metadata
    again = write_model(model)
    assert read_model(again) == model
    assert write_model(read_model(again)) == again  # the writer's form is a fixed point
    x = RNG.standard_normal((1, 8, 8, 3), dtype=np.float32)
    if kind == "int8":
        x = RNG.integers(-128, 128, (1, 8, 8, 3)).astype(np.int8)
        assert any(t.quantization and len(t.quantization.scale) > 1 for t in model.subgraphs[0].tensors)
    assert np.array_equal(run(tf, data, x)[0], run(tf, again, x)[0])
    runner = tf.lite.Interpreter(model_content=again).get_signature_runner()
    assert len(runner.get_output_details()) == 1


# ---------------------------------------------------------------------------------------------------------
# Validation and corrupt files


class _SameIndex(list):
    def __getitem__(self, i):
        return i


def _unchecked_write(model: TFLModel, monkeypatch) -> bytes:
    """Write a model that breaks validation, keeping its buffer indices as they are."""
    plan_of = fb._Plan.of

    def plan_keeping_indices(m):
        plan = plan_of(m)
        plan.buffer_of = _SameIndex()
        return plan

    with monkeypatch.context() as patch:
        patch.setattr(fb.validate, "problems", lambda m: [])
        patch.setattr(fb._Plan, "of", plan_keeping_indices)
        return write_model(model)


def test_bad_indices_are_input_errors(monkeypatch):
    model = add_model()
    model.subgraphs[0].tensors[2].buffer = 900
    data = _unchecked_write(model, monkeypatch)
    with pytest.raises(InputError, match=r"^model.tflite: tensor 2 \('z'\) refers to buffer 900 but the model "
                                         r"has 3 buffers$"):
        read_model(data, "model.tflite")
    model = add_model()
    model.subgraphs[0].operators[0].inputs = [0, 7]
    model.subgraphs[0].outputs = [5]
    problem = r"output 5 is not a tensor of the subgraph \(3 tensors\) \(and 1 more problem\)$"
    with pytest.raises(TargetError, match="^cannot write an invalid TFLite model: " + problem):
        write_model(model)
    with pytest.raises(InputError, match="^m: " + problem):
        read_model(_unchecked_write(model, monkeypatch), "m")


def test_validation_messages():
    w = np.ones((4, 3), np.float32)
    model = fc_model(w, np.ones(5, np.float32))
    model.operator_codes.append(OperatorCode(250))
    model.subgraphs[0].operators.append(Operator(1, [0], [3]))
    model.subgraphs[0].operators[0] = Operator(0, [0, 1, -1], [3], options("ADD"))
    model.signature_defs = [SignatureDef({"x": 0}, {"y": 9})]
    found = validate.problems(model)
    assert found == [
        "operator code 1 has unknown builtin operator 250",
        "tensor 2 ('b') has shape [4] of FLOAT32 (16 bytes) but buffer 2 holds 20 bytes",
        "operator 0 (FULLY_CONNECTED) has AddOptions, expected FullyConnectedOptions",
        "signature 'serving_default' output 'y' refers to tensor 9 but its subgraph has 4 tensors",
    ]


@pytest.mark.parametrize("data, message", [
    (b"", "too short"), (b"\x10\x00\x00\x00TFL2" + bytes(16), "file identifier b'TFL2'"),
    (b"\xff\xff\xff\x7fTFL3", "outside the file"), (b"\x08\x00\x00\x00TFL3\xf0\xff\xff\xff", "outside the file"),
])
def test_not_tflite(data, message):
    with pytest.raises(InputError, match=message):
        read_model(data, "x.tflite")


def test_shared_tables_do_not_blow_up():
    # 3000 subgraphs that all point at one subgraph of 3000 tensors: 9M tensors from a 100 kB file.
    w = fb._Writer(0)
    tensors = [w.table(schema.TENSOR, {"buffer": 0}) for _ in range(3000)]
    sg = w.table(schema.SUBGRAPH, {"tensors": w.tables(tensors)})
    root = w.table(schema.MODEL, {"version": 3, "subgraphs": w.tables([sg] * 3000)})
    w.b.Finish(root, file_identifier=b"TFL3")
    start = time.perf_counter()
    with pytest.raises(InputError, match="reuses the same bytes"):
        read_model(bytes(w.b.Output()), "bomb.tflite")
    assert time.perf_counter() - start < 2


def _sample_file() -> bytes:
    model = conv_model(RNG.standard_normal((4, 3, 3, 2), dtype=np.float32), np.ones(4, np.float32))
    model.subgraphs += quantized_model().subgraphs
    model.operator_codes += quantized_model().operator_codes
    for op in model.subgraphs[1].operators:
        op.opcode_index += 1
    model.subgraphs[1].tensors[2].buffer = 3
    model.buffers.append(Buffer(np.array([7, 8, 9, 10], np.int8)))
    model.metadata = add_model().metadata
    model.signature_defs = [SignatureDef({"x": 0}, {"y": 3})]
    return write_model(model)


SAMPLE = _sample_file()


def _read_any(data: bytes):
    """Reading gives a model or an InputError; a model read is a model that can be written and read again."""
    try:
        model = read_model(data, "fuzz.tflite")
    except InputError as e:
        assert str(e).startswith("fuzz.tflite: ")
        return
    read_model(write_model(model))


FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=4096), st.booleans())
def test_fuzz_random_bytes(data, tagged):
    if tagged and len(data) >= 8:
        data = data[:4] + b"TFL3" + data[8:]
    _read_any(data)


@FUZZ
@given(st.integers(0, len(SAMPLE)))
def test_fuzz_truncation(size):
    _read_any(SAMPLE[:size])


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(SAMPLE) - 1), st.integers(0, 7)), min_size=1, max_size=8))
def test_fuzz_bit_flips(flips):
    data = bytearray(SAMPLE)
    for pos, bit in flips:
        data[pos] ^= 1 << bit
    _read_any(bytes(data))


# ---------------------------------------------------------------------------------------------------------
# Speed


def test_write_and_read_100mb():
    # ResNet50-sized: 25M float32 weights over ~160 buffers, many of them sharing a size.
    sizes = [3 * 3 * 256 * 256] * 20 + [1 * 1 * 1024 * 256] * 40 + [2048 * 1000] * 2 + [256] * 100
    scale = 25_000_000 / sum(sizes)
    arrays = [RNG.standard_normal(max(1, int(n * scale)), dtype=np.float32) for n in sizes]
    model = TFLModel(operator_codes=[OperatorCode("ADD")], subgraphs=[SubGraph(
        tensors=[Tensor(f"w{i}", [a.size], buffer=i + 1) for i, a in enumerate(arrays)] + [Tensor("x", [1])],
        inputs=[len(arrays)], outputs=[len(arrays)])], buffers=[Buffer()] + [Buffer(a) for a in arrays])
    # Times are printed, not asserted (figures go in benchmarks and notes); the round trip must hold at this size.
    start = time.perf_counter()
    data = write_model(model)
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    back = read_model(data)
    read_s = time.perf_counter() - start
    print(f"write {write_s:.3f} s, read {read_s:.3f} s for {len(data) / 1e6:.0f} MB")
    assert len(data) > 100e6
    assert back == model
