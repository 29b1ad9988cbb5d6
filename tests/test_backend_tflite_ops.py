"""Every TFLite emitter: hand-built graphs emitted with -O0, run in TensorFlow's TFLite interpreter and compared
with irc's reference interpreter; float16 weights; quantized graphs emitted without special cases."""

from __future__ import annotations

import numpy as np
import pytest

from irc.backends.tflite import ops as tfl_ops
from irc.backends.tflite.backend import emit
from irc.formats.tflite.flatbuffer import read_model
from irc.ir.graph import Graph
from irc.ir.interpreter import random_inputs
from irc.ir.interpreter import run as interpret
from irc.ir.types import DType, QuantParams, SymDim, TensorType

tf = pytest.importorskip("tensorflow")

F32 = DType.f32
BATCH = SymDim("batch")


# TFLite's own kernels, and XNNPACK (the default delegate), which takes most float operators
RESOLVERS = {"builtin": tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
             "xnnpack": tf.lite.experimental.OpResolverType.AUTO}


def run_tflite(data: bytes, inputs: dict, resolver: str = "xnnpack") -> dict:
    interpreter = tf.lite.Interpreter(model_content=data, experimental_op_resolver_type=RESOLVERS[resolver])
    return interpreter.get_signature_runner()(**inputs)


def ops_of(data: bytes) -> list[str]:
    model = read_model(data)
    return [model.operator_codes[op.opcode_index].builtin_code for op in model.subgraphs[0].operators]


def assert_close(got: dict, want: dict, rtol: float = 1e-5) -> None:
    assert set(got) == set(want)
    for name, ref in want.items():
        out = np.asarray(got[name])
        assert out.shape == ref.shape, (name, out.shape, ref.shape)
        if ref.dtype.kind in "biu":
            np.testing.assert_array_equal(out, ref, err_msg=name)
        else:
            err = float(np.max(np.abs(out.astype(np.float64) - ref))) if ref.size else 0.0
            assert err <= rtol * max(1.0, float(np.max(np.abs(ref)))), f"{name}: max abs error {err}"


class Builder:
    """A graph under construction with seeded random constants."""

    def __init__(self, name: str):
        self.g = Graph(name)
        self.r = np.random.default_rng(0)

    def input(self, name, *shape, dtype=F32):
        return self.g.add_input(name, TensorType(dtype, shape))

    def w(self, *shape, low=None, high=None):
        if low is not None:
            return self.g.const(self.r.uniform(low, high, shape).astype(np.float32))
        return self.g.const(self.r.standard_normal(shape).astype(np.float32))

    def op(self, op, *args, **attrs):
        return self.g.op(op, *args, **attrs)


# ----- the cases: each builds a graph from a Builder and names its outputs --------------------------------------------
def conv_cases(b: Builder):
    x = b.input("x", 1, 9, 9, 3)
    y = b.op("tfl.conv2d", x, b.w(3, 3, 3, 4), b.w(4), strides=(2, 2), padding="SAME", fused_activation="relu6")
    z = b.op("tfl.conv2d", x, b.w(2, 3, 3, 5), padding="VALID", dilations=(2, 1), fused_activation="tanh")
    d = b.op("tfl.depthwise_conv2d", y, b.w(3, 3, 4, 2), b.w(8), padding="SAME", fused_activation="sigmoid")
    t = b.op("tfl.conv2d_transpose", d, b.w(3, 3, 6, 8), b.w(6), output_shape=(1, 11, 11, 6), strides=(2, 2),
             padding="VALID", fused_activation="relu")
    n = b.op("transpose", x, perm=(0, 3, 1, 2))
    n = b.op("tfl.conv2d", n, b.w(3, 3, 3, 2), data_format="NCHW", padding="SAME", fused_activation="relu_n1_to_1")
    n = b.op("depthwise_conv2d", n, b.w(3, 3, 2, 1), data_format="NCHW", padding="VALID")
    n = b.op("conv2d", n, b.w(1, 1, 2, 2), data_format="NCHW")
    return {"conv": y, "dilated": z, "depthwise": d, "transposed": t, "nchw": n}


