"""TFLite emitters for neural-network ops: convolutions, matmul, pools, batch norm, resize and pad.

TFLite's spatial operators are NHWC only: an NCHW node (left by ``-O0``; the default pipeline makes the graph
NHWC) is written between two TRANSPOSEs. Filters are rewritten to TFLite's layouts when they are constants
(CONV_2D takes OHWI, DEPTHWISE_CONV_2D [1, kh, kw, in * multiplier], TRANSPOSE_CONV [out, kh, kw, in],
FULLY_CONNECTED [out, in]) and through a TRANSPOSE or RESHAPE operator when they are computed; a per-axis
quantized filter keeps its channel axis through the rewrite.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from irc.backends.tflite.ops import (
    ACTIVATION_OPS,
    activated,
    emits,
    fused_activation,
    needs_rank,
    no_wide_floats,
    permuted,
    scalar,
    transposed,
    with_tfl,
)
from irc.ir.graph import Node, Value
from irc.ir.types import DType, TensorType

TO_NHWC, TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


# ----- helpers ---------------------------------------------------------------------------------------------------------
def rewritten_constant(b, value: Value, perm=None, shape=None, axis_map=None) -> int:
    """Constant ``value`` transposed by ``perm`` and/or reshaped to ``shape``, its quant axis moved to match."""
    array = value.constant
    if perm is not None:
        array = np.transpose(array, perm)
    if shape is not None:
        array = array.reshape(shape)
    q = value.type.quant
    if q is not None and q.axis is not None:
        axis = perm.index(q.axis) if perm is not None else q.axis
        axis = axis_map(axis) if axis_map is not None else axis
        q = replace(q, axis=axis)
    return b.constant(np.ascontiguousarray(array), type=TensorType(value.type.dtype, array.shape, q),
                      name=b.name_of(value.producer))


def widened_constant(value: Value) -> Value | None:
    """The stored constant of weights that a ``dequantize`` widens to float (weight-only quantization), or None."""
    p = value.producer
    if p is not None and p.op == "dequantize" and p.operands[0].is_constant:
        return p.operands[0]
    return None


def takes_widened_weights(node: Node, index: int) -> bool:
    """Whether ``node``'s emitter writes its operand ``index`` from the stored constant when a dequantize widens
    one (so that the constant is rewritten to TFLite's layout once, in its small integer form)."""
    if index != 1 or node.core_op not in ("conv2d", "depthwise_conv2d", "matmul", "batch_matmul"):
        return False
    if node.core_op == "batch_matmul":
        return _weights_2d(node.operands[0], node.operands[1], node.attr("adj_x"), node.attr("adj_y"))
    return True


def weights_tensor(b, value: Value, **rewrite) -> int | None:
    """Constant weights rewritten to TFLite's layout (``rewritten_constant``). Weights widened from a quantized
    constant are rewritten in their stored form and widened by a DEQUANTIZE of their own, which LiteRT runs once,
    when it prepares the model. None for computed weights."""
    if value.is_constant:
        return rewritten_constant(b, value, **rewrite)
    stored = widened_constant(value)
    if stored is None:
        return None
    index = rewritten_constant(b, stored, **rewrite)
    out = b.temp(TensorType(DType.f32, tuple(b.tensors[index].shape)), "dequantized")
    b.op("DEQUANTIZE", [index], [out])
    return out


def reshaped(b, index: int, type: TensorType, shape, suffix: str) -> int:
    """A RESHAPE of tensor ``index`` to ``shape`` (one entry may be -1)."""
    out = b.temp(type.with_shape(tuple(None if d < 0 else d for d in shape)), suffix)
    b.op("RESHAPE", [index, b.int_vector(shape)], [out])
    return out


def spatial(b, node: Node, code: str, inputs: list[int], fields: dict) -> None:
    """An NHWC spatial operator on ``inputs[x_at]`` with the node's activation; NCHW nodes between transposes."""
    x = node.operands[0]
    if node.attr("data_format") == "NHWC":
        activated(b, node, code, inputs, fields)
        return
    inputs = list(inputs)
    at = inputs.index(b.tensor(x))
    inputs[at] = transposed(b, inputs[at], x.type, TO_NHWC, "to_nhwc")
    out_type = permuted(node.result.type, TO_NHWC)
    inner = b.temp(out_type, "nhwc")
    activated(b, node, code, inputs, fields, out=inner)
    b.op("TRANSPOSE", [inner, b.int_vector(TO_NCHW)], [b.result(node.result)])


def window_fields(node: Node) -> dict:
    (sh, sw), padding = node.attr("strides"), node.attr("padding")
    return {"padding": padding, "stride_h": sh, "stride_w": sw}


def bias_or_zeros(b, node: Node, channels) -> int:
    """The bias operand; a zero bias for float ops without one (TFLite's float kernels expect it), else -1."""
    if len(node.operands) > 2:
        return b.tensor(node.operands[2])
    x = node.operands[0].type
    if x.quant is None and x.dtype.is_float and isinstance(channels, int):
        return b.constant(np.zeros(channels, x.dtype.numpy))
    return -1


def bias_type(b, bias: int, x: int) -> dict:
    """``quantized_bias_type`` for an integer bias, and for int16 kernels (which insist on it), else nothing."""
    if bias >= 0 and b.type_of(bias) in ("INT32", "INT64"):
        return {"quantized_bias_type": b.type_of(bias)}
    if b.type_of(x) == "INT16":
        return {"quantized_bias_type": "INT64"}
    return {}


def conv_check(node: Node) -> str | None:
    return needs_rank(0, 1)(node) or no_wide_floats(node)


# ----- convolutions ----------------------------------------------------------------------------------------------------
@emits(*with_tfl("conv2d"), check=conv_check)
def conv2d(b, node):
    x, f = node.operands[:2]
    weights = weights_tensor(b, f, perm=(3, 0, 1, 2))  # HWIO -> OHWI
    if weights is None:
        weights = transposed(b, b.tensor(f), f.type, (3, 0, 1, 2), "filter_ohwi")
    (dh, dw) = node.attr("dilations")
    bias = bias_or_zeros(b, node, f.type.shape[3])
    fields = {**window_fields(node), "dilation_h_factor": dh, "dilation_w_factor": dw, **bias_type(b, bias, b.tensor(x))}
    spatial(b, node, "CONV_2D", [b.tensor(x), weights, bias], fields)


@emits(*with_tfl("depthwise_conv2d"), check=conv_check)
def depthwise_conv2d(b, node):
    x, f = node.operands[:2]
    kh, kw, cin, mult = f.type.shape
    channels = cin * mult if isinstance(cin, int) and isinstance(mult, int) else None
    # [kh, kw, in, mult] -> [1, kh, kw, in * mult]: output channel c * mult + m, as TFLite counts them
    weights = weights_tensor(b, f, shape=(1, kh, kw, channels), axis_map=lambda axis: 3)
    if weights is None:
        weights = reshaped(b, b.tensor(f), f.type, (1, kh, kw, -1 if channels is None else channels), "filter")
    (dh, dw) = node.attr("dilations")
    fields = {**window_fields(node), "depth_multiplier": mult, "dilation_h_factor": dh, "dilation_w_factor": dw}
    spatial(b, node, "DEPTHWISE_CONV_2D", [b.tensor(x), weights, bias_or_zeros(b, node, channels)], fields)


def _transpose_conv_check(node: Node) -> str | None:
    problem = conv_check(node)
    if problem:
        return problem
    shape = node.result.type.shape
    if shape is None or not all(isinstance(d, int) for d in shape[1:]):
        return "TRANSPOSE_CONV needs the output's spatial size and channels known"
    return None


@emits(*with_tfl("conv2d_transpose"), check=_transpose_conv_check)
def conv2d_transpose(b, node):
    x, f = node.operands[:2]
    if f.is_constant:
        weights = rewritten_constant(b, f, perm=(2, 0, 1, 3))  # [kh, kw, out, in] -> [out, kh, kw, in]
    else:
        weights = transposed(b, b.tensor(f), f.type, (2, 0, 1, 3), "filter_ohwi")
    nchw = node.attr("data_format") == "NCHW"
    out_type = permuted(node.result.type, TO_NHWC) if nchw else node.result.type
    n, h, w, c = out_type.shape
    if isinstance(n, int):
        output_shape = b.int_vector([n, h, w, c])
    else:  # a batch known only at run time: [shape(x)[0], h, w, c]
        xi = b.tensor(x)
        x_shape = b.temp(TensorType(DType.i32, (4,)), "input_shape")
        b.op("SHAPE", [xi], [x_shape], {"out_type": "INT32"})
        batch = b.temp(TensorType(DType.i32, (1,)), "batch")
        b.op("SLICE", [x_shape, b.int_vector([0]), b.int_vector([1])], [batch])
        output_shape = b.temp(TensorType(DType.i32, (4,)), "output_shape")
        b.op("CONCATENATION", [batch, b.int_vector([h, w, c])], [output_shape], {"axis": 0})
    inputs = [output_shape, weights, b.tensor(x)]
    if len(node.operands) > 2:
        inputs.append(b.tensor(node.operands[2]))
    bias = inputs[3] if len(inputs) > 3 else -1
    spatial(b, node, "TRANSPOSE_CONV", inputs, {**window_fields(node), **bias_type(b, bias, inputs[2])})


# ----- matmul ----------------------------------------------------------------------------------------------------------
@emits(*with_tfl("matmul"), check=lambda node: no_wide_floats(node))
def matmul(b, node):
    a, w = node.operands[:2]
    ai = b.tensor(a)
    if node.attr("transpose_a"):
        ai = transposed(b, ai, a.type, (1, 0), "a_transposed")
    bias = b.tensor(node.operands[2]) if len(node.operands) > 2 else -1
    if w.is_constant or widened_constant(w) is not None:
        weights = weights_tensor(b, w) if node.attr("transpose_b") else weights_tensor(b, w, perm=(1, 0))
        keep = {"keep_num_dims": True} if a.type.rank > 2 else {}  # tfl.matmul keeps a's leading dims
        activated(b, node, "FULLY_CONNECTED", [ai, weights, bias], {**bias_type(b, bias, ai), **keep})
        return
    _batch_matmul(b, node, ai, b.tensor(w), adj_x=False, adj_y=node.attr("transpose_b"), bias=bias)


def _batch_matmul(b, node: Node, ai: int, wi: int, *, adj_x: bool, adj_y: bool, bias: int = -1) -> None:
    """BATCH_MATMUL (which fuses nothing), then the bias add and the activation."""
    act = fused_activation(node)
    fields = {"adj_x": adj_x, "adj_y": adj_y}
    if bias < 0 and act == "none":
        b.op("BATCH_MATMUL", [ai, wi], [b.result(node.result)], fields)
        return
    product = b.temp(node.result.type, "matmul")
    b.op("BATCH_MATMUL", [ai, wi], [product], fields)
    if bias >= 0:
        activated(b, node, "ADD", [product, bias])
    else:
        b.op(ACTIVATION_OPS[act], [product], [b.result(node.result)])


def _weights_2d(a: Value, w: Value, adj_x: bool, adj_y: bool) -> bool:
    """Whether batch_matmul(a, w) is a FULLY_CONNECTED: constant w with no batch of its own, a not adjointed."""
    ra, rw = a.type.rank, w.type.rank
    if widened_constant(w) is not None:
        w = widened_constant(w)
    if adj_x or not w.is_constant or ra is None or rw is None or ra < 2 or rw > ra:
        return False
    if any(d != 1 for d in w.type.shape[:-2]):
        return False
    q = w.type.quant  # per-axis parameters must run along the output channels
    return q is None or q.axis is None or q.axis == (rw - 2 if adj_y else rw - 1)


@emits("batch_matmul", check=no_wide_floats)
def batch_matmul(b, node):
    a, w = node.operands
    adj_x, adj_y = node.attr("adj_x"), node.attr("adj_y")
    if _weights_2d(a, w, adj_x, adj_y):
        # as TensorFlow's converter: a constant right-hand side is a FULLY_CONNECTED that keeps a's leading dims
        stored = widened_constant(w) or w
        k, n = stored.type.shape[-2:]
        matrix = stored.constant.reshape(k, n)
        weights = matrix if adj_y else matrix.T  # FULLY_CONNECTED takes [out, in]
        q = stored.type.quant
        if q is not None and q.axis is not None:
            q = replace(q, axis=0)
        wi = b.constant(np.ascontiguousarray(weights), type=TensorType(stored.type.dtype, weights.shape, q),
                        name=b.name_of(stored.producer))
        if stored is not w:
            widened = b.temp(TensorType(DType.f32, weights.shape), "dequantized")
            b.op("DEQUANTIZE", [wi], [widened])
            wi = widened
        keep = a.type.rank > 2
        b.op("FULLY_CONNECTED", [b.tensor(a), wi, -1], [b.result(node.result)],
             {"keep_num_dims": True} if keep else None)
        return
    _batch_matmul(b, node, b.tensor(a), b.tensor(w), adj_x=adj_x, adj_y=adj_y)


# ----- pools -----------------------------------------------------------------------------------------------------------
def _pool(code: str):
    def emit(b, node):
        kh, kw = node.attr("ksize")
        fields = {**window_fields(node), "filter_height": kh, "filter_width": kw}
        spatial(b, node, code, [b.tensor(node.operands[0])], fields)

    return emit


emits(*with_tfl("max_pool"), check=conv_check)(_pool("MAX_POOL_2D"))
emits(*with_tfl("avg_pool"), check=conv_check)(_pool("AVERAGE_POOL_2D"))


# ----- batch norm, resize, pad -----------------------------------------------------------------------------------------
def _bn_check(node: Node) -> str | None:
    return needs_rank(0)(node) or no_wide_floats(node)


@emits("batch_norm", check=_bn_check)
def batch_norm(b, node):
    # x * inv + shift with inv = scale / sqrt(variance + epsilon), shift = offset - mean * inv (the default
    # pipeline folds batch norms into the convolutions before them; this is what is left)
    x, scale, offset, mean, var = node.operands
    rank = x.type.rank
    shape = (-1,) + (1,) * (rank - 2) if node.attr("data_format") == "NCHW" and rank > 2 else (-1,)
    eps = float(node.attr("epsilon"))
    if all(v.is_constant for v in (scale, offset, mean, var)):
        inv = scale.constant.astype(np.float32) / np.sqrt(var.constant.astype(np.float32) + np.float32(eps))
        shift = offset.constant.astype(np.float32) - mean.constant.astype(np.float32) * inv
        dtype = x.type.dtype.numpy
        inv_t, shift_t = b.constant(inv.reshape(shape).astype(dtype)), b.constant(shift.reshape(shape).astype(dtype))
    else:
        channels = scale.type.shape[0] if scale.type.shape else None
        ptype = TensorType(x.type.dtype, (channels,) + (1,) * (len(shape) - 1))

        def step(code, inputs, suffix):
            out = b.temp(ptype, suffix)
            b.op(code, inputs, [out])
            return out

        def param(v: Value, suffix: str) -> int:
            index = b.tensor(v)
            return reshaped(b, index, v.type, shape, suffix) if len(shape) > 1 else index

        denom = step("RSQRT", [step("ADD", [param(var, "variance"), scalar(b, eps, x.type)], "var_eps")], "rsqrt")
        inv_t = step("MUL", [denom, param(scale, "scale")], "inv")
        shift_t = step("SUB", [param(offset, "offset"), step("MUL", [param(mean, "mean"), inv_t], "mean_inv")],
                       "shift")
    scaled = b.temp(x.type, "scaled")
    b.op("MUL", [b.tensor(x), inv_t], [scaled])
    b.op("ADD", [scaled, shift_t], [b.result(node.result)])


@emits("resize", check=lambda node: needs_rank(0)(node) or no_wide_floats(node))
def resize(b, node):
    code = "RESIZE_BILINEAR" if node.attr("method") == "bilinear" else "RESIZE_NEAREST_NEIGHBOR"
    fields = {"align_corners": node.attr("align_corners"), "half_pixel_centers": node.attr("half_pixel_centers")}
    b.op(code, [b.tensor(node.operands[0]), b.int_vector(node.attr("size"))], [b.result(node.result)], fields)


@emits("pad", check=lambda node: needs_rank(0)(node) or no_wide_floats(node))
def pad(b, node):
    x = node.operands[0]
    paddings = b.int_constant(np.asarray(node.attr("paddings"), np.int32).reshape(-1, 2))
    mode, value = node.attr("mode"), float(node.attr("constant_value"))
    out = b.result(node.result)
    if mode != "constant":
        b.op("MIRROR_PAD", [b.tensor(x), paddings], [out], {"mode": mode.upper()})
    elif value == 0.0:
        b.op("PAD", [b.tensor(x), paddings], [out])  # quantized: TFLite pads with the zero point (real 0)
    else:
        b.op("PADV2", [b.tensor(x), paddings, scalar(b, value, x.type)], [out])


# ----- 3-D convolutions and pools --------------------------------------------------------------------------------------
def _spatial_3d(node: Node) -> tuple:
    return tuple(node.operands[0].type.shape[1:4]) if node.operands[0].type.rank == 5 else (None,) * 3


def _windows_3d(node: Node) -> tuple:
    """(kernel, strides, dilations) of a 3-D window op, each (d, h, w)."""
    if node.core_op in ("max_pool3d", "avg_pool3d"):
        return tuple(node.attr("ksize")), tuple(node.attr("strides")), (1, 1, 1)
    return tuple(node.operands[1].type.shape[:3]), tuple(node.attr("strides")), tuple(node.attr("dilations"))


def _crop_check(node: Node) -> str | None:
    """TensorFlow's 3-D SAME windows narrower than the stride may start inside the input (ops/nn.py's padding_3d):
    the emitter crops those axes, which needs their size."""
    if node.attr("padding") != "SAME":
        return None
    k, strides, dilations = _windows_3d(node)
    for axis, (size, kk, s, d) in enumerate(zip(_spatial_3d(node), k, strides, dilations)):
        if not isinstance(size, int) and (not isinstance(kk, int) or (kk - 1) * d + 1 < s):
            return f"a SAME window narrower than its stride over spatial dim {axis + 1} needs that dim's size"
    return None


def _cropped_3d(b, node: Node) -> int:
    """The input tensor of a 3-D window op, its leading rows cut where TensorFlow's SAME padding is negative."""
    from irc.ops.nn import padding_3d

    x = node.operands[0]
    index = b.tensor(x)
    if node.attr("padding") != "SAME":
        return index
    k, strides, dilations = _windows_3d(node)
    cuts = [0] * 5
    for axis, (size, kk, s, d) in enumerate(zip(_spatial_3d(node), k, strides, dilations)):
        if (kk - 1) * d + 1 < s:
            cuts[axis + 1] = max(-padding_3d(size, kk, s, d, "SAME")[0], 0)
    if not any(cuts):
        return index
    shape = tuple(d - c if isinstance(d, int) else d for d, c in zip(x.type.shape, cuts))
    out = b.temp(x.type.with_shape(shape), "cropped")
    b.op("SLICE", [index, b.int_vector(cuts), b.int_vector([-1] * 5)], [out])
    return out


def _fields_3d(node: Node, dilations=(1, 1, 1)) -> dict:
    (sd, sh, sw), (dd, dh, dw) = node.attr("strides"), dilations
    return {"padding": node.attr("padding"), "stride_d": sd, "stride_h": sh, "stride_w": sw,
            "dilation_d_factor": dd, "dilation_h_factor": dh, "dilation_w_factor": dw}


def _conv3d_check(node: Node) -> str | None:
    for v in (*node.operands[:2], node.result):
        if v.type.dtype is not DType.f32 or v.type.quant is not None:
            return "TFLite's CONV_3D computes in float32 only"
    return needs_rank(0, 1)(node) or _crop_check(node)


@emits(*with_tfl("conv3d"), check=_conv3d_check)
def conv3d(b, node):
    # TFLite's filter layout is TensorFlow's [kd, kh, kw, in, out]
    inputs = [_cropped_3d(b, node), b.tensor(node.operands[1])]
    if len(node.operands) > 2:
        inputs.append(b.tensor(node.operands[2]))
    activated(b, node, "CONV_3D", inputs, _fields_3d(node, node.attr("dilations")))


def _conv3d_transpose_check(node: Node) -> str | None:
    shape = node.result.type.shape
    if shape is None or not all(isinstance(d, int) for d in shape[1:]):
        return "CONV_3D_TRANSPOSE needs the output's spatial size and channels known"
    return no_wide_floats(node)


@emits(*with_tfl("conv3d_transpose"), check=_conv3d_transpose_check)
def conv3d_transpose(b, node):
    x, f = node.operands[:2]
    n, *rest = node.result.type.shape
    if isinstance(n, int):
        output_shape = b.int_vector([n, *rest])
    else:  # a batch known only at run time: [shape(x)[0], d, h, w, c]
        x_shape = b.temp(TensorType(DType.i32, (5,)), "input_shape")
        b.op("SHAPE", [b.tensor(x)], [x_shape], {"out_type": "INT32"})
        batch = b.temp(TensorType(DType.i32, (1,)), "batch")
        b.op("SLICE", [x_shape, b.int_vector([0]), b.int_vector([1])], [batch])
        output_shape = b.temp(TensorType(DType.i32, (5,)), "output_shape")
        b.op("CONCATENATION", [batch, b.int_vector(rest)], [output_shape], {"axis": 0})
    inputs = [output_shape, b.tensor(f), b.tensor(x)]  # the filter is TensorFlow's [kd, kh, kw, out, in]
    if len(node.operands) > 2:
        inputs.append(b.tensor(node.operands[2]))
    activated(b, node, "CONV_3D_TRANSPOSE", inputs, _fields_3d(node))


def _pool3d_check(node: Node) -> str | None:
    x, y = node.operands[0].type, node.result.type
    if x.rank != 5 or not all(isinstance(d, int) for d in (*x.shape[1:], *y.shape[1:])):
        return "the 3-D pool is written as two 2-D pools, which needs the input's and result's sizes but the batch"
    return no_wide_floats(node) or _crop_check(node)


def _pool3d(code: str):
    def emit(b, node):
        """max/avg over (d, h, w) = that over d of that over (h, w): each a 2-D pool between reshapes. Exact for
        both (a window and its padding are products of per-axis ranges, so are an average's counts)."""
        x, y = node.operands[0], node.result
        (kd, kh, kw), (sd, sh, sw) = node.attr("ksize"), node.attr("strides")
        padding = node.attr("padding")
        index = _cropped_3d(b, node)
        n, d, h, w, c = b.tensors[index].shape_signature or b.tensors[index].shape  # n is -1 if not known
        od, oh, ow = y.type.shape[1:4]
        nd = n * d if n >= 0 else -1
        planes = _reshaped_3d(b, index, x.type, (nd, h, w, c), "planes")
        if (kh, kw, sh, sw) != (1, 1, 1, 1):
            pooled = b.temp(y.type.with_shape(_static((nd, oh, ow, c))), "hw_pooled")
            fields = {"padding": padding, "stride_h": sh, "stride_w": sw, "filter_height": kh, "filter_width": kw}
            b.op(code, [planes], [pooled], fields)
            planes = pooled
        columns = _reshaped_3d(b, planes, y.type, (n, d, oh * ow, c), "columns")
        if (kd, sd) != (1, 1):
            pooled = b.temp(y.type.with_shape(_static((n, od, oh * ow, c))), "d_pooled")
            fields = {"padding": padding, "stride_h": sd, "stride_w": 1, "filter_height": kd, "filter_width": 1}
            b.op(code, [columns], [pooled], fields)
            columns = pooled
        b.op("RESHAPE", [columns], [b.result(y)], {"new_shape": [n, od, oh, ow, c]})

    return emit


def _static(shape) -> tuple:
    return tuple(None if d < 0 else d for d in shape)


def _reshaped_3d(b, index: int, type: TensorType, shape, suffix: str) -> int:
    """A RESHAPE of tensor ``index`` to ``shape``, which it takes in its options (TFLite's one-input form: no shape
    tensor to write). The batch is written where it is known, so the result needs no shape signature."""
    out = b.temp(type.with_shape(_static(shape)), suffix)
    b.op("RESHAPE", [index], [out], {"new_shape": list(shape)})
    return out


emits("max_pool3d", check=_pool3d_check)(_pool3d("MAX_POOL_2D"))
emits("avg_pool3d", check=_pool3d_check)(_pool3d("AVERAGE_POOL_2D"))
