"""Flatten a decoded TF graph: inline calls, drop Identity/NoOp, turn variable reads into Consts.

Both the fast path and the TF path end here, so one model gives one neutral graph. Inlined nodes are
named ``<call node>/<inner name>``, as TF's own function inliner names them.
"""

from __future__ import annotations

import heapq
from dataclasses import replace

import numpy as np

from irc import limits
from irc.frontends.tfgraph import FuncRef, TFFunction, TFNode, input_ref, split_ref

CALL_OPS = {"PartitionedCall", "StatefulPartitionedCall"}
DROPPED_OPS = {"NoOp"}
INLINE_DROPPED = DROPPED_OPS | {"Identity", "IdentityN", "ReadVariableOp"}  # inlining makes no node of these
# Ops that need a variable's handle, not its value: a frozen graph cannot keep them.
RESOURCE_OP_PREFIXES = ("Assign", "Resource", "VarIsInitialized", "VariableShape", "DestroyResource")
# Functional control flow: op -> (first input that feeds the functions, attr holding input types)
FUNCTIONAL_OPS = {"While": (0, "T"), "StatelessWhile": (0, "T"), "If": (1, "Tin"), "StatelessIf": (1, "Tin"),
                  "Case": (1, "Tin"), "StatelessCase": (1, "Tin")}


class GraphError(ValueError):
    """A graph irc cannot flatten; the message names the node."""


class CorruptGraph(GraphError):
    """A graph that contradicts itself (a read of no node, a call of no function): a damaged file, which
    TensorFlow cannot load either."""