def dynamic_batch_cases(b: Builder):
    x = b.g.add_input("x", TensorType(F32, (BATCH, 4, 4, 2)))
    t = b.op("conv2d_transpose", x, b.w(2, 2, 3, 2), output_shape=(-1, 8, 8, 3), strides=(2, 2), padding="SAME")
    flat = b.op("reshape", t, shape=(-1, 192))
    return {"up": t, "dense": b.op("tfl.matmul", flat, b.w(192, 5), b.w(5), fused_activation="relu"),
            "squeezed": b.op("squeeze", b.op("mean", t, axes=(1, 2), keepdims=True), axes=(1, 2))}


def pool_norm_cases(b: Builder):
    x = b.input("x", 1, 7, 7, 4)
    mp = b.op("tfl.max_pool", x, ksize=(3, 3), strides=(2, 2), padding="SAME", fused_activation="relu")
    mp = b.op("add", mp, b.op("max_pool", x, ksize=(3, 3), strides=(2, 2), padding="SAME"))
    ap = b.op("avg_pool", x, ksize=(2, 2), strides=(1, 1), padding="SAME")
    ap = b.op("tfl.avg_pool", ap, ksize=(2, 2), strides=(1, 1), padding="SAME", fused_activation="relu6")
    ap_nchw = b.op("avg_pool", b.op("transpose", x, perm=(0, 3, 1, 2)), ksize=(2, 2), strides=(2, 2),
                   data_format="NCHW")
    bn = b.op("batch_norm", x, b.w(4), b.w(4), b.w(4), b.w(4, low=0.5, high=2.0), epsilon=1e-3)
    scale = b.op("abs", b.op("mean", x, axes=(0, 1, 2)))  # computed batch norm parameters
    bn2 = b.op("batch_norm", x, scale, b.w(4), b.w(4), b.w(4, low=0.5, high=2.0))
    bn3 = b.op("batch_norm", b.op("transpose", x, perm=(0, 3, 1, 2)), scale, b.w(4), b.w(4),
               b.w(4, low=0.5, high=2.0), data_format="NCHW")
    return {"max": mp, "avg": ap, "avg_nchw": ap_nchw, "bn": bn, "bn_dynamic": bn2, "bn_nchw": bn3}


def resize_pad_cases(b: Builder):
    x = b.input("x", 1, 4, 5, 2)
    return {
        "bilinear": b.op("resize", x, size=(7, 9), method="bilinear", half_pixel_centers=True),
        "aligned": b.op("resize", x, size=(7, 9), method="bilinear", align_corners=True),
        "nearest": b.op("resize", x, size=(8, 10), method="nearest"),
        "pad": b.op("pad", x, paddings=((0, 0), (1, 2), (0, 1), (0, 0))),
        "pad_value": b.op("pad", x, paddings=((0, 0), (1, 1), (1, 1), (1, 0)), constant_value=-2.5),
        "reflect": b.op("pad", x, paddings=((0, 0), (2, 1), (1, 2), (0, 0)), mode="reflect"),
        "symmetric": b.op("pad", x, paddings=((0, 0), (1, 1), (2, 2), (0, 0)), mode="symmetric"),
    }


