"""The pass manager: runs a pipeline, verifying after each pass that changed the graph (``graph.version``),
and calls instruments around every pass.

Instruments (``irc.passes.instruments``) are the one hook for printing IR, checking numerics and anything a user
wants: ``before_pipeline``, ``before_pass``, ``after_pass`` and ``after_pipeline``. A pass that raises, breaks the
verifier or fails an instrument's check stops the pipeline with a one-line ``PassError`` that names the pass and
the passes before it, and points at a crash reproducer: the IR the pass was given plus the rest of the pipeline,
written as an ``.irc`` file that ``irc opt`` replays.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from irc.errors import IrcError, PassError, VerifyError
from irc.ir.graph import Graph
from irc.ir.verify import find_problems
from irc.passes.base import Pass, Stats


@dataclass
class PassRecord:
    """What one pass did: its time, whether it changed the graph, its statistics and the node counts."""

    index: int
    spec: str  # the pass as a pipeline element, options included
    seconds: float
    changed: bool
    stats: dict[str, int]
    nodes_before: int
    nodes_after: int

    @property
    def name(self) -> str:
        return self.spec.partition("{")[0]


@dataclass
class PipelineReport:
    """The result of ``run_pipeline``: per-pass records, verifier time and op counts before and after (regions'
    nodes included)."""

    pipeline: str
    records: list[PassRecord] = field(default_factory=list)
    verify_seconds: float = 0.0
    ops_before: dict[str, int] = field(default_factory=dict)
    ops_after: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(r.changed for r in self.records)

    @property
    def pass_seconds(self) -> float:
        return sum(r.seconds for r in self.records)

    @property
    def stats(self) -> dict[str, int]:
        """Statistics summed over the pipeline."""
        total: Stats = Stats()
        for r in self.records:
            total.update(r.stats)
        return dict(total)

    def timing_table(self) -> str:
        """Each pass's time and share of the total, its statistics, then the verifier and the total."""
        from irc.passes.report import timing_table

        return timing_table(self)

    def op_count_note(self, limit: int = 8) -> str:
        """One line: node counts before and after, and the ops whose counts changed most."""
        from irc.passes.report import op_count_note

        return op_count_note(self, limit)


class Instrument:
    """Hooks the pass manager calls; subclass and override what you need. ``after_pass`` may raise PassError."""

    def before_pipeline(self, graph: Graph, passes: Sequence[Pass]) -> None:
        pass

    def before_pass(self, p: Pass, graph: Graph) -> None:
        pass

    def after_pass(self, p: Pass, graph: Graph, record: PassRecord) -> None:
        pass

    def after_pipeline(self, graph: Graph, report: PipelineReport) -> None:
        pass


