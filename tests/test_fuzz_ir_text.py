"""Fuzzing the IR text parser: any text (or any bytes in an .irc file) parses to a graph or raises an IrcError.

Three sources: arbitrary text, token soup made of the language's own tokens (which gets past the lexer), and
valid files with a few edits. A graph that parses must also survive the verifier, the printer and a second parse.
The budget is tests/bad_inputs/fuzzing.py's (``IRC_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from irc.api import load_irc
from irc.errors import IrcError
from irc.ir.graph import Graph
from irc.ir.parser import parse
from irc.ir.printer import print_graph
from irc.ir.verify import find_problems
from tests.bad_inputs.fuzzing import CORPUS, bounded, fuzz_settings, mutated

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [CORPUS / "good" / "tiny.irc", CORPUS / "good" / "cnn.irc", ROOT / "tests" / "passes" / "fuse.irc",
         ROOT / "tests" / "passes" / "fold-constants.irc"]
SEED_TEXTS = [p.read_text().split("// EXPECT:")[0] for p in SEEDS if p.exists()]

TOKENS = [
    "graph", "@", "g", "@\"a b\"", "(", ")", "{", "}", "[", "]", "<", ">", ",", ":", "=", "%0", "%1", "%x",
    "%\"odd name\"", "f32", "i8", "u8", "i32", "bool", "str", "bf16", "*", "?", "batch", "0", "1", "2", "-1", "7",
    "2147483648", "99999999999999999999", "1.5", "-0.0", "1e308", "1e-320", "nan", "inf", "-inf", "true", "false",
    "\"y\"", "\"\"", "\"\\u0000\"", "\"\\ud800\"", "return", "as", "const", "value", "dense", "relu", "add",
    "matmul", "conv2d", "reshape", "shape", "concat", "axis", "q", "q(0.5, 0)", "b64\"AAAA\"", "b64\"\"",
    "sha256:00ff", "loc", "in", "\"layer\"", "// comment\n", "\n", " ",
]


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
