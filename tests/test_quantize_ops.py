"""Every op the quantize pass makes integer, quantized and run in TensorFlow's TFLite interpreter.

Each case is a one-op graph; it is quantized (int8, and int16x8 where TFLite has a 16x8 kernel) with random
calibration data, emitted with the TFLite backend, and its TFLite outputs are compared with irc's reference
interpreter on the same quantized graph: they may differ by rounding (a few quantization steps), not more. The
interpreter's Prepare checks the operator constraints (same-scale operands, fixed softmax/logistic parameters,
bias scales), so a constraint the pass gets wrong fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from irc.ir.graph import Graph
from irc.ir.interpreter import run
from irc.ir.types import DType, TensorType
from irc.passes.quantize import quantize_graph
from irc.passes.quantize.constraints import INT8_OPS, INT16_OPS

RNG = np.random.default_rng(0)
SHAPE = (1, 4, 6, 8)


def _graph(*shapes) -> tuple[Graph, list]:
    g = Graph("case")
    xs = [g.add_input(f"x{i}", TensorType(DType.f32, s)) for i, s in enumerate(shapes)]
    return g, xs


def _w(*shape):
    return RNG.standard_normal(shape).astype(np.float32) * 0.3


def unary(op, **attrs):
    def build():
        g, (x,) = _graph(SHAPE)
        g.set_output("y", g.op(op, x, **attrs))
        return g
    return build


def binary(op, const=False):
    def build():
        g, xs = _graph(SHAPE) if const else _graph(SHAPE, SHAPE)
        y = g.const(_w(1, 1, 1, 8)) if const else xs[1]
        g.set_output("y", g.op(op, xs[0], y))
        return g
    return build


def shaped(op, input_shape=SHAPE, results=1, **attrs):
    def build():
        g, (x,) = _graph(input_shape)
        node = g.add(op, [x], attrs)
        for i, r in enumerate(node.results[:results]):
            g.set_output(f"y{i}", r)
        return g
    return build


def multi(op, **attrs):
    def build():
        g, (x, y) = _graph(SHAPE, SHAPE)
        g.set_output("y", g.add(op, [x, g.op("relu", y)], attrs).result)
        return g
    return build


def conv(op, filt, bias=True, **attrs):
    def build():
        g, (x,) = _graph(SHAPE)
        operands = [x, g.const(_w(*filt))]
        if bias:
            operands.append(g.const(_w(filt[3] if op == "conv2d" else filt[2] * filt[3])))
        fused = {"fused_activation": attrs.pop("activation")} if "activation" in attrs else {}
        name = f"tfl.{op}" if fused else op  # TFLite's form of the op, with its fused activation
        g.set_output("y", g.add(name, operands, {"strides": (1, 1), "padding": "SAME", **attrs, **fused}).result)
        return g
    return build


def transpose_conv():
    g, (x,) = _graph(SHAPE)
    y = g.add("conv2d_transpose", [x, g.const(_w(3, 3, 5, 8)), g.const(_w(5))],
              {"output_shape": (1, 8, 12, 5), "strides": (2, 2), "padding": "SAME"}).result
    g.set_output("y", y)
    return g


def fully_connected(bias=True, activation="none"):
    def build():
        g, (x,) = _graph((2, 16))
        operands = [x, g.const(_w(16, 4))] + ([g.const(_w(4))] if bias else [])
        fused = {} if activation == "none" else {"fused_activation": activation}
        g.set_output("y", g.add("tfl.matmul" if fused else "matmul", operands, fused).result)
        return g
    return build


def two_activations():
    g, (a, b) = _graph((2, 16), (16, 4))
    g.set_output("y", g.op("matmul", a, b))
    return g


def batch_matmul():
    g, (a,) = _graph((2, 3, 16))
    g.set_output("y", g.op("batch_matmul", a, g.const(_w(1, 16, 4))))
    return g


def cancelling_add():
    g, (x,) = _graph(SHAPE)
    g.set_output("y", g.op("add", x, g.op("mul", x, g.const(np.asarray(-1.0, np.float32)))))
    return g


def gather():
    g, (x,) = _graph(SHAPE)
    g.set_output("y", g.op("gather", x, g.const(np.array([3, 0, 5], np.int32)), axis=3))
    return g


CASES = {
    "relu": unary("relu"), "relu6": unary("relu6"), "leaky_relu": unary("leaky_relu", alpha=0.1),
    "hard_swish": unary("hard_swish"), "sigmoid": unary("sigmoid"), "tanh": unary("tanh"),
    "softmax": unary("softmax", axis=-1), "log_softmax": unary("log_softmax", axis=-1),
    "add": binary("add"), "sub": binary("sub"), "mul": binary("mul"), "add_const": binary("add", const=True),
    "mul_const": binary("mul", const=True), "maximum": binary("maximum"), "minimum": binary("minimum"),
    "add_cancelling": cancelling_add,
    "max_pool": unary("max_pool", ksize=(2, 2), strides=(2, 2), padding="VALID"),
    "avg_pool": unary("avg_pool", ksize=(2, 2), strides=(2, 2), padding="VALID"),
    "mean": unary("mean", axes=(1, 2)), "sum": unary("sum", axes=(1, 2), keepdims=True),
    "max": unary("max", axes=(3,)), "min": unary("min", axes=(3,)),
    "reshape": shaped("reshape", shape=(1, -1)), "squeeze": shaped("squeeze", (1, 4, 1, 8), axes=(2,)),
    "expand_dims": shaped("expand_dims", axis=1), "transpose": shaped("transpose", perm=(0, 2, 1, 3)),
    "concat": multi("concat", axis=3), "pack": multi("pack", axis=1),
    "split": shaped("split", results=2, axis=3, sizes=(3, 5)), "unpack": shaped("unpack", results=4, axis=1),
    "slice": shaped("slice", begin=(0, 1, 1, 0), size=(1, 2, 3, -1)),
    "strided_slice": shaped("strided_slice", begin=(0, 0, 0, 0), end=(1, 4, 6, 8), strides=(1, 2, 2, 1)),
    "gather": gather, "pad": shaped("pad", paddings=((0, 0), (1, 1), (2, 0), (0, 0))),
    "resize": shaped("resize", size=(8, 12)), "resize_nearest": shaped("resize", size=(8, 12), method="nearest"),
    "tile": shaped("tile", multiples=(1, 2, 1, 1)), "broadcast_to": shaped("broadcast_to", (1, 4, 1, 8),
                                                                             shape=(2, 4, 6, 8)),
    "argmax": shaped("argmax", axis=3, dtype=DType.i32), "shape": shaped("shape"),
    "conv2d": conv("conv2d", (3, 3, 8, 5), activation="relu6"), "conv2d_nobias": conv("conv2d", (1, 1, 8, 5), False),
    "conv2d_tanh": conv("conv2d", (3, 3, 8, 5), activation="tanh"),
    "depthwise_conv2d": conv("depthwise_conv2d", (3, 3, 8, 1)),
    "depthwise_multiplier": conv("depthwise_conv2d", (3, 3, 8, 2), False),
    "conv2d_transpose": transpose_conv, "matmul": fully_connected(), "matmul_relu": fully_connected(activation="relu"),
    "matmul_nobias": fully_connected(False), "matmul_activations": two_activations, "batch_matmul": batch_matmul,
}


def test_every_integer_op_has_a_case():
    ops = {build().nodes[-1].op for build in CASES.values()}
    assert INT8_OPS <= ops, sorted(INT8_OPS - ops)


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def _tflite(tf, data: bytes, feed: dict) -> list[np.ndarray]:
    interpreter = tf.lite.Interpreter(model_content=data)
    runner = interpreter.get_signature_runner()
    out = runner(**feed)
    return [out[k] for k in sorted(out)]


@pytest.mark.parametrize("mode", ["int8", "int16x8"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_op_runs_in_tflite_like_the_interpreter(tf, case, mode):
    from irc.backends.tflite.backend import emit

    graph = CASES[case]()
    op, core = graph.nodes[-1].op, graph.nodes[-1].core_op  # tfl.matmul has matmul's kernels
    quantize_graph(graph, mode, calibration="random:8")
    integer = {n.op for n in graph.nodes if any(v.type.quant for v in (*n.operands, *n.results))}
    assert (op in integer) == (core in (INT8_OPS if mode == "int8" else INT16_OPS))
    feed = {v.name: RNG.standard_normal([d for d in v.type.shape]).astype(np.float32) for v in graph.inputs}
    want = run(graph, feed)
    got = _tflite(tf, emit(graph, passes="O0"), feed)
    for (name, w), g in zip(sorted(want.items()), got):
        assert g.shape == w.shape, name
        step = max((v.producer.operands[0].type.quant.scale[0] for v in [graph.outputs[name]]
                    if v.producer.op == "dequantize"), default=1e-6)
        steps = 3 if mode == "int8" else 6  # TFLite's int16 tanh and logistic tables are a few steps off
        np.testing.assert_allclose(g, w, atol=steps * step + 1e-5, err_msg=f"{case} {mode} output {name}")
