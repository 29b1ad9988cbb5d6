"""The irc graph: SSA values with use-lists, nodes, named inputs and outputs.

Every edit goes through Graph methods (add, set_operand, set_attr, set_type, replace_all_uses, erase), so
use-lists stay right and ``graph.version`` counts changes: the pass manager uses it to tell whether a pass changed
anything, and runs the verifier only then. To make that hold, a node's ``op``, ``attrs``, ``operands`` and
``results`` and a value's ``type`` are read-only outside these methods: ``node.attrs["perm"] = ...`` raises a
TypeError that names ``graph.set_attr``. Constants are ``const`` nodes holding a numpy array in their ``value``
attribute.

Regions: a node may own nested graphs (``node.regions``, e.g. a ``while``'s cond and body). A region is an
ordinary Graph, isolated from above: its inputs are the region's arguments, its outputs (in order) its results,
and it uses no value of an enclosing graph. ``region.parent`` is the node that owns it (None for a top-level
graph); an edit inside a region counts as a change of every enclosing graph (``version``). ``walk()`` and
``nodes`` see one graph's own nodes; ``walk(recursive=True)`` and ``all_graphs()`` reach into regions.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from irc.ir.types import TensorType, tensor_type_of


@dataclass(frozen=True)
class Location:
    """Where a node came from: TF node names and the Keras layers they belong to.

    A node made from several others (a fusion) carries the union of their locations, in order.
    """

    names: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()

    @staticmethod
    def of(name: str | None = None, layer: str | None = None) -> Location:
        return Location((name,) if name else (), (layer,) if layer else ())

    @staticmethod
    def fused(locs: Iterable[Location]) -> Location:
        names = dict.fromkeys(n for loc in locs for n in loc.names)
        layers = dict.fromkeys(lay for loc in locs for lay in loc.layers)
        return Location(tuple(names), tuple(layers))

    def __bool__(self) -> bool:
        return bool(self.names or self.layers)

    def __str__(self) -> str:
        text = ", ".join(self.names) or "?"
        if self.layers:
            text += f" (layer {', '.join(self.layers)})"
        return text


class UseList:
    """The (node, operand index) pairs that use a value: a list to read, with O(1) append and remove.

    Backed by an insertion-ordered dict, so erasing many users of one shared value stays linear overall.
    """

    __slots__ = ("_uses",)

    def __init__(self):
        self._uses: dict[tuple[Node, int], None] = {}

    def append(self, use: tuple[Node, int]) -> None:
        self._uses[use] = None

    def remove(self, use: tuple[Node, int]) -> None:
        del self._uses[use]

    def clear(self) -> None:
        self._uses.clear()

    def __iter__(self):
        return iter(self._uses)

    def __len__(self) -> int:
        return len(self._uses)

    def __bool__(self) -> bool:
        return bool(self._uses)

    def __contains__(self, use) -> bool:
        return use in self._uses

    def __getitem__(self, index: int) -> tuple[Node, int]:
        if index == 0 and self._uses:
            return next(iter(self._uses))
        return list(self._uses)[index]

    def __eq__(self, other) -> bool:
        return list(self._uses) == list(other)

    def __repr__(self) -> str:
        return repr(list(self._uses))


class Attrs(dict):
    """A node's attributes: a dict to read, refusing every in-place change (edits go through ``graph.set_attr``)."""

    __slots__ = ()

    def _refuse(self, *args, **kwargs):
        raise TypeError("node attributes are read-only: use graph.set_attr(node, name, value) or "
                        "graph.remove_attr(node, name) (or a Rewriter's create/replace), so the change is seen")

    __setitem__ = __delitem__ = __ior__ = update = pop = popitem = clear = setdefault = _refuse

    def __reduce__(self):
        return Attrs, (dict(self),)

    def __copy__(self) -> Attrs:
        return self  # immutable: a copy may share it

    def __deepcopy__(self, memo) -> Attrs:
        return self


def _read_only(what: str, method: str):
    def refuse(self, value):
        raise AttributeError(f"{what} is read-only: use {method}, so the graph sees the change")

    return refuse


