"""Opaque TensorFlow ops: ``tf.<OpName>`` nodes that irc keeps as their serialized TF NodeDef.

``OPAQUE`` declares all of them (``irc.ops.get_op("tf.Foo")`` returns it). Attributes: ``node_def`` (bytes, the
serialized ``tensorflow.NodeDef``, required) and ``library`` (bytes, a serialized ``FunctionDefLibrary``, optional,
for ops that call functions); any other attribute is allowed and ignored. There is no shape rule: opaque nodes
always carry explicit result types.

The kernel runs the op through TensorFlow (imported on first use): a one-op graph with a placeholder per data
input of the NodeDef (control inputs are dropped), in a TF1-style session cached per (node, library, input
dtypes). It needs only the operand arrays, in the NodeDef's input order, with the dtypes the op expects.
Stateful ops that read variables or resources cannot run this way.

Nothing runs without the user's permission: ``irc.ops.tf_policy`` decides, before TensorFlow is imported,
whether this NodeDef and its library may run (``--allow-tf-ops``, ``--unsafe``; see docs/security.md).
"""

from __future__ import annotations

import functools

import numpy as np

from irc.ops.base import Attr, OpDef


class Opaque(OpDef):
    name = "tf.*"
    summary = "A TensorFlow op irc does not lower, kept as its NodeDef and run through TensorFlow."
    operands = ("xs*",)
    attrs = {"node_def": Attr("bytes"), "library": Attr("bytes", b"")}
    traits = frozenset()  # a TF op may be stateful or random: nothing may be assumed

    def check_attrs(self, attrs):
        """Checks the attributes irc reads; any other attribute (kept from TensorFlow) is allowed."""
        known = {k: v for k, v in attrs.items() if k in self.attrs}
        return super().check_attrs(known)

    def infer(self, types, attrs, consts):
        raise ValueError("an opaque TensorFlow op has no shape rule: give its result types explicitly")

    def kernel(self, inputs, attrs):
        from irc.ops.tf_policy import check_may_run

        check_may_run(attrs["node_def"], attrs["library"])
        inputs = [np.asarray(x) for x in inputs]
        dtypes = tuple(_tf_dtype_name(x) for x in inputs)
        session, feeds, outputs, op = _compiled(attrs["node_def"], attrs["library"], dtypes)
        results, _ = session.run([outputs, op], dict(zip(feeds, inputs)))
        return [np.asarray(r) for r in results]


OPAQUE = Opaque()


def _tf_dtype_name(x: np.ndarray) -> str:
    return "string" if x.dtype.kind in "OUS" else x.dtype.name


@functools.lru_cache(maxsize=64)
def _compiled(node_def: bytes, library: bytes, dtypes: tuple[str, ...]):
    """(session, input placeholders, output tensors, operation) running one NodeDef."""
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2, node_def_pb2

    node = node_def_pb2.NodeDef.FromString(node_def)
    data_inputs = [name for name in node.input if not name.startswith("^")]
    if len(data_inputs) != len(dtypes):
        raise ValueError(f"TF op {node.op} {node.name!r} takes {len(data_inputs)} inputs, got {len(dtypes)}")
    graph_def = graph_pb2.GraphDef()
    for k, dtype in enumerate(dtypes):
        placeholder = graph_def.node.add(name=f"irc_input_{k}", op="Placeholder")
        placeholder.attr["dtype"].type = tf.as_dtype(dtype).as_datatype_enum
    op_node = graph_def.node.add()
    op_node.CopyFrom(node)
    op_node.name, op_node.device = "irc_op", ""
    if "_class" in op_node.attr:  # colocation with nodes that are not in this graph
        del op_node.attr["_class"]
    del op_node.input[:]
    op_node.input.extend(f"irc_input_{k}" for k in range(len(dtypes)))
    if library:
        graph_def.library.ParseFromString(library)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    operation = graph.get_operation_by_name("irc_op")
    feeds = [graph.get_tensor_by_name(f"irc_input_{k}:0") for k in range(len(dtypes))]
    return tf.compat.v1.Session(graph=graph), feeds, list(operation.outputs), operation