class Flattener:
    def __init__(self, library):
        self.library = library  # name -> TFFunction (Mapping-like)
        self.alias: dict[str, str] = {}  # "name:k" of a dropped output -> what it stands for
        self.reads: list[tuple[str, str]] = []  # (ReadVariableOp name, its resource ref)
        self.variables: dict[str, tuple[str, tuple]] = {}  # "name:0" -> (dtype, shape) of variable values
        # Refs that hold a value where TF's freezing left a resource op (an arg it retyped, a Const):
        # TF leaves ResourceGather on them inside While bodies, irc rewrites it like the others.
        self.values: set[str] = set()
        self.sizes: dict[str, int] = {}  # function name -> nodes one inlined call of it makes
        self.made = 0  # nodes inlining has made so far, over every body this flattener flattened

    # -- sizing -----------------------------------------------------------------------------------
    def _callee(self, node: TFNode) -> str | None:
        if node.op in CALL_OPS:
            f = node.attrs.get("f")
            return f.name if isinstance(f, FuncRef) else None
        return node.op if node.op in self.library else None

    def _body_size(self, nodes: list[TFNode]) -> int:
        """Nodes inlining ``nodes`` would make, counted (once per function, without recursion) before any is made:
        functions that call each other twice, twenty deep, make a million nodes from a few kilobytes."""
        total = 0
        for node in nodes:
            callee = self._callee(node)
            if callee is not None:
                total += self._function_size(callee)
            elif node.op not in INLINE_DROPPED:
                total += 1
        return total

    def _function_size(self, name: str) -> int:
        if name in self.sizes or name not in self.library:  # a call of a missing function is reported by inline()
            return self.sizes.get(name, 0)
        stack = [(name, iter(self._callees(name)))]  # depth first, without recursion
        on_stack = {name}
        while stack:
            top, callees = stack[-1]
            for callee in callees:
                if callee in on_stack:
                    raise CorruptGraph(f"function '{callee}' calls itself (through '{top}'); a recursive function "
                                       "cannot be inlined")
                if callee not in self.sizes and callee in self.library:
                    stack.append((callee, iter(self._callees(callee))))
                    on_stack.add(callee)
                    break
            else:
                self.sizes[top] = self._body_size(self.library[top].nodes)
                stack.pop()
                on_stack.discard(top)
        return self.sizes[name]

    def _callees(self, name: str) -> list[str]:
        return [c for c in map(self._callee, self.library[name].nodes) if c is not None]

    # -- inlining ---------------------------------------------------------------------------------
    def inline(self, nodes: list[TFNode], args: dict[str, str], prefix: str, out: list[TFNode], depth=0):
        """Append ``nodes`` (one body, local names) to ``out`` with calls inlined; refs become "name:k"."""
        if depth > 64:
            raise GraphError(f"function calls nested more than 64 deep at '{prefix}'")

        def glob(ref: str) -> str:
            if ref in args:
                return args[ref]
            name, k = split_ref(ref)
            return f"{prefix}{name}:{k}"

        for node in nodes:
            full = prefix + node.name
            if node.op == "Identity" or node.op == "ReadVariableOp":
                self.alias[full + ":0"] = glob(node.inputs[0])
                if node.op == "ReadVariableOp":
                    self.reads.append((full, full + ":0"))
            elif node.op == "IdentityN":
                for k, ref in enumerate(node.inputs):
                    self.alias[f"{full}:{k}"] = glob(ref)
            elif node.op in DROPPED_OPS:
                continue
            elif node.op in CALL_OPS or node.op in self.library:
                fname = node.attrs["f"].name if node.op in CALL_OPS else node.op
                self._inline_call(node, full, fname, [glob(r) for r in node.inputs], out, depth)
            else:
                out.append(replace(node, name=full, inputs=[glob(r) for r in node.inputs], attrs=dict(node.attrs)))

    def _inline_call(self, node, full, fname, inputs, out, depth):
        if fname not in self.library:
            raise CorruptGraph(f"node '{full}' calls function '{fname}', which is not in the library")
        fn = self.library[fname]
        if len(fn.inputs) != len(inputs):
            raise CorruptGraph(f"node '{full}' passes {len(inputs)} inputs to '{fname}', "
                               f"which takes {len(fn.inputs)}")
        inner = {arg: ref for (arg, _), ref in zip(fn.inputs, inputs)}
        self.inline(fn.nodes, inner, full + "/", out, depth + 1)
        for k, (_, ref) in enumerate(fn.outputs):
            name, idx = split_ref(ref)
            self.alias[f"{full}:{k}"] = inner.get(name, f"{full}/{name}:{idx}")

    def resolve(self, ref: str) -> str:
        seen = []
        while ref in self.alias:
            seen.append(ref)
            ref = self.alias[ref]
        for r in seen:  # shorten the chain for the next lookup
            self.alias[r] = ref
        return ref

    # -- one whole body ---------------------------------------------------------------------------
    def flatten(self, nodes, args, outputs, keep=()) -> tuple[list[TFNode], list[str], dict]:
        """Flatten a body; returns live nodes in topological order, resolved outputs and the
        resource bindings {function name: {arg index: (dtype, shape)}} its While/If nodes need."""
        self.alias, self.reads = {}, []
        self.made += self._body_size(nodes)
        source = len(nodes) + getattr(self.library, "node_count", 0)
        limits.check_expansion(self.made, source, "inlining the graph's function calls")
        out: list[TFNode] = []
        self.inline(nodes, args, "", out)
        outputs = [self.resolve(r) for r in outputs]
        for node in out:
            node.inputs = [self.resolve(r) for r in node.inputs]
        live = prune(out, outputs, keep)
        _check_refs(live, outputs, {split_ref(r)[0] for r in args.values()})
        self.values |= {f"{n.name}:0" for n in live if n.op == "Const"}
        self._check_reads({n.name for n in live})
        bindings: dict[str, dict[int, tuple]] = {}
        live = [new for n in live for new in self._bind_resources(n, bindings)]
        for node in live:
            node.inputs = [input_ref(*split_ref(r)) for r in node.inputs]
        return topo_sort(live), outputs, bindings

    def _check_reads(self, live_names):
        for name, ref in self.reads:
            source = self.resolve(ref)
            if source not in self.variables and split_ref(source)[0] in live_names:
                raise GraphError(f"ReadVariableOp '{name}' reads '{source}', which is not a saved variable")

    def _bind_resources(self, node: TFNode, bindings) -> list[TFNode]:
        """Rewrite a live node that takes a variable where TF passes a resource handle."""
        var_args = [i for i, r in enumerate(node.inputs) if r in self.variables]
        if node.op == "ResourceGather" and (var_args == [0] or node.inputs[0] in self.values):
            return self._gather(node)
        if not var_args:
            return [node]
        if node.op not in FUNCTIONAL_OPS:
            if node.op.startswith(RESOURCE_OP_PREFIXES):
                raise GraphError(f"node '{node.name}' ({node.op}) uses a variable as a resource; "
                                 "only reads of variables are supported")
            return [node]
        first, type_attr = FUNCTIONAL_OPS[node.op]
        types = list(node.attrs[type_attr])
        pattern = {}
        for i in var_args:
            if i >= first and types[i - first] == "resource":
                pattern[i - first] = self.variables[node.inputs[i]]
                types[i - first] = pattern[i - first][0]
        if not pattern:
            return [node]
        attrs = dict(node.attrs, **{type_attr: types})
        if node.op in ("While", "StatelessWhile") and isinstance(attrs.get("output_shapes"), list):
            attrs["output_shapes"] = [pattern[i][1] if i in pattern else s
                                      for i, s in enumerate(attrs["output_shapes"])]
        for value in node.attrs.values():
            for ref in value if isinstance(value, list) else [value]:
                if isinstance(ref, FuncRef) and bindings.setdefault(ref.name, pattern) != pattern:
                    raise GraphError(f"function '{ref.name}' gets different variables at '{node.name}'")
        return [replace(node, attrs=attrs)]

    def _gather(self, node: TFNode) -> list[TFNode]:
        # ResourceGather(var, indices) == GatherV2(value, indices, axis=0), as TF's freezing rewrites it.
        axis = TFNode(f"{node.name}/axis", "Const", [], {"dtype": "int32", "value": np.array(0, np.int32)},
                      node.device)
        attrs = {"Taxis": "int32", "Tindices": node.attrs.get("Tindices", "int32"),
                 "Tparams": node.attrs.get("dtype", "float32"), "batch_dims": node.attrs.get("batch_dims", 0)}
        return [axis, replace(node, op="GatherV2", inputs=node.inputs + [f"{axis.name}:0"], attrs=attrs,
                              node_def=b"")]

    # -- a library function -----------------------------------------------------------------------
    def flatten_function(self, fn: TFFunction, pattern: dict[int, tuple]) -> tuple[TFFunction, dict]:
        args = {arg: f"{arg}:0" for arg, _ in fn.inputs}
        saved = dict(self.variables), set(self.values)
        for i, (dtype, shape) in pattern.items():
            self.variables[f"{fn.inputs[i][0]}:0"] = (dtype, shape)
        self.values = {f"{arg}:0" for arg, dtype in fn.inputs if dtype != "resource"}
        try:
            nodes, outs, bindings = self.flatten(fn.nodes, args, [r for _, r in fn.outputs])
        finally:
            self.variables, self.values = saved
        inputs = [(arg, pattern[i][0] if i in pattern else dtype) for i, (arg, dtype) in enumerate(fn.inputs)]
        outputs = [(oname, ref) for (oname, _), ref in zip(fn.outputs, outs)]
        return TFFunction(fn.name, inputs, outputs, nodes), bindings


