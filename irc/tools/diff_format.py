"""How a GraphDiff is shown: a unified-diff-like listing, a per-op ``--stat`` summary, or JSON for scripts.

Entries follow ``b``'s topological order; a removed node sits after the last matched node before it in ``a``, so
the listing reads top to bottom like the model. Colors (on a terminal only) follow ``diff``: removed red, added
green, changed yellow.
"""

from __future__ import annotations

import math

from irc.ir.graph import Node
from irc.ir.printer import format_type
from irc.tools import ansi
from irc.tools.where import strip_wrappers

COLORS = {"-": "red", "+": "green", "~": "yellow"}
LOC_NAMES_SHOWN = 2  # a fused node's first location names; the rest are counted


def _style(text: str, color: bool, **style) -> str:
    return ansi.style(text, **style) if color else text


def describe(node: Node, names, other: Node | None = None) -> str:
    """``conv2d %5 at conv1/Conv2D (layer conv1)``; a node without a location is placed by its first user."""
    name = names.get(node.results[0], "?") if node.results else ""
    text = f"{node.op} {name}".rstrip()
    if other is not None and other.results:
        other_name = names.get(other.results[0], "?")
        if other_name != name:
            text += f" (b {other_name})"
    if node.loc:
        return f"{text} at {_loc(node.loc)}"
    for r in node.results:
        for user, index in r.uses:
            where = f" at {_loc(user.loc)}" if user.loc else ""
            return f"{text} (operand {index} of {user.op} {names.get(user.results[0], '?') if user.results else ''}"\
                   f"{where})"
    return text


def _loc(loc) -> str:
    shown = [strip_wrappers(name) for name in loc.names[:LOC_NAMES_SHOWN]]
    if len(loc.names) > LOC_NAMES_SHOWN:
        shown.append(f"+{len(loc.names) - LOC_NAMES_SHOWN} more")
    text = ", ".join(shown) or "?"
    if loc.layers:
        text += f" (layer {', '.join(loc.layers)})"
    return text


def _entries(d) -> list[tuple[tuple, str, Node, Node | None, list]]:
    """(sort key, mark, node, matched node, changes) for every changed, removed and added node, in reading order.

    A matched node sits where ``b`` has it; a removed node right after the ``b`` node its inputs became (or,
    failing that, after the last matched node before it in ``a``); a constant right before its first user.
    """
    m = d.matching
    b_rank = {n: i for i, n in enumerate(m.b_order)}
    changes = {a: (b, c) for a, b, c in d.changed}
    keys: dict[Node, tuple] = {}
    last = -1
    for i, node in enumerate(m.a_order):
        if node.op == "const" and node.results[0].uses:
            continue
        other = m.nodes.get(node)
        if other is not None:
            last = b_rank[other]
            keys[node] = (last, 1, i)
        else:
            anchors = [b_rank[target.producer] for v in node.operands
                       if (target := m.values.get(v)) is not None and target.producer in b_rank]
            keys[node] = (max(anchors, default=last), 2, i)
    for node in m.a_order:
        if node not in keys:
            user_key = keys[node.results[0].uses[0][0]]
            keys[node] = (*user_key[:2], user_key[2] - 0.5)
    entries = [(keys[node], "~", node, changes[node][0], changes[node][1]) for node in changes]
    entries += [(keys[node], "-", node, None, []) for node in m.removed]
    entries += [((b_rank[node], 0, 0), "+", node, None, []) for node in d.added]
    entries.sort(key=lambda e: e[0])
    return entries


def format_diff(d, color: bool = False) -> str:
    lines = [_style(f"--- {d.a_label} ({len(d.a)} nodes)", color, bold=True),
             _style(f"+++ {d.b_label} ({len(d.b)} nodes)", color, bold=True)]
    for change in d.interface:
        mark = "-" if change.b is None else "+" if change.a is None else "~"
        text = f"{change.name}: {change.a or change.b}" if mark != "~" else str(change)
        lines.append(_style(f"{mark} {text}", color, fg=COLORS[mark]))
    for _, mark, node, other, changes in _entries(d):
        head = describe(node, d.names, other)
        if mark != "~" and node.results:
            head += " : " + ", ".join(format_type(r.type) for r in node.results)
        lines.append(_style(f"{mark} {head}", color, fg=COLORS[mark]))
        for change in changes:
            lines.append(f"    {change}")
    if d.numeric is not None:
        lines += format_numeric(d.numeric, color)
    lines.append(summary_line(d))
    return "\n".join(lines) + "\n"


