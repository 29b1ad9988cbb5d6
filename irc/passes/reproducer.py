"""Crash reproducers: the IR a failing pass was given and the rest of the pipeline, as a file ``irc opt`` replays.

The pass manager keeps one copy of the graph from before the pipeline; on a failure it reruns the passes before the
failing one on that copy to get the failing pass's input (passes are deterministic), so no per-pass snapshot is
paid for when nothing fails. Large constants go to an ``.npz`` beside the ``.irc`` file.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from irc.ir.graph import Graph
from irc.outputs import write_atomic
from irc.passes.base import Pass, Stats

FULL_BYTES_AT_MOST = 16 << 20  # above this, constants are written to an .npz sidecar instead of inline


def replay(snapshot: Graph, passes: Sequence[Pass]) -> tuple[Graph, int]:
    """The graph after ``passes`` run on a copy of ``snapshot``, and how many passes it went through (0 when the
    replay itself fails: then the snapshot is the reproducer's input and the whole pipeline its passes)."""
    from irc.passes.manager import apply_pass

    work = snapshot.copy()
    try:
        for p in passes:
            apply_pass(p, work, Stats())
    except Exception:
        return snapshot, 0
    return work, len(passes)


def _user_file(p: Pass) -> str | None:
    """The file a pass loaded with --load came from (the replay must load it too)."""
    from irc.registry import USER_MODULE_PREFIX

    module = sys.modules.get(type(p).__module__)
    if module is None or not module.__name__.startswith(USER_MODULE_PREFIX):
        return None
    return module.__file__


def write_reproducer(snapshot: Graph, passes: Sequence[Pass], index: int, message: str, directory=None,
                     check_numerics: bool = False) -> str:
    """Writes the reproducer for a failure of ``passes[index]``; returns the ``irc opt`` command that replays it."""
    from irc.ir.printer import collect_weights, print_graph
    from irc.passes.pipeline import format_pipeline

    graph, start = replay(snapshot, passes[:index])
    remaining = format_pipeline(passes[start:])
    directory = Path(directory) if directory else Path(tempfile.gettempdir()) / "irc-reproducers"
    directory.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{graph.name}-{passes[index].name}")
    fd, name = tempfile.mkstemp(prefix=f"{stem}-", suffix=".irc", dir=directory)
    os.close(fd)
    path = Path(name)
    weights = collect_weights(graph)
    full = sum(w.nbytes for w in weights.values()) <= FULL_BYTES_AT_MOST
    command = ["irc", "opt", str(path)]
    if not full:
        weights_path = path.with_suffix(".npz")
        buffer = io.BytesIO()
        np.savez(buffer, **weights)
        write_atomic(weights_path, buffer.getvalue())  # never through a link planted at that name
        command += ["--weights", str(weights_path)]
    for source in dict.fromkeys(_user_file(p) for p in passes[start:]):
        if source:
            command += ["--load", source]
    command += ["--passes", remaining] + (["--check-numerics"] if check_numerics else [])
    line = " ".join(shlex.quote(c) for c in command)
    header = f"// irc crash reproducer: {message}\n// replay: {line}\n"
    write_atomic(path, header + print_graph(graph, full=full))
    return line
