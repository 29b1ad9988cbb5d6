"""Fuzzing the IR text parser: any text (or any bytes in an .irc file) parses to a graph or raises an IrcError.

Three sources: arbitrary text, token soup made of the language's own tokens (which gets past the lexer), and
valid files with a few edits; and two targeted ones: tensor literals at and past every dtype's bounds (which must
be exact or refused at the item), and graphs with thousands of inputs and outputs. A graph that parses must also survive the verifier, the printer and a second parse.
The budget is tests/bad_inputs/fuzzing.py's (``IRC_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from irc.api import load_irc
from irc.errors import IrcError
from irc.ir.graph import Graph
from irc.ir.parser import parse
from irc.ir.printer import print_graph
from irc.ir.types import DType
from irc.ir.verify import find_problems
from tests.bad_inputs.fuzzing import CORPUS, EXAMPLES, bounded, fuzz_settings, mutated

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [CORPUS / "good" / "tiny.irc", CORPUS / "good" / "cnn.irc", ROOT / "tests" / "passes" / "fuse.irc",
         ROOT / "tests" / "passes" / "fold-constants.irc", CORPUS / "irc" / "loop_body_changes_shape.irc",
         CORPUS / "irc" / "if_branches_disagree.irc"]
SEED_TEXTS = [p.read_text().split("// EXPECT:")[0] for p in SEEDS if p.exists()]

TOKENS = [
    "graph", "@", "g", "@\"a b\"", "(", ")", "{", "}", "[", "]", "<", ">", ",", ":", "=", "%0", "%1", "%x",
    "%\"odd name\"", "f32", "i8", "u8", "i32", "bool", "str", "bf16", "*", "?", "batch", "0", "1", "2", "-1", "7",
    "2147483648", "99999999999999999999", "1.5", "-0.0", "1e308", "1e-320", "nan", "inf", "-inf", "true", "false",
    "\"y\"", "\"\"", "\"\\u0000\"", "\"\\ud800\"", "return", "as", "const", "value", "dense", "relu", "add",
    "matmul", "conv2d", "reshape", "shape", "concat", "axis", "q", "q(0.5, 0)", "b64\"AAAA\"", "b64\"\"",
    "sha256:00ff", "loc", "in", "\"layer\"", "// comment\n", "\n", " ", "^", "^body", "^then(%x: f32[2])", "while",
    "if", "cond",
]

# Numbers at and just past every dtype's bounds, as a tensor literal may hold them.
BOUND_INTS = sorted({sign * (2**bits + delta) for bits in (7, 8, 15, 16, 31, 32, 63, 64) for delta in (-1, 0, 1)
                     for sign in (1, -1)} | {0, 1, 300, -300, 10**30})
BOUND_FLOATS = ["65504.0", "65519.0", "65520.0", "-65520.0", "3.3895313892515355e38", "3.3961e38", "3.3962e38",
                "3.4028234663852886e38", "3.4028235e38", "3.4028236e38", "1e39", "1.7976931348623157e308", "1e309",
                "-1e400", "5e-324", "1e-400", "inf", "-inf", "nan", "0.5", "-0.0"]
DTYPES = [d.value for d in DType]


def check_parsed(result) -> None:
    """A parsed graph verifies (or lists its problems), prints, and parses back to the same text."""
    if not isinstance(result, Graph):
        assert isinstance(result, IrcError)
        return
    problems = bounded(find_problems, result, elided_ok=True)
    assert isinstance(problems, list)
    text = bounded(print_graph, result)
    again = bounded(parse, text, "<printed>")
    assert isinstance(again, Graph), f"printed IR does not parse back: {again}\n{text}"
    assert print_graph(again) == text


@fuzz_settings()
@given(st.text(max_size=400))
def test_any_text(text):
    check_parsed(bounded(parse, text, "fuzz.irc"))


@fuzz_settings()
@given(st.lists(st.sampled_from(TOKENS), max_size=80).map(" ".join))
def test_token_soup(text):
    check_parsed(bounded(parse, text, "fuzz.irc"))


@fuzz_settings()
@given(st.sampled_from(SEED_TEXTS).flatmap(lambda seed: mutated(seed.encode())))
def test_edited_valid_files(data):
    text = data.decode("utf-8", errors="replace")
    result = bounded(parse, text, "fuzz.irc")
    if isinstance(result, IrcError):
        assert str(result).startswith("fuzz.irc"), f"the error does not name the file: {result}"
    check_parsed(result)


@fuzz_settings()
@given(st.sampled_from(SEED_TEXTS).flatmap(lambda seed: st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6)
                                            .flatmap(lambda toks: st.tuples(st.just(seed), st.just(" ".join(toks)),
                                                                            st.integers(0, len(seed))))))
def test_valid_files_with_tokens_spliced_in(case):
    seed, tokens, at = case
    check_parsed(bounded(parse, seed[:at] + tokens + seed[at:], "fuzz.irc"))


@fuzz_settings()
@given(st.binary(max_size=300) | st.sampled_from(SEED_TEXTS).flatmap(lambda seed: mutated(seed.encode())))
def test_any_bytes_in_an_irc_file(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.irc"
        path.write_bytes(data)
        result = bounded(load_irc, path)
    if isinstance(result, IrcError):
        assert str(path) in str(result), f"the error does not name the file: {result}"
    check_parsed(result)


@st.composite
def tensor_literals(draw) -> tuple[str, str, list[str]]:
    """A one-constant graph whose tensor literal holds numbers at and past its dtype's bounds (or of another kind)."""
    dtype = draw(st.sampled_from(DTYPES))
    items = draw(st.lists(st.sampled_from([str(i) for i in BOUND_INTS] + BOUND_FLOATS + ["true", "false", '"s"']),
                          max_size=6))
    text = (f"graph @g() {{\n  %0 = const() {{value = dense<{dtype}[{len(items)}] [{', '.join(items)}]>}} : "
            f'{dtype}[{len(items)}]\n  return %0 as "y"\n}}\n')
    return text, dtype, items


@fuzz_settings()
@given(tensor_literals())
def test_tensor_literals_at_dtype_bounds_are_exact_or_refused(case):
    """A literal either holds exactly what was written (no wrapping, no overflow to infinity, no truncation of a
    fraction) or is refused at the item, naming the file, line and column."""
    text, dtype, items = case
    result = bounded(parse, text, "fuzz.irc")
    if isinstance(result, IrcError):
        assert str(result).startswith("fuzz.irc:2:"), str(result)
        return
    check_parsed(result)
    got = result.outputs["y"].constant
    for item, value in zip(items, got.reshape(-1).tolist()):
        if dtype == "str":
            assert value == item.strip('"').encode()
        elif dtype == "bool":
            assert value is (item == "true")
        elif DType(dtype).is_integer:
            assert value == int(item)
        else:
            written = float(item)
            assert math.isnan(value) if math.isnan(written) else value == float(np.array([written]).astype(
                DType(dtype).numpy)[0])
            assert math.isinf(value) == (item in ("inf", "-inf"))


@fuzz_settings(examples=max(3, EXAMPLES // 40))
@given(st.integers(1, 2000), st.integers(1, 2000))
def test_many_inputs_and_outputs_parse_print_and_parse_back(inputs, outputs):
    params = ", ".join(f"%x{i}: f32[1]" for i in range(inputs))
    rets = ", ".join(f'%x{i % inputs} as "y{i}"' for i in range(outputs))
    result = bounded(parse, f"graph @g({params}) {{\n  return {rets}\n}}\n", "fuzz.irc")
    assert isinstance(result, Graph) and len(result.inputs) == inputs and len(result.outputs) == outputs
    check_parsed(result)
