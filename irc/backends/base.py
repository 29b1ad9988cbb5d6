"""What a backend is: one class per target, found by name through ``irc.backends.get_backend``.

    @register_backend
    class MyTarget(Backend):
        "Writes my accelerator's program."          # the first line is the description irc lower --help shows
        name = "mytarget"
        default_pipeline = "O2"                     # what runs when the user gives no --passes/-O
        passes = ("mytarget-idioms",)               # passes it brings: registered by its module, listed by irc passes

        def emit(self, graph, options):             # -> the artifact; never changes ``graph`` (work on a copy)
            graph = self.prepare(graph, options)    # the pipeline and quantization, on a copy
            return compile_somehow(graph)

        def write(self, artifact, path, force=False):   # writes what emit made (atomically: irc.outputs)
            ...

``options`` is a dict: ``passes`` (pipeline text; None runs ``default_pipeline``, ``"O0"`` none), ``quantize``
(a mode or None) and the target's own options (``layout``, ``allow_tf_ops``, ...); a backend refuses options it
does not take with a UsageError.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from irc.ir.graph import Graph, Node

# One row of Backend.check: (node, "native" | "fallback" | "unsupported", why).
CheckRow = tuple[Node, str, str]


class Backend:
    """Base of every backend. Subclasses set ``name`` (and a docstring: its first line is the description) and
    implement ``emit`` and ``write``; ``check`` says which nodes the target runs natively."""

    name: ClassVar[str] = ""
    default_pipeline: ClassVar[str] = "O0"
    passes: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[str] = "file"  # what ``write`` makes at its path: "file" or "directory"

    @property
    def description(self) -> str:
        doc = (type(self).__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def emit(self, graph: Graph, options: Mapping[str, Any]) -> Any:
        """The artifact for ``graph`` (bytes, a Graph, a compiled model ...). ``graph`` is left unchanged."""
        raise NotImplementedError(f"backend {self.name!r} ({type(self).__qualname__}) defines no emit(graph, options)")

    def write(self, artifact: Any, path: str | os.PathLike, force: bool = False) -> None:
        """Writes what ``emit`` returned to ``path``, atomically, through ``irc.outputs`` (``write_output``,
        ``atomic_file``, ``atomic_dir``), which refuse to replace what must not be; ``force`` replaces a non-empty
        directory or a directory where a file goes."""
        raise NotImplementedError(f"backend {self.name!r} ({type(self).__qualname__}) defines no write(artifact, path)")

    def check(self, graph: Graph) -> list[CheckRow]:
        """(node, status, why) for every node: by default every node is native."""
        return [(node, "native", "") for node in graph.nodes]

    def prepare(self, graph: Graph, options: Mapping[str, Any]) -> Graph:
        """A copy of ``graph`` after ``options["passes"]`` (``default_pipeline`` when None) and, when asked, irc's
        quantizer (``options["quantize"]``)."""
        from irc.passes import run_pipeline

        graph = graph.copy()
        pipeline = options.get("passes")
        run_pipeline(graph, self.default_pipeline if pipeline is None else pipeline)
        if options.get("quantize"):
            run_pipeline(graph, f"quantize{{mode={options['quantize']}}}")
        return graph
