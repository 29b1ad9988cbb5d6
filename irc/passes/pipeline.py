"""Textual pipelines: ``canonicalize,fold-constants,tfl-fuse{activations=relu,relu6},layout{target=nhwc}``.

Passes are separated by commas outside braces. Inside a pass's braces, options are ``key=value``, separated by
spaces or commas; a comma followed by a word without ``=`` continues a list (``activations=relu,relu6``); a bare
word is a boolean flag set to true. A named pipeline (``O2``, ``tflite``) stands for its passes.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from irc.errors import PipelineError
from irc.passes.base import Pass

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def split_elements(text: str) -> list[str]:
    """The comma-separated elements of a pipeline, braces kept with their pass."""
    elements, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise PipelineError(f"bad pipeline '{text}': unbalanced '}}' at character {i + 1}")
        elif ch == "," and depth == 0:
            elements.append(text[start:i])
            start = i + 1
    if depth:
        raise PipelineError(f"bad pipeline '{text}': a '{{' is not closed")
    elements.append(text[start:])
    return [e.strip() for e in elements if e.strip()]


def split_element(element: str) -> tuple[str, dict[str, list[str]]]:
    """``fuse{bias=true pad=false}`` -> ("fuse", {"bias": ["true"], "pad": ["false"]}); a comma continues a list
    (``tfl-fuse{activations=relu,relu6}``)."""
    name, brace, rest = element.partition("{")
    name = name.strip()
    if not _NAME.match(name):
        raise PipelineError(f"bad pipeline element '{element}': expected a pass name like 'fuse' or 'fuse{{...}}'")
    if not brace:
        return name, {}
    if not rest.rstrip().endswith("}") or "{" in rest:
        raise PipelineError(f"bad options for pass '{name}': '{element}' (write {name}{{key=value ...}})")
    body = re.sub(r"\s*,\s*", ",", rest.rstrip()[:-1].strip())
    options: dict[str, list[str]] = {}
    for group in body.split():
        last = None
        for piece in group.split(","):
            key, eq, value = piece.partition("=")
            if eq:
                last = key.strip()
                if last in options:
                    raise PipelineError(f"pass '{name}': option '{last}' is given twice")
                options[last] = [value.strip()]
            elif last is None:
                last = key.strip()
                options[last] = ["true"]
            else:
                options[last].append(piece.strip())
    return name, options


def parse_pipeline(pipeline: str | Sequence[str | Pass], _seen: tuple[str, ...] = ()) -> list[Pass]:
    """The passes of a pipeline given as text, a named pipeline, or a list of elements and Pass instances."""
    from irc.passes import PIPELINES, get_pass

    items = split_elements(pipeline) if isinstance(pipeline, str) else list(pipeline)
    passes: list[Pass] = []
    for item in items:
        if isinstance(item, Pass):
            passes.append(item)
            continue
        if not isinstance(item, str):
            raise PipelineError(f"a pipeline element must be a pass name or a Pass, got {type(item).__name__}")
        if not isinstance(pipeline, str) and len(split_elements(item)) != 1:
            passes.extend(parse_pipeline(item, _seen))
            continue
        name, options = split_element(item)
        if name in PIPELINES and options:
            raise PipelineError(f"'{item}': pipeline '{name}' takes no options (give them to its passes: "
                                f"{PIPELINES[name] or 'it has none'})")
        if name in PIPELINES:
            if name in _seen:
                raise PipelineError(f"pipeline '{name}' includes itself")
            passes.extend(parse_pipeline(PIPELINES[name], _seen + (name,)))
            continue
        passes.append(get_pass(name).from_options(options))
    return passes


def format_pipeline(passes: Sequence[Pass]) -> str:
    """The text form of a list of passes; ``parse_pipeline`` reads it back."""
    return ",".join(str(p) for p in passes)


def unknown_pass_error(name: str, passes: Sequence[str], pipelines: Sequence[str]) -> PipelineError:
    close = difflib.get_close_matches(name, list(passes) + list(pipelines), n=1)
    guess = f"did you mean '{close[0]}'? " if close else ""
    return PipelineError(f"unknown pass '{name}' ({guess}passes: {', '.join(passes)}; "
                         f"pipelines: {', '.join(pipelines)})")
