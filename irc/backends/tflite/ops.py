"""TFLite emitters: one per irc op, in a table filled by ``@emits("conv2d")``.

An emitter is ``fn(b, node)``: it reads the node's operands with ``b.tensor(value)``, makes its results with
``b.result(value)`` and appends TFLite operators with ``b.op(CODE, inputs, outputs, options)`` (``b`` is the
``ModelBuilder`` of backend.py). An op TFLite has no builtin for is written as a few builtins (``erf``,
``softplus``, ``silu``); ``check``, given to ``@emits``, says why a particular node cannot be written, and the
legalizer reports every such node before anything is emitted.

This module holds the table, the shared helpers, elementwise ops and activations; ``ops_nn.py`` has
convolutions, matmul, pools, normalization, resize and pad (3-D ones too); ``ops_array.py`` shapes, slicing,
reductions, quantization and opaque TensorFlow ops (Flex); ``ops_indexing.py`` cumsum, roll, dynamic slices,
top_k, gather_nd and the scatters; ``ops_complex.py`` complex numbers and the FFTs. Grep an irc op name in quotes
to find its emitter.

Fused activations come from the ``tfl`` dialect (``tfl.conv2d {fused_activation = "relu6"}``, made by the
``tfl-fuse`` pass); each ``tfl.X`` shares ``X``'s emitter. TFLite kernels apply NONE, RELU, RELU6 and RELU_N1_TO_1
themselves; a fused ``tanh`` or ``sigmoid`` is written as a TANH or LOGISTIC operator after the op (TFLite's float
kernels ignore a fused TANH).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from irc.formats.tflite.opnames import ACTIVATION_OPS, ARITHMETIC, BINARY, FUSED, UNARY
from irc.ir.graph import Node, Value
from irc.ir.types import DType, QuantParams, TensorType
from irc.registry import Registry, owner_of

if TYPE_CHECKING:
    from irc.backends.tflite.backend import ModelBuilder

Emit = Callable[["ModelBuilder", Node], None]
Check = Callable[[Node], "str | None"]


class Rule(NamedTuple):
    emit: Emit
    check: Check | None


# irc op -> emitter rule: this module's and its families', then the ``irc.tflite_emitters`` plugins (irc/registry.py).
_MODULES = ("irc.backends.tflite.ops", "irc.backends.tflite.ops_nn", "irc.backends.tflite.ops_array",
            "irc.backends.tflite.ops_indexing", "irc.backends.tflite.ops_complex", "irc.backends.tflite.ops_rnn",
            "irc.backends.tflite.ops_control")
EMITTERS: Registry[Rule] = Registry("TFLite emitter for op", _MODULES, "irc.tflite_emitters")


def emits(*ops: str, check: Check | None = None):
    """Registers an emitter for irc ops ``ops``; ``check(node)`` returns why a node cannot be written, or None.
    ``"tf.*"`` stands for every opaque TensorFlow op. An op emitted twice is an error naming both emitters."""

    def register(fn: Emit) -> Emit:
        for op in ops:
            EMITTERS.add(op, Rule(fn, check), owner_of(fn), fn.__module__)
        return fn

    return register


def rules() -> dict[str, Rule]:
    """The full table (the op families and plugins load on first use)."""
    return EMITTERS.items()


def with_tfl(*ops: str) -> tuple[str, ...]:
    """``ops`` and their ``tfl`` forms: ``tfl.conv2d`` is written as ``conv2d`` is, its ``fused_activation`` in the
    operator's options."""
    return ops + tuple(f"tfl.{op}" for op in ops)


def rule_for(node: Node) -> Rule | None:
    return EMITTERS.get("tf.*" if node.is_opaque else node.op)


def emitter_for(node: Node) -> Emit:
    rule = rule_for(node)
    if rule is None:
        from irc.errors import TargetError

        raise TargetError(f"no TFLite emitter for {node.op}")
    return rule.emit


# ----- helpers shared by the emitters --------------------------------------------------------------------------------


def activated(b: ModelBuilder, node: Node, code: str, inputs: list[int], fields: dict | None = None,
              out: int | None = None, fusable: bool = True) -> int:
    """Appends ``code`` followed by the node's activation (fused in the options where TFLite fuses it).

    Writes into ``out`` (default: the node's result tensor) and returns it.
    """
    fields = dict(fields or {})
    act = fused_activation(node)
    out = b.result(node.result) if out is None else out
    if act == "none":
        b.op(code, inputs, [out], fields or None)
    elif fusable and act in FUSED:
        b.op(code, inputs, [out], {**fields, "fused_activation_function": FUSED[act]})
    else:
        pre = b.like(out, "pre_activation")
        b.op(code, inputs, [pre], fields or None)
        b.op(ACTIVATION_OPS[act], [pre], [out])
    return out


