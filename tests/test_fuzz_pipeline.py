"""Fuzzing the pipeline-string parser (``--passes``): any text gives passes or a PipelineError (exit 2).

A pipeline that parses prints back to text that parses to the same passes, and runs over a small model to a
result or an IrcError. The budget is tests/bad_inputs/fuzzing.py's (``IRC_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from irc.errors import IrcError, UsageError
from irc.ir.parser import parse
from irc.passes import PIPELINES, available_passes, run_pipeline
from irc.passes.pipeline import format_pipeline, parse_pipeline
from tests.bad_inputs.fuzzing import CORPUS, bounded, fuzz_settings

MODEL = (CORPUS / "good" / "cnn.irc").read_text()
NAMES = sorted(available_passes()) + sorted(PIPELINES)
OPTIONS = sorted({spec.name for cls in available_passes().values() for spec in cls.options()})
VALUES = ["relu", "relu6", "tanh", "nhwc", "nchw", "true", "false", "0", "1", "-5", "4194304", "1e3", "abc", "",
          "99999999999999999999999", "nan", "relu,relu6", "int8", "minmax"]
TOKENS = NAMES + OPTIONS + VALUES + list("{}=, \t") + ["{{", "}}", ",,", "= ="]


@st.composite
def pipelines(draw) -> str:
    """Pass elements with options drawn from the real names, values and separators, sometimes broken."""
    elements = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(NAMES) | st.text(max_size=6))
        if draw(st.booleans()):
            opts = [f"{draw(st.sampled_from(OPTIONS) | st.text(max_size=4))}={draw(st.sampled_from(VALUES))}"
                    for _ in range(draw(st.integers(0, 3)))]
            name += "{" + draw(st.sampled_from([" ", ",", ", "])).join(opts) + "}"
        elements.append(name)
    return draw(st.sampled_from([",", ", ", " , "])).join(elements)


def check(text: str) -> None:
    result = bounded(parse_pipeline, text)
    if isinstance(result, IrcError):
        assert isinstance(result, UsageError), f"{type(result).__name__} is not a usage error: {result}"
        return
    printed = format_pipeline(result)
    assert format_pipeline(parse_pipeline(printed)) == printed
    graph = parse(MODEL, "cnn.irc")
    outcome = bounded(run_pipeline, graph, result, crash_reproducer=False)
    assert not isinstance(outcome, IrcError) or "bug in irc" not in str(outcome), outcome


@fuzz_settings()
@given(st.text(max_size=80))
def test_any_text(text):
    check(text)


@fuzz_settings()
@given(st.lists(st.sampled_from(TOKENS), max_size=20).map("".join))
def test_token_soup(text):
    check(text)


@fuzz_settings()
@given(pipelines())
def test_pipelines_of_real_names_and_options(text):
    check(text)
