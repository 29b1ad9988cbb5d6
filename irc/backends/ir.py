"""The ``ir`` target: irc's text form, after the requested passes."""

from __future__ import annotations

from irc.backends import register_backend
from irc.backends.base import Backend
from irc.errors import UsageError
from irc.ir.graph import Graph


@register_backend
class IRBackend(Backend):
    """irc's own text form (.irc), after the requested passes."""

    name = "ir"
    default_pipeline = "O0"

    def emit(self, graph: Graph, options) -> Graph:
        """A copy of ``graph`` after ``passes`` and ``quantize``; ``graph`` itself is left as it was."""
        unknown = sorted(k for k, v in options.items() if v is not None and k not in ("passes", "quantize"))
        if unknown:
            raise UsageError(f"the ir target takes no option {', '.join(unknown)}")
        return self.prepare(graph, options)

    def write(self, artifact: Graph, path, force: bool = False) -> None:
        """The text form to ``path`` (``-``: stdout), large constants elided as in ``irc dump``; to a file, they go
        beside it as NAME.weights.npz (see irc/ir/weights_file.py)."""
        from irc.ir.weights_file import write_ir

        write_ir(artifact, path, force=force)
