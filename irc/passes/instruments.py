"""Instruments for the pass manager: print the IR around passes, check numerics after each pass."""

from __future__ import annotations

import sys
from collections.abc import Collection
from typing import TextIO

import numpy as np

from irc.errors import PassError, UsageError
from irc.ir.graph import Graph
from irc.passes.manager import Instrument, PassRecord


class PrintIR(Instrument):
    """Prints the IR before/after the named passes, after all, or (``after_change``) only after passes that changed
    it: with ``after`` or ``after_all`` it filters them, alone it means after every pass that changed the IR."""

    def __init__(self, before: Collection[str] = (), after: Collection[str] = (), after_all: bool = False,
                 after_change: bool = False, stream: TextIO | None = None, full: bool = False):
        self.before, self.after = set(before), set(after)
        self.after_all, self.after_change = after_all, after_change
        self.stream, self.full = stream, full
        self._index = 0
        self._total = 0

    def _write(self, title: str, graph: Graph) -> None:
        from irc.ir.printer import print_graph

        stream = self.stream or sys.stderr
        stream.write(f"// ----- IR {title} ----- //\n{print_graph(graph, full=self.full)}\n")
        stream.flush()

    def before_pipeline(self, graph, passes):
        self._index, self._total = 0, len(passes)

    def before_pass(self, p, graph):
        self._index += 1
        if p.name in self.before:
            self._write(f"before {p} (pass {self._index} of {self._total})", graph)

    def after_pass(self, p, graph, record: PassRecord):
        named = self.after_all or p.name in self.after or (self.after_change and not self.after)
        if named and (record.changed or not self.after_change):
            self._write(f"after {p} (pass {self._index} of {self._total})", graph)


class CheckNumerics(Instrument):
    """Runs the reference interpreter on fixed random inputs before the pipeline and after every pass that changed
    the graph; a PassError names the first pass whose outputs differ beyond ``atol + rtol * max|reference|``."""

    def __init__(self, rtol: float = 1e-4, atol: float = 1e-5, seed: int = 0, inputs=None):
        self.rtol, self.atol, self.seed = rtol, atol, seed
        self.inputs = inputs
        self.reference: dict[str, np.ndarray] = {}

    def _run(self, graph: Graph) -> dict[str, np.ndarray]:
        from irc.ir.interpreter import run

        return run(graph, self.inputs)

    def before_pipeline(self, graph, passes):
        from irc.ir.interpreter import random_inputs

        if self.inputs is None:
            self.inputs = random_inputs(graph, self.seed)
        try:
            self.reference = self._run(graph)
        except Exception as e:
            raise UsageError(f"--check-numerics cannot run the input graph: {e}") from e

    def after_pass(self, p, graph, record):
        if not record.changed:
            return
        try:
            outputs = self._run(graph)
        except Exception as e:
            raise PassError(f"made the graph fail to run: {' '.join(str(e).split())}") from e
        for name, want in self.reference.items():
            if name not in outputs:
                raise PassError(f"removed output '{name}'")
            problem = self.compare(want, outputs[name])
            if problem:
                raise PassError(f"changed output '{name}': {problem}")

    def compare(self, want: np.ndarray, got: np.ndarray) -> str | None:
        """None when ``got`` agrees with ``want``, else how it differs."""
        want, got = np.asarray(want), np.asarray(got)
        if want.shape != got.shape:
            return f"shape {list(got.shape)} instead of {list(want.shape)}"
        if want.dtype.kind not in "fc":
            bad = int(np.count_nonzero(want != got))
            return f"{bad} element(s) differ" if bad else None
        with np.errstate(invalid="ignore"):
            diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        same_nan = np.isnan(want) & np.isnan(got)
        diff = np.where(same_nan | (want == got), 0.0, diff)  # equal infinities and NaN in both agree
        scale = float(np.max(np.abs(want[np.isfinite(want)]), initial=0.0))
        tolerance = self.atol + self.rtol * scale
        worst = float(np.nanmax(diff, initial=0.0)) if diff.size else 0.0
        if np.isnan(diff).any() or worst > tolerance:
            return f"max difference {worst:.3g} > tolerance {tolerance:.3g}"
        return None