class Value:
    """An SSA value: a graph input or a node result. ``uses`` lists (node, operand index) pairs.

    ``type`` is read-only: ``graph.set_type(value, type)`` changes it.
    """

    __slots__ = ("_type", "producer", "index", "name", "uses")

    def __init__(self, type: TensorType, producer: Node | None = None, index: int = 0, name: str | None = None):
        self._type = type
        self.producer = producer
        self.index = index
        self.name = name  # set for graph inputs
        self.uses = UseList()

    type = property(lambda self: self._type, _read_only("Value.type", "graph.set_type(value, type)"))

    @property
    def users(self) -> list[Node]:
        return list(dict.fromkeys(node for node, _ in self.uses))

    @property
    def is_constant(self) -> bool:
        return self.producer is not None and self.producer.op == "const"

    @property
    def constant(self) -> np.ndarray | None:
        return self.producer.attrs["value"] if self.is_constant else None

    def __repr__(self) -> str:
        where = self.name if self.name else (f"{self.producer.op}#{self.index}" if self.producer else "?")
        return f"Value({where}: {self.type})"


class Node:
    """One operation. ``op`` names a registry op, dialect-qualified outside the core (``tfl.conv2d``, or
    ``tf.<OpName>`` for an opaque TensorFlow op).

    ``op``, ``attrs`` (an ``Attrs`` mapping), ``operands``, ``results`` and ``regions`` (tuples; regions are the
    nested graphs a control-flow op owns, empty for ordinary ops) are read-only: Graph methods edit them.
    ``meta`` is free scratch space for passes.
    """

    __slots__ = ("_op", "_operands", "_results", "_attrs", "_regions", "loc", "seq", "graph", "meta")

    def __init__(self, op: str, attrs: dict[str, Any], loc: Location, seq: int):
        self._op = op
        self._operands: tuple[Value, ...] = ()
        self._results: tuple[Value, ...] = ()
        self._attrs = Attrs(attrs)
        self._regions: tuple[Graph, ...] = ()
        self.loc = loc
        self.seq = seq  # creation order: the tie-break that keeps topological order stable
        self.graph: Graph | None = None
        self.meta: dict[str, Any] = {}  # scratch space for passes; not part of the node's semantics

    op = property(lambda self: self._op, _read_only("Node.op", "a new node (graph.add, then replace_node)"))
    attrs = property(lambda self: self._attrs, _read_only("Node.attrs", "graph.set_attr(node, name, value)"))
    operands = property(lambda self: self._operands,
                        _read_only("Node.operands", "graph.set_operand or graph.set_operands"))
    results = property(lambda self: self._results, _read_only("Node.results", "a new node (graph.add)"))
    regions = property(lambda self: self._regions,
                       _read_only("Node.regions", "a new node (graph.add(..., regions=...)), or edit inside a region"))

    @property
    def dialect(self) -> str:
        """The op's namespace: ``core`` for unqualified ops, else the prefix (``tfl``, ``tf``)."""
        return self._op.partition(".")[0] if "." in self._op else "core"

    @property
    def core_op(self) -> str:
        """The core op a target form extends (``tfl.conv2d`` -> ``conv2d``), else ``op`` itself."""
        return (self.opdef.core or self._op) if "." in self._op and not self.is_opaque else self._op

    @property
    def result(self) -> Value:
        if len(self.results) != 1:
            raise ValueError(f"{self.op} has {len(self.results)} results, not one")
        return self.results[0]

    @property
    def opdef(self):
        from irc.ops import get_op

        return get_op(self.op)

    @property
    def is_opaque(self) -> bool:
        return self.op.startswith("tf.")

    def attr(self, name: str):
        """The attribute's value, or its declared default."""
        if name in self.attrs:
            return self.attrs[name]
        return self.opdef.attr_default(name)

    def __repr__(self) -> str:
        return f"Node({self.op} at {self.loc})"


