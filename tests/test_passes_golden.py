"""Golden tests: IR in, pipeline, IR out, from the small files in tests/passes/.

Each file holds cases separated by ``// -----``. A case is a ``// RUN: PIPELINE`` line, the input graph, then
``// EXPECT:`` and the expected graph (compared after printing both canonically), or ``// EXPECT-ERROR: TEXT``
(a substring of the one-line error). Every case that runs is also checked numerically: the reference interpreter
gives the same outputs before and after, on fixed random inputs (except for graphs with opaque TensorFlow ops,
which would need TensorFlow to run).

    .venv/bin/python tests/test_passes_golden.py --update   # rewrite the EXPECT sections from what the passes do
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from irc.errors import IrcError
from irc.ir.interpreter import random_inputs, run
from irc.ir.parser import parse
from irc.ir.printer import print_graph
from irc.passes import run_pipeline

GOLDEN = Path(__file__).parent / "passes"
SEPARATOR = "// -----"


@dataclass
class Case:
    file: Path
    index: int
    pipeline: str
    source: str
    expect: str | None
    error: str | None

    @property
    def id(self) -> str:
        name = re.search(r"graph @(\S+?)\(", self.source)
        return f"{self.file.stem}:{name.group(1) if name else self.index}"


def read_cases(path: Path) -> list[Case]:
    cases = []
    for index, chunk in enumerate(path.read_text().split(SEPARATOR + "\n")):
        run_line = re.search(r"^// RUN: (.*)$", chunk, re.MULTILINE)
        assert run_line, f"{path.name} case {index}: no // RUN: line"
        source, _, expected = chunk.partition("// EXPECT")
        error = None
        if expected.startswith("-ERROR:"):
            error, expected = expected[len("-ERROR:"):].strip(), None
        else:
            expected = expected.partition("\n")[2]
        cases.append(Case(path, index, run_line.group(1).strip(), source, expected, error))
    return cases


ALL_CASES = [case for path in sorted(GOLDEN.glob("*.irc")) for case in read_cases(path)]


def outputs_agree(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for name, want in before.items():
        got = after[name]
        assert got.shape == want.shape and got.dtype == want.dtype, name
        if want.dtype.kind == "f":
            scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale, err_msg=name)
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)


def run_case(case: Case):
    graph = parse(case.source, source=case.id)
    numeric = not any(node.is_opaque for node in graph.nodes)
    inputs = random_inputs(graph, seed=1)
    before = run(graph, inputs) if numeric else None
    run_pipeline(graph, case.pipeline, crash_reproducer=False)
    if numeric:
        outputs_agree(before, run(graph, inputs))
    return graph


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_golden(case):
    if case.error is not None:
        with pytest.raises(IrcError) as raised:
            run_case(case)
        assert case.error in str(raised.value)
        assert "\n" not in str(raised.value)
        return
    graph = run_case(case)
    expected = print_graph(parse(case.expect, source=f"{case.id} (expected)"))
    assert print_graph(graph) == expected


def update(paths) -> None:
    """Rewrites each case's EXPECT section with what the pipeline produces now."""
    for path in paths:
        chunks = []
        for case in read_cases(path):
            if case.error is not None:
                chunks.append(case.source + "// EXPECT-ERROR: " + case.error + "\n")
                continue
            chunks.append(case.source + "// EXPECT:\n" + print_graph(run_case(case)))
        path.write_text((SEPARATOR + "\n").join(chunks))


if __name__ == "__main__":
    update(sorted(GOLDEN.glob("*.irc")) if "--update" in sys.argv else [])