def matmul_cases(b: Builder):
    a = b.input("a", 3, 6)
    m = b.input("m", 2, 3, 6)
    other = b.input("other", 6, 4)
    return {
        "fc": b.op("tfl.matmul", a, b.w(6, 4), b.w(4), fused_activation="relu"),
        "fc_t": b.op("tfl.matmul", a, b.w(4, 6), transpose_b=True, fused_activation="tanh"),
        "fc_ta": b.op("matmul", b.op("transpose", a, perm=(1, 0)), b.w(6, 2), transpose_a=True),
        "dynamic": b.op("tfl.matmul", a, other, b.w(4), fused_activation="relu6"),
        "dynamic_t": b.op("matmul", a, b.op("transpose", other, perm=(1, 0)), transpose_b=True),
        "fc_keep": b.op("tfl.matmul", m, b.w(4, 6), b.w(4), transpose_b=True, fused_activation="relu"),
        "bmm_const": b.op("batch_matmul", m, b.w(6, 5)),
        "bmm_const_adj": b.op("batch_matmul", m, b.w(5, 6), adj_y=True),
        "bmm": b.op("batch_matmul", m, b.op("transpose", m, perm=(0, 2, 1))),
        "bmm_adj": b.op("batch_matmul", m, m, adj_x=True),
    }


def elementwise_cases(b: Builder):
    x = b.input("x", 2, 3, 4)
    y = b.input("y", 3, 4)
    pos = b.op("add", b.op("abs", x), b.g.const(np.float32(0.5)))
    i = b.input("i", 2, 3, dtype=DType.i32)
    out = {
        "add": b.op("tfl.add", x, y, fused_activation="relu"), "sub": b.op("tfl.sub", x, y, fused_activation="tanh"),
        "mul": b.op("tfl.mul", x, y, fused_activation="sigmoid"), "div": b.op("tfl.div", x, pos, fused_activation="relu6"),
        "plain_sub": b.op("sub", x, y), "plain_mul": b.op("mul", x, y),
        "max": b.op("maximum", x, y), "min": b.op("minimum", x, y), "pow": b.op("pow", pos, y),
        "sqdiff": b.op("squared_difference", x, y), "floordiv": b.op("floor_div", x, pos),
        "floormod": b.op("floor_mod", x, pos),
        "select": b.op("select", b.op("greater", x, y), x, y),
        "logic": b.op("logical_and", b.op("less", x, y), b.op("logical_not", b.op("equal", x, y))),
        "logic2": b.op("logical_or", b.op("less_equal", x, y),
                       b.op("logical_or", b.op("greater_equal", x, y), b.op("not_equal", x, y))),
        "int_div": b.op("div", i, b.g.const(np.int32(2))), "int_mod": b.op("floor_mod", i, b.g.const(np.int32(3))),
        "cast": b.op("cast", b.op("cast", x, to=DType.i32), to=F32),
        "recip": b.op("reciprocal", pos), "sqrt": b.op("sqrt", pos), "rsqrt": b.op("rsqrt", pos),
        "log": b.op("log", pos),
    }
    for op in ("neg", "abs", "exp", "square", "sin", "cos", "floor", "ceil", "round", "sign", "erf"):
        out[op] = b.op(op, x)
    return out


def activation_cases(b: Builder):
    x = b.input("x", 2, 5, 6)
    out = {op: b.op(op, x) for op in ("relu", "relu6", "sigmoid", "tanh", "hard_swish", "elu", "softplus", "silu")}
    out["big_softplus"] = b.op("softplus", b.op("mul", x, b.g.const(np.float32(40.0))))
    out["leaky"] = b.op("leaky_relu", x, alpha=0.3)
    out["gelu"] = b.op("gelu", x)
    out["gelu_tanh"] = b.op("gelu", x, approximate=True)
    out["fake_quant"] = b.op("fake_quant", x, min=(-1.0,), max=(1.5,))  # FAKE_QUANT
    out["fake_quant_channels"] = b.op("fake_quant", x, min=(-1.0,) * 6, max=(0.5, 1, 1.5, 2, 2.5, 3),
                                      num_bits=4, narrow_range=True)  # TF's arithmetic in builtins
    out["softmax"] = b.op("softmax", x, beta=0.7)
    out["softmax_axis1"] = b.op("softmax", x, axis=1)
    out["log_softmax"] = b.op("log_softmax", x)
    out["log_softmax_axis0"] = b.op("log_softmax", x, axis=0)
    return out


