"""Convolutions, matmul, pools, batch norm, resize and pad.

TF gives strides, dilations and pool windows per dim of the data format ([1, h, w, 1] for NHWC); irc takes
[h, w]. TF's constant operands that shape the result (Conv2DBackpropInput's input_sizes, Resize's size,
Pad's paddings) become attributes.
"""

from __future__ import annotations

from irc.frontends.lowering import lowers
from irc.frontends.lowering.context import CannotLower, Lowerer, tf_dtype
from irc.frontends.tfgraph import TFNode
from irc.ir.graph import Value


def _hw(values, fmt: str, what: str) -> tuple[int, int]:
    """The (h, w) entries of a per-dim list in ``fmt``; the batch and channel entries must be 1."""
    values = [int(v) for v in values]
    if len(values) == 2:
        return values[0], values[1]
    if len(values) != 4:
        raise CannotLower(f"{what} {values} has {len(values)} entries, not 4")
    n, h, w, c = values if fmt == "NHWC" else (values[0], values[2], values[3], values[1])
    if n != 1 or c != 1:
        raise CannotLower(f"{what} {values} steps over the batch or channel dim")
    return h, w


def _format(node: TFNode) -> str:
    fmt = node.attrs.get("data_format", "NHWC")
    if fmt not in ("NHWC", "NCHW"):
        raise CannotLower(f"data_format {fmt}")
    return fmt


def _padding(cx: Lowerer, node: TFNode, x: Value, fmt: str) -> tuple[Value, str]:
    """TF's padding attr: SAME/VALID as is; EXPLICIT becomes a pad op before a VALID window."""
    padding = node.attrs.get("padding", "VALID")
    if padding in ("SAME", "VALID"):
        return x, padding
    if padding != "EXPLICIT":
        raise CannotLower(f"padding {padding}")
    flat = [int(p) for p in node.attrs.get("explicit_paddings", [])]
    if len(flat) != 8 or min(flat) < 0:
        raise CannotLower(f"explicit_paddings {flat} is not 4 pairs of sizes")
    pairs = tuple((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))
    return cx.op("pad", x, paddings=pairs), "VALID"


