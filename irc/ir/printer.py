"""The printer for irc's text form (see docs/ir.md for the syntax).

Output is deterministic: values are numbered in topological order, attributes are sorted, and constants above
``ELIDE_ABOVE`` elements are shown as dtype, shape and a content hash unless ``full=True``. ``parse(print(g))``
gives back ``g``; printing again gives the same text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass

import numpy as np

from irc.ir.types import DType, QuantParams, SymDim, TensorType

ELIDE_ABOVE = 16  # constants with more elements are elided (hash) unless printing in full
INLINE_AT_MOST = 16  # constants with at most this many elements are written as literals
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.$-]*$")


@dataclass(frozen=True)
class ElidedTensor:
    """A constant whose contents a dump left out: only its dtype, shape and content hash are known."""

    dtype: DType
    shape: tuple[int, ...]
    digest: str

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def tensor_digest(array: np.ndarray) -> str:
    """A short content hash of a constant (dtype, shape and bytes), used to elide and to match weights."""
    h = hashlib.sha256()
    h.update(f"{DType.from_numpy(array.dtype).value}{list(array.shape)}".encode())
    if array.dtype.kind in "OUS":
        h.update(json.dumps([str(x) for x in array.ravel()]).encode())
    else:
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


# ----- types -------------------------------------------------------------------------------------------------------
def format_dim(d) -> str:
    return "?" if d is None else str(d)


def format_quant(q: QuantParams) -> str:
    if q.axis is None:
        return f" q({format_float(q.scale[0])}, {q.zero_point[0]})"
    scales = ", ".join(format_float(s) for s in q.scale)
    zps = ", ".join(str(z) for z in q.zero_point)
    block = "" if q.block_size is None else f"block={q.block_size}, "
    return f" q(axis={q.axis}, {block}[{scales}], [{zps}])"


def format_type(t: TensorType) -> str:
    dims = "*" if t.shape is None else ",".join(format_dim(d) for d in t.shape)
    text = f"{t.dtype.value}[{dims}]"
    if t.quant is not None:
        text += format_quant(t.quant)
    return text


# ----- attribute values --------------------------------------------------------------------------------------------
def format_float(x: float) -> str:
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


def format_string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def format_scalar(x, dtype: DType) -> str:
    if dtype is DType.bool:
        return "true" if x else "false"
    if dtype.is_float:
        return format_float(x)
    if dtype is DType.str:
        return format_string(x.decode("utf-8", "backslashreplace") if isinstance(x, bytes) else str(x))
    return str(int(x))


def format_tensor(value, full: bool) -> str:
    if isinstance(value, ElidedTensor):
        return f"dense<{value.dtype.value}[{','.join(map(str, value.shape))}] sha256:{value.digest}>"
    array = np.asarray(value)
    dtype = DType.from_numpy(array.dtype)
    head = f"{dtype.value}[{','.join(str(d) for d in array.shape)}]"
    if array.size <= INLINE_AT_MOST and dtype is not DType.c64:  # complex numbers are written as bytes
        items = ", ".join(format_scalar(x, dtype) for x in array.ravel().tolist())
        return f"dense<{head} [{items}]>"
    if not full and array.size > ELIDE_ABOVE:
        return f"dense<{head} sha256:{tensor_digest(array)}>"
    if dtype is DType.str:
        items = ", ".join(format_scalar(x, dtype) for x in array.ravel().tolist())
        return f"dense<{head} [{items}]>"
    raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    return f'dense<{head} b64"{base64.b64encode(raw).decode()}">'


def format_attr(value, full: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return format_float(value)
    if isinstance(value, str):
        return format_string(value)
    if isinstance(value, bytes):
        return f'b64"{base64.b64encode(value).decode()}"'
    if isinstance(value, DType):
        return value.value
    if isinstance(value, (np.ndarray, ElidedTensor)):
        return format_tensor(value, full)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_attr(v, full) for v in value) + "]"
    raise TypeError(f"cannot print attribute value {value!r} of type {type(value).__name__}")


def format_attrs(attrs: dict, full: bool) -> str:
    if not attrs:
        return ""
    items = ", ".join(f"{format_key(k)} = {format_attr(attrs[k], full)}" for k in sorted(attrs))
    return f" {{{items}}}"


def format_key(name: str) -> str:
    return name if _IDENT.match(name) else format_string(name)


def format_loc(loc) -> str:
    if not loc:
        return ""
    names = ", ".join(format_string(n) for n in loc.names)
    if loc.layers:
        layers = ", ".join(format_string(n) for n in loc.layers)
        names = f"{names} in {layers}" if names else f"in {layers}"
    return f" loc({names})"


# ----- graphs ------------------------------------------------------------------------------------------------------
class Namer:
    """Gives every value its printed name: graph inputs by name, node results by number in print order.

    A region gets a scope of its own (``scope``): its arguments' names, and numbers that continue the enclosing
    graph's, so every number is printed once.
    """

    def __init__(self, graph, counter: list[int] | None = None):
        self.names = {}
        for v in graph.inputs:
            self.names[v] = "%" + format_key(v.name)
        self._counter = counter if counter is not None else [0]

    @property
    def next(self) -> int:
        return self._counter[0]

    def define(self, value) -> str:
        name = f"%{self._counter[0]}"
        self._counter[0] += 1
        self.names[value] = name
        return name

    def scope(self, region) -> Namer:
        return Namer(region, self._counter)

    def __getitem__(self, value) -> str:
        return self.names[value]


def print_graph(graph, full: bool = False, weights: str | None = None) -> str:
    """The graph's text; ``weights`` names the file beside it that holds the elided constants (a first-line
    ``// weights: NAME`` comment, see irc/ir/weights_file.py)."""
    namer = Namer(graph)
    params = ", ".join(f"{namer[v]}: {format_type(v.type)}" for v in graph.inputs)
    lines = [f"// weights: {weights}"] if weights else []
    lines.append(f"graph @{format_key(graph.name)}({params}) {{")
    _print_body(graph, namer, full, "  ", lines, top=True)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _print_body(graph, namer: Namer, full: bool, indent: str, lines: list[str], top: bool) -> None:
    """A graph's nodes (regions nested below their node) and its return line."""
    for node in graph.topo_order():
        lines.append(indent + format_node(node, namer, full))
        for region in node.regions:
            inner = namer.scope(region)
            params = ", ".join(f"{inner[v]}: {format_type(v.type)}" for v in region.inputs)
            lines.append(f"{indent}  ^{format_key(region.name)}({params}) {{")
            _print_body(region, inner, full, indent + "    ", lines, top=False)
            lines.append(f"{indent}  }}")
    outs = ", ".join(_format_output(namer, name, v, i, top) for i, (name, v) in enumerate(graph.outputs.items()))
    lines.append(f"{indent}return {outs}" if outs else f"{indent}return")


