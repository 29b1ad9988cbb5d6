"""The cuda target's fusion: conv2d and matmul with their bias and activation as TensorFlow's fused kernels.

TensorFlow's grappler remapper fuses Conv2D/MatMul + BiasAdd + an activation into ``_FusedConv2D`` and
``_FusedMatMul`` at run time, but only where it recognizes the pattern and the device; irc writes the fused ops
into the SavedModel itself, so every conv2d and matmul runs fused wherever the model is loaded.

A match is a ``conv2d`` (NHWC or NCHW, HWIO filter, no groups) or a rank-2 ``matmul`` of a float type, with

- a bias: its third operand, or the one user ``add`` of a 1-D constant as long as the channels (no bias: a zero
  one, which the kernel adds for free in its epilogue), and
- an activation: the node's fused ``activation`` attribute, or else the one user activation op.

The fused activations are those TensorFlow's fused kernels take for both ops, measured on its CPU kernels
(``FUSED_ACTIVATIONS``); any other fused attribute activation (tanh, sigmoid) becomes a separate op after the
fused kernel. Each match becomes an opaque ``tf._FusedConv2D`` / ``tf._FusedMatMul`` node carrying its NodeDef,
which the shared emitter re-creates like any other TensorFlow op, named after the convolution.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from irc.ir.graph import Graph, Node, Value
from irc.ir.types import DType

# irc activation -> TensorFlow's name in ``fused_ops``: what _FusedConv2D and _FusedMatMul both accept on the CPU
# (TF 2.21: conv also refuses Tanh and Sigmoid, both refuse GeluExact/GeluApproximate) and grappler's remapper
# fuses for the GPU
FUSED_ACTIVATIONS = {"relu": "Relu", "relu6": "Relu6", "elu": "Elu", "leaky_relu": "LeakyRelu"}
# fused activation attributes the kernels do not take, as the op that follows the fused kernel instead
SEPARATE_ACTIVATIONS = {"tanh": "tanh", "sigmoid": "sigmoid"}
FUSED_OPS = {"conv2d": "_FusedConv2D", "matmul": "_FusedMatMul"}
# (op, device) -> the dtypes TensorFlow's fused kernel runs there. _FusedConv2D's op definition has no bfloat16,
# and its CPU kernel refuses float16 at run time ("Op does not support half inputs"; cuDNN's takes it).
FUSED_DTYPES = {
    ("conv2d", "gpu"): (DType.f32, DType.f16), ("conv2d", "cpu"): (DType.f32,),
    ("matmul", "gpu"): (DType.f32, DType.f16, DType.bf16), ("matmul", "cpu"): (DType.f32, DType.f16, DType.bf16),
}


def fuse(graph: Graph, device: str = "gpu") -> Counter:
    """Rewrites every matching conv2d and matmul in place, for TensorFlow's kernels on ``device`` (gpu or cpu);
    returns how many of each TF op it made."""
    made = Counter()
    for node in graph.topo_order():
        if node.graph is graph and node.core_op in FUSED_OPS:  # conv2d and matmul, or their tfl.* fused forms
            op = _fuse(graph, node, FUSED_DTYPES[node.core_op, device])
            if op:
                made[op] += 1
    return made


def _fuse(graph: Graph, node: Node, dtypes: tuple[DType, ...]) -> str | None:
    x, kernel = node.operands[0], node.operands[1]
    dtype = x.type.dtype
    if dtype not in dtypes or any(v.type.quant for v in node.operands) or kernel.type.shape is None:
        return None
    channels = _channels(node)
    if not isinstance(channels, int):
        return None
    act = _activation(node)
    if act not in ("none", *FUSED_ACTIVATIONS, *SEPARATE_ACTIVATIONS):
        return None  # relu_n1_to_1: a TFLite activation TF has no kernel for
    chain = [node]  # the nodes the fused op replaces, first to last
    tail = node.result
    bias = node.operands[2] if len(node.operands) > 2 else None
    if bias is None and act == "none":
        add = _only_user(graph, tail, "add")
        bias = _bias_operand(add, tail, channels, dtype) if add else None
        if bias is not None:
            chain.append(add)
            tail = add.result
    fused_act, alpha = None, None
    if act in FUSED_ACTIVATIONS:
        fused_act = act
    elif act == "none":
        user = _only_user(graph, tail, *FUSED_ACTIVATIONS)
        if user is not None:
            fused_act, alpha = user.op, user.attrs.get("alpha")
            chain.append(user)
            tail = user.result
    if bias is None:
        bias = graph.const(np.zeros(channels, dtype.numpy), loc=node.loc)
    tf_op = FUSED_OPS[node.core_op]
    node_def = _node_def(node, tf_op, dtype, fused_act, alpha)
    fused = graph.add(f"tf.{tf_op}", [x, kernel, bias], {"node_def": node_def}, types=[tail.type], loc=node.loc)
    out = fused.result
    if act in SEPARATE_ACTIVATIONS:
        out = graph.op(SEPARATE_ACTIVATIONS[act], out, loc=node.loc)
    graph.replace_all_uses(tail, out)
    for old in reversed(chain):
        graph.erase(old)
    return tf_op


def _activation(node: Node) -> str:
    """The activation a node applies after its op: a tfl.* form's fused one, ``none`` for a core op."""
    return node.attrs.get("fused_activation", "none")