def shape_cases(b: Builder):
    x = b.input("x", 2, 3, 4)
    idx = b.input("idx", 2, 2, dtype=DType.i32)
    parts = b.g.add("split", [x], {"axis": 2, "sizes": (1, 3)}).results
    halves = b.g.add("split", [x], {"axis": -1, "sizes": (2, 2)}).results
    rows = b.g.add("unpack", [x], {"axis": 1}).results
    return {
        "reshape": b.op("reshape", x, shape=(4, -1)),
        "dynamic_reshape": b.op("dynamic_reshape", x, b.g.const(np.array([3, -1, 2], np.int32))),
        "transpose": b.op("transpose", x, perm=(2, 0, 1)),
        "squeeze": b.op("squeeze", b.op("reshape", x, shape=(2, 1, 12, 1)), axes=(1, 3)),
        "expand": b.op("expand_dims", x, axis=-1),
        "concat": b.op("tfl.concat", x, b.op("neg", x), axis=-1, fused_activation="relu"),
        "plain_concat": b.op("concat", x, x, axis=0),
        "split0": parts[0], "split1": parts[1], "half1": halves[1],
        "pack": b.op("pack", rows[0], rows[2], axis=-1), "row1": rows[1],
        "slice": b.op("slice", x, begin=(0, 1, 1), size=(-1, 2, 2)),
        "strided": b.op("strided_slice", x, begin=(0, 2, 0), end=(2, 0, 4), strides=(1, -1, 2), shrink_axis_mask=1),
        "strided_masks": b.op("strided_slice", x, begin=(1, 0), end=(2, 3), strides=(1, 1), begin_mask=1,
                              end_mask=2, new_axis_mask=0),
        "gather": b.op("gather", x, b.op("floor_mod", idx, b.g.const(np.int32(3))), axis=1),
        "gather64": b.op("gather", x, b.g.const(np.array([3, 0, 1], np.int64)), axis=2),
        "gather_batch": b.op("gather", x, b.op("floor_mod", idx, b.g.const(np.int32(3))), axis=1, batch_dims=1),
        "tile": b.op("tile", x, multiples=(1, 2, 1)),
        "broadcast": b.op("broadcast_to", b.op("slice", x, begin=(0, 0, 0), size=(1, 3, 4)), shape=(2, 2, 3, 4)),
        "shape": b.op("shape", x), "shape64": b.op("shape", x, dtype=DType.i64),
        "argmax": b.op("argmax", x, axis=1), "argmax32": b.op("argmax", x, axis=-1, dtype=DType.i32),
        "one_hot": b.op("one_hot", b.op("floor_mod", idx, b.g.const(np.int32(4))), depth=4, on_value=2.0,
                        off_value=-1.0),
        "reverse": b.op("reverse", x, axes=(0, 2)),
        "fill": b.op("fill", b.op("shape", x), b.g.const(np.float32(1.5))),  # dims known at run time: FILL
    }