@lowers("Conv2D")
def conv2d(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, filt = args
    fmt = _format(node)
    x, padding = _padding(cx, node, x, fmt)
    return cx.op("conv2d", x, filt, strides=_hw(node.attrs.get("strides", [1, 1, 1, 1]), fmt, "strides"),
                 dilations=_hw(node.attrs.get("dilations", [1, 1, 1, 1]), fmt, "dilations"),
                 padding=padding, data_format=fmt)


@lowers("DepthwiseConv2dNative")
def depthwise_conv2d(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, filt = args
    fmt = _format(node)
    x, padding = _padding(cx, node, x, fmt)
    return cx.op("depthwise_conv2d", x, filt,
                 strides=_hw(node.attrs.get("strides", [1, 1, 1, 1]), fmt, "strides"),
                 dilations=_hw(node.attrs.get("dilations", [1, 1, 1, 1]), fmt, "dilations"),
                 padding=padding, data_format=fmt)


@lowers("Conv2DBackpropInput", "Conv2DBackpropInputV2")
def conv2d_transpose(cx: Lowerer, node: TFNode, args: list) -> Value:
    """The gradient of Conv2D (Keras Conv2DTranspose): input_sizes becomes output_shape (-1 where symbolic)."""
    sizes, filt, x = args
    fmt = _format(node)
    if _hw(node.attrs.get("dilations", [1, 1, 1, 1]), fmt, "dilations") != (1, 1):
        raise CannotLower("dilated transposed convolution")
    padding = node.attrs.get("padding", "VALID")
    if padding not in ("SAME", "VALID"):
        raise CannotLower(f"padding {padding}")
    if node.op == "Conv2DBackpropInputV2":  # input_sizes is a tensor of the input's shape
        dims = sizes.type.shape
    else:
        dims = cx.dims(sizes)
    if dims is None or len(dims) != 4:
        raise CannotLower("input_sizes is computed at run time")
    output_shape = tuple(d if isinstance(d, int) else -1 for d in dims)
    out = cx.op("conv2d_transpose", x, filt, output_shape=output_shape,
                strides=_hw(node.attrs.get("strides", [1, 1, 1, 1]), fmt, "strides"), padding=padding,
                data_format=fmt)
    return out


@lowers("MatMul")
def matmul(cx: Lowerer, node: TFNode, args: list) -> Value:
    a, b = args
    return cx.op("matmul", a, b, transpose_a=bool(node.attrs.get("transpose_a", False)),
                 transpose_b=bool(node.attrs.get("transpose_b", False)))


@lowers("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
def batch_matmul(cx: Lowerer, node: TFNode, args: list) -> Value:
    a, b = args
    if a.type.dtype is not b.type.dtype:  # V3 allows mixed operand types; compute in the result's
        to = tf_dtype(node.attrs.get("Tout", a.type.dtype.numpy.name))
        a, b = (v if v.type.dtype is to else cx.op("cast", v, to=to) for v in (a, b))
    out = cx.op("batch_matmul", a, b, adj_x=bool(node.attrs.get("adj_x", False)),
                adj_y=bool(node.attrs.get("adj_y", False)))
    if "Tout" in node.attrs and tf_dtype(node.attrs["Tout"]) is not out.type.dtype:
        out = cx.op("cast", out, to=tf_dtype(node.attrs["Tout"]))
    return out


@lowers("MaxPool", "AvgPool", "MaxPoolV2")
def pool(cx: Lowerer, node: TFNode, args: list) -> Value:
    x = args[0]
    fmt = _format(node)
    if node.op == "MaxPoolV2":
        ksize, strides = cx.ints(args[1], "ksize"), cx.ints(args[2], "strides")
    else:
        ksize, strides = node.attrs["ksize"], node.attrs["strides"]
    x, padding = _padding(cx, node, x, fmt)
    if node.op == "AvgPool" and node.attrs.get("padding") == "EXPLICIT":
        raise CannotLower("AvgPool with explicit padding")
    op = "avg_pool" if node.op == "AvgPool" else "max_pool"
    return cx.op(op, x, ksize=_hw(ksize, fmt, "ksize"), strides=_hw(strides, fmt, "strides"), padding=padding,
                 data_format=fmt)


@lowers("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
def fused_batch_norm(cx: Lowerer, node: TFNode, args: list) -> list:
    """Inference batch norm; the batch statistics outputs (1-5) are training-only and not lowered."""
    x, scale, offset, mean, variance = args[:5]
    if node.attrs.get("is_training", False):
        raise CannotLower("batch norm in training mode (export the model for inference)")
    fmt = _format(node)
    y = cx.op("batch_norm", x, scale, offset, mean, variance, epsilon=float(node.attrs.get("epsilon", 0.001)),
              data_format=fmt)
    return [y, None, None, None, None, None]


@lowers("ResizeBilinear", "ResizeNearestNeighbor")
def resize(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, size = args
    return cx.op("resize", x, size=tuple(cx.ints(size, "the output size")),
                 method="bilinear" if node.op == "ResizeBilinear" else "nearest",
                 align_corners=bool(node.attrs.get("align_corners", False)),
                 half_pixel_centers=bool(node.attrs.get("half_pixel_centers", False)))


@lowers("Pad", "PadV2", "MirrorPad")
def pad(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, paddings = args[:2]
    value = cx.floats(paddings, "the paddings")
    if value.ndim != 2 or value.shape[1] != 2:
        raise CannotLower(f"paddings of shape {list(value.shape)}")
    pairs = tuple((int(a), int(b)) for a, b in value.tolist())
    if not any(a or b for a, b in pairs):
        return x
    attrs = {"paddings": pairs}
    if node.op == "MirrorPad":
        attrs["mode"] = {"REFLECT": "reflect", "SYMMETRIC": "symmetric"}[node.attrs.get("mode", "REFLECT")]
    elif node.op == "PadV2":
        fill = cx.floats(args[2], "the pad value")
        if fill.size != 1:
            raise CannotLower("a pad value that is not a scalar")
        fill_value = fill.reshape(()).item()
        if fill_value != 0:
            attrs["constant_value"] = float(fill_value)
    return cx.op("pad", x, **attrs)


# ----- 3-D convolutions and pools ----------------------------------------------------------------------------------
def _dhw(node: TFNode, name: str, default=(1, 1, 1, 1, 1)) -> tuple[int, int, int]:
    """The (d, h, w) entries of a 5-entry NDHWC list; the batch and channel entries must be 1."""
    values = [int(v) for v in node.attrs.get(name, default)]
    if len(values) != 5:
        raise CannotLower(f"{name} {values} has {len(values)} entries, not 5")
    if values[0] != 1 or values[4] != 1:
        raise CannotLower(f"{name} {values} steps over the batch or channel dim")
    return tuple(values[1:4])


def _ndhwc(node: TFNode) -> str:
    if node.attrs.get("data_format", "NDHWC") != "NDHWC":
        raise CannotLower(f"data_format {node.attrs['data_format']} (irc's 3-D ops are NDHWC)")
    padding = node.attrs.get("padding", "VALID")
    if padding not in ("SAME", "VALID"):
        raise CannotLower(f"padding {padding}")
    return padding


@lowers("Conv3D")
def conv3d(cx: Lowerer, node: TFNode, args: list) -> Value:
    x, filt = args
    padding, strides, dilations = _ndhwc(node), _dhw(node, "strides"), _dhw(node, "dilations")
    origin = cx.space_to_batch.get(x)
    if origin is not None and len(origin[1]) == 3 and (padding, strides, dilations) == ("VALID", (1,) * 3, (1,) * 3) \
            and _only_consumers(cx, node.name, "BatchToSpaceND"):
        # tf.nn.convolution's dilated Conv3D: SpaceToBatchND, a plain convolution per phase, BatchToSpaceND. As one
        # dilated convolution over the padded input (BatchToSpaceND then only crops), as TF's converter makes it.
        padded, block = origin
        out = cx.op("conv3d", padded, filt, dilations=block)
        cx.dilated[out] = block
        return out
    return cx.op("conv3d", x, filt, strides=strides, dilations=dilations, padding=padding)


def _only_consumers(cx: Lowerer, name: str, op: str) -> bool:
    """Whether every TF node that reads node ``name`` is an ``op`` (and no output does)."""
    nodes = [*cx.tfgraph.nodes, *(n for f in cx.tfgraph.functions.values() for n in f.nodes)]
    outputs = [ref for _, ref in cx.tfgraph.outputs] + [ref for f in cx.tfgraph.functions.values()
                                                        for _, ref in f.outputs]
    readers = [n for n in nodes if any(i.lstrip("^").split(":")[0] == name for i in n.inputs)]
    return bool(readers) and all(n.op == op for n in readers) and all(r.split(":")[0] != name for r in outputs)


@lowers("Conv3DBackpropInputV2")
def conv3d_transpose(cx: Lowerer, node: TFNode, args: list) -> Value:
    """The gradient of Conv3D (Keras Conv3DTranspose): input_sizes becomes output_shape (-1 where symbolic)."""
    sizes, filt, x = args
    padding = _ndhwc(node)
    if _dhw(node, "dilations") != (1, 1, 1):
        raise CannotLower("dilated transposed convolution")
    dims = cx.dims(sizes)
    if dims is None or len(dims) != 5:
        raise CannotLower("input_sizes is computed at run time")
    output_shape = tuple(d if isinstance(d, int) else -1 for d in dims)
    return cx.op("conv3d_transpose", x, filt, output_shape=output_shape, strides=_dhw(node, "strides"),
                 padding=padding)


@lowers("MaxPool3D", "AvgPool3D")
def pool3d(cx: Lowerer, node: TFNode, args: list) -> Value:
    padding = _ndhwc(node)
    op = "max_pool3d" if node.op == "MaxPool3D" else "avg_pool3d"
    return cx.op(op, args[0], ksize=_dhw(node, "ksize"), strides=_dhw(node, "strides"), padding=padding)
