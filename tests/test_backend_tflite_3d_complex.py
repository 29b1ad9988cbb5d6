"""3-D convolutions and pools, complex numbers and FFTs through the TFLite backend, run in TensorFlow's TFLite
interpreter against TensorFlow (1e-4 of the output's scale): Keras layers and tf.functions through the default
pipeline, and the builtins (CONV_3D, CONV_3D_TRANSPOSE, RFFT2D, REAL, IMAG, COMPLEX_ABS) from hand-built graphs."""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.backends.tflite.backend import emit
from irc.formats.tflite.flatbuffer import read_model
from irc.frontends.tflite import graph_of
from irc.ir.graph import Graph
from irc.ir.interpreter import run as interpret
from irc.ir.types import DType, TensorType
from tests.test_backend_tflite_ops import assert_close, ops_of, run_tflite

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
RNG = np.random.default_rng(11)


def check_model(model, shapes, resolver="xnnpack", **emit_options) -> list[str]:
    """Lowers ``model`` (a Keras model or tf.function), emits it and compares TFLite's results with TF's."""
    graph = irc.load(model)
    data = emit(graph, **emit_options)
    arrays = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    names = [v.name for v in graph.inputs]
    want = model(*arrays)
    want = want if isinstance(want, dict) else {"output_0": want}
    got = run_tflite(data, dict(zip(names, arrays)), resolver)
    if set(got) != set(want) and len(got) == len(want) == 1:
        got = {next(iter(want)): next(iter(got.values()))}
    assert_close(got, {k: np.asarray(v) for k, v in want.items()}, rtol=1e-4)
    return ops_of(data)


def keras_model(layer, shape):
    model = keras.Sequential([keras.Input(shape), layer])
    return model


@pytest.mark.parametrize("kwargs", [
    {"strides": 1, "padding": "same"},
    {"strides": (2, 1, 2), "padding": "valid"},
    {"strides": 2, "padding": "same"},
    {"dilation_rate": (2, 1, 2), "padding": "same"},
    {"dilation_rate": 2, "padding": "valid", "activation": "relu"},
], ids=str)
def test_keras_conv3d(kwargs):
    ops = check_model(keras_model(keras.layers.Conv3D(4, (3, 2, 3), **kwargs), (7, 6, 8, 3)), [(2, 7, 6, 8, 3)])
    assert "CONV_3D" in ops and "CUSTOM" not in ops


@pytest.mark.parametrize("layer", ["MaxPooling3D", "AveragePooling3D"])
@pytest.mark.parametrize("kwargs", [
    {"pool_size": 2},
    {"pool_size": (3, 2, 2), "strides": (2, 1, 2), "padding": "same"},
    {"pool_size": (1, 1, 2), "strides": (1, 3, 3), "padding": "same"},  # TF's 3-D SAME windows start inside
], ids=str)
def test_keras_pool3d(layer, kwargs):
    ops = check_model(keras_model(getattr(keras.layers, layer)(**kwargs), (5, 7, 6, 3)), [(2, 5, 7, 6, 3)])
    assert set(ops) <= {"RESHAPE", "MAX_POOL_2D", "AVERAGE_POOL_2D", "SLICE"}


@pytest.mark.parametrize("kwargs", [{"strides": 2, "padding": "same"}, {"strides": (1, 2, 3), "padding": "valid"}],
                         ids=str)
def test_keras_conv3d_transpose(kwargs):
    ops = check_model(keras_model(keras.layers.Conv3DTranspose(3, (3, 2, 3), **kwargs), (3, 4, 3, 2)),
                      [(2, 3, 4, 3, 2)])
    assert "CONV_3D_TRANSPOSE" in ops


def test_fnet_mixing_is_matrix_products():
    """real(fft2d(complex(x, 0))), FNet's token mixing, runs on builtins: no complex tensor is left."""
    f = tf.function(lambda x: tf.math.real(tf.signal.fft2d(tf.complex(x, tf.zeros_like(x)))),
                    input_signature=[tf.TensorSpec([None, 12, 16], tf.float32)])
    ops = check_model(f, [(2, 12, 16)])
    # x @ [C | S] once, reshaped to interleave its halves' rows, then one product from the left
    assert sorted(ops) == ["BATCH_MATMUL", "FULLY_CONNECTED", "RESHAPE"], ops


