"""Ops kept as TensorFlow (``--allow-tf-ops``): opaque ``tf.<Op>`` nodes with explicit result types.

The node keeps its serialized NodeDef; irc/ops/tf_opaque.py runs it through TensorFlow. Result types come
from TensorFlow's own shape inference on a one-op graph fed with the operands' types (constant operands as
constants, so ops whose result shape depends on an operand's value still get one); an unknown leading dim
is the operands' symbolic batch. TensorFlow is imported only here.
"""

from __future__ import annotations

import os

from irc.frontends.lowering.context import CannotLower, Lowerer, tf_dtype
from irc.frontends.tfgraph import TFNode
from irc.ir.graph import Value
from irc.ir.types import Dim, SymDim, TensorType

_CONST_LIMIT = 1 << 16  # constant operands up to this many elements are given to TF's shape inference


def lower_opaque(cx: Lowerer, node: TFNode, args: list) -> list[Value]:
    if node.op.startswith(("TensorList", "EmptyTensorList")):  # irc's lists are plain tensors, not TF variants
        raise CannotLower("it works on a TensorList, which irc turns into a plain tensor")
    if not node.node_def:
        raise CannotLower("irc has no NodeDef for it")
    types = result_types(node, args)
    return list(cx.add(f"tf.{node.op}", args, {"node_def": node.node_def}, types=types))


def result_types(node: TFNode, args: list[Value]) -> list[TensorType]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2, node_def_pb2

    nd = node_def_pb2.NodeDef.FromString(node.node_def)
    graph_def = graph_pb2.GraphDef()
    for k, v in enumerate(args):
        name = f"irc_input_{k}"
        if v.is_constant and v.constant.size <= _CONST_LIMIT:
            const = graph_def.node.add(name=name, op="Const")
            const.attr["dtype"].type = tf.as_dtype(_tf_name(v)).as_datatype_enum
            const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(v.constant))
        else:
            ph = graph_def.node.add(name=name, op="Placeholder")
            ph.attr["dtype"].type = tf.as_dtype(_tf_name(v)).as_datatype_enum
            if v.type.shape is not None:
                shape = tf.TensorShape([d if isinstance(d, int) else None for d in v.type.shape])
                ph.attr["shape"].shape.CopyFrom(shape.as_proto())
    op_node = graph_def.node.add()
    op_node.CopyFrom(nd)
    op_node.name, op_node.device = "irc_op", ""
    del op_node.input[:]
    op_node.input.extend(f"irc_input_{k}" for k in range(len(args)))
    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
    except Exception as e:  # noqa: BLE001 - TF reports unknown ops and bad attrs with many error types
        raise CannotLower(f"TensorFlow cannot build it ({' '.join(str(e).split())[:200]})") from None
    outputs = graph.get_operation_by_name("irc_op").outputs
    batch = _batch_of(args)
    types = []
    for t in outputs:
        try:
            dtype = tf_dtype(t.dtype.name)
        except CannotLower as e:
            raise CannotLower(f"its output {t.name} has a dtype irc lacks: {e}") from None
        shape = None if t.shape.rank is None else tuple(
            (batch if i == 0 and batch is not None else None) if d is None else int(d)
            for i, d in enumerate(t.shape.as_list()))
        types.append(TensorType(dtype, shape))
    return types


def _tf_name(v: Value) -> str:
    return "string" if v.type.dtype.value == "str" else v.type.dtype.numpy.name


def _batch_of(args: list[Value]) -> Dim:
    """The symbolic batch dim, when every operand that has a leading dim unknown to TF has that one."""
    leading = {v.type.shape[0] for v in args if v.type.shape and not isinstance(v.type.shape[0], int)}
    return next(iter(leading)) if len(leading) == 1 and isinstance(next(iter(leading)), SymDim) else None
