"""Neural-network ops: convolutions, matmul, pools, batch norm, resize and pad; 3-D convolutions and pools.

Spatial ops take ``data_format`` NHWC (default) or NCHW; kernels compute in NHWC and transpose around it.
``strides``, ``dilations`` and ``ksize`` are ``[h, w]``. SAME padding is TensorFlow's: the output has
ceil(in / stride) positions and the extra padding goes after (pad_before = total // 2).

``conv2d_transpose`` is TensorFlow's Conv2DBackpropInput: ``output_shape`` is the full result shape in the op's
data_format (the input of the forward convolution); an entry of -1 is taken from the operands (batch from x,
channels from the filter, spatial size in * stride for SAME and (in - 1) * stride + k for VALID).
"""

from __future__ import annotations

import numpy as np

from irc.ir.types import Dim, DType, SymDim, TensorType, scale_dim
from irc.ops.activation import Fusable
from irc.ops.base import (
    PURE,
    QUANT_PRESERVING,
    Attr,
    OpDef,
    broadcast_shapes,
    register,
    same_type,
)
from irc.ops.shape import keep_quant, merge_dims

PADDING = Attr("str", "VALID", ("VALID", "SAME"))
DATA_FORMAT = Attr("str", "NHWC", ("NHWC", "NCHW"))


# ----- layout and window helpers -----------------------------------------------------------------------------------
def to_nhwc(shape: tuple | None, fmt: str) -> tuple:
    """(n, h, w, c) of a rank-4 shape in ``fmt`` (all None when the rank is unknown)."""
    if shape is None:
        return (None, None, None, None)
    if len(shape) != 4:
        raise ValueError(f"expected a rank-4 {fmt} tensor, got rank {len(shape)}")
    return tuple(shape) if fmt == "NHWC" else (shape[0], shape[2], shape[3], shape[1])


def from_nhwc(n, h, w, c, fmt: str) -> tuple:
    return (n, h, w, c) if fmt == "NHWC" else (n, c, h, w)


def _pair(values, what: str) -> tuple[int, int]:
    if len(values) != 2 or any(v < 1 for v in values):
        raise ValueError(f"{what} must be two positive ints [h, w], got {list(values)}")
    return values[0], values[1]