@pytest.mark.parametrize("transform", ["fft2d", "ifft2d", "rfft2d"])
def test_2d_transforms_of_real_values_take_one_product_each_way(transform):
    """Both parts of a 2-D transform of a real value: one right product, one reshape, one left product per part
    (rfft2d cropped to fft_length, so its matrices are not square)."""
    def parts(x):
        if transform == "rfft2d":
            z = tf.signal.rfft2d(x, [4, 8])
        else:
            z = getattr(tf.signal, transform)(tf.complex(x, tf.zeros_like(x)))
        return {"re": tf.math.real(z), "im": tf.math.imag(z)}

    f = tf.function(parts, input_signature=[tf.TensorSpec([None, 6, 10], tf.float32)])
    ops = check_model(f, [(3, 6, 10)])
    assert sorted(ops) == ["BATCH_MATMUL", "BATCH_MATMUL", "FULLY_CONNECTED", "RESHAPE"], ops


@pytest.mark.parametrize("n", [16, 10])
def test_irfft_of_rfft(n):
    f = tf.function(lambda x: tf.signal.irfft(tf.signal.rfft(x, [n]), [n]),
                    input_signature=[tf.TensorSpec([None, 3, n], tf.float32)])
    ops = check_model(f, [(2, 3, n)])
    assert "CUSTOM" not in ops


def test_complex_arithmetic_and_transforms():
    def fn(x, y):
        z = tf.signal.fft(tf.complex(x, y)) * tf.complex(y, x)
        w = tf.signal.ifft2d(z) + tf.signal.fft2d(z)
        spectrum = tf.signal.rfft2d(x, [4, 8])
        return {"abs": tf.abs(w), "imag": tf.math.imag(w), "back": tf.signal.irfft2d(spectrum, [4, 6]),
                "rabs": tf.abs(spectrum)}

    f = tf.function(fn, input_signature=[tf.TensorSpec([None, 4, 6], tf.float32)] * 2)
    ops = check_model(f, [(2, 4, 6), (2, 4, 6)])
    assert not {"CUSTOM", "RFFT2D", "COMPLEX_ABS", "REAL", "IMAG"} & set(ops)  # all split into f32 arithmetic


def test_builtins_from_graphs():
    """-O0: the complex builtins as irc writes them."""
    g = Graph("spectral")
    x = g.add_input("x", TensorType(DType.f32, (2, 4, 8)))
    spectrum = g.op("rfft2d", x, fft_length=(4, 8))
    g.set_output("real", g.op("real", spectrum))
    g.set_output("imag", g.op("imag", spectrum))
    g.set_output("abs", g.op("complex_abs", g.op("rfft2d", x, fft_length=(2, 16))))
    v = g.add_input("v", TensorType(DType.f32, (1, 4, 5, 4, 2)))
    conv = g.op("conv3d", v, g.const(RNG.standard_normal((2, 3, 2, 2, 3)).astype(np.float32)),
                g.const(RNG.standard_normal(3).astype(np.float32)), strides=(1, 2, 1), padding="SAME")
    g.set_output("conv", g.op("conv3d_transpose", conv, g.const(RNG.standard_normal((2, 2, 3, 2, 3)).astype(
        np.float32)), output_shape=(1, 5, 8, 6, 2), strides=(1, 3, 1), padding="VALID"))
    data = emit(g, passes="O0")
    assert sorted(set(ops_of(data))) == sorted(
        {"RFFT2D", "REAL", "IMAG", "COMPLEX_ABS", "CONV_3D", "CONV_3D_TRANSPOSE"})
    inputs = {"x": RNG.standard_normal((2, 4, 8)).astype(np.float32),
              "v": RNG.standard_normal((1, 4, 5, 4, 2)).astype(np.float32)}
    for resolver in ("builtin", "xnnpack"):
        assert_close(run_tflite(data, inputs, resolver), interpret(g, inputs), rtol=1e-4)


def test_tflite_reader_reads_the_builtins_back():
    g = Graph("back")
    x = g.add_input("x", TensorType(DType.f32, (2, 4, 8)))
    spectrum = g.op("rfft2d", x, fft_length=(4, 8))
    g.set_output("y", g.op("add", g.op("real", spectrum), g.op("complex_abs", spectrum)))
    v = g.add_input("v", TensorType(DType.f32, (1, 4, 5, 4, 2)))
    conv = g.op("conv3d", v, g.const(RNG.standard_normal((2, 3, 2, 2, 3)).astype(np.float32)), padding="SAME")
    g.set_output("t", g.op("conv3d_transpose", conv, g.const(RNG.standard_normal((2, 2, 3, 2, 3)).astype(
        np.float32)), output_shape=(1, 4, 5, 4, 2), padding="SAME"))
    back = graph_of(read_model(emit(g, passes="O0")))
    assert {"rfft2d", "real", "complex_abs", "conv3d", "conv3d_transpose"} <= {n.op for n in back.nodes}
    inputs = {"x": RNG.standard_normal((2, 4, 8)).astype(np.float32),
              "v": RNG.standard_normal((1, 4, 5, 4, 2)).astype(np.float32)}
    assert_close(interpret(back, inputs), interpret(g, inputs), rtol=1e-5)


