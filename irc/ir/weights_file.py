"""The weights file beside an .irc dump, so that a dump written to a file can be used by every command.

``irc dump -o model.irc`` (and ``irc opt -o``, ``irc lower --emit ir -o``) prints large constants as hashes, which
keeps the text small and diffable, and writes their data to ``model.weights.npz`` beside it, keyed by hash. The
dump's first line records that file's name, ``// weights: model.weights.npz`` (a comment, so every reader of the
text form still parses it); loading the dump looks for the file next to it. The name must be a plain file name in
the same directory: a dump cannot make irc read a file elsewhere.
"""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path

from irc.errors import InputError

log = logging.getLogger(__name__)

_LEADING_COMMENT = re.compile(r"\s*//([^\n]*)")
SUFFIX = ".weights.npz"


def sidecar_for(output: str | os.PathLike) -> Path:
    """Where the weights of a dump written to ``output`` go: ``model.irc`` -> ``model.weights.npz``."""
    output = Path(output)
    return output.with_name(output.stem + SUFFIX)


def recorded_name(text: str) -> str | None:
    """The weights file named in the dump's leading comment lines, or None (only those lines are read)."""
    start = 0
    while match := _LEADING_COMMENT.match(text, start):
        body = match.group(1).strip()
        if body.startswith("weights:"):
            return body[len("weights:"):].strip()
        start = match.end()
    return None


def find_recorded(irc_path: str | os.PathLike, text: str) -> Path | None:
    """The weights file the dump at ``irc_path`` records, which must exist beside it; None when it records none."""
    name = recorded_name(text)
    if name is None:
        return None
    if not name or Path(name).name != name or name in (".", ".."):
        raise InputError(f"the weights file it names, {name!r}, is not a file name beside it", where=str(irc_path))
    path = Path(irc_path).parent / name
    if not path.is_file():
        raise InputError(f"its weights file {path} is missing", where=str(irc_path),
                         hint="copy it beside the dump, or pass --weights FILE")
    return path


def check_resolved(graph, weights_path: Path, irc_path) -> None:
    """An InputError when the weights file a dump records lacks one of its elided constants (a stale file)."""
    from irc.ir.printer import ElidedTensor
    from irc.ir.verify import node_label

    for node in graph.walk(recursive=True):
        value = node.attrs.get("value") if node.op == "const" else None
        if isinstance(value, ElidedTensor):
            raise InputError(f"its weights file {weights_path} has no constant sha256:{value.digest} "
                             f"({node_label(node)}): is it the weights file of another dump?", where=str(irc_path))


def write_ir(graph, output, *, full: bool = False, weights_out=None, force: bool = False) -> None:
    """Writes ``graph`` as IR text to ``output`` (None or ``-``: stdout).

    Written to a file, elided constants go to ``weights_out`` (default: the sidecar beside ``output``) and the
    dump records that file's name, when it lies beside the dump. With ``full`` every constant is written in the text.
    To stdout, constants stay elided and only an explicit ``weights_out`` is written.
    """
    import numpy as np

    from irc.ir.printer import collect_weights, print_graph
    from irc.outputs import check_output, write_output

    to_file = output not in (None, "-")
    if to_file:
        check_output(output, "file", force)  # before its weights file's name is made from it
    implicit = weights_out is None and to_file and not full
    if implicit:
        weights_out = sidecar_for(output)
    weights = collect_weights(graph) if weights_out is not None else {}
    writes_weights = weights_out is not None and (weights or not implicit)
    if writes_weights:
        check_output(weights_out, "file", force)
        buffer = io.BytesIO()
        np.savez(buffer, **weights)
        write_output(weights_out, buffer.getvalue(), force)
        log.info(f"wrote {weights_out}")
    recorded = None
    if weights and to_file and not full:
        if _still_elided(graph):  # read without its weights: this file cannot hold them all, so record nothing
            log.info(f"{output} keeps constants elided from its input; {weights_out} holds only the others")
        elif Path(weights_out).resolve().parent == Path(output).resolve().parent and "\n" not in str(weights_out):
            recorded = Path(weights_out).name
        else:
            log.info(f"{output} does not record {weights_out} (not beside it): pass it with --weights")
    write_output(output, print_graph(graph, full=full, weights=recorded), force)


def _still_elided(graph) -> bool:
    from irc.ir.printer import ElidedTensor

    return any(node.op == "const" and isinstance(node.attrs.get("value"), ElidedTensor)
               for node in graph.walk(recursive=True))
