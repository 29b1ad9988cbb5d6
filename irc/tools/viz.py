"""Pictures of a graph: SVG, HTML, DOT or PNG (``irc viz``).

A graph is first turned into a *view*: boxes and edges. Constants are folded into the boxes that use them;
graph inputs and outputs get boxes of their own. Big models stay readable by collapsing: one box per Keras
layer, then, if that is still more than ``max_nodes`` boxes, one per layer-name prefix (``conv2_block1_1_conv``
-> ``conv2_block1``), and past that the view is cut with a box saying how much was left out.

SVG and HTML are drawn by irc itself (``irc.tools.layout`` places the boxes in layers, ``irc.tools.svg`` draws
them), so they need no external program and the same graph always gives the same file. ``engine="dot"`` hands
SVG to Graphviz's ``dot`` program instead; PNG always needs it. DOT text is written by irc.

Regions (a ``while``'s cond and body, an ``if``'s branches): the op's box lists each region's ops; in DOT (and
so PNG and ``engine="dot"``) each region is also drawn in full as a dashed cluster beside its op, nested regions
inside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from irc.errors import UsageError
from irc.ir.graph import Graph, Node, Value
from irc.ir.printer import format_type
from irc.tools.where import NO_LAYER, layer_name

FORMATS = ("svg", "html", "dot", "png")
COLLAPSE = ("auto", "none", "layer")
MAX_NODES = 200

# Fill colors by kind of op; a collapsed box takes the color of its heaviest op.
FILLS = {
    "conv": "#cfe2f3", "matmul": "#d9d2e9", "norm": "#fff2cc", "activation": "#d9ead3", "pool": "#fce5cd",
    "reduce": "#fce5cd", "shape": "#eeeeee", "elementwise": "#f6f6f6", "quant": "#f4cccc", "opaque": "#ea9999",
    "io": "#ffffff", "more": "#ffffff", "other": "#f6f6f6", "control": "#e8e0f0",
}
_WEIGHT = ["control", "conv", "matmul", "norm", "pool", "reduce", "activation", "quant", "opaque", "elementwise", "shape"]
_NN_KINDS = {"conv2d": "conv", "depthwise_conv2d": "conv", "conv2d_transpose": "conv", "matmul": "matmul",
             "batch_matmul": "matmul", "batch_norm": "norm", "max_pool": "pool", "avg_pool": "pool"}


def op_kind(op: str) -> str:
    if op.startswith("tf."):
        return "opaque"
    op = op.removeprefix("tfl.")  # a TFLite fused form is drawn as its core op
    if op in _NN_KINDS:
        return _NN_KINDS[op]
    try:
        from irc.ops import get_op

        family = type(get_op(op)).__module__.rsplit(".", 1)[-1]
    except (KeyError, ImportError):
        return "other"
    return {"nn": "shape", "core": "other"}.get(family, family)


@dataclass
class Box:
    id: str
    title: str
    lines: list[str]
    kind: str
    detail: str  # every fact about the box: a tooltip in SVG, the side panel in HTML
    order: int  # position of its first node in topological order


@dataclass
class Edge:
    src: str
    dst: str


@dataclass
class View:
    name: str
    boxes: list[Box] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    collapsed: str = "none"  # none, layer or prefix
    hidden: int = 0  # nodes left out by max_nodes
    # regions drawn as clusters (DOT, PNG): (the box of the op owning it, region name, the region's own view)
    regions: list[tuple[str, str, View]] = field(default_factory=list)
    box_of: dict[Node, str] = field(default_factory=dict, repr=False)  # each drawn node's box


# ----- building a view ---------------------------------------------------------------------------------------------
def build_view(graph: Graph, *, collapse: str = "auto", max_nodes: int = MAX_NODES) -> View:
    if collapse not in COLLAPSE:
        raise UsageError(f"unknown --collapse {collapse!r} (choose {', '.join(COLLAPSE)})")
    order = [n for n in graph.topo_order() if n.op != "const"]
    if collapse == "none" or (collapse == "auto" and len(order) + len(graph.inputs) + len(graph.outputs) <= max_nodes):
        groups = {n: f"n{i}" for i, n in enumerate(order)}
        mode = "none"
    else:
        groups, mode = _collapse(order, max_nodes - len(graph.inputs) - len(graph.outputs))
    view = _assemble(graph, order, groups, mode, max_nodes)
    members: dict[str, int] = {}
    for key in groups.values():
        members[key] = members.get(key, 0) + 1
    boxes = {b.id for b in view.boxes}
    for i, node in enumerate(n for n in order if n.regions):
        box = view.box_of.get(node)
        if box is None or box not in boxes or members[groups[node]] != 1:
            continue  # collapsed into a group or left out: the group's box lists its ops
        for name, region in zip(node.opdef.regions, node.regions):
            view.regions.append((box, name, build_view(region, collapse=collapse, max_nodes=max_nodes)))
    return view


_PARTS = re.compile(r"(?<=[A-Za-z0-9])_(?=[A-Za-z0-9])")


def _layer_key(node: Node, keep: int | None) -> str | None:
    """The node's layer (``irc.tools.where``), cut to its first ``keep`` underscore-separated parts (None: the
    whole name)."""
    name = node.loc.layers[0] if node.loc.layers else layer_name(node).rpartition("/")[2]
    if name == NO_LAYER:
        return None
    return name if keep is None else "_".join(_PARTS.split(name)[:keep])


def _collapse(order: list[Node], budget: int) -> tuple[dict[Node, str], str]:
    """One group per Keras layer; if that is over ``budget``, group by shorter and shorter layer-name prefixes
    (``conv2_block1_1_conv`` -> ``conv2_block1_1`` -> ``conv2_block1``) until the groups fit."""
    most = max((len(_PARTS.split(key)) for n in order if (key := _layer_key(n, None))), default=1)
    for keep in [None, *range(most - 1, 0, -1)]:
        groups = _connected_groups(order, keep)
        if len(set(groups.values())) <= budget:
            break
    return groups, "layer" if keep is None else "layer prefix"


def _connected_groups(order: list[Node], keep: int | None) -> dict[Node, str]:
    """Nodes with the same layer key, split into pieces connected within the layer: two residual adds that only
    share a name scope stay apart, so collapsing does not draw cycles."""
    keys = {node: _layer_key(node, keep) for node in order}
    parent = {node: node for node in order}

    def root(node: Node) -> Node:
        while parent[node] is not node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for node in order:
        for v in node.operands:
            p = v.producer
            if p is not None and p in keys and keys[p] is not None and keys[p] == keys[node]:
                parent[root(node)] = root(p)
    groups: dict[Node, str] = {}
    piece: dict[Node, int] = {}
    count: dict[str, int] = {}
    for i, node in enumerate(order):
        key = keys[node]
        if key is None:
            groups[node] = f"n{i}"
            continue
        r = root(node)
        if r not in piece:
            piece[r] = count.get(key, 0)
            count[key] = piece[r] + 1
        groups[node] = f"L:{key}#{piece[r]}"
    return _break_cycles(order, groups)


def _break_cycles(order: list[Node], groups: dict[Node, str]) -> dict[Node, str]:
    """Ungroups the groups that sit on a cycle of the collapsed graph (a path that leaves a layer and comes back),
    until none is left."""
    import networkx as nx

    index = {node: i for i, node in enumerate(order)}
    sizes: dict[str, int] = {}
    for g in groups.values():
        sizes[g] = sizes.get(g, 0) + 1
    while True:
        quotient = nx.DiGraph()
        quotient.add_nodes_from(set(groups.values()))
        for node in order:
            for v in node.operands:
                if v.producer in groups and groups[v.producer] != groups[node]:
                    quotient.add_edge(groups[v.producer], groups[node])
        cyclic = {g for scc in nx.strongly_connected_components(quotient) if len(scc) > 1 for g in scc
                  if sizes.get(g, 1) > 1}
        if not cyclic:
            return groups
        groups = {n: (f"n{index[n]}" if g in cyclic else g) for n, g in groups.items()}


def _assemble(graph: Graph, order: list[Node], groups: dict[Node, str], mode: str, max_nodes: int) -> View:
    view = View(graph.name, collapsed=mode)
    members: dict[str, list[Node]] = {}
    for node in order:
        members.setdefault(groups[node], []).append(node)
    room = max(max_nodes - len(graph.inputs) - len(graph.outputs), 2)
    keys = list(members)
    keep = keys if len(keys) <= room else keys[: room - 1]
    box_id = {key: f"b{i}" for i, key in enumerate(keep)}
    view.hidden = sum(len(members[k]) for k in keys[len(keep):])
    rank = {n: i for i, n in enumerate(order)}
    for i, v in enumerate(graph.inputs):
        view.boxes.append(Box(f"in{i}", v.name, [format_type(v.type)], "io", f"input {v.name}: {format_type(v.type)}",
                              -len(graph.inputs) + i))
    for key in keep:
        nodes = members[key]
        box = _group_box(key, nodes) if key.startswith("L:") else _node_box(nodes[0])
        box.id, box.order = box_id[key], rank[nodes[0]]
        view.boxes.append(box)
    if view.hidden:
        view.boxes.append(Box("more", f"... {view.hidden} more nodes", ["raise --max-nodes to see them"], "more",
                              f"{view.hidden} nodes not drawn (--max-nodes {max_nodes})", len(order)))
    for j, (name, v) in enumerate(graph.outputs.items()):
        view.boxes.append(Box(f"out{j}", name, [format_type(v.type)], "io", f"output {name}: {format_type(v.type)}",
                              len(order) + 1 + j))
    box_of = {node: box_id.get(groups[node], "more") for node in order}
    view.box_of = box_of
    inputs = {v: f"in{i}" for i, v in enumerate(graph.inputs)}
    seen: set[tuple[str, str]] = set()

    def source(value: Value) -> str | None:
        if value in inputs:
            return inputs[value]
        if value.producer is None or value.producer.op == "const":
            return None
        return box_of[value.producer]

    def connect(src: str | None, dst: str) -> None:
        if src is None or src == dst or (src, dst) in seen:
            return
        seen.add((src, dst))
        view.edges.append(Edge(src, dst))

    for node in order:
        for v in node.operands:
            connect(source(v), box_of[node])
    for j, v in enumerate(graph.outputs.values()):
        connect(source(v), f"out{j}")
    return view


def _shape(t) -> str:
    return "x".join("?" if d is None else str(d) for d in t.shape) if t.shape is not None else "*"


def _node_box(node: Node) -> Box:
    lines = [", ".join(format_type(r.type) for r in node.results)]
    weights = [_shape(v.type) for v in node.operands if v.is_constant and (v.type.num_elements or 0) > 1]
    if weights:
        lines.append("w " + " ".join(weights))
    where = node.loc.layers[0] if node.loc.layers else (node.loc.names[0] if node.loc.names else "")
    if where:
        lines.append(where)
    for name, region in zip(node.opdef.regions if node.regions else (), node.regions):
        lines.append(_cut(f"{name}: {_op_counts(region)}", 48))
    return Box("", node.op, lines, op_kind(node.op), _node_detail(node), 0)


def _op_counts(region: Graph) -> str:
    """A region's ops, nested regions included, as ``matmul x2, add, ...`` (constants left out)."""
    counts: dict[str, int] = {}
    for n in region.walk(recursive=True):
        if n.op != "const":
            counts[n.op] = counts.get(n.op, 0) + 1
    return ", ".join(op if c == 1 else f"{op} x{c}" for op, c in counts.items()) or "(passes values through)"