def fused_activation(node: Node) -> str:
    """The ``fused_activation`` of a ``tfl.*`` form; ``none`` for a core op."""
    return node.attrs.get("fused_activation", "none")


def normal_axis(axis: int, rank: int) -> int:
    return axis % rank if rank else 0


def rank_of(v: Value) -> int:
    if v.type.rank is None:
        raise ValueError("unknown rank")
    return v.type.rank


def needs_rank(*operands: int) -> Check:
    """A check: the listed operands (by index) must have a known rank."""

    def check(node: Node) -> str | None:
        for i in operands:
            if i < len(node.operands) and node.operands[i].type.rank is None:
                return f"operand {i} has unknown rank, which this TFLite operator needs"
        return None

    return check


def permuted(type: TensorType, perm) -> TensorType:
    return type.with_shape(None if type.shape is None else tuple(type.shape[p] for p in perm))


def transposed(b: ModelBuilder, index: int, type: TensorType, perm, suffix: str) -> int:
    """A TRANSPOSE of tensor ``index`` (whose irc type is ``type``) by ``perm``; returns the new tensor."""
    out = b.temp(permuted(type, perm), suffix)
    b.op("TRANSPOSE", [index, b.int_vector(perm)], [out])
    return out


def scalar(b: ModelBuilder, value: float, like: TensorType) -> int:
    """A scalar constant of ``like``'s dtype (quantized with its parameters when it is quantized)."""
    if like.quant is not None:
        q = like.quant
        info = np.iinfo(like.dtype.numpy)
        code = np.clip(np.rint(value / q.scale[0]) + q.zero_point[0], info.min, info.max)
        return b.constant(np.asarray(code, like.dtype.numpy),
                          type=TensorType(like.dtype, (), QuantParams(q.scale[:1], q.zero_point[:1])))
    return b.constant(np.asarray(value, like.dtype.numpy))


def float_only(node: Node) -> str | None:
    """A check for ops TFLite computes in float (or quantized) types only."""
    dtype = node.operands[0].type.dtype
    if dtype in (DType.f64, DType.bf16):
        return f"TFLite has no {dtype.value} kernel for {node.op}"
    return None


def no_wide_floats(node: Node) -> str | None:
    """A check: TFLite has no float64 or bfloat16 arithmetic."""
    for v in (*node.operands, *node.results):
        if v.type.dtype in (DType.f64, DType.bf16):
            return f"TFLite has no {v.type.dtype.value} kernel for {node.op}"
        if v.type.dtype is DType.str:
            return f"TFLite has no string kernel for {node.op}"
    return None


# ----- elementwise -----------------------------------------------------------------------------------------------------


@emits(*with_tfl(*ARITHMETIC), check=no_wide_floats)
def arithmetic(b, node):
    x, y = node.operands
    activated(b, node, ARITHMETIC[node.core_op], [b.tensor(x), b.tensor(y)])


@emits(*BINARY, check=no_wide_floats)
def binary(b, node):
    x, y = node.operands
    b.op(BINARY[node.op], [b.tensor(x), b.tensor(y)], [b.result(node.result)])


@emits("select", check=no_wide_floats)
def select(b, node):
    b.op("SELECT_V2", [b.tensor(v) for v in node.operands], [b.result(node.result)])


@emits(*UNARY, check=no_wide_floats)
def unary(b, node):
    b.op(UNARY[node.op], [b.tensor(node.operands[0])], [b.result(node.result)])


@emits("reciprocal", check=no_wide_floats)
def reciprocal(b, node):
    x = node.operands[0]
    b.op("DIV", [scalar(b, 1.0, x.type), b.tensor(x)], [b.result(node.result)])


def _cast_check(node: Node) -> str | None:
    src, dst = node.operands[0].type.dtype, node.result.type.dtype
    for dtype in (src, dst):
        if dtype in (DType.bf16, DType.str):
            return f"TFLite cannot cast {src.value} to {dst.value}"
    return None


@emits("cast", check=_cast_check)
def cast(b, node):
    x = node.operands[0]
    src, dst = x.type.dtype, node.result.type.dtype
    if src is DType.f16 and dst is DType.f32 and x.is_constant:
        # float16 weights widened once: TFLite's DEQUANTIZE, which delegates fold into the weights
        b.op("DEQUANTIZE", [b.tensor(x)], [b.result(node.result)])
        return
    from irc.backends.tflite.backend import TFL_TYPES

    b.op("CAST", [b.tensor(x)], [b.result(node.result)],
         {"in_data_type": TFL_TYPES[src], "out_data_type": TFL_TYPES[dst]})


