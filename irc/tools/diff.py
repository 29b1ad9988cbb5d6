"""A semantic diff of two graphs: what ``irc diff`` and ``irc.diff`` report.

Nodes are matched by structure and source location (``irc.tools.match``), so renumbering, reordering and a
different graph name are no change. What is left is reported as nodes removed (only in ``a``), added (only in
``b``) and changed (matched, but with a different op, attribute, constant, result type, shape, quantization or
operand wiring), plus changes to the graph's inputs and outputs. ``numeric=True`` also runs both graphs on the same
random inputs in the reference interpreter and reports the largest error on every shared output.

>>> import irc
>>> a = irc.parse('''
... graph @g(%x: f32[1,4]) {
...   %0 = relu(%x) : f32[1,4] loc("act")
...   %1 = softmax(%0) {axis = -1} : f32[1,4] loc("probs")
...   return %1 as "y"
... }''')
>>> b = a.copy()
>>> irc.diff(a, b).equal
True
>>> b.set_attr(b.nodes[1], "beta", 2.0)
>>> print(irc.diff(a, b).format(color=False), end="")
--- a (2 nodes)
+++ b (2 nodes)
~ softmax %1 at probs
    attr beta: (default 1.0) -> 2.0
1 changed, 1 unchanged
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from irc.ir.graph import Graph, Node, Value
from irc.ir.printer import format_type
from irc.ir.types import TensorType
from irc.tools.compare import attrs_equal, max_abs_diff, show_attr, tensor_summary
from irc.tools.match import Matching, match_graphs


@dataclass(frozen=True)
class Change:
    """One difference. ``kind``: op, attr, value, dtype, shape, quant, operand, operands, input, output; inside a
    region also node (one removed or added there) and regions (a different number of them)."""

    kind: str
    name: str
    a: str | None
    b: str | None
    detail: str = ""

    def __str__(self) -> str:
        a = "(none)" if self.a is None else self.a
        b = "(none)" if self.b is None else self.b
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.name}: {a} -> {b}{extra}"


@dataclass(frozen=True)
class OutputError:
    """The numeric difference of one shared output on the same inputs."""

    a: str
    b: str
    max_abs: float | None
    max_rel: float | None
    ok: bool
    note: str = ""


@dataclass
class GraphDiff:
    """The result of ``diff_graphs``: matched, changed, removed and added nodes, and interface changes."""

    a: Graph
    b: Graph
    matching: Matching
    changed: list[tuple[Node, Node, list[Change]]]
    interface: list[Change]
    a_label: str = "a"
    b_label: str = "b"
    numeric: list[OutputError] | None = None
    seconds: float = 0.0
    names: dict[Value, str] = field(default_factory=dict, repr=False)  # printed names (%N) on both sides

    @property
    def removed(self) -> list[Node]:
        return self.matching.removed

    @property
    def added(self) -> list[Node]:
        return self.matching.added

    @property
    def unchanged(self) -> int:
        return len(self.matching.nodes) - len(self.changed)

    @property
    def equal(self) -> bool:
        """No structural difference (numeric errors, if computed, are judged by ``numeric_ok``)."""
        return not (self.changed or self.removed or self.added or self.interface)

    @property
    def numeric_ok(self) -> bool:
        return self.numeric is not None and all(e.ok for e in self.numeric)

    def __bool__(self) -> bool:
        """True when the graphs differ, like a non-empty diff."""
        return not self.equal

    def summary(self) -> dict[str, int]:
        return {"changed": len(self.changed), "removed": len(self.removed), "added": len(self.added),
                "unchanged": self.unchanged, "interface": len(self.interface)}

    def __str__(self) -> str:
        return self.format()

    def format(self, color: bool = False) -> str:
        from irc.tools.diff_format import format_diff

        return format_diff(self, color)

    def format_stat(self, color: bool = False) -> str:
        from irc.tools.diff_format import format_stat

        return format_stat(self, color)

    def to_json(self) -> dict:
        from irc.tools.diff_format import diff_json

        return diff_json(self)


def diff_graphs(a: Graph, b: Graph, *, numeric: bool = False, seed: int = 0, atol: float = 1e-4,
                rtol: float = 1e-4, a_label: str = "a", b_label: str = "b") -> GraphDiff:
    """Matches ``a`` and ``b`` and lists their differences; see the module docstring."""
    start = time.perf_counter()
    m = match_graphs(a, b)
    names = printed_names(m.a_order, a) | printed_names(m.b_order, b)
    changed = []
    for node in m.a_order:
        other = m.nodes.get(node)
        if other is not None:
            changes = node_changes(node, other, m, names)
            if changes:
                changed.append((node, other, changes))
    result = GraphDiff(a, b, m, changed, interface_changes(m, names), a_label, b_label, names=names)
    result.seconds = time.perf_counter() - start
    if numeric:
        result.numeric = numeric_diff(m, seed=seed, atol=atol, rtol=rtol)
    return result


def printed_names(order: list[Node], graph: Graph) -> dict[Value, str]:
    """The names ``irc dump`` gives values: inputs by name, results numbered in topological order."""
    from irc.ir.printer import Namer

    namer = Namer(graph)
    for node in order:
        for r in node.results:
            namer.define(r)
    return namer.names


# ----- per-node changes --------------------------------------------------------------------------------------------
def node_changes(a: Node, b: Node, m: Matching, names: dict[Value, str]) -> list[Change]:
    changes = []
    if a.op != b.op:
        changes.append(Change("op", "op", a.op, b.op))
    changes += attr_changes(a, b)
    for i in range(max(len(a.results), len(b.results))):
        ta = a.results[i].type if i < len(a.results) else None
        tb = b.results[i].type if i < len(b.results) else None
        if ta != tb:
            changes.append(type_change(f"result {i}", ta, tb))
    if len(a.operands) != len(b.operands):
        changes.append(Change("operands", "operands", str(len(a.operands)), str(len(b.operands))))
    for i, (va, vb) in enumerate(zip(a.operands, b.operands)):
        change = operand_change(i, va, vb, m, names)
        if change is not None:
            changes.append(change)
    changes += region_changes(a, b)
    return changes


def region_changes(a: Node, b: Node) -> list[Change]:
    """What differs inside the regions of two matched nodes (a loop body, an if's branches), each region diffed
    as a graph of its own, nested regions included; a change's name says the region and the node."""
    if len(a.regions) != len(b.regions):
        return [Change("regions", "regions", str(len(a.regions)), str(len(b.regions)))]
    names = a.opdef.regions if a.regions and a.op == b.op else tuple(f"#{i}" for i in range(len(a.regions)))
    changes = []
    for name, ra, rb in zip(names, a.regions, b.regions):
        inner = diff_graphs(ra, rb)
        where = f"region {name}"
        for c in inner.interface:
            changes.append(Change(c.kind, f"{where}: {c.name}", c.a, c.b, c.detail))
        for node, _other, node_diffs in inner.changed:
            label = f"{node.op} {inner.names.get(node.results[0], '') if node.results else ''}".strip()
            for c in node_diffs:
                changes.append(Change(c.kind, f"{where}: {label}: {c.name}", c.a, c.b, c.detail))
        changes += [Change("node", f"{where}: node", n.op, None) for n in inner.removed]
        changes += [Change("node", f"{where}: node", None, n.op) for n in inner.added]
    return changes


def attr_changes(a: Node, b: Node) -> list[Change]:
    attrs_a, attrs_b = dict(a.attrs), dict(b.attrs)
    defaults_a, defaults_b = _defaults(a), _defaults(b)
    changes = []
    for key in sorted(attrs_a.keys() | attrs_b.keys()):
        va = attrs_a.get(key, defaults_a.get(key, _MISSING))
        vb = attrs_b.get(key, defaults_b.get(key, _MISSING))
        if va is not _MISSING and vb is not _MISSING and attrs_equal(va, vb):
            continue
        shown_a = _show(va, key in attrs_a)
        shown_b = _show(vb, key in attrs_b)
        if key == "value" and a.op == b.op == "const":
            delta = max_abs_diff(va, vb)
            detail = "" if delta is None else f"max |diff| {delta:.3g}"
            changes.append(Change("value", "value", shown_a, shown_b, detail))
        else:
            changes.append(Change("attr", f"attr {key}", shown_a, shown_b))
    return changes


_MISSING = object()


def _defaults(node: Node) -> dict:
    try:
        return node.opdef.with_defaults({})
    except KeyError:
        return {}


def _show(value, given: bool) -> str | None:
    if value is _MISSING:
        return None
    return show_attr(value) if given else f"(default {show_attr(value)})"


def type_change(name: str, ta: TensorType | None, tb: TensorType | None) -> Change:
    if ta is None or tb is None:
        kind = "type"
    elif ta.dtype != tb.dtype:
        kind = "dtype"
    elif ta.shape != tb.shape:
        kind = "shape"
    else:
        kind = "quant"
    return Change(kind, name, None if ta is None else format_type(ta), None if tb is None else format_type(tb))


def operand_change(i: int, va: Value, vb: Value, m: Matching, names) -> Change | None:
    if va.is_constant and vb.is_constant:
        if m.nodes.get(va.producer) is vb.producer:
            return None  # the constants are matched; a change in them is reported on the constant itself
        if attrs_equal(va.constant, vb.constant):
            return None
        return Change("operand", f"operand {i}", tensor_summary(va.constant), tensor_summary(vb.constant))
    if m.same_value(va, vb):
        return None
    return Change("operand", f"operand {i}", _operand_name(va, names), _operand_name(vb, names))


def _operand_name(v: Value, names) -> str:
    if v.is_constant:
        return f"{names.get(v, '?')} ({tensor_summary(v.constant)})"
    return names.get(v, "?")


# ----- graph interface ---------------------------------------------------------------------------------------------
def interface_changes(m: Matching, names) -> list[Change]:
    changes = []
    for va, vb in m.inputs:
        if va.name != vb.name:
            changes.append(Change("input", "input renamed", va.name, vb.name))
        if va.type != vb.type:
            changes.append(Change("input", f"input {va.name}", format_type(va.type), format_type(vb.type)))
    paired_a = {va for va, _ in m.inputs}
    paired_b = {vb for _, vb in m.inputs}
    changes += [Change("input", "input", f"{v.name}: {format_type(v.type)}", None)
                for v in m.a.inputs if v not in paired_a]
    changes += [Change("input", "input", None, f"{v.name}: {format_type(v.type)}")
                for v in m.b.inputs if v not in paired_b]
    for name_a, name_b in m.outputs:
        va, vb = m.a.outputs[name_a], m.b.outputs[name_b]
        if name_a != name_b:
            changes.append(Change("output", "output renamed", name_a, name_b))
        if not m.same_value(va, vb):
            changes.append(Change("output", f"output {name_a}", names.get(va, "?"), names.get(vb, "?")))
        elif va.type != vb.type:
            changes.append(Change("output", f"output {name_a}", format_type(va.type), format_type(vb.type)))
    paired_a = {a for a, _ in m.outputs}
    paired_b = {b for _, b in m.outputs}
    changes += [Change("output", "output", name, None) for name in m.a.outputs if name not in paired_a]
    changes += [Change("output", "output", None, name) for name in m.b.outputs if name not in paired_b]
    return changes


# ----- numeric mode ------------------------------------------------------------------------------------------------
def numeric_diff(m: Matching, *, seed: int = 0, atol: float = 1e-4, rtol: float = 1e-4) -> list[OutputError]:
    """Runs both graphs on the same random inputs and compares every shared output.

    Inputs are paired as the structural match paired them; a quantized input on one side gets the other side's
    float values quantized to its parameters, and quantized outputs are dequantized before comparing.
    """
    from irc.errors import InputError
    from irc.ir.interpreter import dequantize, quantize, random_inputs, run

    a_feed = random_inputs(m.a, seed)
    if len(m.inputs) != len(m.b.inputs) or len(m.inputs) != len(m.a.inputs):
        raise InputError("the two models' inputs do not pair up, so they cannot run on the same inputs")
    b_feed = {}
    for va, vb in m.inputs:
        array = a_feed[va.name]
        if va.type.quant is not None:
            array = dequantize(array, va.type)
        if vb.type.quant is not None:
            array = quantize(array.astype(np.float32), vb.type)
        elif array.dtype != vb.type.dtype.numpy:
            array = array.astype(vb.type.dtype.numpy)
        b_feed[vb.name] = array
    out_a = run(m.a, a_feed)
    out_b = run(m.b, b_feed)
    errors = []
    for name_a, name_b in m.outputs:
        x = dequantize(out_a[name_a], m.a.outputs[name_a].type)
        y = dequantize(out_b[name_b], m.b.outputs[name_b].type)
        if x.shape != y.shape:
            errors.append(OutputError(name_a, name_b, None, None, False, f"shapes differ: {x.shape} vs {y.shape}"))
            continue
        if x.dtype.kind not in "fiub" or y.dtype.kind not in "fiub":
            same = np.asarray(x == y)
            note = "" if same.all() else f"{int((~same).sum())} of {same.size} elements differ"
            errors.append(OutputError(name_a, name_b, None, None, bool(same.all()), note))
            continue
        x, y = x.astype(np.float64), y.astype(np.float64)
        if x.size == 0:
            errors.append(OutputError(name_a, name_b, 0.0, 0.0, True))
            continue
        diff = np.abs(x - y)
        max_abs = float(np.max(diff)) if not np.isnan(diff).all() else float("nan")
        scale = float(np.max(np.abs(x)))
        max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
        nan_mismatch = bool(np.any(np.isnan(x) != np.isnan(y)))
        ok = not nan_mismatch and bool(np.all((diff <= atol + rtol * np.abs(x)) | (np.isnan(x) & np.isnan(y))))
        errors.append(OutputError(name_a, name_b, max_abs, max_rel, ok, "NaN in one output only" if nan_mismatch
                                  else ""))
    return errors

