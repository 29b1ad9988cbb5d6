"""Matching the nodes of two graphs by structure and source location, never by printed names.

``match_graphs(a, b)`` walks ``a`` in topological order. A node's candidates in ``b`` are the users of the values
its data operands already matched (looking through a few unmatched single-input nodes in ``b``, so an inserted
``dequantize`` or ``transpose`` does not break the chain) and the nodes that share a source-location name with it.
The best candidate wins by a score: same op, operands wired to the matched values, shared location names and
layers, same result types, similar users. Each node is looked at once and each candidate set is small, so
matching costs about O(n log n) (the topological sorts).

An ``a`` node left unmatched with one data operand (a bias add, activation or pad that ``b`` fused away) is
looked through: its result stands for its operand's match, so the nodes after it still match.
Constants are matched last, through the operand slots of matched nodes, then by location or identical contents.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from irc.ir.graph import Graph, Node, Value
from irc.tools.where import strip_wrappers

LOOK_THROUGH = 3  # how many unmatched single-input nodes in b a candidate search looks through


def loc_names(node: Node) -> frozenset[str]:
    """A node's location names without TensorFlow's call wrappers, for comparing across formats."""
    return frozenset(strip_wrappers(name) for name in node.loc.names)


@dataclass
class Matching:
    """What ``match_graphs`` found: node pairs, value correspondences and graph-interface pairs."""

    a: Graph
    b: Graph
    a_order: list[Node]
    b_order: list[Node]
    nodes: dict[Node, Node] = field(default_factory=dict)  # a node -> b node
    values: dict[Value, Value] = field(default_factory=dict)  # a value -> b value (matched or looked through)
    inputs: list[tuple[Value, Value]] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (a output name, b output name)
    taken: set[Node] = field(default_factory=set)  # b nodes matched so far

    @property
    def removed(self) -> list[Node]:
        return [n for n in self.a_order if n not in self.nodes]

    @property
    def added(self) -> list[Node]:
        return [n for n in self.b_order if n not in self.taken]

    def same_value(self, va: Value, vb: Value) -> bool:
        """Whether ``vb`` is what ``va`` became: its match, or reached from it through unmatched nodes of b."""
        target = self.values.get(va)
        if target is None:
            return False
        return target is vb or _through(vb, target, self.taken)


def match_graphs(a: Graph, b: Graph) -> Matching:
    return _Matcher(a, b).run()


def _data_operands(node: Node) -> list[tuple[int, Value]]:
    return [(i, v) for i, v in enumerate(node.operands) if not v.is_constant]


def _through(vb: Value, target: Value, taken: set[Node], depth: int = LOOK_THROUGH) -> bool:
    """Whether walking back from ``vb`` through unmatched single-data-input nodes of b reaches ``target``."""
    for _ in range(depth):
        node = vb.producer
        if node is None or node in taken:
            return False
        data = _data_operands(node)
        if len(data) != 1:
            return False
        vb = data[0][1]
        if vb is target:
            return True
    return False


class _Matcher:
    def __init__(self, a: Graph, b: Graph):
        self.m = Matching(a, b, a.topo_order(), b.topo_order())
        self.a_rank = {n: i / max(len(self.m.a_order), 1) for i, n in enumerate(self.m.a_order)}
        self.b_rank = {n: i / max(len(self.m.b_order), 1) for i, n in enumerate(self.m.b_order)}
        self.b_index = {n: i for i, n in enumerate(self.m.b_order)}
        self.taken = self.m.taken
        self.by_name: dict[str, list[Node]] = {}
        self.a_by_name: dict[str, list[Node]] = {}  # who owns a location name in a
        self.names: dict[Node, frozenset[str]] = {}
        for node in self.m.a_order:
            self.names[node] = loc_names(node)
            for name in self.names[node]:
                self.a_by_name.setdefault(name, []).append(node)
        self.sources: dict[str, list[Node]] = {}  # b nodes without data operands, by op
        for node in self.m.b_order:
            self.names[node] = loc_names(node)
            if node.op == "const":
                continue
            for name in self.names[node]:
                self.by_name.setdefault(name, []).append(node)
            if not _data_operands(node):
                self.sources.setdefault(node.core_op, []).append(node)

    def run(self) -> Matching:
        self.match_inputs()
        for node in self.m.a_order:
            if node.op == "const":
                continue
            best = self.best_candidate(node)
            if best is not None:
                self.pair(node, best)
            else:
                self.look_through(node)
        self.match_constants()
        self.match_outputs()
        return self.m

    # ----- graph inputs and outputs -----------------------------------------------------------------------------
    def match_inputs(self) -> None:
        a_left = list(self.m.a.inputs)
        b_by_name = {v.name: v for v in self.m.b.inputs}
        for v in list(a_left):
            if v.name in b_by_name:
                self.m.inputs.append((v, b_by_name.pop(v.name)))
                a_left.remove(v)
        b_left = [v for v in self.m.b.inputs if v.name in b_by_name]
        for want_type in (True, False):  # renamed inputs: same dtype and rank first, then by position
            for v in list(a_left):
                fit = [w for w in b_left if not want_type or (w.type.dtype, w.type.rank) == (v.type.dtype, v.type.rank)]
                if fit:
                    self.m.inputs.append((v, fit[0]))
                    a_left.remove(v)
                    b_left.remove(fit[0])
        for va, vb in self.m.inputs:
            self.m.values[va] = vb

    def match_outputs(self) -> None:
        a_out, b_out = dict(self.m.a.outputs), dict(self.m.b.outputs)
        pairs = [(name, name) for name in a_out if name in b_out]
        a_left = [n for n in a_out if n not in b_out]
        b_left = [n for n in b_out if n not in a_out]
        for name in list(a_left):  # renamed outputs: the one b computes from the same value, else by position
            same = [o for o in b_left if self.m.same_value(a_out[name], b_out[o])]
            if same:
                pairs.append((name, same[0]))
                a_left.remove(name)
                b_left.remove(same[0])
        pairs += list(zip(a_left, b_left))
        self.m.outputs = pairs

    # ----- nodes ------------------------------------------------------------------------------------------------
    def candidates(self, node: Node) -> set[Node]:
        found: set[Node] = set()
        for _, v in _data_operands(node):
            target = self.m.values.get(v)
            if target is not None:
                self.collect_users(target, found, LOOK_THROUGH)
        for name in self.names[node]:
            found.update(self.by_name.get(name, ()))
        if not _data_operands(node):
            found.update(self.sources.get(node.core_op, ()))
        return {c for c in found if c not in self.taken and c.op != "const"}

    def collect_users(self, value: Value, found: set[Node], depth: int) -> None:
        for user, _ in value.uses:
            if user in found:
                continue
            found.add(user)
            if depth > 1 and user not in self.taken and len(user.results) == 1 and len(_data_operands(user)) == 1:
                self.collect_users(user.results[0], found, depth - 1)

    def best_candidate(self, node: Node) -> Node | None:
        best, best_key = None, None
        for cand in self.candidates(node):
            score = self.score(node, cand)
            if score is None:
                continue
            key = (score, -abs(self.a_rank[node] - self.b_rank[cand]), -self.b_index[cand])
            if best_key is None or key > best_key:
                best, best_key = cand, key
        return best

    def score(self, node: Node, cand: Node) -> float | None:
        """How alike ``cand`` (in b) is to ``node`` (in a); None when it must not match at all."""
        shared_names = len(self.names[node] & self.names[cand])
        if node.core_op != cand.core_op and not shared_names:  # tfl.conv2d is a conv2d
            return None
        score = 100.0 if node.core_op == cand.core_op else 0.0
        wired = False
        a_data = _data_operands(node)
        for i, v in a_data:
            target = self.m.values.get(v)
            if target is None or i >= len(cand.operands):
                continue
            if cand.operands[i] is target:
                score += 10
                wired = True
            elif _through(cand.operands[i], target, self.taken):
                score += 5
                wired = True
        if a_data and not wired and not shared_names:
            return None  # neither wired like node nor from the same source: a coincidence of op names
        if self.owned_elsewhere(node, cand, same_op_only=bool(shared_names)):
            return None  # cand came from another node of a, which has not had its turn yet
        score += 20 * shared_names / max(len(self.names[node]), len(self.names[cand]), 1)
        score += 5 if set(node.loc.layers) & set(cand.loc.layers) else 0
        score += 15 if [r.type for r in node.results] == [r.type for r in cand.results] else 0
        score += 2 if len(node.operands) == len(cand.operands) else 0
        score += 2 if self.same_attrs(node, cand) else 0
        users_a = sorted(u.op for r in node.results for u in r.users)
        users_b = sorted(u.op for r in cand.results for u in r.users)
        score += min(len(set(users_a) & set(users_b)), 3) + (1 if users_a == users_b else 0)
        return score

    def owned_elsewhere(self, node: Node, cand: Node, same_op_only: bool) -> bool:
        """Whether an unmatched node of a other than ``node`` shares a location name with ``cand`` (with
        ``same_op_only``: one that also has cand's op, when ``node`` does not; a fused node carries the names of
        everything fused into it, and the node of its own op has the better claim)."""
        if same_op_only and node.core_op == cand.core_op:
            return False
        for name in self.names[cand]:
            for owner in self.a_by_name.get(name, ()):
                if owner is not node and owner not in self.m.nodes and (not same_op_only or owner.core_op == cand.core_op):
                    return True
        return False

    @staticmethod
    def same_attrs(node: Node, cand: Node) -> bool:
        if node.attrs.keys() != cand.attrs.keys():
            return False
        for key, value in node.attrs.items():
            other = cand.attrs[key]
            if isinstance(value, np.ndarray) or isinstance(other, np.ndarray):
                continue  # compared in full by the diff; not worth it for a tie-break
            if value != other:
                return False
        return True

    def pair(self, node: Node, cand: Node) -> None:
        self.m.nodes[node] = cand
        self.taken.add(cand)
        for ra, rb in zip(node.results, cand.results):
            self.m.values[ra] = rb

    def look_through(self, node: Node) -> None:
        """An unmatched node with one data operand (a bias add, an activation, a pad that b fused into the next
        op) stands for its operand's match, so its users can still match."""
        data = _data_operands(node)
        if len(data) != 1 or len(node.results) != 1:
            return
        target = self.m.values.get(data[0][1])
        if target is not None:
            self.m.values[node.results[0]] = target

    # ----- constants --------------------------------------------------------------------------------------------
    def match_constants(self) -> None:
        for node in self.m.a_order:
            cand = self.m.nodes.get(node)
            if cand is None:
                continue
            for va, vb in zip(node.operands, cand.operands):
                if va.is_constant and vb.is_constant and va.producer not in self.m.nodes and vb.producer not in self.taken:
                    self.pair(va.producer, vb.producer)
        a_left = [n for n in self.m.a_order if n.op == "const" and n not in self.m.nodes]
        b_left = [n for n in self.m.b_order if n.op == "const" and n not in self.taken]
        if not a_left or not b_left:
            return
        by_loc: dict[frozenset[str], list[Node]] = {}
        by_shape: dict[tuple, list[Node]] = {}
        for c in b_left:
            if self.names[c]:
                by_loc.setdefault(self.names[c], []).append(c)
            by_shape.setdefault(_const_key(c), []).append(c)
        for node in a_left:
            pool = [c for c in by_loc.get(self.names[node], ()) if c not in self.taken and _const_key(c) ==
                    _const_key(node)] if self.names[node] else []
            pool = pool or [c for c in by_shape.get(_const_key(node), ()) if c not in self.taken
                            and _same_contents(node, c)]
            if pool:
                self.pair(node, pool[0])


def _const_key(node: Node) -> tuple:
    t = node.results[0].type
    return (t.dtype, t.shape)


def _same_contents(a: Node, b: Node) -> bool:
    from irc.tools.compare import tensors_equal

    return tensors_equal(a.attrs["value"], b.attrs["value"])