def _format_output(namer: Namer, name: str, value, index: int, top: bool) -> str:
    """A graph output: ``%3 as "name"``; a region's results are positional, so ``as`` is left out when the name
    is its position."""
    if not top and name == str(index):
        return namer[value]
    return f"{namer[value]} as {format_string(name)}"


def format_node(node, namer: Namer, full: bool = False) -> str:
    """A node's line (its regions, if any, follow on lines of their own: see ``print_graph``)."""
    operands = ", ".join(namer[v] for v in node.operands)
    results = ", ".join(namer.define(r) for r in node.results)
    types = ", ".join(format_type(r.type) for r in node.results)
    op = node.op if _IDENT.match(node.op) else format_string(node.op)
    lhs = f"{results} = " if results else ""
    return f"{lhs}{op}({operands}){format_attrs(node.attrs, full)} : {types}{format_loc(node.loc)}"


def collect_weights(graph) -> dict[str, np.ndarray]:
    """Constants a default dump elides, keyed by their hash: what ``irc dump --save-weights FILE.npz`` saves beside a dump."""
    weights = {}
    for node in graph.walk(recursive=True):
        for value in node.attrs.values():
            if isinstance(value, np.ndarray) and value.size > ELIDE_ABOVE and value.dtype.kind not in "OUS":
                weights[tensor_digest(value)] = value
    return weights


def describe_node(node) -> str:
    """A node as error messages show it: op, location and Keras layer."""
    where = f" at {node.loc}" if node.loc else ""
    return f"{node.op}{where}"


__all__ = ["print_graph", "format_type", "format_node", "ElidedTensor", "tensor_digest", "collect_weights",
           "describe_node", "SymDim"]