def _node_detail(node: Node) -> str:
    from irc.ir.printer import format_attr

    parts = [f"{node.op} : {', '.join(format_type(r.type) for r in node.results)}"]
    for key in sorted(node.attrs):
        parts.append(f"{key} = {_cut(format_attr(node.attrs[key], full=False))}")
    for i, v in enumerate(node.operands):
        if v.is_constant:
            parts.append(f"operand {i}: const {format_type(v.type)}")
    if node.loc:
        parts.append(f"at {node.loc}")
    for name, region in zip(node.opdef.regions if node.regions else (), node.regions):
        args = ", ".join(f"{v.name}: {format_type(v.type)}" for v in region.inputs)
        parts.append(f"region {name}({_cut(args)}): {len(region)} nodes")
        parts.extend(f"  {_cut(line.strip(), 100)}" for line in region.dump().splitlines()[1:-1][:40])
    return "\n".join(parts)


def _cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _group_box(key: str, nodes: list[Node]) -> Box:
    counts: dict[str, int] = {}
    for n in nodes:
        counts[n.op] = counts.get(n.op, 0) + 1
    ops = ", ".join(op if c == 1 else f"{op} x{c}" for op, c in counts.items())
    kinds = {op_kind(n.op) for n in nodes}
    kind = next((k for k in _WEIGHT if k in kinds), "other")
    last = nodes[-1]
    lines = [_cut(ops, 40), ", ".join(format_type(r.type) for r in last.results)]
    title = key[2:].rpartition("#")[0]
    detail = f"{title}: {len(nodes)} ops\n" + "\n".join(_node_detail(n).split("\n", 1)[0] for n in nodes[:40])
    if len(nodes) > 40:
        detail += f"\n... {len(nodes) - 40} more"
    return Box("", title, lines, kind, detail, 0)


