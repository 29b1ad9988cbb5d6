"""Fuzzing the lowerings: one node of any op irc lowers, with the inputs and attribute kinds TensorFlow's registry
declares for it and random values (constants of random dtypes and shapes, odd strides, axes, block sizes...).

Each graph is written as GraphDef bytes and read by irc's TF-free reader, then lowered: the result is an irc graph
or an IrcError, never another exception. The budget is tests/bad_inputs/fuzzing.py's (``IRC_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from irc.errors import IrcError
from irc.frontends.lowering import lower_graph
from irc.frontends.savedmodel_reader import read_graphdef_bytes
from irc.frontends.tfopdefs import INPUT_ARGS
from tests.bad_inputs.fuzzing import bounded, fuzz_settings

tf = pytest.importorskip("tensorflow")
from tensorflow.python.framework import op_def_registry  # noqa: E402

OPS = sorted(set(INPUT_ARGS) - {"Placeholder", "NoOp", "While", "StatelessWhile", "If", "StatelessIf"})
DTYPES = [tf.float32, tf.int32, tf.int64, tf.bool]
STRINGS = [b"SAME", b"VALID", b"EXPLICIT", b"NHWC", b"NCHW", b"REFLECT", b"SYMMETRIC", b"ij,jk->ik", b"", b"?"]
SMALL_INTS = st.sampled_from([-2, -1, 0, 1, 2, 3, 4, 7, 100])


@st.composite
def tensors(draw):
    dtype = draw(st.sampled_from([np.float32, np.int32, np.int32, np.int64, np.bool_]))
    shape = draw(st.lists(st.integers(0, 4), max_size=4))
    values = draw(st.lists(SMALL_INTS, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return np.array(values).astype(dtype).reshape(shape)


def set_attr(draw, attr, kind: str) -> None:
    if kind == "type":
        attr.type = draw(st.sampled_from(DTYPES)).as_datatype_enum
    elif kind == "list(type)":
        attr.list.type.extend(t.as_datatype_enum for t in draw(st.lists(st.sampled_from(DTYPES), max_size=3)))
    elif kind == "int":
        attr.i = draw(SMALL_INTS)
    elif kind == "float":
        attr.f = draw(st.sampled_from([0.0, 1e-3, 1.0, -1.0, float("inf")]))
    elif kind == "bool":
        attr.b = draw(st.booleans())
    elif kind == "string":
        attr.s = draw(st.sampled_from(STRINGS))
    elif kind == "list(int)":
        attr.list.i.extend(draw(st.lists(SMALL_INTS, max_size=5)))
    elif kind == "shape":
        dims = draw(st.lists(st.sampled_from([1, 2, 3, -1]), max_size=4))
        attr.shape.CopyFrom(tf.TensorShape([None if d < 0 else d for d in dims]).as_proto())
    elif kind == "tensor":
        attr.tensor.CopyFrom(tf.make_tensor_proto(draw(tensors())))


@st.composite
def one_op_graphs(draw) -> bytes:
    op = draw(st.sampled_from(OPS))
    op_def = op_def_registry.get(op)
    graph = tf.compat.v1.GraphDef()
    x = graph.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = tf.float32.as_datatype_enum
    x.attr["shape"].shape.CopyFrom(tf.TensorShape(draw(st.sampled_from([[1, 4], [1, 4, 4, 3], [2, 3], []]))).as_proto())
    node = graph.node.add(name="n", op=op)
    for attr in op_def.attr:
        if draw(st.integers(0, 9)):  # now and then an attribute is left out
            set_attr(draw, node.attr[attr.name], attr.type)
    count = 0
    for arg in op_def.input_arg:
        width = arg.number_attr or arg.type_list_attr
        if not width:
            count += 1
        elif arg.number_attr:
            count += max(node.attr[width].i, 0) if width in node.attr else 1
        else:
            count += len(node.attr[width].list.type)
    for i in range(min(count, 8)):
        if draw(st.booleans()):
            node.input.append("x")
        else:
            const = graph.node.add(name=f"c{i}", op="Const")
            value = tf.make_tensor_proto(draw(tensors()))
            const.attr["value"].tensor.CopyFrom(value)
            const.attr["dtype"].type = value.dtype
            node.input.append(const.name)
    return graph.SerializeToString()


@fuzz_settings()
@given(one_op_graphs())
def test_any_node_of_a_lowered_op(data):
    graph = bounded(read_graphdef_bytes, data, "fuzz.pb", ["n:0"])
    if not isinstance(graph, IrcError):
        bounded(lower_graph, graph)
