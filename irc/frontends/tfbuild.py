"""Assemble a TFGraph from a decoded body: the last step shared by the fast path and the TF path."""

from __future__ import annotations

import re

import numpy as np

from irc.frontends.tfflatten import Flattener, flatten_library, func_refs
from irc.frontends.tfgraph import TFGraph, TFNode, split_ref

# Name scopes added by inlining a call; they say nothing about the Keras layer.
_CALL_SCOPE = re.compile(r"^(Stateful)?PartitionedCall(_\d+)?$|^Func$")
_SUFFIX = re.compile(r"^(.+)_\d+$")


def placeholder(name: str, dtype: str, shape: tuple | None) -> TFNode:
    return TFNode(name, "Placeholder", [], {"dtype": dtype, "shape": shape})


def constant(name: str, value: np.ndarray, dtype: str) -> TFNode:
    return TFNode(name, "Const", [], {"dtype": dtype, "value": value})


def layer_of(name: str, known: set[str]) -> str | None:
    """The Keras layer a node came from, read from its name scope ``model/layer/...``.

    Keras 3 traces under scopes ``model_1/layer_1/``: the suffix is dropped when the name without it
    is a known layer, or when the model scope has a suffix too.
    """
    segs = name.split("/")
    while segs and _CALL_SCOPE.match(segs[0]):
        segs = segs[1:]
    if len(segs) < 3:
        return None
    scope = segs[1]
    match = _SUFFIX.match(scope)
    if scope in known or not match:
        return scope
    if match.group(1) in known or _SUFFIX.match(segs[0]):
        return match.group(1)
    return scope


def tag_layers(graph: TFGraph, known: set[str]) -> None:
    consumers: dict[str, set] = {}
    for node in graph.nodes:
        node.layer = layer_of(node.name, known)
        for ref in node.inputs:
            consumers.setdefault(split_ref(ref)[0], set()).add(node.layer)
    for node in graph.nodes:  # variables and other Consts belong to the one layer that reads them
        if node.layer is None and node.op == "Const" and len(consumers.get(node.name, ())) == 1:
            node.layer = next(iter(consumers[node.name]))
    # A function's nodes belong to the layer of the node that first uses the function.
    todo, seen = list(graph.nodes), set()
    while todo:
        node = todo.pop(0)
        for name in func_refs([node]):
            fn = graph.functions.get(name)
            if fn is None or name in seen:
                continue
            seen.add(name)
            for inner in fn.nodes:
                inner.layer = node.layer
            todo += fn.nodes


def build_graph(body: list[TFNode], library, args: dict[str, str], outputs: list[tuple[str, str]],
                inputs: list[tuple[str, str, tuple | None]], variables: dict[str, tuple], source: str,
                known_layers: set[str]) -> TFGraph:
    """Flatten ``body`` (which holds the input Placeholders and variable Consts) into a TFGraph.

    ``args`` maps refs in ``body`` to their replacements (a function's args bound to Placeholders
    and Consts); ``outputs`` are (name, ref in body); ``variables`` names the Consts that stand for
    variables: {"name:0": (dtype, shape)}.
    """
    flattener = Flattener(library)
    flattener.variables = dict(variables)
    keep = [name for name, _, _ in inputs]
    local = [_bind(ref, args) for _, ref in outputs]
    nodes, outs, bindings = flattener.flatten(body, args, local, keep)
    functions = flatten_library(flattener, nodes, bindings)
    graph = TFGraph(nodes, inputs, [(name, ref) for (name, _), ref in zip(outputs, outs)], functions, source)
    tag_layers(graph, known_layers)
    return graph


def _bind(ref: str, args: dict[str, str]) -> str:
    name, idx = split_ref(ref)
    if ref in args:
        return args[ref]
    if idx == 0 and name in args:
        return args[name]
    return f"{name}:{idx}"
