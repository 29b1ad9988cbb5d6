"""Fuzzing irc's own TensorFlow readers (no TensorFlow involved): frozen GraphDefs and SavedModel directories.

irc decodes the protobufs and the checkpoint's tensor bundle itself, then lowers the graph; any bytes in
``.pb``, ``saved_model.pb``, ``variables.index`` or ``variables.data-*`` give an irc graph or an IrcError.
The budget is tests/bad_inputs/fuzzing.py's (``IRC_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from irc.errors import IrcError
from irc.frontends.lowering import lower_graph
from irc.frontends.savedmodel_reader import read_graphdef_bytes, read_savedmodel_fast
from irc.frontends.tfgraph import TFGraph
from irc.ir.graph import Graph
from irc.ir.verify import find_problems
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
