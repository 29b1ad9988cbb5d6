"""The TensorFlow emitters: one per irc op, each turning a node into a ``tf.*`` expression over its operands.

``e`` is the ``Emitter`` (codegen.py): ``e.name()`` names the TF op after the node's origin, ``e.activation``
applies a fused activation, ``e.array`` turns a constant into a literal or a weight, ``e.bind`` names an
intermediate. ``lit`` writes an attribute value as a Python literal. Attribute defaults are filled in
(``_attrs``), so every emitter reads every attribute it needs.

Spatial attributes in irc are ``[h, w]``; TensorFlow wants 4-vectors in the op's data format (``_hw4``).

The ``tfl.*`` fused forms (``tfl.conv2d {fused_activation = "relu"}``) share their core op's rule, which applies
the activation after it; ``tfl.conv2d`` with relu becomes TensorFlow's fused convolution (``_FusedConv2D``).
"""

from __future__ import annotations

from irc.backends.tfemit.codegen import EMITTERS, Emitter, emits, lit
from irc.ir.graph import Node
from irc.ir.types import DType


def _attrs(node: Node) -> dict:
    return node.opdef.with_defaults(node.attrs)


def _activation(node: Node) -> str:
    """The fused activation of a ``tfl.*`` form (the cuda pipeline's fusion makes them), ``none`` for a core op."""
    return node.attrs.get("fused_activation", "none")


def _hw4(values, data_format: str) -> list[int]:
    h, w = values
    return [1, h, w, 1] if data_format == "NHWC" else [1, 1, h, w]


def _format(data_format: str) -> str:
    """The data_format keyword, left out for TensorFlow's default (NHWC)."""
    return "" if data_format == "NHWC" else f", data_format={lit(data_format)}"


def _dilations(hw, value) -> str:
    return "" if tuple(hw) == (1, 1) else f", dilations={value}"


# ----- elementwise ---------------------------------------------------------------------------------------------------
BINARY = {
    "add": "tf.math.add", "sub": "tf.math.subtract", "mul": "tf.math.multiply",
    "maximum": "tf.math.maximum", "minimum": "tf.math.minimum", "pow": "tf.math.pow",
    "squared_difference": "tf.math.squared_difference",
    "floor_div": "tf.math.floordiv", "floor_mod": "tf.math.floormod",
    "equal": "tf.math.equal", "not_equal": "tf.math.not_equal", "less": "tf.math.less",
    "less_equal": "tf.math.less_equal", "greater": "tf.math.greater", "greater_equal": "tf.math.greater_equal",
    "logical_and": "tf.math.logical_and", "logical_or": "tf.math.logical_or",
}

UNARY = {
    "neg": "tf.math.negative", "abs": "tf.math.abs", "sqrt": "tf.math.sqrt", "rsqrt": "tf.math.rsqrt",
    "exp": "tf.math.exp", "log": "tf.math.log", "square": "tf.math.square", "sin": "tf.math.sin",
    "cos": "tf.math.cos", "floor": "tf.math.floor", "ceil": "tf.math.ceil", "round": "tf.math.round",
    "sign": "tf.math.sign", "erf": "tf.math.erf", "reciprocal": "tf.math.reciprocal",
    "logical_not": "tf.math.logical_not",
    "relu": "tf.nn.relu", "relu6": "tf.nn.relu6", "sigmoid": "tf.math.sigmoid", "tanh": "tf.math.tanh",
    "elu": "tf.nn.elu", "softplus": "tf.math.softplus",
}


@emits(*BINARY)
def binary(e: Emitter, node: Node, args: list[str]) -> str:
    expr = f"{BINARY[node.core_op]}({args[0]}, {args[1]}, {e.name()})"
    return e.activation(expr, _activation(node))


@emits("div")
def div(e: Emitter, node: Node, args: list[str]) -> str:
    # irc's integer div truncates toward zero, as TF's TruncateDiv; floats divide exactly (RealDiv)
    fn = "tf.truncatediv" if node.operands[0].type.dtype.is_integer else "tf.math.divide"
    return e.activation(f"{fn}({args[0]}, {args[1]}, {e.name()})", _activation(node))


@emits(*UNARY)
def unary(e: Emitter, node: Node, args: list[str]) -> str:
    return f"{UNARY[node.op]}({args[0]}, {e.name()})"