@dataclass
class Graph:
    """A dataflow graph with named inputs and outputs."""

    name: str = "main"
    inputs: list[Value] = field(default_factory=list)
    outputs: dict[str, Value] = field(default_factory=dict)

    def __post_init__(self):
        self._nodes: dict[Node, None] = {}  # an ordered set
        self._seq = itertools.count()
        self._version = 0
        self._input_names: set[str] = {v.name for v in self.inputs}
        self.parent: Node | None = None  # the node owning this graph as a region; None at top level

    @property
    def version(self) -> int:
        """Counts edits of this graph and of every region nested in it (the pass manager compares it)."""
        return self._version

    @version.setter
    def version(self, value: int) -> None:
        step = value - self._version
        graph = self
        while graph is not None:
            graph._version += step
            graph = graph.parent.graph if graph.parent is not None else None

    @property
    def is_top_level(self) -> bool:
        return self.parent is None

    @property
    def depth(self) -> int:
        """How many regions deep this graph is (0 at top level)."""
        depth, graph = 0, self
        while graph.parent is not None and graph.parent.graph is not None:
            depth, graph = depth + 1, graph.parent.graph
        return depth

    # ----- building -------------------------------------------------------------------------------------------
    def add_input(self, name: str, type: TensorType) -> Value:
        if name in self._names_of_inputs():
            raise ValueError(f"graph already has an input named {name!r}")
        value = Value(type, name=name)
        self.inputs.append(value)
        self._input_names.add(name)
        self.version += 1
        return value

    def _names_of_inputs(self) -> set[str]:
        """The names of the graph's inputs, kept beside the list so that adding n inputs takes linear time."""
        if len(self._input_names) != len(self.inputs):  # the list was changed directly: build the set again
            self._input_names = {v.name for v in self.inputs}
        return self._input_names

    def set_output(self, name: str, value: Value) -> None:
        self.outputs[name] = value
        self.version += 1

    def add(
        self,
        op: str,
        operands: Sequence[Value] = (),
        attrs: dict[str, Any] | None = None,
        *,
        types: Sequence[TensorType] | None = None,
        loc: Location = Location(),
        regions: Sequence[Graph] = (),
    ) -> Node:
        """Adds a node; result types are inferred from the op registry unless given.

        ``regions`` are the graphs the node owns (a ``while``'s cond and body): each becomes the node's, and must
        not belong to another node.
        """
        attrs = dict(attrs or {})
        regions = tuple(regions)
        for region in regions:
            if not isinstance(region, Graph):
                raise TypeError(f"a region is a Graph, not {type(region).__name__}")
            if region.parent is not None:
                raise ValueError(f"region {region.name!r} already belongs to {region.parent}: copy it first")
        if types is None:
            from irc.ops import infer_types

            types = infer_types(op, [v.type for v in operands], attrs, [v.constant for v in operands],
                                regions=regions)
        node = Node(op, attrs, loc, next(self._seq))
        node._regions = regions
        for region in regions:
            region.parent = node
        node.graph = self
        node._operands = tuple(operands)
        for i, v in enumerate(node._operands):
            v.uses.append((node, i))
        node._results = tuple(Value(t, node, i) for i, t in enumerate(types))
        self._nodes[node] = None
        self.version += 1
        return node

    def op(self, op: str, *operands: Value, loc: Location = Location(), regions: Sequence[Graph] = (),
           **attrs) -> Value:
        """Shorthand for a single-result node: ``g.op("add", x, y)``."""
        return self.add(op, operands, attrs, loc=loc, regions=regions).result

    def const(self, array, loc: Location = Location()) -> Value:
        array = np.asarray(array)
        return self.add("const", (), {"value": array}, types=[tensor_type_of(array)], loc=loc).result

    # ----- editing --------------------------------------------------------------------------------------------
    def set_operand(self, node: Node, index: int, value: Value) -> None:
        old = node.operands[index]
        old.uses.remove((node, index))
        node._operands = node._operands[:index] + (value,) + node._operands[index + 1:]
        value.uses.append((node, index))
        self.version += 1

    def set_operands(self, node: Node, values: Sequence[Value]) -> None:
        for i, v in enumerate(node.operands):
            v.uses.remove((node, i))
        node._operands = tuple(values)
        for i, v in enumerate(node.operands):
            v.uses.append((node, i))
        self.version += 1

    def set_attr(self, node: Node, name: str, value: Any) -> None:
        """Sets one attribute of ``node`` (lists are stored as tuples). The verifier checks the result."""
        if isinstance(value, list):
            value = tuple(value)
        node._attrs = Attrs({**node._attrs, name: value})
        self.version += 1

    def remove_attr(self, node: Node, name: str) -> None:
        """Drops an attribute, so ``node.attr(name)`` gives its declared default."""
        node._attrs = Attrs({k: v for k, v in node._attrs.items() if k != name})
        self.version += 1

    def set_type(self, value: Value, type: TensorType) -> None:
        """Changes the type of a graph input or node result (e.g. quantization parameters on a result)."""
        value._type = type
        self.version += 1

    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Makes every user of ``old`` (graph outputs included) use ``new`` instead."""
        if old is new:
            return
        for node, i in list(old.uses):
            node._operands = node._operands[:i] + (new,) + node._operands[i + 1:]
            new.uses.append((node, i))
        old.uses.clear()
        for name, v in self.outputs.items():
            if v is old:
                self.outputs[name] = new
        self.version += 1

    def replace_node(self, node: Node, new_values: Sequence[Value]) -> None:
        """Replaces every result of ``node`` by ``new_values`` and erases it."""
        for old, new in zip(node.results, new_values, strict=True):
            self.replace_all_uses(old, new)
        self.erase(node)

    def erase(self, node: Node) -> None:
        """Removes a node whose results are no longer used."""
        for r in node.results:
            if r.uses or self.is_output(r):
                raise ValueError(f"cannot erase {node}: its result is still used")
        for i, v in enumerate(node.operands):
            v.uses.remove((node, i))
        node._operands = ()
        del self._nodes[node]
        self.version += 1
        node.graph = None

    def is_output(self, value: Value) -> bool:
        return any(v is value for v in self.outputs.values())

    # ----- queries --------------------------------------------------------------------------------------------
    @property
    def nodes(self) -> list[Node]:
        """Nodes in insertion order (see ``topo_order`` for a dependency order)."""
        return list(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node: Node) -> bool:
        return node in self._nodes

    def topo_order(self) -> list[Node]:
        """A stable topological order: dependencies first, ties broken by creation order.

        Raises ValueError on a cycle (the verifier reports it with the nodes involved).
        """
        indegree = {}
        for node in self._nodes:
            indegree[node] = len({id(v.producer) for v in node.operands if v.producer is not None})
        ready = [(n.seq, n) for n, d in indegree.items() if d == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, node = heapq.heappop(ready)
            order.append(node)
            for user in {id(u): u for r in node.results for u, _ in r.uses}.values():
                if user in indegree:
                    indegree[user] -= 1
                    if indegree[user] == 0:
                        heapq.heappush(ready, (user.seq, user))
        if len(order) != len(self._nodes):
            raise ValueError("graph has a cycle")
        return order

    def walk(self, op: str | None = None, *, recursive: bool = False) -> Iterator[Node]:
        """Nodes in topological order, optionally only those of one op.

        With ``recursive``, each node is followed by the nodes of its regions (depth first, region by region);
        ``node.graph`` says which graph a node belongs to.
        """
        for node in self.topo_order():
            if op is None or node.op == op:
                yield node
            if recursive:
                for region in node.regions:
                    yield from region.walk(op, recursive=True)

    def all_graphs(self) -> Iterator[Graph]:
        """This graph, then every region nested in it, depth first (parents before their regions)."""
        yield self
        for node in self.topo_order():
            for region in node.regions:
                yield from region.all_graphs()

    def to_networkx(self):
        """A networkx DiGraph of node -> user edges, for analyses and pattern matching."""
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(self._nodes)
        for node in self._nodes:
            for v in node.operands:
                if v.producer is not None:
                    g.add_edge(v.producer, node)
        return g

    def op_histogram(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self._nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return dict(sorted(counts.items()))

    def copy(self) -> Graph:
        """A structural copy, regions included (constants' arrays are shared, not copied). The copy is top level."""
        new = Graph(self.name)
        mapping: dict[Value, Value] = {}
        for v in self.inputs:
            mapping[v] = new.add_input(v.name, v.type)
        for node in self.topo_order():
            clone = new.add(
                node.op, [mapping[v] for v in node.operands], dict(node.attrs),
                types=[r.type for r in node.results], loc=node.loc,
                regions=[region.copy() for region in node.regions],
            )
            clone.meta = dict(node.meta)
            for old, fresh in zip(node.results, clone.results):
                mapping[old] = fresh
        for name, v in self.outputs.items():
            new.outputs[name] = mapping[v]
        return new

    def dump(self, full: bool = False) -> str:
        """The graph in irc's text form."""
        from irc.ir.printer import print_graph

        return print_graph(self, full=full)
