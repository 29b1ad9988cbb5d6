"""Printer and parser: exact round trips (property-based), elision, weights sidecars and error positions."""

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irc.errors import ParseError
from irc.ir import DType, Graph, Location, QuantParams, SymDim, TensorType
from irc.ir.parser import parse
from irc.ir.printer import ElidedTensor, collect_weights, print_graph

names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
dims = st.one_of(st.integers(0, 64), st.none(),
                 st.sampled_from([SymDim("batch"), SymDim("seq"), SymDim("batch_x16"), SymDim("token_ids_1")]))
dtypes = st.sampled_from([d for d in DType if d is not DType.str])


@st.composite
def quant_params(draw, rank):
    if rank and draw(st.booleans()):
        n = draw(st.integers(1, 4))
        scales = tuple(draw(st.lists(st.floats(1e-6, 10.0), min_size=n, max_size=n)))
        zps = tuple(draw(st.lists(st.integers(-128, 127), min_size=n, max_size=n)))
        return QuantParams(scales, zps, draw(st.integers(0, rank - 1)))
    return QuantParams((draw(st.floats(1e-6, 10.0)),), (draw(st.integers(-128, 127)),))


@st.composite
def tensor_types(draw):
    shape = draw(st.one_of(st.none(), st.lists(dims, max_size=4).map(tuple)))
    dtype = draw(dtypes)
    quant = draw(quant_params(len(shape or ()))) if dtype in (DType.i8, DType.u8, DType.i32) and draw(st.booleans()) else None
    return TensorType(dtype, shape, quant)


scalars = st.one_of(
    st.integers(-2**40, 2**40), st.floats(allow_nan=False), st.booleans(), names, st.binary(max_size=8), dtypes,
)
attr_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3).map(tuple), max_leaves=6)


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from(["float32", "float16", "int8", "uint8", "int32", "int64", "bool", "float64"]))
    shape = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
    size = int(np.prod(shape))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    data = rng.standard_normal(size) * 100
    return data.astype(dtype).reshape(shape)


@st.composite
def graphs(draw, depth=0):
    g = Graph(draw(names))
    values = [g.add_input(f"in{i}" if draw(st.booleans()) else draw(names) + str(i), draw(tensor_types()))
              for i in range(draw(st.integers(0, 3)))]
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.booleans()) or not values:
            values.append(g.const(draw(arrays()), loc=Location.of(draw(names))))
            continue
        operands = draw(st.lists(st.sampled_from(values), max_size=3))
        attrs = draw(st.dictionaries(names, attr_values, max_size=4))
        types = draw(st.lists(tensor_types(), min_size=1, max_size=3))
        loc = Location(tuple(draw(st.lists(names, max_size=2))), tuple(draw(st.lists(names, max_size=2))))
        op = draw(st.sampled_from(["conv2d", "add", "tf.Foo", "my.op", "weird op", "while", "if"]))
        # nested regions: graphs of their own (isolated from above), up to two levels deep
        regions = draw(st.lists(graphs(depth + 1), max_size=2)) if depth < 2 and draw(st.booleans()) else []
        values.extend(g.add(op, operands, attrs, types=types, loc=loc, regions=regions).results)
    for i, v in enumerate(draw(st.lists(st.sampled_from(values), max_size=3)) if values else []):
        g.set_output(str(i) if depth and draw(st.booleans()) else f"out{i}", v)  # a region's results: positional
    return g


def assert_same(a: Graph, b: Graph):
    assert a.name == b.name
    assert [(v.name, v.type) for v in a.inputs] == [(v.name, v.type) for v in b.inputs]
    na, nb = a.topo_order(), b.topo_order()
    assert len(na) == len(nb)
    for x, y in zip(na, nb):
        assert (x.op, x.loc, [r.type for r in x.results]) == (y.op, y.loc, [r.type for r in y.results])
        assert x.attrs.keys() == y.attrs.keys()
        for k in x.attrs:
            u, w = x.attrs[k], y.attrs[k]
            if isinstance(u, np.ndarray):
                assert u.dtype == w.dtype and u.shape == w.shape
                np.testing.assert_array_equal(u, w)
            else:
                assert u == w and type(u) is type(w)
    index = {v: i for i, v in enumerate(r for n in na for r in n.results)}
    index.update({v: f"in{i}" for i, v in enumerate(a.inputs)})
    index_b = {v: i for i, v in enumerate(r for n in nb for r in n.results)}
    index_b.update({v: f"in{i}" for i, v in enumerate(b.inputs)})
    assert [[index[o] for o in n.operands] for n in na] == [[index_b[o] for o in n.operands] for n in nb]
    assert [(k, index[v]) for k, v in a.outputs.items()] == [(k, index_b[v]) for k, v in b.outputs.items()]
    for x, y in zip(na, nb):
        assert len(x.regions) == len(y.regions)
        for ra, rb in zip(x.regions, y.regions):
            assert rb.parent is y and not rb.is_top_level
            assert_same(ra, rb)


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_parse_print_round_trip_is_exact(g):
    text = print_graph(g, full=True)
    back = parse(text)
    assert_same(g, back)
    assert print_graph(back, full=True) == text