# ----- DOT ---------------------------------------------------------------------------------------------------------
def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(view: View) -> str:
    lines = [f"digraph {_dot_string(view.name)} {{",
             '  graph [rankdir=TB, nodesep=0.25, ranksep=0.35, fontname="monospace"];',
             '  node [shape=box, style="rounded,filled", fontname="monospace", fontsize=10, color="#666666"];',
             '  edge [color="#888888", fontname="monospace", fontsize=8, arrowsize=0.6];']
    for box in view.boxes:
        label = "\n".join([box.title, *box.lines])
        shape = ", shape=ellipse" if box.kind == "io" else ""
        lines.append(f"  {box.id} [label={_dot_string(label)}, fillcolor=\"{FILLS[box.kind]}\", "
                     f"tooltip={_dot_string(box.detail)}{shape}];")
    for e in view.edges:
        lines.append(f"  {e.src} -> {e.dst};")
    lines += _dot_regions(view, "")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_regions(view: View, prefix: str) -> list[str]:
    """Each region as a dashed cluster holding its own boxes (ids prefixed), tied to its op's box by a dotted
    line; regions nested in it inside it."""
    lines = []
    for k, (owner, name, sub) in enumerate(view.regions):
        inner = f"{prefix}r{k}_"
        lines.append(f"  subgraph cluster_{inner.rstrip('_')} {{")
        lines.append(f"    label={_dot_string(name)}; style=dashed; color=\"#888888\"; fontname=\"monospace\";")
        for box in sub.boxes:
            label = "\n".join([box.title, *box.lines])
            shape = ", shape=ellipse" if box.kind == "io" else ""
            lines.append(f"    {inner}{box.id} [label={_dot_string(label)}, fillcolor=\"{FILLS[box.kind]}\", "
                         f"tooltip={_dot_string(box.detail)}{shape}];")
        for e in sub.edges:
            lines.append(f"    {inner}{e.src} -> {inner}{e.dst};")
        lines += ["  " + line for line in _dot_regions(sub, inner)]
        lines.append("  }")
        if sub.boxes:
            lines.append(f"  {prefix}{owner} -> {inner}{sub.boxes[0].id} [style=dotted, arrowhead=none];")
    return lines