def indexing_cases(b: Builder):
    x = b.input("x", 2, 3, 4, 5)
    i = b.input("i", 3, dtype=DType.i32)  # any ints: offsets are clamped, indices taken modulo
    i64 = b.op("cast", i, to=DType.i64)
    big = b.input("big", 2, 1, 2, 1, 3, 2)  # rank 6: beyond SLICE's 5

    def rows(n):  # run-time indices into dim 0 of size n, shaped [3, 1]
        return b.op("reshape", b.op("floor_mod", i, b.g.const(np.int32(n))), shape=(3, 1))

    t = b.op("reshape", x, shape=(6, 4, 5))
    upd = b.op("slice", t, begin=(0, 0, 0), size=(3, 4, 5))
    four = b.op("concat", i, b.g.const(np.array([-1], np.int32)), axis=0)
    return {
        "cumsum": b.op("cumsum", x, axis=-1), "cumsum_ex_rev": b.op("cumsum", x, axis=1, exclusive=True, reverse=True),
        "cumsum_int": b.op("cumsum", i, axis=0, reverse=True),
        "roll": b.op("roll", x, shifts=(1, -2, 9), axes=(1, 2, -1)), "roll_none": b.op("roll", x, shifts=(3,), axes=(1,)),
        "roll_rank6": b.op("roll", big, shifts=(1, -1), axes=(4, 5)),
        "dslice": b.op("dynamic_slice", x, four, size=(1, 2, 3, 4)),
        "dslice_rank6": b.op("dynamic_slice", big, b.op("concat", i, i, axis=0), size=(1, 1, 2, 1, 2, 1)),
        "dslice64": b.op("dynamic_slice", t, b.op("slice", i64, begin=(0,), size=(3,)), size=(2, 2, 5)),
        "dupdate": b.op("dynamic_update_slice", x, b.op("slice", x, begin=(0, 0, 0, 0), size=(2, 1, 2, 3)), four),
        "dupdate64": b.op("dynamic_update_slice", t, upd, b.op("slice", i64, begin=(0,), size=(3,))),
        "top_k": b.g.add("top_k", [x], {"k": 2}).results[0],
        "top_k_full": b.g.add("top_k", [x], {"k": 5}).results[0],
        "top_k_idx": b.g.add("top_k", [x], {"k": 3}).results[1],
        "gather_nd": b.op("gather_nd", t, rows(6)),
        "gather_nd2": b.op("gather_nd", x, b.op("concat", rows(2), rows(3), axis=1)),
        "scatter_nd": b.op("scatter_nd", rows(6), upd, shape=(6, 4, 5)),
        "scatter_add": b.op("tensor_scatter_add", t, b.op("cast", rows(6), to=DType.i64), upd),
        "scatter_update": b.op("tensor_scatter_update", t, b.g.const(np.array([[5], [0], [2]], np.int32)), upd),
        "scatter_add_repeated": b.op("tensor_scatter_add", t, b.g.const(np.array([[1], [4], [1]], np.int32)), upd),
        "scatter_nd_repeated": b.op("scatter_nd", b.g.const(np.array([[3, 1], [3, 1], [0, 2]], np.int32)),
                                    b.op("reshape", b.op("slice", t, begin=(0, 0, 0), size=(3, 1, 5)), shape=(3, 5)),
                                    shape=(4, 4, 5)),
    }


def reduce_cases(b: Builder):
    x = b.input("x", 2, 3, 4)
    out = {}
    for op in ("mean", "sum", "max", "min", "prod"):
        out[op] = b.op(op, x, axes=(1, -1))
        out[op + "_keep"] = b.op(op, x, axes=(0,), keepdims=True)
    out["none"] = b.op("sum", x, axes=())
    return out


def conv3d_cases(b: Builder):
    v = b.input("v", 1, 5, 6, 7, 2)
    conv = b.op("conv3d", v, b.w(2, 3, 2, 2, 3), b.w(3), strides=(2, 1, 3), padding="SAME")
    return {
        "conv": conv,
        "dilated": b.op("conv3d", v, b.w(2, 2, 2, 2, 1), dilations=(2, 1, 2)),
        "transposed": b.op("conv3d_transpose", conv, b.w(3, 2, 3, 2, 3), b.w(2), output_shape=(1, 6, 6, 9, 2),
                           strides=(2, 1, 3), padding="SAME"),
        "max": b.op("max_pool3d", v, ksize=(2, 2, 3), strides=(1, 2, 2), padding="SAME"),
        "avg": b.op("avg_pool3d", v, ksize=(3, 2, 2), strides=(2, 2, 2)),
        # fused activations: CONV_3D's and CONV_3D_TRANSPOSE's options clamp (relu6, relu_n1_to_1); tanh follows
        "fused": b.op("tfl.conv3d", v, b.w(2, 2, 2, 2, 3), b.w(3), padding="SAME", fused_activation="relu6"),
        "fused_tanh": b.op("tfl.conv3d", v, b.w(1, 2, 2, 2, 2), fused_activation="tanh"),
        "fused_transposed": b.op("tfl.conv3d_transpose", conv, b.w(2, 2, 2, 2, 3), output_shape=(1, 6, 6, 9, 2),
                                 strides=(2, 1, 3), padding="SAME", fused_activation="relu_n1_to_1"),
    }