class _Callback(Instrument):
    """A plain function ``f(pass, graph, record)`` used as an instrument after each pass."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def after_pass(self, p, graph, record):
        self.fn(p, graph, record)


def _instruments(instrument) -> list[Instrument]:
    if instrument is None:
        return []
    if isinstance(instrument, Instrument):
        return [instrument]
    if callable(instrument):
        return [_Callback(instrument)]
    return [i if isinstance(i, Instrument) else _Callback(i) for i in instrument]


def run_pipeline(graph: Graph, pipeline: str | Sequence[str | Pass], *, verify_each: bool = True,
                 instrument=None, crash_reproducer: bool = True, reproducer_dir=None) -> PipelineReport:
    """Runs ``pipeline`` (text, a named pipeline, or a list of names and Pass instances) over ``graph`` in place.

    ``instrument``: an Instrument, a list of them, or a function called as ``f(pass, graph, record)`` after each
    pass. With ``crash_reproducer`` a failing pass leaves a reproducer in ``reproducer_dir`` (a temporary
    directory by default). Raises PipelineError for a bad pipeline and PassError naming the pass that failed.
    """
    from irc.passes.pipeline import format_pipeline, parse_pipeline

    passes = parse_pipeline(pipeline)
    report = PipelineReport(format_pipeline(passes), ops_before=all_ops(graph))
    instruments = _instruments(instrument)
    if verify_each:
        started = time.perf_counter()
        problems = find_problems(graph, elided_ok=True)  # elided constants: valid IR that cannot run
        report.verify_seconds += time.perf_counter() - started
        if problems:
            raise VerifyError(f"the input IR is invalid before any pass ran: {problems[0]}")
    snapshot = graph.copy() if crash_reproducer and passes else None
    failure = _Failure(passes, snapshot, reproducer_dir, instruments)
    for inst in instruments:
        inst.before_pipeline(graph, passes)
    for index, p in enumerate(passes):
        for inst in instruments:
            inst.before_pass(p, graph)
        version, nodes_before, stats = graph.version, count_nodes(graph), Stats()
        started = time.perf_counter()
        try:
            apply_pass(p, graph, stats)
        except Exception as error:
            failure.raise_for(index, f"failed: {_describe(error)}", error)
        seconds = time.perf_counter() - started
        if verify_each and graph.version != version:  # an unchanged graph is still the graph verified before
            started = time.perf_counter()
            problems = find_problems(graph, elided_ok=True)  # elided constants: valid IR that cannot run
            report.verify_seconds += time.perf_counter() - started
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                failure.raise_for(index, f"broke the verifier: {problems[0]}{more}", None)
        record = PassRecord(index, str(p), seconds, graph.version != version, dict(stats), nodes_before,
                            count_nodes(graph))
        report.records.append(record)
        for inst in instruments:
            try:
                inst.after_pass(p, graph, record)
            except PassError as error:
                failure.raise_for(index, error.message, error)
    report.ops_after = all_ops(graph)
    for inst in instruments:
        inst.after_pipeline(graph, report)
    return report


def regions_innermost_first(graph: Graph) -> list[Graph]:
    """Every region nested in ``graph``, each after the regions nested in it (post-order); not ``graph`` itself."""
    order: list[Graph] = []

    def visit(g: Graph) -> None:
        for node in g.topo_order():
            for region in node.regions:
                visit(region)
                order.append(region)

    visit(graph)
    return order


def _still_inside(region: Graph, top: Graph) -> bool:
    """Whether ``region`` is still nested in ``top`` (a pass run on an enclosing region may have erased its op)."""
    graph = region
    while graph is not top:
        node = graph.parent
        if node is None or node.graph is None or graph not in node.regions:
            return False
        graph = node.graph
    return True


def apply_pass(p: Pass, graph: Graph, stats: Stats) -> None:
    """Applies ``p`` to ``graph`` as the manager does: with ``p.walks_regions == "each"`` to every region graph,
    innermost first, then to ``graph`` itself; otherwise (``"top"``, the default, and ``"self"``) to ``graph`` only. docs/writing-passes.md says why innermost first."""
    if getattr(p, "walks_regions", "top") == "each":
        for region in regions_innermost_first(graph):
            if _still_inside(region, graph):
                p.apply(region, stats)
    p.apply(graph, stats)


def all_ops(graph: Graph) -> dict[str, int]:
    """Op counts of ``graph`` and every region nested in it."""
    counts: dict[str, int] = {}
    for g in graph.all_graphs():
        for op, n in g.op_histogram().items():
            counts[op] = counts.get(op, 0) + n
    return dict(sorted(counts.items()))


def count_nodes(graph: Graph) -> int:
    """Nodes of ``graph`` and of every region nested in it."""
    return sum(len(g) for g in graph.all_graphs())


def _describe(error: BaseException) -> str:
    text = str(error) if isinstance(error, IrcError) else f"{type(error).__name__}: {error}"
    return " ".join(text.split())  # one line


class _Failure:
    """Turns a failure of pass ``index`` into a PassError with a reproducer (see irc.passes.reproducer)."""

    def __init__(self, passes, snapshot, directory, instruments):
        self.passes, self.snapshot, self.directory, self.instruments = passes, snapshot, directory, instruments

    def raise_for(self, index: int, what: str, cause: BaseException | None):
        from irc.passes.reproducer import write_reproducer

        p = self.passes[index]
        before = [q.name for q in self.passes[:index]]
        after = f" (after {', '.join(before)})" if before else ""
        # A built-in pass that crashes, breaks the verifier or changes the numbers is irc's bug, not the input's;
        # one that raises an IrcError is telling the user something about their model.
        from irc.passes import BUILTIN_PASSES

        builtin = BUILTIN_PASSES.get(p.name) == type(p).__module__
        internal = builtin and not (isinstance(cause, IrcError) and not isinstance(cause, PassError))
        prefix = "this is a bug in irc: " if internal else ""
        message = f"{prefix}pass '{p.name}' {what}{after}"
        hint = None
        if self.snapshot is not None:
            from irc.passes.instruments import CheckNumerics

            numeric = any(isinstance(i, CheckNumerics) for i in self.instruments)
            command = write_reproducer(self.snapshot, self.passes, index, message, self.directory, numeric)
            hint = f"reproduce with: {command}"
        error = PassError(message, hint=hint)
        error.pass_name = p.name
        if internal:
            error.exit_code = 3  # as the CLI's other internal errors
        raise error from cause