# ----- activations -----------------------------------------------------------------------------------------------------
@emits("leaky_relu", check=no_wide_floats)
def leaky_relu(b, node):
    b.op("LEAKY_RELU", [b.tensor(node.operands[0])], [b.result(node.result)], {"alpha": node.attr("alpha")})


@emits("gelu", check=no_wide_floats)
def gelu(b, node):
    b.op("GELU", [b.tensor(node.operands[0])], [b.result(node.result)], {"approximate": node.attr("approximate")})


@emits("silu", check=no_wide_floats)
def silu(b, node):
    # x * sigmoid(x), as TensorFlow's converter writes it
    x = node.operands[0]
    xi = b.tensor(x)
    gate = b.temp(x.type, "sigmoid")
    b.op("LOGISTIC", [xi], [gate])
    b.op("MUL", [xi, gate], [b.result(node.result)])


@emits("softplus", check=no_wide_floats)
def softplus(b, node):
    # log(1 + exp(x)) = relu(x) + log(1 + exp(-|x|)): no overflow for large |x|
    x = node.operands[0]
    t, xi = x.type, b.tensor(x)
    steps = {}
    for name, code, inputs in [("relu", "RELU", [xi]), ("abs", "ABS", [xi]), ("neg", "NEG", ["abs"]),
                               ("exp", "EXP", ["neg"]), ("plus1", "ADD", ["exp", scalar(b, 1.0, t)]),
                               ("log", "LOG", ["plus1"])]:
        steps[name] = b.temp(t, name)
        b.op(code, [steps[i] if isinstance(i, str) else i for i in inputs], [steps[name]])
    b.op("ADD", [steps["relu"], steps["log"]], [b.result(node.result)])


# erf(x) = sign(x) (1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-x^2)), t = 1 / (1 + p |x|)
# (Abramowitz and Stegun 7.1.26: absolute error below 1.5e-7.)
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


@emits("erf", check=no_wide_floats)
def erf(b, node):
    x = node.operands[0]
    t_type, xi = x.type, b.tensor(x)

    def step(code, inputs, suffix):
        out = b.temp(t_type, suffix)
        b.op(code, inputs, [out])
        return out

    ax = step("ABS", [xi], "abs")
    denom = step("ADD", [step("MUL", [ax, scalar(b, _ERF_P, t_type)], "px"), scalar(b, 1.0, t_type)], "denom")
    t = step("DIV", [scalar(b, 1.0, t_type), denom], "t")
    poly = scalar(b, _ERF_A[4], t_type)
    for k, a in enumerate(reversed(_ERF_A[:4])):
        poly = step("ADD", [step("MUL", [poly, t], f"poly{k}"), scalar(b, a, t_type)], f"coef{k}")
    poly = step("MUL", [poly, t], "poly")
    gauss = step("EXP", [step("NEG", [step("SQUARE", [xi], "square")], "neg")], "gauss")
    tail = step("MUL", [poly, gauss], "tail")
    magnitude = step("SUB", [scalar(b, 1.0, t_type), tail], "magnitude")
    b.op("MUL", [magnitude, step("SIGN", [xi], "sign")], [b.result(node.result)])


def _last_axis_op(code: str, fields: Callable[[Node], dict]):
    def emit(b, node):
        x = node.operands[0]
        rank = rank_of(x)
        axis = normal_axis(node.attr("axis"), rank)
        if axis == rank - 1 or rank == 0:
            b.op(code, [b.tensor(x)], [b.result(node.result)], fields(node))
            return
        # TFLite normalizes over the last axis only: move the axis there and back
        perm = [i for i in range(rank) if i != axis] + [axis]
        inner = transposed(b, b.tensor(x), x.type, perm, "to_last")
        normed = b.temp(permuted(x.type, perm), code.lower())
        b.op(code, [inner], [normed], fields(node))
        inverse = list(np.argsort(perm))
        b.op("TRANSPOSE", [normed, b.int_vector(inverse)], [b.result(node.result)])

    return emit


def _softmax_fields(node: Node) -> dict:
    return {"beta": node.attr("beta")}


emits("softmax", check=lambda n: needs_rank(0)(n) or no_wide_floats(n))(_last_axis_op("SOFTMAX", _softmax_fields))
emits("log_softmax", check=lambda n: needs_rank(0)(n) or no_wide_floats(n))(
    _last_axis_op("LOG_SOFTMAX", lambda node: None))