def complex_cases(b: Builder):
    # apart from the 3-D cases: in one graph with them, TFLite's RFFT2D under XNNPACK was seen to overwrite
    # another operator's output (docs/tflite.md); the tflite pipeline writes no RFFT2D
    x = b.input("x", 2, 4, 8)
    spectrum = b.op("rfft2d", x, fft_length=(4, 8))
    return {"real": b.op("real", spectrum), "imag": b.op("imag", spectrum),
            "abs": b.op("complex_abs", b.op("rfft2d", x, fft_length=(2, 4)))}


CASES = {
    "conv3d": conv3d_cases, "complex": complex_cases,
    "conv": conv_cases, "dynamic_batch": dynamic_batch_cases, "pool_norm": pool_norm_cases,
    "resize_pad": resize_pad_cases, "matmul": matmul_cases, "elementwise": elementwise_cases,
    "activation": activation_cases, "shape": shape_cases, "reduce": reduce_cases, "indexing": indexing_cases,
}


def build(name: str) -> Graph:
    b = Builder(name)
    for out_name, value in CASES[name](b).items():
        b.g.set_output(out_name, value)
    return b.g


def inputs_for(g: Graph) -> dict:
    inputs = random_inputs(g, seed=1)
    return {k: v.astype(np.float32) * 2 if v.dtype == np.float32 else v for k, v in inputs.items()}