def spectral_and_3d_graph() -> Graph:
    """Every op of this family once, for the emitters that are not TFLite's."""
    g = Graph("family")
    x = g.add_input("x", TensorType(DType.f32, (2, 4, 8)))
    z = g.op("mul", g.op("fft", g.op("complex", x, g.op("neg", x))), g.const(np.full((8,), 0.5 + 1j, np.complex64)))
    w = g.op("ifft2d", g.op("fft2d", g.op("ifft", z)))
    g.set_output("parts", g.op("add", g.op("real", w), g.op("sub", g.op("imag", w), g.op("complex_abs", w))))
    g.set_output("real", g.op("irfft2d", g.op("rfft2d", x, fft_length=(4, 6)), fft_length=(4, 5)))
    g.set_output("rfft", g.op("irfft", g.op("rfft", x, fft_length=(8,)), fft_length=(8,)))
    v = g.add_input("v", TensorType(DType.f32, (1, 6, 5, 4, 2)))
    conv = g.op("conv3d", v, g.const(RNG.standard_normal((2, 3, 2, 2, 3)).astype(np.float32)),
                g.const(RNG.standard_normal(3).astype(np.float32)), strides=(1, 2, 1), padding="SAME")
    dilated = g.op("conv3d", v, g.const(RNG.standard_normal((2, 2, 2, 2, 3)).astype(np.float32)),
                   dilations=(2, 1, 2), padding="SAME")
    pooled = g.op("max_pool3d", g.op("avg_pool3d", dilated, ksize=(2, 2, 2), padding="SAME"), ksize=(1, 2, 2),
                  strides=(1, 2, 2))
    g.set_output("pooled", pooled)
    g.set_output("conv", g.op("conv3d_transpose", conv, g.const(RNG.standard_normal((2, 2, 3, 2, 3)).astype(
        np.float32)), output_shape=(1, 7, 8, 6, 2), strides=(1, 3, 1), padding="VALID"))
    return g


def test_tensorflow_emitter_matches_the_interpreter():
    from irc.backends import tfemit

    g = spectral_and_3d_graph()
    inputs = {"x": RNG.standard_normal((2, 4, 8)).astype(np.float32),
              "v": RNG.standard_normal((1, 6, 5, 4, 2)).astype(np.float32)}
    assert_close(tfemit.build(g).run(inputs), interpret(g, inputs), rtol=1e-4)


def test_tflite_default_pipeline_on_every_op():
    """The default pipeline splits every complex value: the file runs in TFLite without Flex."""
    g = spectral_and_3d_graph()
    data = emit(g)
    assert "CUSTOM" not in ops_of(data)
    inputs = {"x": RNG.standard_normal((2, 4, 8)).astype(np.float32),
              "v": RNG.standard_normal((1, 6, 5, 4, 2)).astype(np.float32)}
    assert_close(run_tflite(data, inputs), interpret(g, inputs), rtol=1e-4)


def test_flex_forms_are_read_back_as_irc_ops():
    """-O0 writes the transforms TFLite has no kernel for as Flex ops; the reader gives back the irc ops."""
    g = spectral_and_3d_graph()
    data = emit(g, passes="O0")
    assert "CUSTOM" in ops_of(data)
    back = graph_of(read_model(data))
    assert not any(n.is_opaque for n in back.nodes)
    inputs = {"x": RNG.standard_normal((2, 4, 8)).astype(np.float32),
              "v": RNG.standard_normal((1, 6, 5, 4, 2)).astype(np.float32)}
    assert_close(interpret(back, inputs), interpret(g, inputs), rtol=1e-5)


@pytest.mark.parametrize("mode", ["dynamic-int8", "int8", "int16x8"])
def test_quantization_leaves_complex_values_alone(mode):
    from irc.passes.quantize import quantize_graph

    g = spectral_and_3d_graph()
    inputs = {"x": RNG.standard_normal((2, 4, 8)).astype(np.float32),
              "v": RNG.standard_normal((1, 6, 5, 4, 2)).astype(np.float32)}
    want = interpret(g, inputs)
    quantize_graph(g, mode, calibration=None if mode == "dynamic-int8" else [inputs])
    assert not [v for n in g.nodes for v in (*n.operands, *n.results) if v.type.dtype is DType.c64 and v.type.quant]
    got = interpret(g, inputs)
    for key in ("real", "rfft", "conv", "pooled"):  # nothing the quantizer takes: unchanged
        np.testing.assert_array_equal(got[key], want[key])
    data = emit(spectral_and_3d_graph(), quantize=mode, calibration=None if mode == "dynamic-int8" else [inputs])
    assert "CUSTOM" not in ops_of(data)


