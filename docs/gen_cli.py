"""Writes docs/cli.md, the command-line reference, from the click commands themselves, so it cannot drift.

    python docs/gen_cli.py            # rewrite docs/cli.md
    python docs/gen_cli.py --check    # exit 1 if docs/cli.md is out of date (tests/test_tools_cli_docs.py does this)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "cli.md"
WIDTH = 100  # the width irc's own --help uses (cli.main's max_content_width)

HEADER = """\
# irc command-line reference

Generated from the commands' own `--help` by `python docs/gen_cli.py`; do not edit by hand
(`tests/test_tools_cli_docs.py` fails when this file and the commands disagree).
Every command takes the global options before its name: `irc -q diff A B`, `irc --debug dump MODEL`.

Exit status everywhere: 0 success, 1 bad input (or, for `diff`, "different"; for `check`, "will not convert"),
2 bad usage (`diff`: trouble), 3 a bug in irc.
"""


def help_text(command: click.Command, name: str, parent: click.Context) -> str:
    ctx = click.Context(command, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    return command.get_help(ctx)


def render() -> str:
    from irc.cli import COMMANDS, main

    settings = {**main.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    root = click.Context(main, info_name="irc", **settings)
    parts = [HEADER, "## Commands\n"]
    names = main.list_commands(root)
    parts += [f"- [`irc {name}`](#irc-{name}): {COMMANDS[name][1]}" for name in names]
    parts.append("")
    parts += ["## irc", "", "```text", main.get_help(root), "```", ""]
    for name in names:
        command = main.get_command(root, name)
        parts += [f"## irc {name}", "", "```text", help_text(command, name, root), "```", ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that docs/cli.md is up to date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run python docs/gen_cli.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
