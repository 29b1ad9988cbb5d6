"""A pre-flight report: for every op of a model, whether a target runs it natively, through a fallback (TFLite's
Flex delegate, a CPU kernel) or not at all, grouped by the Keras layer it came from. ``irc check`` prints it.

Each backend answers for its own target (``check(graph)`` in the backend module); this module groups, counts
and formats. Constants are left out of the table unless a target cannot hold them.

>>> import irc
>>> from irc.tools.check import CheckReport, OpStatus
>>> g = irc.parse('''
... graph @g(%x: f32[1,4]) {
...   %0 = relu(%x) : f32[1,4] loc("dense/Relu" in "dense")
...   %1 = softmax(%0) : f32[1,4] loc("out/Softmax" in "out")
...   return %1 as "y"
... }''')
>>> relu, softmax = g.nodes
>>> report = CheckReport("demo", [OpStatus(relu, "native", ""), OpStatus(softmax, "unsupported", "no kernel")])
>>> report.converts
False
>>> print(report.format(), end="")
layer  op       demo         note
dense  relu     native
out    softmax  unsupported  no kernel
2 ops in 2 layers: 1 native, 1 unsupported; will not convert to demo
"""

from __future__ import annotations

from dataclasses import dataclass, field

from irc.ir.graph import Graph, Node
from irc.tools import ansi
from irc.tools.where import layer_name

NATIVE, FALLBACK, UNSUPPORTED = "native", "fallback", "unsupported"
STATUSES = (NATIVE, FALLBACK, UNSUPPORTED)
COLORS = {NATIVE: "green", FALLBACK: "yellow", UNSUPPORTED: "red"}


@dataclass(frozen=True)
class OpStatus:
    node: Node
    status: str  # native, fallback or unsupported
    reason: str = ""


@dataclass
class CheckReport:
    """Every op's status on ``target``; ``strict`` counts fallbacks as failures too.

    ``tf_ops_allowed`` says whether the conversion may keep TensorFlow ops irc does not lower (``tf.<Op>`` nodes,
    ``--allow-tf-ops``); without it such a node stops the conversion whatever the target says about it.
    """

    target: str
    rows: list[OpStatus]
    strict: bool = False
    hidden: int = field(default=0)  # constants left out of the table
    tf_ops_allowed: bool = True
    notes: list[str] = field(default_factory=list)  # the backend's one-line remarks (e.g. no GPU here)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for row in self.rows:
            counts[row.status] += 1
        return counts

    @property
    def converts(self) -> bool:
        """Whether the model will convert: nothing unsupported (and, when strict, nothing on a fallback)."""
        bad = {UNSUPPORTED, FALLBACK} if self.strict else {UNSUPPORTED}
        return not any(row.status in bad for row in self.rows) and not self.blocked_tf_ops

    @property
    def blocked_tf_ops(self) -> int:
        """TensorFlow ops irc does not lower, in a conversion that may not keep them."""
        return 0 if self.tf_ops_allowed else sum(1 for row in self.rows if row.node.is_opaque)

    def by_layer(self) -> list[tuple[str, list[OpStatus]]]:
        """Rows grouped by Keras layer, layers in the order the model first uses them."""
        groups: dict[str, list[OpStatus]] = {}
        for row in self.rows:
            groups.setdefault(layer_name(row.node), []).append(row)
        return list(groups.items())

    def table(self, problems_only: bool = False) -> list[tuple[str, str, str, str]]:
        """(layer, op, status, note) rows; within a layer, equal (op, status, reason) rows are counted, not repeated."""
        out = []
        for layer, rows in self.by_layer():
            merged: dict[tuple[str, str, str], int] = {}
            for row in rows:
                if problems_only and row.status == NATIVE:
                    continue
                key = (row.node.op, row.status, row.reason)
                merged[key] = merged.get(key, 0) + 1
            for i, ((op, status, reason), count) in enumerate(merged.items()):
                out.append((layer if i == 0 else "", op if count == 1 else f"{op} x{count}", status, reason))
        return out

    def summary(self) -> str:
        counts = self.counts()
        parts = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
        verdict = "will convert" if self.converts else "will not convert"
        layers = len(self.by_layer())
        text = (f"{len(self.rows)} ops in {layers} layer{'s' if layers != 1 else ''}: {parts or 'nothing to run'}; "
                f"{verdict} to {self.target}")
        if self.blocked_tf_ops:
            text += (f" ({self.blocked_tf_ops} TensorFlow op{'s' if self.blocked_tf_ops != 1 else ''} irc does not "
                     f"lower; --allow-tf-ops keeps them{', as Flex ops' if self.target == 'tflite' else ''})")
        return text

    def format(self, color: bool = False, problems_only: bool = False) -> str:
        rows = self.table(problems_only)
        header = ("layer", "op", self.target, "note")
        widths = [max([len(header[i])] + [len(r[i]) for r in rows]) for i in range(3)]
        lines = [_row(header, widths, color, bold=True)]
        for row in rows:
            lines.append(_row(row, widths, color, status=row[2]))
        if problems_only and not rows:
            lines.append(f"(every op runs natively on {self.target})")
        lines.append(self.summary())
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict:
        return {
            "target": self.target, "converts": self.converts, "strict": self.strict, "counts": self.counts(),
            "tf_ops_allowed": self.tf_ops_allowed, "blocked_tf_ops": self.blocked_tf_ops, "notes": self.notes,
            "layers": [{"layer": layer, "ops": [{"op": r.node.op, "status": r.status, "reason": r.reason,
                                                "loc": list(r.node.loc.names)} for r in rows]}
                       for layer, rows in self.by_layer()],
        }


