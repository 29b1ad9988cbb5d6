"""The neutral, TensorFlow-free form of a TF graph that every TF frontend produces.

Conventions (the same on the fast path and the TF path):
- A tensor reference is ``"node"`` for output 0 and ``"node:k"`` for output k in ``TFNode.inputs``;
  ``TFGraph.outputs`` and ``TFFunction.outputs`` always spell the index (``"node:0"``).
- Inside a ``TFFunction`` a function argument is referenced by its bare name, like a node with one output.
  FunctionDef references such as ``conv/Conv2D:output:0`` are normalised to ``node:k`` (tfdecode.OUTPUT_ARGS).
- Control inputs (``^name``), Identity, IdentityN and NoOp are gone; calls (PartitionedCall,
  StatefulPartitionedCall) are inlined with their node name as prefix (``call/inner/name``), as TF's
  inliner names them. Nodes no output depends on are dropped (the inputs' Placeholders stay).
- Variables are Const nodes (named after the capture argument of the signature function, e.g. ``unknown_3``).
  A resource passed into a While/If becomes the Const itself: the loop variable's type in ``T``/``Tin``
  and the function argument's dtype are the variable's dtype, and the ReadVariableOp in the body is gone
  (the rewrite TF's convert_variables_to_constants_v2 does). ResourceGather becomes GatherV2.
- Attributes starting with "_" are dropped; defaults of common ops are filled in (tfdefaults.DEFAULTS).
- dtypes are strings: "float32", "float16", "bfloat16", "int32", "bool", "string", "resource", "variant", ...
- Nodes are in topological order, ties broken by name, so the order does not depend on the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FuncRef:
    """A function-valued attribute: the function's name and its call-site attributes."""

    name: str
    attrs: dict[str, object] = field(default_factory=dict)


@dataclass
class TFNode:
    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, object]
    device: str = ""
    layer: str | None = None
    node_def: bytes = b""  # the original NodeDef; empty for nodes irc made (Placeholders, variable Consts)


@dataclass
class TFFunction:
    name: str
    inputs: list[tuple[str, str]]  # (arg name, dtype)
    outputs: list[tuple[str, str]]  # (output arg name, "node:k" or "arg:0")
    nodes: list[TFNode]


@dataclass
class TFGraph:
    nodes: list[TFNode]
    inputs: list[tuple[str, str, tuple | None]]  # (name, dtype, shape); each is a Placeholder node
    outputs: list[tuple[str, str]]  # (signature output name, "node:k")
    functions: dict[str, TFFunction]
    source: str

    def node(self, name: str) -> TFNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


def split_ref(ref: str) -> tuple[str, int]:
    """'a/b:2' -> ('a/b', 2); 'a/b' -> ('a/b', 0)."""
    name, sep, idx = ref.rpartition(":")
    if sep and idx.isdigit():
        return name, int(idx)
    return ref, 0


def input_ref(name: str, idx: int) -> str:
    """The ``TFNode.inputs`` spelling: output 0 has no suffix."""
    return name if idx == 0 else f"{name}:{idx}"