def func_refs(nodes: list[TFNode]) -> list[str]:
    names = []
    for node in nodes:
        for value in node.attrs.values():
            for ref in value if isinstance(value, list) else [value]:
                if isinstance(ref, FuncRef):
                    names.append(ref.name)
    return names


def flatten_library(flattener: Flattener, nodes: list[TFNode], bindings: dict) -> dict[str, TFFunction]:
    """Flatten every function the graph's While/If/... nodes refer to, transitively."""
    done: dict[str, TFFunction] = {}
    patterns: dict[str, dict] = {}
    todo = [(name, bindings.get(name, {})) for name in func_refs(nodes)]
    while todo:
        name, pattern = todo.pop(0)
        if name in patterns:
            if patterns[name] != pattern:
                raise GraphError(f"function '{name}' is used with different variables bound")
            continue
        if name not in flattener.library:
            raise CorruptGraph(f"function '{name}' is referenced but not in the library")
        patterns[name] = pattern
        fn, inner = flattener.flatten_function(flattener.library[name], pattern)
        done[name] = fn
        todo += [(n, inner.get(n, {})) for n in func_refs(fn.nodes)]
    return done


def prune(nodes: list[TFNode], outputs: list[str], keep=()) -> list[TFNode]:
    """Nodes some output depends on (through data edges), plus the names in ``keep``."""
    by_name = {n.name: n for n in nodes}
    live = set()
    stack = [split_ref(r)[0] for r in outputs] + list(keep)
    while stack:
        name = stack.pop()
        if name in live or name not in by_name:
            continue
        live.add(name)
        stack += [split_ref(r)[0] for r in by_name[name].inputs]
    return [n for n in nodes if n.name in live]


def _check_refs(nodes: list[TFNode], outputs: list[str], args: set[str]) -> None:
    """Every input and output names a node of the body or an argument: a hand-made or corrupt graph may not."""
    known = {n.name for n in nodes} | args
    for node in nodes:
        for ref in node.inputs:
            if split_ref(ref)[0] not in known:
                raise CorruptGraph(f"node '{node.name}' reads '{ref}', which no node of the graph produces")
    for ref in outputs:
        if split_ref(ref)[0] not in known:
            raise CorruptGraph(f"output '{ref}' is not produced by any node of the graph")


def topo_sort(nodes: list[TFNode]) -> list[TFNode]:
    """Producers before consumers; among ready nodes the smallest name first, so the order does not
    depend on how the file listed the nodes. A cycle is a GraphError (TF1 loops, corrupt files)."""
    by_name = {n.name: n for n in nodes}
    waiting = {n.name: 0 for n in nodes}
    users: dict[str, list[str]] = {}
    for node in nodes:
        for dep in {split_ref(r)[0] for r in node.inputs} & by_name.keys():
            waiting[node.name] += 1
            users.setdefault(dep, []).append(node.name)
    ready = [name for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        name = heapq.heappop(ready)
        order.append(by_name[name])
        for user in users.get(name, ()):
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(order) < len(nodes):
        stuck = sorted(name for name, count in waiting.items() if count)
        raise GraphError(f"the graph has a cycle: {len(stuck)} nodes, '{stuck[0]}' among them, wait on one "
                         "another (TF1 loops built with NextIteration are not supported)")
    return order
