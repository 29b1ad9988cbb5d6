"""Fuzzing irc's own TensorFlow readers (no TensorFlow involved): frozen GraphDefs and SavedModel directories.

irc decodes the protobufs and the checkpoint's tensor bundle itself, then lowers the graph; any bytes in
``.pb``, ``saved_model.pb``, ``variables.index`` or ``variables.data-*`` give an irc graph or an IrcError. Besides
byte mutations, two structured fuzzers aim at the limits of issue 14: function libraries (call graphs with
recursion, fan-out, missing functions, wrong argument counts) and checkpoint indexes (offsets, sizes, shapes, shards,
shared key prefixes, data blocks named twice).
The budget is tests/bad_inputs/fuzzing.py's (``IRC_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from irc import limits
from irc.errors import IrcError
from irc.formats.tfproto import MESSAGES
from irc.frontends.lowering import lower_graph
from irc.frontends.savedmodel_reader import read_graphdef_bytes, read_savedmodel_fast
from irc.frontends.tfgraph import TFGraph
from irc.ir.graph import Graph
from irc.ir.verify import find_problems
from tests import tf_crafted as craft
from tests.bad_inputs.fuzzing import CORPUS, bounded, fuzz_settings, mutated

GRAPHDEF = (CORPUS / "good" / "tiny.pb").read_bytes()
SAVEDMODEL = CORPUS / "good" / "tiny_savedmodel"
PARTS = ["saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001"]


def lower(tfgraph) -> None:
    if isinstance(tfgraph, IrcError):
        return
    assert isinstance(tfgraph, TFGraph)
    graph = bounded(lower_graph, tfgraph)
    if isinstance(graph, Graph):
        assert isinstance(bounded(find_problems, graph, elided_ok=True), list)


@fuzz_settings()
@given(mutated(GRAPHDEF))
def test_graphdef_bytes(data):
    lower(bounded(read_graphdef_bytes, data, "fuzz.pb"))


@fuzz_settings()
@given(st.sampled_from(PARTS).flatmap(lambda part: st.tuples(st.just(part),
                                                             mutated((SAVEDMODEL / part).read_bytes()))))
def test_savedmodel_files(case):
    part, data = case
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        shutil.copytree(SAVEDMODEL, model)
        (model / part).write_bytes(data)
        result = bounded(read_savedmodel_fast, model)
    if isinstance(result, IrcError):
        assert str(model) in str(result), f"the error does not name the model: {result}"
    lower(result)


# ---- function libraries: call graphs with recursion, fan-out, missing functions, wrong argument counts -------------
FUZZ_NODE_LIMIT = 3000  # small enough that the biggest graph the limit lets through lowers within the bound


@st.composite
def function_libraries(draw) -> tuple[bytes, dict[str, list[str]]]:
    """A GraphDef x -> call f0 -> y whose library's functions call one another (themselves, each other several
    times, functions that do not exist) with one or two arguments each, directly or through PartitionedCall.
    Returns the bytes and the call graph {function: callees}."""
    count = draw(st.integers(1, 7))
    names = [f"f{i}" for i in range(count)]
    arity = {name: draw(st.integers(1, 2)) for name in names}
    graph = MESSAGES["GraphDef"]()
    craft.placeholder(graph)
    craft.call_node(graph, "call", "f0", "x", draw(st.sampled_from(["direct", "partitioned"])))
    graph.node[-1].input.extend(["x"] * (arity["f0"] - 1))
    craft.add_node(graph, "y", "Relu", ["call"], T=craft.FLOAT)
    calls: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        fn = graph.library.function.add()
        fn.signature.name = name
        for k in range(arity[name]):
            fn.signature.input_arg.add(name=f"a{k}", type=craft.FLOAT)
        fn.signature.output_arg.add(name="out", type=craft.FLOAT)
        prev, calls[name] = "a0", []
        later = names[i + 1:]
        fanout = draw(st.sampled_from([2, 3, 4, 8, 0, 1])) if later else 0  # calls of the next function first:
        body = later[:1] * fanout + [None] * draw(st.integers(0, 6))  # a tree that may grow a thousandfold
        for k, callee in enumerate(body):
            # Then mostly a Relu or a later function, now and then any function (recursion) or a missing one.
            pick = draw(st.integers(0, 23)) if callee is None else -1
            if pick == 0:
                callee = draw(st.sampled_from(names + ["missing"]))
            elif later and pick > 6:
                callee = draw(st.sampled_from(later))
            elif callee is None:
                craft.add_node(fn, f"r{k}", "Relu", [prev], T=craft.FLOAT)
                prev = f"r{k}:activations:0"
                continue
            style = draw(st.sampled_from(["direct", "partitioned"]))
            node = craft.call_node(fn, f"c{k}", callee, prev, style)
            # As many arguments as the callee takes, or now and then one more or one fewer.
            extra = arity.get(callee, 1) - 1 + draw(st.sampled_from([0] * 30 + [-1, 1]))
            if extra >= 0:
                node.input.extend([prev] * extra)
            else:
                del node.input[:]
            calls[name].append(callee)
            prev = f"c{k}:{'out' if style == 'direct' else 'output'}:0"
        fn.ret.add(key="out", value=prev)
    return graph.SerializeToString(), calls


def reaches_recursion(calls: dict[str, list[str]], start: str = "f0") -> bool:
    """Whether a function reachable from ``start`` can call itself (the test's own depth-first search)."""
    def cyclic(name: str, path: tuple) -> bool:
        if name in path:
            return True
        return any(cyclic(callee, (*path, name)) for callee in set(calls.get(name, ())))
    return cyclic(start, ())


@fuzz_settings()
@given(function_libraries())
def test_function_libraries(case):
    data, calls = case
    with limits.override(max_nodes=FUZZ_NODE_LIMIT):
        result = bounded(read_graphdef_bytes, data, "fuzz.pb")
    if reaches_recursion(calls):
        assert isinstance(result, IrcError), "a recursive call graph was inlined"
    if isinstance(result, TFGraph):
        assert len(result.nodes) <= FUZZ_NODE_LIMIT
    lower(result)


# ---- checkpoint indexes: offsets, sizes, shapes, prefix lengths, shared blocks ------------------------------------
ENTRY_EDITS = {
    "offset": st.sampled_from([-1, -64, 0, 8, 31, 32, 40, 79, 80, 10**6, 2**62]),
    "size": st.sampled_from([-1, 0, 1, 8, 31, 32, 33, 2**40]),
    "shape": st.lists(st.sampled_from([-5, -1, 0, 1, 2, 4, 8, 2**20, 2**31, 2**40]), max_size=4),
    "dtype": st.sampled_from([0, 1, 2, 3, 7, 9, 20, 99]),
    "shard_id": st.sampled_from([-1, 0, 1, 7]),
}


@st.composite
def checkpoint_indexes(draw) -> bytes:
    """The tiny SavedModel's index with entries edited, keys given hand-made shared-prefix lengths, and data blocks
    split, repeated or reordered in the index block."""
    rows = []
    for key, value in craft.real_rows():
        if key and draw(st.booleans()):
            fields = draw(st.lists(st.sampled_from(sorted(ENTRY_EDITS)), max_size=3))
            value = craft.edited_entry(value, {field: draw(ENTRY_EDITS[field]) for field in fields})
        rows.append((key, value))
    if draw(st.booleans()):  # a run of keys that share some prefix of the key before them, honestly or not
        long_key = b"p" * draw(st.sampled_from([1, 100, 1 << 16]))
        rows.append((0, long_key, b""))
        for i in range(draw(st.integers(1, 50))):
            rows.append((draw(st.sampled_from([0, 1, len(long_key), len(long_key) + 1])), b"%03d" % i, b""))
    cut = draw(st.integers(1, len(rows)))
    blocks = [craft.block(rows[:cut])] + ([craft.block(rows[cut:])] if rows[cut:] else [])
    order = draw(st.lists(st.integers(0, len(blocks) - 1), min_size=1, max_size=4)) if draw(st.booleans()) else None
    return craft.table(blocks, order)


@fuzz_settings()
@given(checkpoint_indexes())
def test_checkpoint_indexes(index):
    with tempfile.TemporaryDirectory() as tmp:
        model = craft.savedmodel_with_index(Path(tmp) / "model", index)
        result = bounded(read_savedmodel_fast, model)
    if isinstance(result, IrcError):
        assert str(model) in str(result), f"the error does not name the model: {result}"
    lower(result)