def summary_line(d) -> str:
    if d.equal:
        return f"equal ({len(d.matching.nodes)} nodes matched)"
    s = d.summary()
    parts = [f"{s[k]} {k}" for k in ("changed", "removed", "added") if s[k]]
    if s["interface"]:
        parts.append(f"{s['interface']} interface change{'s' if s['interface'] != 1 else ''}")
    parts.append(f"{s['unchanged']} unchanged")
    return ", ".join(parts)


def format_numeric(errors, color: bool = False) -> list[str]:
    lines = ["numeric (same random inputs, reference interpreter):"]
    width = max((len(_pair(e)) for e in errors), default=0)
    for e in errors:
        status = _style("ok", color, fg="green") if e.ok else _style("DIFFERENT", color, fg="red", bold=True)
        numbers = "" if e.max_abs is None else f"max abs error {e.max_abs:.3g}  max rel error {e.max_rel:.3g}  "
        note = f"  ({e.note})" if e.note else ""
        lines.append(f"  {_pair(e):<{width}}  {numbers}{status}{note}")
    if not errors:
        lines.append("  no shared outputs")
    return lines


def _pair(e) -> str:
    return e.a if e.a == e.b else f"{e.a} / {e.b}"


def format_stat(d, color: bool = False) -> str:
    """Per op: how many nodes changed (~), were removed (-) or added (+), with a bar like ``git diff --stat``."""
    counts: dict[str, dict[str, int]] = {}
    for node, _, _ in d.changed:
        counts.setdefault(node.op, {"~": 0, "-": 0, "+": 0})["~"] += 1
    for node in d.removed:
        counts.setdefault(node.op, {"~": 0, "-": 0, "+": 0})["-"] += 1
    for node in d.added:
        counts.setdefault(node.op, {"~": 0, "-": 0, "+": 0})["+"] += 1
    lines = []
    width = max((len(op) for op in counts), default=0)
    most = max((sum(c.values()) for c in counts.values()), default=1)
    for op in sorted(counts):
        c = counts[op]
        total = sum(c.values())
        scale = 40 / most if most > 40 else 1
        bar = "".join(_style(mark * max(1, round(c[mark] * scale)) if c[mark] else "", color, fg=COLORS[mark])
                      for mark in "~-+")
        lines.append(f" {op:<{width}} | {total:>4} {bar}")
    if d.interface:
        lines.append(f" {'(interface)':<{width}} | {len(d.interface):>4}")
    if d.numeric is not None:
        lines += format_numeric(d.numeric, color)
    lines.append(" " + summary_line(d))
    return "\n".join(lines) + "\n"


# ----- JSON -------------------------------------------------------------------------------------------------------
def _number(x):
    if x is None or math.isnan(x):
        return None
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def node_json(node: Node, names) -> dict:
    return {"op": node.op, "name": names.get(node.results[0]) if node.results else None,
            "loc": list(node.loc.names), "layers": list(node.loc.layers),
            "types": [format_type(r.type) for r in node.results]}


def change_json(c) -> dict:
    return {"kind": c.kind, "name": c.name, "a": c.a, "b": c.b, "detail": c.detail}


def diff_json(d) -> dict:
    return {
        "equal": d.equal,
        "a": {"label": d.a_label, "graph": d.a.name, "nodes": len(d.a)},
        "b": {"label": d.b_label, "graph": d.b.name, "nodes": len(d.b)},
        "summary": d.summary(),
        "interface": [change_json(c) for c in d.interface],
        "changed": [{"a": node_json(a, d.names), "b": node_json(b, d.names), "changes": [change_json(c) for c in cs]}
                    for a, b, cs in d.changed],
        "removed": [node_json(n, d.names) for n in d.removed],
        "added": [node_json(n, d.names) for n in d.added],
        "numeric": None if d.numeric is None else [
            {"a": e.a, "b": e.b, "max_abs": _number(e.max_abs), "max_rel": _number(e.max_rel), "ok": e.ok,
             "note": e.note} for e in d.numeric],
    }
