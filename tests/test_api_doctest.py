"""The Python API's documented examples run: docstrings of the public modules and the Python part of
docs/quickstart.md (irc.load, irc.run, irc.lower, graph.dump, irc.diff)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each module's docstrings hold runnable examples: a module whose examples vanish fails, it does not pass empty.
MODULES = ["irc", "irc.api", "irc.tools.diff", "irc.tools.check", "irc.tools.stats"]
FLAGS = doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_quickstart_examples(monkeypatch):
    pytest.importorskip("keras")  # the last example loads a Keras model from memory
    monkeypatch.chdir(ROOT)  # the examples use paths relative to the repository
    result = doctest.testfile(str(ROOT / "docs" / "quickstart.md"), module_relative=False, optionflags=FLAGS)
    assert result.failed == 0 and result.attempted >= 20