def run_dot(dot_text: str, fmt: str) -> bytes:
    """Graphviz's ``dot`` program, through the graphviz Python binding."""
    try:
        import graphviz
    except ImportError:
        graphviz = None
    if graphviz is not None:
        try:
            return graphviz.Source(dot_text).pipe(format=fmt)
        except graphviz.ExecutableNotFound:
            pass
    raise UsageError(f"{fmt.upper()} output through Graphviz needs its 'dot' program, which is not installed",
                     hint="install graphviz (apt-get install graphviz), or write .svg or .html, which irc draws itself")


# ----- entry point -------------------------------------------------------------------------------------------------
def render(graph: Graph, fmt: str = "svg", *, collapse: str = "auto", max_nodes: int = MAX_NODES,
           engine: str = "builtin") -> str | bytes:
    """The picture of ``graph`` in ``fmt`` (svg, html, dot: text; png: bytes)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown picture format {fmt!r} (choose {', '.join(FORMATS)})")
    if engine not in ("builtin", "dot"):
        raise UsageError(f"unknown engine {engine!r} (choose builtin or dot)")
    view = build_view(graph, collapse=collapse, max_nodes=max_nodes)
    if fmt == "dot":
        return to_dot(view)
    if fmt == "png" or engine == "dot":
        data = run_dot(to_dot(view), "png" if fmt == "png" else "svg")
        if fmt == "png":
            return data
        svg = data.decode("utf-8")
    else:
        from irc.tools.svg import draw_svg

        svg = draw_svg(view)
    if fmt == "html":
        from irc.tools.svg import wrap_html

        return wrap_html(view, svg)
    return svg