# ----- operator versions and the oldest runtime that runs them ------------------------------------------------------
# The newest version of each builtin that TFLite's interpreter (2.21) registers: a version is never written above
# it. RESHAPE, SHAPE and friends have only version 1; BROADCAST_TO starts at 2.
MAX_VERSION = {
    "ADD": 5, "SUB": 5, "MUL": 7, "DIV": 2, "MAXIMUM": 4, "MINIMUM": 4, "POW": 1, "SQUARED_DIFFERENCE": 2,
    "FLOOR_DIV": 3, "FLOOR_MOD": 2, "EQUAL": 5, "NOT_EQUAL": 4, "LESS": 3, "LESS_EQUAL": 2, "GREATER": 2,
    "GREATER_EQUAL": 3, "LOGICAL_AND": 1, "LOGICAL_OR": 1, "SELECT_V2": 2, "NEG": 1, "ABS": 5, "SQRT": 2, "RSQRT": 3,
    "EXP": 2, "LOG": 2, "SQUARE": 1, "SIN": 1, "COS": 1, "FLOOR": 1, "CEIL": 1, "ROUND": 1, "SIGN": 2,
    "LOGICAL_NOT": 1, "RELU": 3, "RELU6": 3, "RELU_N1_TO_1": 1, "LOGISTIC": 3, "TANH": 3, "HARD_SWISH": 1, "ELU": 1,
    "LEAKY_RELU": 2, "GELU": 2, "SOFTMAX": 3, "LOG_SOFTMAX": 2, "CAST": 8, "DEQUANTIZE": 7, "QUANTIZE": 4,
    "CONV_2D": 8, "DEPTHWISE_CONV_2D": 7, "TRANSPOSE_CONV": 5, "FULLY_CONNECTED": 14, "BATCH_MATMUL": 4,
    "MAX_POOL_2D": 3, "AVERAGE_POOL_2D": 3, "RESIZE_BILINEAR": 4, "RESIZE_NEAREST_NEIGHBOR": 4, "PAD": 5, "PADV2": 5,
    "MIRROR_PAD": 3, "RESHAPE": 1, "TRANSPOSE": 7, "SQUEEZE": 2, "EXPAND_DIMS": 1, "CONCATENATION": 5, "SPLIT": 4,
    "SPLIT_V": 2, "PACK": 4, "UNPACK": 4, "SLICE": 7, "STRIDED_SLICE": 8, "GATHER": 7, "TILE": 3, "BROADCAST_TO": 3,
    "SHAPE": 1, "ARG_MAX": 3, "ONE_HOT": 1, "MEAN": 3, "SUM": 2, "REDUCE_MAX": 3, "REDUCE_MIN": 3,
    "REDUCE_PROD": 2, "CUSTOM": 1, "CUMSUM": 1, "DYNAMIC_UPDATE_SLICE": 5, "TOPK_V2": 3, "GATHER_ND": 5,
    "SCATTER_ND": 1, "FILL": 4,
}
# Versions TensorFlow's converter writes for quantized kernels, where they are not the usual int8 -> 2, int16 -> 3.
_INT8 = {"HARD_SWISH": 1, "LEAKY_RELU": 1, "QUANTIZE": 1, "CONV_2D": 3, "DEPTHWISE_CONV_2D": 3,
         "FULLY_CONNECTED": 4, "TRANSPOSE_CONV": 2}
_INT16 = {"CONV_2D": 4, "DEPTHWISE_CONV_2D": 5, "FULLY_CONNECTED": 7, "TRANSPOSE_CONV": 3, "LEAKY_RELU": 2,
          "QUANTIZE": 3, "DEQUANTIZE": 4, "MAXIMUM": 4, "MINIMUM": 4, "ADD": 3, "SUB": 3}


def op_version(code: str, inputs, outputs, opts) -> int:
    """The operator version TensorFlow's converter writes for what irc uses, within what TFLite registers.

    ``inputs`` and ``outputs`` are flatbuffer Tensors (None for an omitted input). The interpreter accepts any
    registered version; the version tells older runtimes which kernel features the operator needs.
    """
    return max(1 if code != "BROADCAST_TO" else 2, min(_version(code, inputs, outputs, opts), MAX_VERSION.get(code, 1)))