@pytest.mark.parametrize("resolver", sorted(RESOLVERS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_emitters_match_reference(name, resolver):
    g = build(name)
    inputs = inputs_for(g)
    data = emit(g, passes="O0")
    assert_close(run_tflite(data, inputs, resolver), interpret(g, inputs))


@pytest.mark.parametrize("name", ["conv", "matmul", "pool_norm", "activation"])
def test_default_pipeline_matches_reference(name):
    g = build(name)
    inputs = inputs_for(g)
    assert_close(run_tflite(emit(g), inputs), interpret(g, inputs))


def test_indexing_beyond_a_kernels_rank_is_refused():
    from irc.errors import UnsupportedOpError

    b = Builder("ranks")
    x = b.input("x", *([2] * 9))
    b.g.set_output("y", b.op("dynamic_update_slice", x, x, b.g.const(np.zeros(9, np.int32))))
    with pytest.raises(UnsupportedOpError, match="DYNAMIC_UPDATE_SLICE takes rank 8 at most, and operand 0 has rank 9"):
        emit(b.g, passes="O0")
    b = Builder("ranks")
    x = b.g.add_input("x", TensorType(F32, (BATCH,) + (2,) * 5))
    b.g.set_output("y", b.op("dynamic_slice", x, b.g.const(np.zeros(6, np.int32)), size=(1,) * 6))
    with pytest.raises(UnsupportedOpError, match="SLICE takes rank 5 at most; irc gathers instead for an operand of "
                                                 "known shape"):
        emit(b.g, passes="O0")


def test_repeated_indices_in_tensor_scatter_update():
    """TensorFlow leaves their order undefined; TFLite's file gives the mean of their updates (equal ones: exact)."""
    b = Builder("repeated")
    t = b.input("t", 4, 3)
    u = b.input("u", 1, 3)
    b.g.set_output("y", b.op("tensor_scatter_update", t, b.g.const(np.array([[2], [2]], np.int32)),
                             b.op("concat", u, u, axis=0)))
    inputs = inputs_for(b.g)
    assert_close(run_tflite(emit(b.g, passes="O0"), inputs), interpret(b.g, inputs))


def test_every_registry_op_has_an_emitter():
    from irc.ops import all_ops

    missing = sorted(set(all_ops()) - set(tfl_ops.rules()) - {"const"})
    assert not missing


def test_cases_cover_every_emitter():
    used = set()
    for name in CASES:
        used |= {n.op for n in build(name).nodes}
    # the Flex forms of the complex transforms need a TFLite with the Flex delegate, which this one lacks:
    # tests/test_backend_tflite_3d_complex.py writes them (-O0) and reads them back
    flex = {"complex", "fft", "ifft", "fft2d", "ifft2d", "rfft", "irfft", "irfft2d"}
    # while, if and the fused LSTM own regions or a whole layer: tests/test_backend_tflite_rnn.py runs them
    regions = {"while", "if", "tfl.unidirectional_sequence_lstm"}
    untested = sorted(set(tfl_ops.rules()) - used - {"tf.*", "quantize", "dequantize", "requantize"} - flex - regions)
    assert not untested, untested


def test_fused_activations_and_layouts():
    """relu6 fuses into CONV_2D; tanh follows as its own operator (TFLite's float kernels ignore a fused TANH);
    filters are OHWI / [1, kh, kw, in * m]; FULLY_CONNECTED weights are [out, in]."""
    g = build("conv")
    model = read_model(emit(g, passes="O0"))
    sg = model.subgraphs[0]
    codes = [model.operator_codes[op.opcode_index].builtin_code for op in sg.operators]
    first = sg.operators[codes.index("CONV_2D")]
    assert first.builtin_options.fused_activation_function == "RELU6"
    assert sg.tensors[first.inputs[1]].shape == [4, 3, 3, 3]
    depthwise = sg.operators[codes.index("DEPTHWISE_CONV_2D")]
    assert sg.tensors[depthwise.inputs[1]].shape == [1, 3, 3, 8]
    assert depthwise.builtin_options.depth_multiplier == 2
    assert "TANH" in codes and "LOGISTIC" in codes
    assert all(op.builtin_options.fused_activation_function in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
               for op in sg.operators if op.builtin_options is not None
               and hasattr(op.builtin_options, "fused_activation_function"))


def test_matmul_with_constant_weights_is_fully_connected():
    g = build("matmul")
    codes = ops_of(emit(g, passes="O0"))
    assert codes.count("FULLY_CONNECTED") == 6  # fc, fc_t, fc_ta, fc_keep, bmm_const, bmm_const_adj
    assert codes.count("BATCH_MATMUL") == 4


def test_dynamic_batch_keeps_shape_signature():
    g = build("dynamic_batch")
    data = emit(g, passes="O0")
    model = read_model(data)
    sg = model.subgraphs[0]
    assert sg.tensors[sg.inputs[0]].shape_signature == [-1, 4, 4, 2]
    interpreter = tf.lite.Interpreter(model_content=data)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], [3, 4, 4, 2])
    interpreter.allocate_tensors()
    x = np.random.default_rng(2).standard_normal((3, 4, 4, 2)).astype(np.float32)
    out = interpreter.get_signature_runner()(x=x)
    assert_close(out, interpret(g, {"x": x}))


def test_float16_weights_dequantized():
    g = build("conv")
    inputs = inputs_for(g)
    data = emit(g, passes="O0", quantize="float16")
    model = read_model(data)
    sg = model.subgraphs[0]
    codes = ops_of(data)
    assert codes[0] == "DEQUANTIZE"
    constants = [t for t in sg.tensors if t.buffer and model.buffers[t.buffer].nbytes]
    assert constants and all(t.type in ("FLOAT16", "INT32") for t in constants)
    assert_close(run_tflite(data, inputs), interpret(g, inputs), rtol=1e-2)
    weights = sum(model.buffers[t.buffer].nbytes for t in constants if t.type == "FLOAT16")
    floats = sum(v.constant.nbytes for v in (n.result for n in g.nodes if n.op == "const") if v.type.dtype is F32)
    assert floats // 2 <= weights <= floats // 2 + 64  # and the zero biases of the convolutions without one


