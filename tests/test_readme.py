"""The README as a new user reads it: what the set-up commands do and cost is said up front (issue 17)."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_setup_block_is_two_commands_as_ci_runs_them():
    block = re.search(r"^```sh\n(.*?)^```$", README, re.DOTALL | re.MULTILINE).group(1)
    assert len(block.strip().splitlines()) == 2  # .ci/run runs exactly these two


def test_readme_says_how_long_the_suite_takes_and_how_to_run_the_quick_loop_first():
    after_setup = README.split("```sh", 1)[1].split("```", 1)[1]
    up_front = after_setup.split("\n## ", 1)[0]  # before the first section
    assert re.search(r"\b\d+ minutes\b", up_front), "the suite's duration is not said before the first section"
    assert 'pytest -n 2 -q -m "not slow"' in up_front


def test_readme_demo_model_is_said_to_depend_on_its_input():
    up_front = README.split("\n## ", 1)[0]
    assert "batch norms are calibrated on random inputs" in up_front