def _channels(node: Node):
    """The output channels (the bias length), or None when the node is not one the fused kernels take."""
    shape = node.operands[1].type.shape
    if node.core_op == "matmul":
        a = node.operands[0].type.shape
        if len(shape) != 2 or a is None or len(a) != 2:
            return None
        return shape[0] if node.attrs.get("transpose_b") else shape[1]
    x = node.operands[0].type.shape
    fmt = node.attrs.get("data_format", "NHWC")
    c = None if x is None or len(x) != 4 else (x[3] if fmt == "NHWC" else x[1])
    if len(shape) != 4 or c != shape[2]:  # grouped convolutions (or unknown channels): no fused kernel
        return None
    return shape[3]


def _only_user(graph: Graph, value: Value, *ops: str) -> Node | None:
    """The single node using ``value``, when it is one of ``ops`` and ``value`` is not also a graph output."""
    users = value.users
    if len(users) != 1 or len(value.uses) != 1 or graph.is_output(value) or users[0].op not in ops:
        return None
    user = users[0]
    return user if user.results[0].type.shape == value.type.shape else None  # no broadcasting past the conv


def _bias_operand(add: Node, value: Value, channels: int, dtype: DType) -> Value | None:
    """The other operand of ``add`` when it is a 1-D constant of ``channels`` values (a bias), else None."""
    other = add.operands[1] if add.operands[0] is value else add.operands[0]
    if other is value or _activation(add) != "none":
        return None
    if not other.is_constant or other.type.shape != (channels,) or other.type.dtype != dtype or other.type.quant:
        return None
    return other


def _node_def(node: Node, op: str, dtype: DType, activation: str | None, alpha: float | None) -> bytes:
    """The serialized NodeDef of the fused op (TensorFlow's protobuf classes; TF is imported by then)."""
    from tensorflow.core.framework import attr_value_pb2, node_def_pb2, types_pb2

    def value(**kwargs):
        return attr_value_pb2.AttrValue(**kwargs)

    def ints(values):
        return value(list=attr_value_pb2.AttrValue.ListValue(i=list(values)))

    tf_type = getattr(types_pb2, {DType.f32: "DT_FLOAT", DType.f16: "DT_HALF", DType.bf16: "DT_BFLOAT16"}[dtype])
    fused = [b"BiasAdd"] + ([FUSED_ACTIVATIONS[activation].encode()] if activation else [])
    attrs = {
        "T": value(type=tf_type),
        "num_args": value(i=1),
        "fused_ops": value(list=attr_value_pb2.AttrValue.ListValue(s=fused)),
    }
    if alpha is not None:
        attrs["leakyrelu_alpha"] = value(f=float(alpha))
    a = node.opdef.with_defaults(node.attrs)
    if op == "_FusedConv2D":
        fmt = a["data_format"]
        (sh, sw), (dh, dw) = a["strides"], a["dilations"]
        attrs.update(
            TArgs=value(list=attr_value_pb2.AttrValue.ListValue(type=[tf_type])),
            num_host_args=value(i=0),
            strides=ints([1, sh, sw, 1] if fmt == "NHWC" else [1, 1, sh, sw]),
            dilations=ints([1, dh, dw, 1] if fmt == "NHWC" else [1, 1, dh, dw]),
            padding=value(s=a["padding"].encode()),
            data_format=value(s=fmt.encode()),
        )
    else:
        attrs.update(transpose_a=value(b=bool(a["transpose_a"])), transpose_b=value(b=bool(a["transpose_b"])))
    proto = node_def_pb2.NodeDef(op=op, name=op.lstrip("_"), input=["x", "kernel", "bias"])
    for key, attr in attrs.items():
        proto.attr[key].CopyFrom(attr)
    return proto.SerializeToString()
