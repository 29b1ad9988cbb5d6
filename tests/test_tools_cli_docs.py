"""docs/cli.md is generated from the click commands (docs/gen_cli.py) and must match them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date():
    gen = load_generator()
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == gen.render(), "docs/cli.md is out of date: run python docs/gen_cli.py"


def test_every_command_is_documented():
    from irc.cli import COMMANDS

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for name, (module, _) in COMMANDS.items():
        importlib.import_module(module)  # every listed command exists: an import error fails here, never skips
        assert f"## irc {name}\n" in text
