"""Terminal colors for the reports the tools format (the CLI decides whether to ask for them)."""

from __future__ import annotations

_COLORS = {"red": 31, "green": 32, "yellow": 33, "blue": 34, "magenta": 35, "cyan": 36}


def style(text: str, fg: str | None = None, bold: bool = False) -> str:
    """``text`` in color ``fg`` and/or bold, as ANSI escape codes; plain ``text`` when neither is asked."""
    codes = ([_COLORS[fg]] if fg else []) + ([1] if bold else [])
    return "".join(f"\x1b[{code}m" for code in codes) + f"{text}\x1b[0m" if codes else text