# ----- quantized graphs --------------------------------------------------------------------------------------------
def quantized_graph() -> Graph:
    """quantize -> int8 conv (per-channel int8 filter, int32 bias) -> requantize -> int8 add -> dequantize."""
    r = np.random.default_rng(3)
    g = Graph("quantized")
    x = g.add_input("x", TensorType(F32, (1, 6, 6, 2)))
    in_q = QuantParams((0.05,), (-3,))
    xq = g.op("quantize", x, dtype=DType.i8, scale=in_q.scale, zero_point=in_q.zero_point)
    w_scale = tuple(float(s) for s in r.uniform(0.005, 0.02, 4))
    w = r.integers(-127, 128, (3, 3, 2, 4)).astype(np.int8)
    wq = g.add("const", (), {"value": w}, types=[TensorType(DType.i8, w.shape, QuantParams(w_scale, (0,) * 4, 3))])
    bias_q = QuantParams(tuple(0.05 * s for s in w_scale), (0,) * 4, 0)
    bias = g.add("const", (), {"value": r.integers(-500, 500, 4).astype(np.int32)},
                 types=[TensorType(DType.i32, (4,), bias_q)])
    out_q = QuantParams((0.1,), (2,))
    conv = g.add("tfl.conv2d", [xq, wq.result, bias.result], {"padding": "SAME", "fused_activation": "relu"},
                 types=[TensorType(DType.i8, (1, 6, 6, 4), out_q)]).result
    pooled = g.add("max_pool", [conv], {"ksize": (2, 2), "strides": (2, 2)},
                   types=[TensorType(DType.i8, (1, 3, 3, 4), out_q)]).result
    req = g.op("requantize", pooled, dtype=DType.i8, scale=(0.2,), zero_point=(0,))
    g.set_output("y", g.op("dequantize", req))
    return g


def test_quantized_graph_emits_generically():
    g = quantized_graph()
    data = emit(g, passes="O0")
    model = read_model(data)
    sg = model.subgraphs[0]
    conv = next(op for op in sg.operators if model.operator_codes[op.opcode_index].builtin_code == "CONV_2D")
    filt, bias = sg.tensors[conv.inputs[1]], sg.tensors[conv.inputs[2]]
    assert filt.type == "INT8" and filt.shape == [4, 3, 3, 2]
    assert filt.quantization.quantized_dimension == 0 and len(filt.quantization.scale) == 4
    assert bias.type == "INT32"
    assert model.operator_codes[conv.opcode_index].version == 3
    x = np.random.default_rng(4).uniform(-3, 3, (1, 6, 6, 2)).astype(np.float32)
    got = run_tflite(data, {"x": x})["y"]
    want = interpret(g, {"x": x})["y"]
    assert np.max(np.abs(got - want)) <= 0.2 + 1e-6  # one quantization step of the output


def test_version_table_matches_the_interpreter():
    """MAX_VERSION is what this TFLite registers: the listed version loads, the next one does not."""
    from irc.formats.tflite.flatbuffer import Operator, OperatorCode, SubGraph, Tensor, TFLModel, write_model

    def loads(op: str, version: int) -> bool:
        model = TFLModel(operator_codes=[OperatorCode(op, version=version)],
                         subgraphs=[SubGraph(tensors=[Tensor("x", [1]), Tensor("y", [1])], inputs=[0], outputs=[1],
                                             operators=[Operator(0, [0], [1])])])
        try:
            tf.lite.Interpreter(model_content=write_model(model))
        except (ValueError, RuntimeError) as e:
            return "Didn't find op" not in str(e)
        return True

    wrong = [op for op, top in tfl_ops.MAX_VERSION.items()
             if op != "CUSTOM" and (not loads(op, top) or loads(op, top + 1))]
    assert not wrong