def _row(cells, widths, color: bool, status: str | None = None, bold: bool = False) -> str:
    layer, op, state, note = cells
    text_status = f"{state:<{widths[2]}}"
    if color:
        if status in COLORS:
            text_status = ansi.style(text_status, fg=COLORS[status])
        elif bold:
            return ansi.style(_row(cells, widths, False), bold=True)
    return f"{layer:<{widths[0]}}  {op:<{widths[1]}}  {text_status}  {note}".rstrip()


def _region_answers(backend, work: Graph, answers: list) -> list:
    """The backend's answers for the nodes inside regions (loop bodies, branches), each region asked as a graph
    of its own, unless the backend already answered for them; the note says which region a node is in."""
    if any(item[0].graph is not work for item in answers):
        return []
    found = []
    for node in work.walk(recursive=True):
        for name, region in zip(node.opdef.regions if node.regions else (), node.regions):
            copy = region.copy()
            originals = dict(zip(copy.topo_order(), region.topo_order()))  # copy keeps the order
            where = f"in {node.op} region '{name}'"
            for inner, status, reason in backend.check(copy):
                original = originals.get(inner)
                if original is not None:
                    found.append((original, status, f"{where}; {reason}" if reason else where))
    return found


def _placed(work: Graph, answers: list) -> list:
    """Each answer about a node inside a region says which region it is in (a backend that answers for region
    nodes itself, as tflite does for WHILE and IF bodies, does not)."""
    places = {inner: f"in {node.op} region '{name}'" for node in work.walk(recursive=True) if node.regions
              for name, region in zip(node.opdef.regions, node.regions) for inner in region.nodes}
    placed = []
    for node, status, reason in answers:
        where = places.get(node)
        if where and not reason.startswith(where):
            reason = f"{where}; {reason}" if reason else where
        placed.append((node, status, reason))
    return placed


def check_graph(graph: Graph, target: str, *, strict: bool = False, tf_ops_allowed: bool = True,
                include_constants: bool = False) -> CheckReport:
    """Asks the ``target`` backend about every node of ``graph`` (left untouched: the backend sees a copy)."""
    from irc.backends import get_backend

    backend = get_backend(target)
    work = graph.copy()
    rank = {node: i for i, node in enumerate(work.walk(recursive=True))}  # a region's nodes after its op
    answers = list(backend.check(work))
    answers += _region_answers(backend, work, answers)
    answers = _placed(work, answers)
    answers.sort(key=lambda item: rank.get(item[0], len(rank)))
    rows, hidden = [], 0
    for item in answers:
        node, status, reason = item
        if status not in STATUSES:
            raise ValueError(f"backend {target} gave status {status!r} for {node.op}")
        if node.op == "const" and status == NATIVE and not include_constants:
            hidden += 1
            continue
        rows.append(OpStatus(node, status, reason or ""))
    notes = backend.notes(work) if hasattr(backend, "notes") else []
    return CheckReport(target, rows, strict, hidden, tf_ops_allowed, notes)