def window_out(size: Dim, k: Dim, stride: int, dilation: int, padding: str) -> Dim:
    """Output length of a sliding window over ``size`` positions."""
    if not isinstance(k, int):
        return None
    eff = (k - 1) * dilation + 1
    if not isinstance(size, int):
        keeps = stride == 1 and (padding == "SAME" or eff == 1)
        if keeps or not isinstance(size, SymDim):
            return size if keeps else None
        # a symbol of its own, named by what it is computed from: the same window over the same symbol gives
        # the same symbol (Whisper's stride-2 Conv1D meets its position table's slice of that length)
        if padding == "SAME":
            return SymDim(f"{size.name}_ceildiv{stride}")
        return SymDim(f"{size.name}_window{eff}_stride{stride}")
    if padding == "SAME":
        return -(-size // stride)
    if size < eff:
        raise ValueError(f"window of {eff} does not fit in {size} positions with VALID padding")
    return (size - eff) // stride + 1


def same_padding(size: int, k: int, stride: int, dilation: int, padding: str) -> tuple[int, int]:
    """(before, after) padding of one spatial axis, as TensorFlow."""
    if padding == "VALID":
        return 0, 0
    eff = (k - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _pad_hw(x: np.ndarray, pads, value=0) -> np.ndarray:
    if not any(pads[0] + pads[1]):
        return x
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def _taps(x: np.ndarray, k, stride, dilation, padding, value=0):
    """Pads NHWC ``x`` and yields ((i, j), view) for each kernel tap: view[:, oh, ow, :] is the input under tap
    (i, j) for output position (oh, ow)."""
    (kh, kw), (sh, sw), (dh, dw) = k, stride, dilation
    h, w = x.shape[1:3]
    oh, ow = window_out(h, kh, sh, dh, padding), window_out(w, kw, sw, dw, padding)
    pads = (same_padding(h, kh, sh, dh, padding), same_padding(w, kw, sw, dw, padding))
    xp = _pad_hw(x, pads, value)
    for i in range(kh):
        for j in range(kw):
            yield (i, j), xp[:, i * dh: i * dh + (oh - 1) * sh + 1: sh, j * dw: j * dw + (ow - 1) * sw + 1: sw, :]


def _add_bias(y: np.ndarray, inputs: list, channel_axis: int = -1) -> np.ndarray:
    if len(inputs) < 3:
        return y
    shape = [1] * y.ndim
    shape[channel_axis] = -1
    return y + inputs[2].reshape(shape).astype(y.dtype, copy=False)


def _check_dtypes(types: list[TensorType]) -> None:
    """x and filter share a dtype; a float bias too (quantized graphs carry i32 biases)."""
    x, f = types[0], types[1]
    if x.dtype != f.dtype and not (x.quant or f.quant):
        raise ValueError(f"operand dtypes differ: {x.dtype.value} and {f.dtype.value}")
    if len(types) > 2 and types[2].dtype != x.dtype and not (x.quant or types[2].quant):
        raise ValueError(f"bias dtype {types[2].dtype.value} differs from the input's {x.dtype.value}")


def _check_bias(types: list[TensorType], channels: Dim) -> None:
    if len(types) > 2 and types[2].shape is not None:
        if len(types[2].shape) != 1:
            raise ValueError(f"bias must have rank 1, got rank {len(types[2].shape)}")
        merge_dims(types[2].shape[0], channels, "bias length and output channels")


def _filter_dims(t: TensorType) -> tuple:
    if t.shape is None:
        return (None, None, None, None)
    if len(t.shape) != 4:
        raise ValueError(f"the filter must have rank 4, got rank {len(t.shape)}")
    return t.shape


# ----- convolutions ------------------------------------------------------------------------------------------------
class Conv(Fusable):
    operands = ("x", "filter", "bias?")
    attrs = {
        "strides": Attr("ints", (1, 1)), "padding": PADDING, "dilations": Attr("ints", (1, 1)),
        "data_format": DATA_FORMAT,
    }

    def out_channels(self, c: Dim, kin: Dim, kout: Dim) -> Dim:
        raise NotImplementedError

    def infer(self, types, attrs, consts):
        _check_dtypes(types)
        fmt = attrs["data_format"]
        n, h, w, c = to_nhwc(types[0].shape, fmt)
        kh, kw, kin, kout = _filter_dims(types[1])
        (sh, sw), (dh, dw) = _pair(attrs["strides"], "strides"), _pair(attrs["dilations"], "dilations")
        oc = self.out_channels(c, kin, kout)
        _check_bias(types, oc)
        oh, ow = window_out(h, kh, sh, dh, attrs["padding"]), window_out(w, kw, sw, dw, attrs["padding"])
        return [TensorType(types[0].dtype, from_nhwc(n, oh, ow, oc, fmt))]

    def compute(self, inputs, attrs):
        fmt = attrs["data_format"]
        x = inputs[0] if fmt == "NHWC" else inputs[0].transpose(0, 2, 3, 1)
        y = _add_bias(self.nhwc(x, inputs[1], attrs), inputs)
        return [y if fmt == "NHWC" else y.transpose(0, 3, 1, 2)]

    def nhwc(self, x: np.ndarray, f: np.ndarray, attrs: dict) -> np.ndarray:
        raise NotImplementedError


@register
class Conv2D(Conv):
    name = "conv2d"
    summary = "2-D convolution with an HWIO filter; in-channels a multiple of the filter's gives grouped conv."

    def out_channels(self, c, kin, kout):
        if isinstance(c, int) and isinstance(kin, int):
            if c % kin:
                raise ValueError(f"input channels {c} are not a multiple of the filter's in-channels {kin}")
            if isinstance(kout, int) and kout % (c // kin):
                raise ValueError(f"filter out-channels {kout} are not divisible by the {c // kin} groups")
        return kout

    def nhwc(self, x, f, attrs):
        kh, kw, kin, kout = f.shape
        groups = x.shape[3] // kin
        taps = [t for _, t in _taps(x, (kh, kw), attrs["strides"], attrs["dilations"], attrs["padding"])]
        cols = taps[0] if len(taps) == 1 else np.stack(taps, axis=3)  # im2col: [n, oh, ow, kh*kw, c]
        n, oh, ow = cols.shape[:3]
        cols = cols.reshape(n * oh * ow, kh * kw, groups, kin)
        f = f.reshape(kh * kw, kin, groups, kout // groups).astype(x.dtype, copy=False)
        outs = [cols[:, :, g].reshape(n * oh * ow, kh * kw * kin) @ f[:, :, g].reshape(kh * kw * kin, -1)
                for g in range(groups)]
        y = outs[0] if groups == 1 else np.concatenate(outs, axis=1)
        return y.reshape(n, oh, ow, kout)


@register
class DepthwiseConv2D(Conv):
    name = "depthwise_conv2d"
    summary = "Depthwise 2-D convolution; filter [kh, kw, in, multiplier], out channel c*multiplier + m."

    def out_channels(self, c, kin, kout):
        c = merge_dims(c, kin, "input channels and the filter's in-channels")
        return c * kout if isinstance(c, int) and isinstance(kout, int) else None

    def nhwc(self, x, f, attrs):
        kh, kw, c, m = f.shape
        acc = None
        f = f.astype(x.dtype, copy=False)
        for (i, j), tap in _taps(x, (kh, kw), attrs["strides"], attrs["dilations"], attrs["padding"]):
            term = tap[..., None] * f[i, j]
            acc = term if acc is None else acc + term
        return acc.reshape(acc.shape[:3] + (c * m,))


@register
class Conv2DTranspose(Fusable):
    name = "conv2d_transpose"
    summary = "Transposed 2-D convolution (the gradient of conv2d); filter [kh, kw, out, in]."
    operands = ("x", "filter", "bias?")
    attrs = {
        "output_shape": Attr("ints"), "strides": Attr("ints", (1, 1)), "padding": PADDING,
        "data_format": DATA_FORMAT,
    }

    def infer(self, types, attrs, consts):
        _check_dtypes(types)
        fmt, padding = attrs["data_format"], attrs["padding"]
        n, h, w, c = to_nhwc(types[0].shape, fmt)
        kh, kw, kout, kin = _filter_dims(types[1])
        sh, sw = _pair(attrs["strides"], "strides")
        merge_dims(c, kin, "input channels and the filter's in-channels")
        if len(attrs["output_shape"]) != 4:
            raise ValueError(f"output_shape must have 4 entries, got {list(attrs['output_shape'])}")
        want = to_nhwc(tuple(attrs["output_shape"]), fmt)
        derived = (n, _transposed_size(h, kh, sh, padding), _transposed_size(w, kw, sw, padding), kout)
        out = [der if d == -1 else d for d, der in zip(want, derived)]
        out[0] = merge_dims(out[0], n, "output_shape's batch and the input's")
        out[3] = merge_dims(out[3], kout, "output_shape's channels and the filter's out-channels")
        for size, k, s, got in ((out[1], kh, sh, h), (out[2], kw, sw, w)):
            known = isinstance(size, int) and isinstance(got, int) and isinstance(k, int)
            if known and window_out(size, k, s, 1, padding) != got:
                raise ValueError(f"output_shape {list(attrs['output_shape'])} does not give input {types[0]} "
                                 f"under a {k}-wide {padding} convolution with stride {s}")
        _check_bias(types, out[3])
        return [TensorType(types[0].dtype, from_nhwc(*out, fmt))]

    def compute(self, inputs, attrs):
        fmt, padding = attrs["data_format"], attrs["padding"]
        x = inputs[0] if fmt == "NHWC" else inputs[0].transpose(0, 2, 3, 1)
        f = inputs[1].astype(x.dtype, copy=False)
        kh, kw, kout, _ = f.shape
        (sh, sw), (n, hx, wx, _) = attrs["strides"], x.shape
        want = to_nhwc(tuple(attrs["output_shape"]), fmt)
        derived = (n, (hx - 1) * sh + kh if padding == "VALID" else hx * sh,
                   (wx - 1) * sw + kw if padding == "VALID" else wx * sw, kout)
        _, ho, wo, _ = (der if d == -1 else d for d, der in zip(want, derived))
        (ph, _), (pw, _) = same_padding(ho, kh, sh, 1, padding), same_padding(wo, kw, sw, 1, padding)
        cols = np.tensordot(x, f, axes=([3], [3]))  # [n, hx, wx, kh, kw, out]
        buf = np.zeros((n, max(ph + ho, (hx - 1) * sh + kh), max(pw + wo, (wx - 1) * sw + kw), kout), x.dtype)
        for i in range(kh):
            for j in range(kw):
                buf[:, i: i + (hx - 1) * sh + 1: sh, j: j + (wx - 1) * sw + 1: sw] += cols[:, :, :, i, j]
        y = _add_bias(buf[:, ph: ph + ho, pw: pw + wo], inputs)
        return [y if fmt == "NHWC" else y.transpose(0, 3, 1, 2)]


def _padded_sym(d: Dim, total: int) -> Dim:
    """A symbolic dim ``d`` padded by ``total``: a symbol of its own, named by what it is computed from."""
    if total == 0 or not isinstance(d, SymDim):
        return d if total == 0 else None
    return SymDim(f"{d.name}_{'plus' if total > 0 else 'minus'}{abs(total)}")


def _transposed_size(size: Dim, k: Dim, stride: int, padding: str) -> Dim:
    if not isinstance(size, int) or not isinstance(k, int):
        return scale_dim(size, stride) if padding == "SAME" else None
    return size * stride if padding == "SAME" else (size - 1) * stride + k


# ----- matmul ------------------------------------------------------------------------------------------------------
@register
class MatMul(Fusable):
    name = "matmul"
    summary = "a @ b (rank 2, optionally transposed) plus an optional bias."
    operands = ("a", "b", "bias?")
    attrs = {"transpose_a": Attr("bool", False), "transpose_b": Attr("bool", False)}

    def infer(self, types, attrs, consts):
        _check_dtypes(types)
        a, b = (_rank2(t, name) for t, name in zip(types, "ab"))
        (m, ka), (kb, n) = (a[::-1] if attrs["transpose_a"] else a), (b[::-1] if attrs["transpose_b"] else b)
        merge_dims(ka, kb, "matmul inner dimensions")
        _check_bias(types, n)
        return [TensorType(types[0].dtype, (m, n))]

    def compute(self, inputs, attrs):
        a, b = inputs[0], inputs[1]
        a = a.T if attrs["transpose_a"] else a
        b = b.T if attrs["transpose_b"] else b
        return [_add_bias(np.matmul(a, b.astype(a.dtype, copy=False)), inputs)]


def _rank2(t: TensorType, name: str) -> tuple:
    if t.shape is None:
        return (None, None)
    if len(t.shape) != 2:
        raise ValueError(f"matmul takes rank-2 operands, {name} has rank {len(t.shape)}")
    return t.shape


@register
class BatchMatMul(OpDef):
    name = "batch_matmul"
    summary = "Batched a @ b over the last two dims (optionally adjointed); batch dims broadcast."
    operands = ("a", "b")
    attrs = {"adj_x": Attr("bool", False), "adj_y": Attr("bool", False)}

    def infer(self, types, attrs, consts):
        a, b = types
        if a.dtype != b.dtype:
            raise ValueError(f"operand dtypes differ: {a.dtype.value} and {b.dtype.value}")
        if a.shape is None or b.shape is None:
            return [TensorType(a.dtype, None)]
        if len(a.shape) < 2 or len(b.shape) < 2:
            raise ValueError(f"batch_matmul takes operands of rank >= 2, got {a} and {b}")
        m, ka = a.shape[-1:-3:-1] if attrs["adj_x"] else a.shape[-2:]
        kb, n = b.shape[-1:-3:-1] if attrs["adj_y"] else b.shape[-2:]
        merge_dims(ka, kb, "batch_matmul inner dimensions")
        return [TensorType(a.dtype, broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (m, n))]

    def kernel(self, inputs, attrs):
        a, b = inputs
        a = np.swapaxes(a, -1, -2) if attrs["adj_x"] else a
        b = np.swapaxes(b, -1, -2) if attrs["adj_y"] else b
        return [np.matmul(a, b)]


# ----- pools -------------------------------------------------------------------------------------------------------
class Pool(Fusable):
    operands = ("x",)
    attrs = {"ksize": Attr("ints"), "strides": Attr("ints", (1, 1)), "padding": PADDING,
             "data_format": DATA_FORMAT}

    def infer(self, types, attrs, consts):
        fmt, padding = attrs["data_format"], attrs["padding"]
        n, h, w, c = to_nhwc(types[0].shape, fmt)
        (kh, kw), (sh, sw) = _pair(attrs["ksize"], "ksize"), _pair(attrs["strides"], "strides")
        shape = from_nhwc(n, window_out(h, kh, sh, 1, padding), window_out(w, kw, sw, 1, padding), c, fmt)
        return [TensorType(types[0].dtype, shape)]

    def compute(self, inputs, attrs):
        fmt = attrs["data_format"]
        x = inputs[0] if fmt == "NHWC" else inputs[0].transpose(0, 2, 3, 1)
        y = self.nhwc(x, attrs).astype(x.dtype, copy=False)
        return [y if fmt == "NHWC" else y.transpose(0, 3, 1, 2)]

    def nhwc(self, x: np.ndarray, attrs: dict) -> np.ndarray:
        raise NotImplementedError


@register
class MaxPool(Pool):
    name = "max_pool"
    summary = "Max over each window (padding never wins)."
    traits = frozenset({PURE, QUANT_PRESERVING})

    def infer(self, types, attrs, consts):
        return [keep_quant(types[0], t) for t in super().infer(types, attrs, consts)]

    def nhwc(self, x, attrs):
        low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        acc = None
        for _, tap in _taps(x, attrs["ksize"], attrs["strides"], (1, 1), attrs["padding"], low):
            acc = tap.copy() if acc is None else np.maximum(acc, tap, out=acc)
        return acc


@register
class AvgPool(Pool):
    name = "avg_pool"
    summary = "Mean over each window; padded positions are not counted (as TensorFlow)."

    def nhwc(self, x, attrs):
        k, s, padding = attrs["ksize"], attrs["strides"], attrs["padding"]
        acc = None
        work = x if x.dtype.kind == "f" else x.astype(np.float32)
        for _, tap in _taps(work, k, s, (1, 1), padding):
            acc = tap.copy() if acc is None else np.add(acc, tap, out=acc)
        ones = np.ones((1,) + x.shape[1:3] + (1,), acc.dtype)
        count = sum(tap for _, tap in _taps(ones, k, s, (1, 1), padding))
        return acc / count


# ----- normalization, resize, pad ----------------------------------------------------------------------------------
@register
class BatchNorm(OpDef):
    name = "batch_norm"
    summary = "Inference batch norm: (x - mean) * scale / sqrt(variance + epsilon) + offset, per channel."
    operands = ("x", "scale", "offset", "mean", "variance")
    attrs = {"epsilon": Attr("float", 0.001), "data_format": DATA_FORMAT}
    traits = frozenset({PURE})

    def infer(self, types, attrs, consts):
        x = types[0]
        channels = None
        if x.shape is not None:
            if attrs["data_format"] == "NCHW" and len(x.shape) < 2:
                raise ValueError(f"NCHW batch_norm needs rank >= 2, got {x}")
            channels = x.shape[1] if attrs["data_format"] == "NCHW" else (x.shape[-1] if x.shape else None)
        for name, t in zip(self.operands[1:], types[1:]):
            if t.shape is not None:
                if len(t.shape) != 1:
                    raise ValueError(f"{name} must have rank 1, got {t}")
                channels = merge_dims(channels, t.shape[0], f"{name} length and the channels")
        return same_type(x)

    def kernel(self, inputs, attrs):
        x, scale, offset, mean, var = inputs
        inv = scale.astype(np.float32) / np.sqrt(var.astype(np.float32) + np.float32(attrs["epsilon"]))
        shift = offset.astype(np.float32) - mean.astype(np.float32) * inv
        shape = [-1] + [1] * (x.ndim - 2) if attrs["data_format"] == "NCHW" else [-1]
        y = x * inv.reshape(shape) + shift.reshape(shape)
        return [y.astype(x.dtype, copy=False)]


@register
class Resize(OpDef):
    name = "resize"
    summary = "Resizes the H and W of an NHWC tensor, bilinear or nearest (TensorFlow's ResizeBilinear/Nearest)."
    operands = ("x",)
    attrs = {"size": Attr("ints"), "method": Attr("str", "bilinear", ("bilinear", "nearest")),
             "align_corners": Attr("bool", False), "half_pixel_centers": Attr("bool", False)}
    traits = frozenset({PURE, QUANT_PRESERVING})

    def infer(self, types, attrs, consts):
        x = types[0]
        n, _, _, c = to_nhwc(x.shape, "NHWC")
        oh, ow = _pair(attrs["size"], "size")
        if attrs["align_corners"] and attrs["half_pixel_centers"]:
            raise ValueError("align_corners and half_pixel_centers cannot both be set")
        ints_to_float = attrs["method"] == "bilinear" and not x.dtype.is_float and x.quant is None
        return [keep_quant(x, TensorType(DType.f32 if ints_to_float else x.dtype, (n, oh, ow, c)))]

    def kernel(self, inputs, attrs):
        x = inputs[0]
        (oh, ow), (h, w) = attrs["size"], x.shape[1:3]
        corners, half = attrs["align_corners"], attrs["half_pixel_centers"]
        if attrs["method"] == "nearest":
            return [x[:, _nearest(h, oh, corners, half)][:, :, _nearest(w, ow, corners, half)]]
        out_dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
        v = x.astype(np.float32)
        lo, hi, t = _bilinear(w, ow, corners, half)
        v = v[:, :, lo] + (v[:, :, hi] - v[:, :, lo]) * t[:, None]
        lo, hi, t = _bilinear(h, oh, corners, half)
        v = v[:, lo] + (v[:, hi] - v[:, lo]) * t[:, None, None]
        return [v.astype(out_dtype, copy=False)]


def _resize_scale(size: int, out: int, align_corners: bool) -> np.float32:
    if align_corners and out > 1:
        return np.float32((size - 1) / np.float32(out - 1))
    return np.float32(size / np.float32(out))


def _nearest(size: int, out: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    scale = _resize_scale(size, out, align_corners)
    pos = (np.arange(out, dtype=np.float32) + np.float32(0.5 if half_pixel else 0)) * scale
    idx = np.floor(pos) if not align_corners else np.sign(pos) * np.floor(np.abs(pos) + 0.5)  # C roundf
    return np.clip(idx.astype(np.int64), 0, size - 1)


def _bilinear(size: int, out: int, align_corners: bool, half_pixel: bool):
    scale = _resize_scale(size, out, align_corners)
    pos = np.arange(out, dtype=np.float32)
    pos = (pos + np.float32(0.5)) * scale - np.float32(0.5) if half_pixel else pos * scale
    floor = np.floor(pos)
    lo = np.maximum(floor, 0).astype(np.int64)
    hi = np.minimum(np.ceil(pos), size - 1).astype(np.int64)
    return lo, hi, (pos - floor).astype(np.float32)


@register
class Pad(OpDef):
    name = "pad"
    summary = "Pads each dim by (before, after): with a constant, or mirrored (reflect/symmetric, as MirrorPad)."
    operands = ("x",)
    attrs = {"paddings": Attr("ints2"), "mode": Attr("str", "constant", ("constant", "reflect", "symmetric")),
             "constant_value": Attr("float", 0.0)}
    traits = frozenset({PURE, QUANT_PRESERVING})

    def infer(self, types, attrs, consts):
        x, pads = types[0], attrs["paddings"]
        if any(len(p) != 2 or min(p) < 0 for p in pads):
            raise ValueError(f"paddings must be non-negative (before, after) pairs, got {[list(p) for p in pads]}")
        if x.shape is None:
            return [keep_quant(x, TensorType(x.dtype, (None,) * len(pads)))]
        if len(pads) != len(x.shape):
            raise ValueError(f"paddings has {len(pads)} pairs for a rank-{len(x.shape)} operand")
        limit = {"constant": None, "reflect": 0, "symmetric": 1}[attrs["mode"]]
        out = []
        for d, (before, after) in zip(x.shape, pads):
            if limit is not None and isinstance(d, int) and max(before, after) > d - 1 + limit:
                raise ValueError(f"{attrs['mode']} padding ({before}, {after}) is too large for a dim of {d}")
            out.append(d + before + after if isinstance(d, int) else _padded_sym(d, before + after))
        return [keep_quant(x, TensorType(x.dtype, tuple(out)))]

    def kernel(self, inputs, attrs):
        x, mode = inputs[0], attrs["mode"]
        if mode == "constant":
            return [np.pad(x, attrs["paddings"], constant_values=np.asarray(attrs["constant_value"]).astype(x.dtype))]
        return [np.pad(x, attrs["paddings"], mode=mode)]



# ----- 3-D convolutions and pools (NDHWC) --------------------------------------------------------------------------
def _triple(values, what: str) -> tuple[int, int, int]:
    if len(values) != 3 or any(v < 1 for v in values):
        raise ValueError(f"{what} must be three positive ints [d, h, w], got {list(values)}")
    return tuple(values)


def _rank5(t: TensorType, what: str) -> tuple:
    if t.shape is None:
        return (None,) * 5
    if len(t.shape) != 5:
        raise ValueError(f"{what} must have rank 5, got rank {len(t.shape)}")
    return t.shape


def padding_3d(size: int, k: int, stride: int, dilation: int, padding: str) -> tuple[int, int]:
    """(before, after) padding of one axis of a 3-D window op, as TensorFlow's 3-D kernels (Eigen's) place it.

    Unlike the 2-D ops, SAME padding is not clamped at zero: where the window is narrower than the stride the
    total may be negative, and the windows then start ``trunc(total / 2)`` positions into the input (a crop).
    """
    if padding == "VALID":
        return 0, 0
    out = -(-size // stride)
    total = (out - 1) * stride + (k - 1) * dilation + 1 - size
    before = total // 2 if total >= 0 else -(-total // 2)
    return before, total - before


def _taps3(x: np.ndarray, k, stride, dilation, padding, value=0):
    """As ``_taps`` for NDHWC ``x``: yields ((i, j, l), view) with view[:, od, oh, ow, :] under that tap."""
    spatial = x.shape[1:4]
    outs = [window_out(n, kk, s, d, padding) for n, kk, s, d in zip(spatial, k, stride, dilation)]
    pads = [padding_3d(n, kk, s, d, padding) for n, kk, s, d in zip(spatial, k, stride, dilation)]
    x = x[(slice(None), *(slice(max(-before, 0), None) for before, _ in pads))]  # a negative padding crops
    pads = [(max(before, 0), max(after, 0)) for before, after in pads]
    if any(sum(p) for p in pads):
        x = np.pad(x, ((0, 0), *pads, (0, 0)), constant_values=value)
    for tap in np.ndindex(*k):
        index = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in zip(tap, dilation, outs, stride))
        yield tap, x[(slice(None), *index)]


@register
class Conv3D(Fusable):
    name = "conv3d"
    summary = "3-D convolution of an NDHWC tensor with a DHWIO filter [kd, kh, kw, in, out]."
    operands = ("x", "filter", "bias?")
    attrs = {"strides": Attr("ints", (1, 1, 1)), "padding": PADDING, "dilations": Attr("ints", (1, 1, 1))}

    def infer(self, types, attrs, consts):
        _check_dtypes(types)
        n, *spatial, c = _rank5(types[0], "the input")
        *k, kin, kout = _rank5(types[1], "the filter")
        strides, dilations = _triple(attrs["strides"], "strides"), _triple(attrs["dilations"], "dilations")
        if isinstance(c, int) and isinstance(kin, int) and c != kin:
            raise ValueError(f"input channels {c} differ from the filter's in-channels {kin}")
        _check_bias(types, kout)
        out = [window_out(size, kk, s, d, attrs["padding"]) for size, kk, s, d in zip(spatial, k, strides, dilations)]
        return [TensorType(types[0].dtype, (n, *out, kout))]

    def compute(self, inputs, attrs):
        x, f = inputs[0], inputs[1].astype(inputs[0].dtype, copy=False)
        taps = [t for _, t in _taps3(x, f.shape[:3], attrs["strides"], attrs["dilations"], attrs["padding"])]
        cols = np.stack(taps, axis=4)  # [n, od, oh, ow, kd*kh*kw, c]
        y = cols.reshape(-1, cols.shape[4] * cols.shape[5]) @ f.reshape(-1, f.shape[4])
        y = y.reshape(cols.shape[:4] + (f.shape[4],))
        return [_add_bias(y, inputs)]


@register
class Conv3DTranspose(Fusable):
    name = "conv3d_transpose"
    summary = "Transposed 3-D convolution (the gradient of conv3d); filter [kd, kh, kw, out, in], NDHWC."
    operands = ("x", "filter", "bias?")
    attrs = {"output_shape": Attr("ints"), "strides": Attr("ints", (1, 1, 1)), "padding": PADDING}

    def infer(self, types, attrs, consts):
        _check_dtypes(types)
        padding = attrs["padding"]
        n, *spatial, c = _rank5(types[0], "the input")
        *k, kout, kin = _rank5(types[1], "the filter")
        strides = _triple(attrs["strides"], "strides")
        merge_dims(c, kin, "input channels and the filter's in-channels")
        if len(attrs["output_shape"]) != 5:
            raise ValueError(f"output_shape must have 5 entries, got {list(attrs['output_shape'])}")
        derived = (n, *(_transposed_size(s, kk, st, padding) for s, kk, st in zip(spatial, k, strides)), kout)
        out = [der if d == -1 else d for d, der in zip(attrs["output_shape"], derived)]
        out[0] = merge_dims(out[0], n, "output_shape's batch and the input's")
        out[4] = merge_dims(out[4], kout, "output_shape's channels and the filter's out-channels")
        for size, kk, st, got in zip(out[1:4], k, strides, spatial):
            known = isinstance(size, int) and isinstance(got, int) and isinstance(kk, int)
            if known and window_out(size, kk, st, 1, padding) != got:
                raise ValueError(f"output_shape {list(attrs['output_shape'])} does not give input {types[0]} "
                                 f"under a {kk}-wide {padding} convolution with stride {st}")
        _check_bias(types, out[4])
        return [TensorType(types[0].dtype, tuple(out))]

    def compute(self, inputs, attrs):
        x, padding, strides = inputs[0], attrs["padding"], attrs["strides"]
        f = inputs[1].astype(x.dtype, copy=False)
        k, kout = f.shape[:3], f.shape[3]
        spatial = x.shape[1:4]
        derived = [(s - 1) * st + kk if padding == "VALID" else s * st for s, kk, st in zip(spatial, k, strides)]
        want = attrs["output_shape"][1:4]
        out = [der if d == -1 else d for d, der in zip(want, derived)]
        pads = [same_padding(o, kk, st, 1, padding)[0] for o, kk, st in zip(out, k, strides)]
        cols = np.tensordot(x, f, axes=([4], [4]))  # [n, d, h, w, kd, kh, kw, out]
        size = [max(p + o, (s - 1) * st + kk) for p, o, s, st, kk in zip(pads, out, spatial, strides, k)]
        buf = np.zeros((x.shape[0], *size, kout), x.dtype)
        for tap in np.ndindex(*k):
            index = tuple(slice(t, t + (s - 1) * st + 1, st) for t, s, st in zip(tap, spatial, strides))
            buf[(slice(None), *index)] += cols[(slice(None),) * 4 + tap]
        y = buf[(slice(None), *(slice(p, p + o) for p, o in zip(pads, out)))]
        return [_add_bias(y, inputs)]


class Pool3D(OpDef):
    operands = ("x",)
    attrs = {"ksize": Attr("ints"), "strides": Attr("ints", (1, 1, 1)), "padding": PADDING}

    def infer(self, types, attrs, consts):
        n, *spatial, c = _rank5(types[0], "the input")
        k, strides = _triple(attrs["ksize"], "ksize"), _triple(attrs["strides"], "strides")
        out = [window_out(size, kk, s, 1, attrs["padding"]) for size, kk, s in zip(spatial, k, strides)]
        return [TensorType(types[0].dtype, (n, *out, c))]

    def taps(self, x: np.ndarray, attrs: dict, value=0):
        return _taps3(x, attrs["ksize"], attrs["strides"], (1, 1, 1), attrs["padding"], value)


@register
class MaxPool3D(Pool3D):
    name = "max_pool3d"
    summary = "Max over each 3-D window of an NDHWC tensor (padding never wins)."
    traits = frozenset({PURE, QUANT_PRESERVING})

    def infer(self, types, attrs, consts):
        return [keep_quant(types[0], t) for t in super().infer(types, attrs, consts)]

    def kernel(self, inputs, attrs):
        x = inputs[0]
        low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        acc = None
        for _, tap in self.taps(x, attrs, low):
            acc = tap.copy() if acc is None else np.maximum(acc, tap, out=acc)
        return [acc]


@register
class AvgPool3D(Pool3D):
    name = "avg_pool3d"
    summary = "Mean over each 3-D window of an NDHWC tensor; padded positions are not counted (as TensorFlow)."

    def kernel(self, inputs, attrs):
        x = inputs[0]
        work = x if x.dtype.kind == "f" else x.astype(np.float32)
        acc = None
        for _, tap in self.taps(work, attrs):
            acc = tap.copy() if acc is None else np.add(acc, tap, out=acc)
        ones = np.ones((1,) + x.shape[1:4] + (1,), acc.dtype)
        count = sum(tap for _, tap in self.taps(ones, attrs))
        return [(acc / count).astype(x.dtype, copy=False)]
