"""irc's table of op attribute defaults agrees with TensorFlow's op registry."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")

import tensorflow as tf
from google.protobuf import text_format
from tensorflow.python.framework import op_def_registry

from irc.formats import tfproto
from irc.frontends.lowering import supported_ops
from irc.frontends.tfattrs import attr_value
from irc.frontends.tfdecode import BadNode, decode_node
from irc.frontends.tfdefaults import DEFAULTS
from irc.frontends.tfopdefs import ATTR_KINDS, ATTR_MINIMUMS, INPUT_ARGS


def test_defaults_match_tensorflow():
    for op, defaults in DEFAULTS.items():
        op_def = op_def_registry.get(op)
        assert op_def is not None, op
        registered = {a.name: attr_value(tfproto.parse("AttrValue", a.default_value.SerializeToString()))
                      for a in op_def.attr if a.HasField("default_value")}
        assert defaults == registered, op


def test_attribute_kinds_match_tensorflow():
    """Every attribute of every op irc lowers is in ATTR_KINDS, and across all of TF's ops, every attribute with a
    name in the table has a kind the table lists (so checking by name never refuses a valid node of any op)."""
    lowered = set()
    for op in supported_ops():
        op_def = op_def_registry.get(op)
        assert op_def is not None, op
        lowered |= {attr.name for attr in op_def.attr}
    assert set(ATTR_KINDS) == lowered
    for op in dir(tf.raw_ops):
        op_def = op_def_registry.get(op)
        for attr in op_def.attr if op_def else ():
            assert attr.type in ATTR_KINDS.get(attr.name, (attr.type,)), f"{op}.{attr.name}: {attr.type}"


def test_input_arguments_match_tensorflow():
    assert set(INPUT_ARGS) == set(supported_ops())
    for op, specs in INPUT_ARGS.items():
        declared = [f"{a.name}*{a.number_attr or a.type_list_attr}" if a.number_attr or a.type_list_attr else a.name
                    for a in op_def_registry.get(op).input_arg]
        assert specs == declared, op


def test_attribute_minimums_match_tensorflow():
    """Every lower bound TF sets on a lowered op's attributes is in the table, except lists' trivial 0."""
    registered = {}
    for op in INPUT_ARGS:
        bounds = {a.name: a.minimum for a in op_def_registry.get(op).attr
                  if a.has_minimum and not (a.type.startswith("list(") and a.minimum == 0)}
        if bounds:
            registered[op] = bounds
    assert registered == ATTR_MINIMUMS


def node_with(op: str, name: str, value: str, inputs: str = ""):
    """A NodeDef written by TensorFlow's own protobuf classes, read back as irc reads files."""
    text = f'name: "n" op: "{op}" {inputs} attr {{ key: "{name}" value {{ {value} }} }}'
    written = text_format.Parse(text, tf.compat.v1.NodeDef()).SerializeToString()
    return tfproto.parse("NodeDef", written)


@pytest.mark.parametrize("op, name, value, held", [
    ("Const", "value", 's: "abc"', r"string, where TensorFlow expects tensor"),
    ("Conv2D", "strides", "list { f: 1.0 f: 2.0 }", r"list\(float\), where TensorFlow expects list\(int\)"),
    ("Conv2D", "padding", "i: 3", "int, where TensorFlow expects string"),
    ("MatMul", "transpose_a", 'type: DT_FLOAT', "type, where TensorFlow expects bool"),
])
def test_an_attribute_of_the_wrong_kind_is_refused_by_name(op, name, value, held):
    with pytest.raises(BadNode, match=f"{op} node 'n': attribute '{name}' holds a {held}"):
        decode_node(node_with(op, name, value))


@pytest.mark.parametrize("op, inputs, attrs, count", [
    ("Relu", [], "", 1), ("AddV2", ["a"], "", 2), ("ConcatV2", ["a", "b"], 'attr { key: "N" value { i: 2 } }', 3),
    ("IdentityN", ["a"], 'attr { key: "T" value { list { type: DT_FLOAT type: DT_INT32 } } }', 2),
])
def test_a_node_with_the_wrong_number_of_inputs_is_refused_by_name(op, inputs, attrs, count):
    text = f'name: "n" op: "{op}" ' + " ".join(f'input: "{i}"' for i in inputs) + ' input: "^control" ' + attrs
    node = tfproto.parse("NodeDef", text_format.Parse(text, tf.compat.v1.NodeDef()).SerializeToString())
    has = f"{len(inputs)} input" + ("" if len(inputs) == 1 else "s")
    with pytest.raises(BadNode, match=f"{op} node 'n' has {has}; TensorFlow's {op} takes {count}"):
        decode_node(node)


@pytest.mark.parametrize("op, inputs, attr, message", [
    ("AddN", "", 'key: "N" value { i: 0 }', "attribute 'N' is 0; TensorFlow's AddN needs at least 1"),
    ("MaxPool", 'input: "x"', 'key: "ksize" value { list { i: 1 i: 2 } }',
     "attribute 'ksize' has 2 items; TensorFlow's MaxPool needs at least 4"),
])
def test_an_attribute_below_its_minimum_is_refused_by_name(op, inputs, attr, message):
    text = f'name: "n" op: "{op}" {inputs} attr {{ {attr} }}'
    node = tfproto.parse("NodeDef", text_format.Parse(text, tf.compat.v1.NodeDef()).SerializeToString())
    with pytest.raises(BadNode, match=f"{op} node 'n': {message}"):
        decode_node(node)


def test_placeholders_and_empty_lists_are_any_kind():
    two = 'input: "x" input: "w"'
    assert decode_node(node_with("Conv2D", "strides", "list { }", two)).attrs["strides"] == []
    decode_node(node_with("Conv2D", "strides", 'placeholder: "s"', two))