@settings(max_examples=100, deadline=None)
@given(graphs())
def test_elided_dump_is_a_fixed_point_and_weights_restore_it(g):
    text = print_graph(g)
    back = parse(text)
    assert print_graph(back) == text
    restored = parse(text, weights=collect_weights(g))
    assert print_graph(restored, full=True) == print_graph(g, full=True)


def test_large_constants_are_elided_by_hash():
    g = Graph()
    g.set_output("w", g.const(np.arange(100, dtype=np.float32)))
    text = print_graph(g)
    assert re.search(r"dense<f32\[100\] sha256:[0-9a-f]{16}>", text)
    back = parse(text)
    assert isinstance(back.outputs["w"].constant, ElidedTensor)


def test_float_values_round_trip_bit_exactly():
    values = np.array([np.pi, 1e-38, -0.0, np.inf, -np.inf, 3.4028235e38, 1.1754944e-38], np.float32)
    g = Graph()
    g.set_output("w", g.const(values))
    back = parse(print_graph(g)).outputs["w"].constant
    assert back.tobytes() == values.tobytes()


@pytest.mark.parametrize("text, where, message", [
    ('graph @m(%x: f32[1]) {\n  %0 = neg(%y) : f32[1]\n  return %0 as "o"\n}', "2:12", "used before it is defined"),
    ('graph @m(%x: f32[1]) {\n  %0 = neg(%x %x) : f32[1]\n}', "2:15", "expected"),
    ('graph @m(%x: f32[1]) {\n  %0 = neg(%x) : f32[1], f32[1]\n  return\n}', "2:3", "1 result(s) but 2 type(s)"),
    ('graph @m(%x: f99[1]) {\n  return\n}', "1:14", "unexpected"),
    ('graph @m(', "1:10", "end of input"),
    ('graph @m() {\n  %0 = const() {value = dense<f32[2] [1.0]>} : f32[2]\n  return\n}', "2:31", "needs 2"),
    ('graph @m() {\n  %0 = const() {value = dense<f32[2] b64"AAAA">} : f32[2]\n  return\n}', "2:31", "bytes"),
    ('graph @m(%x: f32[1]) {\n  %0 = neg(%x) : f32[1]\n  %0 = neg(%x) : f32[1]\n  return\n}', "3:3", "defined twice"),
    ('graph @m(%x: i8[2] q(axis=0, [0.5], [0, 1])) {\n  return\n}', None, "zero points"),
])
def test_parse_errors_give_line_column_and_reason(text, where, message):
    with pytest.raises(ParseError) as info:
        parse(text, source="bad.irc")
    assert message in str(info.value)
    if where:
        assert str(info.value).startswith(f"bad.irc:{where}:"), str(info.value)


def test_docs_examples_parse():
    doc = (Path(__file__).parent.parent / "docs" / "ir.md").read_text()
    blocks = re.findall(r"```irc\n(.*?)```", doc, re.S)
    assert blocks
    for block in blocks:
        g = parse(block, source="docs/ir.md")
        assert print_graph(parse(print_graph(g))) == print_graph(g)


def test_running_an_unverified_graph_names_a_misspelled_attribute():
    import irc
    from irc.errors import InputError

    graph = parse('graph @g(%x: f32[2]) {\n  %y = cast(%x) {dtype = f32} : f32[2]\n  return %y as "y"\n}\n')
    with pytest.raises(InputError, match=r"unknown attribute 'dtype' \(valid: to\); missing required attribute 'to'"):
        irc.run(graph, {"x": np.ones(2, np.float32)})