@emits("select")
def select(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.where({args[0]}, {args[1]}, {args[2]}, {e.name()})"


@emits("cast")
def cast(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.cast({args[0]}, {lit(node.attrs['to'])}, {e.name()})"


# ----- activations ---------------------------------------------------------------------------------------------------
@emits("hard_swish")
def hard_swish(e: Emitter, node: Node, args: list[str]) -> str:
    x = args[0]
    gate = e.bind(f"tf.nn.relu6(tf.math.add({x}, 3.0), {e.name('Relu6')})", "gate")
    return f"tf.math.divide(tf.math.multiply({x}, {gate}), 6.0, {e.name()})"


@emits("silu")
def silu(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.math.multiply({args[0]}, tf.math.sigmoid({args[0]}), {e.name()})"  # tf.nn.silu takes no name


@emits("leaky_relu")
def leaky_relu(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.nn.leaky_relu({args[0]}, alpha={lit(float(node.attr('alpha')))}, {e.name()})"


@emits("gelu")
def gelu(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.nn.gelu({args[0]}, approximate={lit(node.attr('approximate'))}, {e.name()})"


@emits("softmax")
def softmax(e: Emitter, node: Node, args: list[str]) -> str:
    x, beta = args[0], float(node.attr("beta"))
    if beta != 1.0:
        x = e.bind(f"tf.math.multiply({x}, {lit(beta)})", "scaled")
    return f"tf.nn.softmax({x}, axis={node.attr('axis')}, {e.name()})"


@emits("log_softmax")
def log_softmax(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.nn.log_softmax({args[0]}, axis={node.attr('axis')}, {e.name()})"


# ----- nn ------------------------------------------------------------------------------------------------------------
def _bias(e: Emitter, expr: str, args: list[str], data_format: str = "NHWC") -> str:
    if len(args) < 3:
        return expr
    y = e.bind(expr, "pre_bias")
    fmt = f", data_format={lit(data_format)}" if data_format != "NHWC" else ""
    return f"tf.nn.bias_add({y}, {args[2]}{fmt}, {e.name('BiasAdd')})"


def _in_layout(e: Emitter, x: str, fmt: str) -> tuple[str, str]:
    """The operand and data format the TF op gets: with ``nchw_as_nhwc``, NCHW becomes NHWC between transposes."""
    if fmt == "NCHW" and e.options.nchw_as_nhwc:
        return e.bind(f"tf.transpose({x}, [0, 2, 3, 1])", "nhwc"), "NHWC"
    return x, fmt


def _out_layout(e: Emitter, expr: str, fmt: str, used: str) -> str:
    if fmt == used:
        return expr
    return f"tf.transpose({e.bind(expr, 'nhwc')}, [0, 3, 1, 2])"


@emits("conv2d")
def conv2d(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    fmt, act = a["data_format"], _activation(node)
    x, used = _in_layout(e, args[0], fmt)
    strides, dilations = _hw4(a["strides"], used), _hw4(a["dilations"], used)
    dtype = node.operands[0].type.dtype
    # conv + bias + relu is cuDNN's fused convolution (TF's GPU _FusedConv2D runs it on every CUDA version);
    # other combinations stay separate ops, which TF's grappler fuses where the device supports it
    fusable = (e.options.fused_kernels and used == "NHWC" and act == "relu" and dtype in (DType.f32, DType.f16)
               and not node.operands[0].type.quant and node.operands[1].type.is_static)
    if fusable:  # without a bias, a zero one: the fused kernel adds it for free in its epilogue
        channels = node.operands[1].type.shape[3]
        bias = args[2] if len(args) == 3 else f"tf.zeros([{channels}], {lit(dtype)})"
        fused = (f"{e.helper('fused_conv2d')}({x}, {args[1]}, {bias}, strides={strides}, "
                 f"padding={lit(a['padding'])}, dilations={dilations}, data_format={lit(used)}, "
                 f"activation={lit(act)}, name={lit(e.op_name())})")
        return _out_layout(e, fused, fmt, used)
    conv = (f"tf.nn.conv2d({x}, {args[1]}, strides={strides}, padding={lit(a['padding'])}"
            f"{_format(used)}{_dilations(a['dilations'], dilations)}, {e.name()})")
    return e.activation(_out_layout(e, _bias(e, conv, args, used), fmt, used), act)


@emits("depthwise_conv2d")
def depthwise_conv2d(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    fmt = a["data_format"]
    x, used = _in_layout(e, args[0], fmt)
    conv = (f"tf.nn.depthwise_conv2d({x}, {args[1]}, strides={_hw4(a['strides'], used)}, "
            f"padding={lit(a['padding'])}{_format(used)}{_dilations(a['dilations'], lit(a['dilations']))}, "
            f"{e.name()})")
    return e.activation(_out_layout(e, _bias(e, conv, args, used), fmt, used), _activation(node))


@emits("conv2d_transpose")
def conv2d_transpose(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    fmt = a["data_format"]
    x, used = _in_layout(e, args[0], fmt)
    shape = node.result.type.shape or tuple(a["output_shape"])
    if fmt != used:
        shape = (shape[0], shape[2], shape[3], shape[1])
    if all(isinstance(d, int) and d >= 0 for d in shape):
        output_shape = lit(shape)
    else:  # only the batch may be unknown here: take it from x at run time
        rest = [d if isinstance(d, int) else -1 for d in shape[1:]]
        if -1 in rest:
            raise ValueError("conv2d_transpose needs a static output shape apart from the batch")
        output_shape = e.bind(f"tf.stack([tf.shape({x})[0], {', '.join(map(str, rest))}])", "output_shape")
    conv = (f"tf.nn.conv2d_transpose({x}, {args[1]}, {output_shape}, strides={_hw4(a['strides'], used)}, "
            f"padding={lit(a['padding'])}{_format(used)}, {e.name()})")
    return e.activation(_out_layout(e, _bias(e, conv, args, used), fmt, used), _activation(node))


@emits("matmul")
def matmul(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    flags = "".join(f", {k}=True" for k in ("transpose_a", "transpose_b") if a[k])
    return e.activation(_bias(e, f"tf.linalg.matmul({args[0]}, {args[1]}{flags}, {e.name()})", args),
                        _activation(node))


@emits("batch_matmul")
def batch_matmul(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    flags = "".join(f", {tf}=True" for k, tf in (("adj_x", "adjoint_a"), ("adj_y", "adjoint_b")) if a[k])
    return f"tf.linalg.matmul({args[0]}, {args[1]}{flags}, {e.name()})"


@emits("max_pool", "avg_pool")
def pool(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    fn = "tf.nn.max_pool2d" if node.core_op == "max_pool" else "tf.nn.avg_pool2d"
    x, used = _in_layout(e, args[0], a["data_format"])
    expr = (f"{fn}({x}, ksize={lit(a['ksize'])}, strides={lit(a['strides'])}, padding={lit(a['padding'])}"
            f"{_format(used)}, {e.name()})")
    return e.activation(_out_layout(e, expr, a["data_format"], used), _activation(node))


@emits("batch_norm")
def batch_norm(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    x, scale, offset, mean, variance = args
    rank = node.operands[0].type.rank
    if a["data_format"] == "NCHW" and rank != 2:  # per-channel parameters broadcast along axis 1
        if rank is None:
            raise ValueError("an NCHW batch_norm needs an operand of known rank")
        shape = lit([-1] + [1] * (rank - 2))
        scale, offset, mean, variance = (e.bind(f"tf.reshape({p}, {shape})", "param")
                                         for p in (scale, offset, mean, variance))
    return (f"tf.nn.batch_normalization({x}, {mean}, {variance}, {offset}, {scale}, "
            f"variance_epsilon={lit(float(a['epsilon']))}, {e.name()})")


@emits("resize")
def resize(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    op = "ResizeBilinear" if a["method"] == "bilinear" else "ResizeNearestNeighbor"
    expr = (f"tf.raw_ops.{op}(images={args[0]}, size={lit(a['size'])}, align_corners={lit(a['align_corners'])}, "
            f"half_pixel_centers={lit(a['half_pixel_centers'])}, {e.name()})")
    out = node.result.type.dtype
    if a["method"] == "bilinear" and out is not DType.f32:  # ResizeBilinear always gives float32
        expr = f"tf.cast({expr}, {lit(out)})"
    return expr


@emits("pad")
def pad(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    value = a["constant_value"]
    if node.operands[0].type.dtype.is_integer or node.operands[0].type.dtype is DType.bool:
        value = int(value)
    extra = f", constant_values={lit(value)}" if a["mode"] == "constant" and value != 0 else ""
    return f"tf.pad({args[0]}, {lit(a['paddings'])}, mode={lit(a['mode'].upper())}{extra}, {e.name()})"


# ----- 3-D convolutions and pools (NDHWC) ------------------------------------------------------------------------------
def _dhw5(values) -> list[int]:
    return [1, *values, 1]


@emits("conv3d")
def conv3d(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    if tuple(a["dilations"]) == (1, 1, 1):
        conv = f"tf.nn.conv3d({args[0]}, {args[1]}, strides={_dhw5(a['strides'])}, padding={lit(a['padding'])}"
    else:  # TF's CPU Conv3D has no dilation: tf.nn.convolution runs it through space-to-batch
        conv = (f"tf.nn.convolution({args[0]}, {args[1]}, strides={lit(a['strides'])}, "
                f"padding={lit(a['padding'])}, dilations={lit(a['dilations'])}")
    return e.activation(_bias(e, f"{conv}, {e.name()})", args), _activation(node))


@emits("conv3d_transpose")
def conv3d_transpose(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    shape = node.result.type.shape or tuple(a["output_shape"])
    if all(isinstance(d, int) and d >= 0 for d in shape):
        output_shape = lit(shape)
    else:  # only the batch may be unknown here: take it from x at run time
        rest = [d if isinstance(d, int) else -1 for d in shape[1:]]
        if -1 in rest:
            raise ValueError("conv3d_transpose needs a static output shape apart from the batch")
        output_shape = e.bind(f"tf.stack([tf.shape({args[0]})[0], {', '.join(map(str, rest))}])", "output_shape")
    conv = (f"tf.nn.conv3d_transpose({args[0]}, {args[1]}, {output_shape}, strides={_dhw5(a['strides'])}, "
            f"padding={lit(a['padding'])}, {e.name()})")
    return e.activation(_bias(e, conv, args), _activation(node))


@emits("max_pool3d", "avg_pool3d")
def pool3d(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    fn = "tf.nn.max_pool3d" if node.op == "max_pool3d" else "tf.nn.avg_pool3d"
    return (f"{fn}({args[0]}, ksize={_dhw5(a['ksize'])}, strides={_dhw5(a['strides'])}, "
            f"padding={lit(a['padding'])}, {e.name()})")


# ----- complex numbers and Fourier transforms --------------------------------------------------------------------------
COMPLEX = {"real": "tf.math.real", "imag": "tf.math.imag", "complex_abs": "tf.math.abs", "fft": "tf.signal.fft",
           "ifft": "tf.signal.ifft", "fft2d": "tf.signal.fft2d", "ifft2d": "tf.signal.ifft2d"}
REAL_FFT = {"rfft": "tf.signal.rfft", "irfft": "tf.signal.irfft", "rfft2d": "tf.signal.rfft2d",
            "irfft2d": "tf.signal.irfft2d"}


@emits("complex")
def complex_(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.dtypes.complex({args[0]}, {args[1]}, {e.name()})"


@emits(*COMPLEX)
def complex_unary(e: Emitter, node: Node, args: list[str]) -> str:
    return f"{COMPLEX[node.op]}({args[0]}, {e.name()})"


@emits(*REAL_FFT)
def real_fft(e: Emitter, node: Node, args: list[str]) -> str:
    return f"{REAL_FFT[node.op]}({args[0]}, {lit(node.attr('fft_length'))}, {e.name()})"


# ----- shape ---------------------------------------------------------------------------------------------------------
@emits("reshape")
def reshape(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.reshape({args[0]}, {lit(node.attrs['shape'])}, {e.name()})"


@emits("dynamic_reshape")
def dynamic_reshape(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.reshape({args[0]}, {args[1]}, {e.name()})"


@emits("transpose")
def transpose(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.transpose({args[0]}, {lit(node.attrs['perm'])}, {e.name()})"


@emits("concat")
def concat(e: Emitter, node: Node, args: list[str]) -> str:
    expr = f"tf.concat([{', '.join(args)}], axis={node.attr('axis')}, {e.name()})"
    return e.activation(expr, _activation(node))


@emits("split")
def split(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.split({args[0]}, {lit(node.attrs['sizes'])}, axis={node.attr('axis')}, {e.name()})"


@emits("slice")
def slice_(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.slice({args[0]}, {lit(node.attrs['begin'])}, {lit(node.attrs['size'])}, {e.name()})"


@emits("strided_slice")
def strided_slice(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    masks = "".join(f", {k}={a[k]}" for k in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask",
                                              "shrink_axis_mask") if a.get(k))
    strides = a.get("strides") or [1] * len(a["begin"])
    return (f"tf.strided_slice({args[0]}, {lit(a['begin'])}, {lit(a['end'])}, {lit(strides)}{masks}, "
            f"{e.name()})")


@emits("gather")
def gather(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    extra = f", batch_dims={a['batch_dims']}" if a.get("batch_dims") else ""
    return f"tf.gather({args[0]}, {args[1]}, axis={a.get('axis', 0)}{extra}, {e.name()})"


@emits("squeeze")
def squeeze(e: Emitter, node: Node, args: list[str]) -> str:
    axes = node.attr("axes")
    return f"tf.squeeze({args[0]}, axis={lit(axes) if axes else None}, {e.name()})"


@emits("expand_dims")
def expand_dims(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.expand_dims({args[0]}, axis={node.attrs['axis']}, {e.name()})"


@emits("tile")
def tile(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.tile({args[0]}, {lit(node.attrs['multiples'])}, {e.name()})"


@emits("broadcast_to")
def broadcast_to(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.broadcast_to({args[0]}, {lit(node.attrs['shape'])}, {e.name()})"


@emits("shape")
def shape(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.shape({args[0]}, out_type={lit(node.attr('dtype'))}, {e.name()})"


@emits("fill")
def fill(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.fill({args[0]}, {args[1]}, {e.name()})"


@emits("pack")
def pack(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.stack([{', '.join(args)}], axis={node.attr('axis')}, {e.name()})"


@emits("unpack")
def unpack(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.unstack({args[0]}, num={len(node.results)}, axis={node.attr('axis')}, {e.name()})"


@emits("argmax")
def argmax(e: Emitter, node: Node, args: list[str]) -> str:
    return (f"tf.math.argmax({args[0]}, axis={node.attrs['axis']}, output_type={lit(node.attr('dtype'))}, "
            f"{e.name()})")


@emits("one_hot")
def one_hot(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    dtype = a["dtype"]
    on, off = (float(a[k]) if dtype.is_float else int(a[k]) for k in ("on_value", "off_value"))
    return (f"tf.one_hot({args[0]}, {a['depth']}, on_value={lit(on)}, off_value={lit(off)}, axis={a['axis']}, "
            f"dtype={lit(dtype)}, {e.name()})")


# ----- indexing ------------------------------------------------------------------------------------------------------
@emits("cumsum")
def cumsum(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    return (f"tf.math.cumsum({args[0]}, axis={a['axis']}, exclusive={a['exclusive']}, reverse={a['reverse']}, "
            f"{e.name()})")


@emits("roll")
def roll(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.roll({args[0]}, shift={lit(node.attr('shifts'))}, axis={lit(node.attr('axes'))}, {e.name()})"


def _clamped_start(e: Emitter, begin: str, x: str, size: str) -> str:
    """XLA's offsets: clamped so the block of ``size`` lies inside ``x``."""
    return e.bind(f"tf.clip_by_value(tf.cast({begin}, tf.int32), 0, tf.shape({x}) - {size})", "start")


@emits("dynamic_slice")
def dynamic_slice(e: Emitter, node: Node, args: list[str]) -> str:
    size = lit(node.attr("size"))
    return f"tf.slice({args[0]}, {_clamped_start(e, args[1], args[0], size)}, {size}, {e.name()})"


@emits("dynamic_update_slice")
def dynamic_update_slice(e: Emitter, node: Node, args: list[str]) -> str:
    """A scatter of the update at its positions (a pad would need constant paddings under XLA)."""
    x, update, begin = args
    start = _clamped_start(e, begin, x, f"tf.shape({update})")
    ranges = ", ".join(f"tf.range(tf.shape({update})[{i}])" for i in range(node.operands[1].type.rank))
    grid = e.bind(f"tf.stack(tf.meshgrid({ranges}, indexing='ij'), axis=-1)", "positions")
    return f"tf.tensor_scatter_nd_update({x}, {grid} + {start}, {update}, {e.name()})"


@emits("top_k")
def top_k(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.math.top_k({args[0]}, k={node.attr('k')}, {e.name()})"


@emits("gather_nd")
def gather_nd(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.gather_nd({args[0]}, {args[1]}, {e.name()})"


@emits("scatter_nd")
def scatter_nd(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.scatter_nd({args[0]}, {args[1]}, {lit(node.attr('shape'))}, {e.name()})"


TENSOR_SCATTER = {"tensor_scatter_update": "tf.tensor_scatter_nd_update", "tensor_scatter_add": "tf.tensor_scatter_nd_add"}


@emits(*TENSOR_SCATTER)
def tensor_scatter(e: Emitter, node: Node, args: list[str]) -> str:
    return f"{TENSOR_SCATTER[node.op]}({args[0]}, {args[1]}, {args[2]}, {e.name()})"


# ----- reduce --------------------------------------------------------------------------------------------------------
REDUCE = {"mean": "tf.math.reduce_mean", "sum": "tf.math.reduce_sum", "max": "tf.math.reduce_max",
          "min": "tf.math.reduce_min", "prod": "tf.math.reduce_prod"}


@emits(*REDUCE)
def reduce(e: Emitter, node: Node, args: list[str]) -> str:
    keep = ", keepdims=True" if node.attr("keepdims") else ""
    return f"{REDUCE[node.op]}({args[0]}, axis={lit(node.attrs['axes'])}{keep}, {e.name()})"


# ----- quantization --------------------------------------------------------------------------------------------------
@emits("quantize", "requantize")
def quantize(e: Emitter, node: Node, args: list[str]) -> str:
    x = args[0]
    if node.operands[0].type.quant:  # requantize: through real numbers, unrounded
        x = e.dequantize(x, node.operands[0].type, out="float64" if e.options.quant_float64 else "float32")
    return e.quantize(x, node.result.type)


@emits("dequantize")
def dequantize(e: Emitter, node: Node, args: list[str]) -> str:
    return e.dequantize(args[0], node.operands[0].type)


@emits("fake_quant")
def fake_quant(e: Emitter, node: Node, args: list[str]) -> str:
    a = _attrs(node)
    lo, hi = a["min"], a["max"]
    options = f"num_bits={a['num_bits']}, narrow_range={a['narrow_range']}"
    if len(lo) == 1:
        return f"tf.quantization.fake_quant_with_min_max_vars({args[0]}, {lit(float(lo[0]))}, " \
               f"{lit(float(hi[0]))}, {options}, {e.name()})"
    return f"tf.quantization.fake_quant_with_min_max_vars_per_channel({args[0]}, {lit(tuple(map(float, lo)))}, " \
           f"{lit(tuple(map(float, hi)))}, {options}, {e.name()})"

def _share_rules_with_tfl_forms() -> None:
    from irc.ops.tfl import FUSABLE_OPS, fused_name

    for core in FUSABLE_OPS:
        emits(fused_name(core))(EMITTERS[core])


_share_rules_with_tfl_forms()


# ----- control flow and recurrent layers -----------------------------------------------------------------------------
def _shape_invariant(t) -> str:
    if t.shape is None:
        return "tf.TensorShape(None)"
    return f"tf.TensorShape({lit([d if isinstance(d, int) else None for d in t.shape])})"


@emits("while")
def while_loop(e: Emitter, node: Node, args: list[str]) -> str:
    cond, body = node.regions
    cond_fn = e.region(cond, "while_cond", single=True)
    body_fn = e.region(body, "while_body")
    invariants = ", ".join(_shape_invariant(v.type) for v in body.inputs)
    bound = node.attr("max_trip_count")
    most = f", maximum_iterations={bound}" if bound >= 0 else ""
    expr = (f"tf.while_loop({cond_fn}, {body_fn}, [{', '.join(args)}], shape_invariants=[{invariants}]{most}, "
            f"{e.name()})")
    return f"{expr}[0]" if len(node.results) == 1 else expr


@emits("if")
def if_(e: Emitter, node: Node, args: list[str]) -> str:
    then, other = node.regions
    single = len(node.results) == 1
    then_fn, else_fn = e.region(then, "if_then", single=single), e.region(other, "if_else", single=single)
    inputs = ", ".join(args[1:])
    return f"tf.cond({args[0]}, lambda: {then_fn}({inputs}), lambda: {else_fn}({inputs}), {e.name()})"


@emits("reverse")
def reverse(e: Emitter, node: Node, args: list[str]) -> str:
    return f"tf.reverse({args[0]}, {lit(node.attrs['axes'])}, {e.name()})"


@emits("tfl.unidirectional_sequence_lstm")
def unidirectional_sequence_lstm(e: Emitter, node: Node, args: list[str]) -> str:
    attrs = _attrs(node)
    return (f"{e.helper('lstm')}({', '.join(args)}, time_major={attrs['time_major']!r}, "
            f"cell_clip={float(attrs['cell_clip'])!r}, {e.name()})")