def _version(code: str, inputs, outputs, opts) -> int:
    first = inputs[0] if inputs and inputs[0] is not None else (outputs[0] if outputs else None)
    dtype = first.type if first is not None else "FLOAT32"
    out = outputs[0].type if outputs else dtype
    weights = inputs[1].type if len(inputs) > 1 and inputs[1] is not None else None
    if code == "DEQUANTIZE":
        return {"FLOAT16": 3, "INT8": 2, "INT16": 4}.get(dtype, 1)
    if code == "QUANTIZE":
        if out == "INT16" or dtype == "INT16":
            return 3 if dtype.startswith("FLOAT") else 4
        return 1 if dtype.startswith("FLOAT") else 2
    if code in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        if dtype == "INT16":
            return 4
        return 3 if opts is not None and opts.half_pixel_centers else (2 if dtype == "INT8" else 1)
    hybrid = dtype == "FLOAT32" and weights in ("INT8", "UINT8")  # float activations, integer weights
    if code == "FULLY_CONNECTED":
        if dtype == "INT16":
            return 7
        if opts is not None and opts.keep_num_dims:
            return 5
        if hybrid:
            per_channel = inputs[1].quantization is not None and len(inputs[1].quantization.scale) > 1
            return 12 if per_channel else 3
        return 4 if dtype == "INT8" else 1
    if code in ("CONV_2D", "DEPTHWISE_CONV_2D") and hybrid:
        return 5 if code == "CONV_2D" else 6
    if code == "DEPTHWISE_CONV_2D" and dtype == "FLOAT32" and opts is not None and opts.dilation_w_factor != 1:
        return 2
    if code == "TRANSPOSE_CONV" and len(inputs) > 3 and inputs[3] is not None:
        return max(3, _INT16.get(code, 1) if dtype == "INT16" else 1)
    if code == "BATCH_MATMUL" and hybrid:
        return 4
    if dtype == "INT8":
        return _INT8.get(code, 2)
    if dtype == "INT16":
        return _INT16.get(code, 3)
    return 1


# The first TFLite release with each builtin (version 1), for the min_runtime_version metadata; later versions
# that need a newer runtime are listed in _RUNTIME_V.
_RUNTIME = {
    "1.5.0": "ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D FULLY_CONNECTED LOGISTIC MAX_POOL_2D "
             "MUL RELU RELU6 RELU_N1_TO_1 RESHAPE SOFTMAX TANH",
    "1.6.0": "PAD MEAN SUB DIV SQUEEZE TRANSPOSE GATHER STRIDED_SLICE SPLIT",
    "1.7.0": "RESIZE_BILINEAR EXP TOPK_V2",
    "1.9.0": "CAST ARG_MAX MAXIMUM MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN "
             "TRANSPOSE_CONV LOG_SOFTMAX",
    "1.10.0": "TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW",
    "1.11.0": "PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK REDUCE_MAX REDUCE_MIN REDUCE_PROD",
    "1.12.0": "FLOOR_DIV SQUARE",
    "1.13.0": "FLOOR_MOD RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V DEQUANTIZE "
              "FILL",
    "1.14.0": "CEIL ELU ROUND QUANTIZE COS FLOOR CUSTOM GATHER_ND",
    "1.15.0": "HARD_SWISH",
    "2.1.0": "SCATTER_ND",
    "2.2.0": "SELECT_V2",
    "2.3.0": "BATCH_MATMUL",
    "2.4.0": "CUMSUM",
    "2.5.0": "BROADCAST_TO RFFT2D CONV_3D IMAG REAL COMPLEX_ABS",  # (BROADCAST_TO: version 2)
    "2.6.0": "CONV_3D_TRANSPOSE",
    "2.9.0": "GELU DYNAMIC_UPDATE_SLICE",
    "2.11.0": "SIGN",
}
RUNTIME_OF = {op: release for release, ops in _RUNTIME.items() for op in ops.split()}
_RUNTIME_V = {("DEQUANTIZE", 2): "1.14.0", ("DEQUANTIZE", 3): "1.15.0", ("FULLY_CONNECTED", 4): "1.14.0",
              ("FULLY_CONNECTED", 5): "2.0.0", ("CONV_2D", 3): "1.14.0", ("DEPTHWISE_CONV_2D", 3): "1.14.0",
              ("TRANSPOSE_CONV", 3): "2.3.0"}


def _release_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def min_runtime_version(codes) -> str:
    """The oldest TFLite runtime that has every (op, version) in ``codes`` (OperatorCode list)."""
    releases = ["1.5.0"]
    for oc in codes:
        releases.append(RUNTIME_OF.get(oc.builtin_code, "1.5.0"))
        if oc.version > 1:
            # a quantized version: int8 arrived with 1.14, int16 with 2.4
            releases.append(_RUNTIME_V.get((oc.builtin_code, oc.version), "1.14.0" if oc.version == 2 else "2.4.0"))
    return max(releases, key=_release_key)