def test_transforms_of_rank_6_stay_within_batch_matmul_ranks():
    """split-complex flattens leading dims: TFLite's BATCH_MATMUL takes rank 5 at most."""
    g = Graph("rank6")
    x = g.add_input("x", TensorType(DType.f32, (2, 1, 3, 2, 4, 8)))
    z = g.op("fft2d", g.op("complex", x, g.op("neg", x)))
    g.set_output("y", g.op("irfft", g.op("add", z, g.op("rfft2d", x, fft_length=(4, 14))), fft_length=(8,)))
    data = emit(g)
    model = read_model(data)
    ranks = [len(model.subgraphs[0].tensors[op.inputs[1]].shape) for op in model.subgraphs[0].operators
             if model.operator_codes[op.opcode_index].builtin_code == "BATCH_MATMUL"]
    assert ranks and max(ranks) <= 5
    inputs = {"x": RNG.standard_normal((2, 1, 3, 2, 4, 8)).astype(np.float32)}
    assert_close(run_tflite(data, inputs), interpret(g, inputs), rtol=1e-4)


def test_bias_and_batch_norm_fold_into_3d_convolutions():
    """fuse and fold-batchnorm treat conv3d and conv3d_transpose as the 2-D convolutions: CONV_3D takes the bias."""
    g = Graph("bias3d")
    v = g.add_input("v", TensorType(DType.f32, (1, 4, 5, 4, 2)))
    conv = g.op("conv3d", v, g.const(RNG.standard_normal((2, 3, 2, 2, 3)).astype(np.float32)), padding="SAME")
    conv = g.op("add", conv, g.const(RNG.standard_normal(3).astype(np.float32)))
    params = [g.const(RNG.uniform(0.5, 1.5, 3).astype(np.float32)) for _ in range(4)]
    conv = g.op("batch_norm", conv, *params)
    up = g.op("conv3d_transpose", conv, g.const(RNG.standard_normal((2, 2, 2, 2, 3)).astype(np.float32)),
              output_shape=(1, 8, 10, 8, 2), strides=(2, 2, 2), padding="SAME")
    g.set_output("y", g.op("add", up, g.const(RNG.standard_normal(2).astype(np.float32))))
    data = emit(g)
    assert sorted(ops_of(data)) == ["CONV_3D", "CONV_3D_TRANSPOSE"]
    inputs = {"v": RNG.standard_normal((1, 4, 5, 4, 2)).astype(np.float32)}
    assert_close(run_tflite(data, inputs), interpret(g, inputs), rtol=1e-4)



@pytest.mark.parametrize("batch", [None, 1], ids=["dynamic_batch", "static_batch"])
def test_keras_3d_cnn_fuses_activations_and_reshapes_pools_through_options(batch):
    """The coverage table's 3-D CNN (benchmarks/coverage.py): each ReLU is CONV_3D's fused activation, each 3-D pool
    two 2-D pools between three RESHAPEs that take their shape in options (no shape tensors); TFLite's results are
    TensorFlow's to 1e-5 of their scale."""
    from benchmarks.coverage import MODELS

    keras.utils.set_random_seed(1)
    model = MODELS["conv3d"].build()
    fn = tf.function(lambda x: model(x), input_signature=[tf.TensorSpec((batch, 8, 16, 16, 3), tf.float32)])
    data = emit(irc.load(fn))
    m = read_model(data)
    codes = [m.operator_codes[op.opcode_index].builtin_code for op in m.subgraphs[0].operators]
    static = ["CONV_3D", "CONV_3D", "CONV_3D_TRANSPOSE", "MEAN", "FULLY_CONNECTED"] + ["RESHAPE"] * 6 \
        + ["MAX_POOL_2D"] * 2 + ["AVERAGE_POOL_2D"] * 2
    run_time_shape = [] if batch else ["SHAPE", "SLICE", "CONCATENATION"]  # CONV_3D_TRANSPOSE's output shape
    assert sorted(codes) == sorted(static + run_time_shape)
    convs = [op for op, code in zip(m.subgraphs[0].operators, codes) if code == "CONV_3D"]
    assert [op.builtin_options.fused_activation_function for op in convs] == ["RELU", "RELU"]
    reshapes = [op for op, code in zip(m.subgraphs[0].operators, codes) if code == "RESHAPE"]
    assert all(len(op.inputs) == 1 and op.builtin_options.new_shape for op in reshapes)
    x = RNG.standard_normal((2 if batch is None else 1, 8, 16, 16, 3)).astype(np.float32)
    want = model(x).numpy()
    got = next(iter(run_tflite(data, {graph_input_name(data): x}).values()))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.max(np.abs(want))))


def graph_input_name(data: bytes) -> str:
    model = read_model(data)
    return next(iter(model.signature_defs[0].inputs))
