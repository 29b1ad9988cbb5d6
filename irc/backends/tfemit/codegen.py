"""IR -> the Python source of one TensorFlow function, ``def model(w, <inputs>)``, from a table of emitters.

Every backend built on TensorFlow starts here: xla and cuda execute the source and wrap it in a ``tf.function``;
tpu writes it into a program. Generating source, not tensors, keeps one emitter for both and lets a user read
exactly what irc hands TensorFlow (``TFModel.source``).

An emitter (``rules.py``) turns one node into a TensorFlow expression over its operands' names; the ``Emitter``
here names values, turns constants into literals or weights (``w["name"]``: ``tf.Variable``s in a SavedModel, an
.npz beside a TPU program), names TF ops after the IR node's origin (so HLO and profiles speak the model's layer
names) and runs quantized nodes as dequantize -> float op -> quantize, as the reference interpreter does.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from irc.errors import TargetError
from irc.ir.graph import Graph, Node, Value
from irc.ir.liveness import live_nodes
from irc.ir.types import DType, TensorType

# op name -> emitter(e, node, args) returning a TF expression (one result; a tuple-valued one for several results)
# or a list of expressions (one per result).
Rule = Callable[["Emitter", Node, list[str]], "str | list[str]"]
EMITTERS: dict[str, Rule] = {}
QUANT_OPS = frozenset({"quantize", "dequantize", "requantize", "const"})  # ops that handle quantized types themselves
RUNTIME_HELPERS = ("tf_op", "fused_conv2d", "dequantize", "quantize", "lstm")
_RESERVED = frozenset({"tf", "w", "np", "model", *RUNTIME_HELPERS})

TF_DTYPES = {
    DType.f32: "tf.float32", DType.f16: "tf.float16", DType.bf16: "tf.bfloat16", DType.f64: "tf.float64",
    DType.i8: "tf.int8", DType.u8: "tf.uint8", DType.i16: "tf.int16", DType.i32: "tf.int32", DType.i64: "tf.int64",
    DType.bool: "tf.bool", DType.str: "tf.string", DType.c64: "tf.complex64",
}


def emits(*ops: str):
    """Decorator: registers an emitter for irc ops ``ops``."""

    def register(rule: Rule) -> Rule:
        for op in ops:
            if op in EMITTERS:
                raise ValueError(f"two TF emitters for {op!r}")
            EMITTERS[op] = rule
        return rule

    return register


def has_emitter(op: str) -> bool:
    from irc.backends.tfemit import rules  # noqa: F401  (fills EMITTERS)

    return op in EMITTERS or op == "const" or op.startswith("tf.")


@dataclass(frozen=True)
class EmitOptions:
    fused_kernels: bool = False  # conv2d + bias + relu as TensorFlow's _FusedConv2D (cuda)
    nchw_as_nhwc: bool = False  # NCHW convolutions and pools as NHWC between transposes (TF's CPU kernels need it)
    quant_float64: bool = True  # quantization arithmetic in float64, as the interpreter (TPUs have no float64)
    weight_threshold: int = 16  # constants with more elements become weights; smaller ones stay literals


@dataclass(frozen=True)
class InputSpec:
    name: str  # the graph input's name (the signature key)
    arg: str  # its parameter name in the generated function
    type: TensorType

    @property
    def shape(self) -> tuple[int | None, ...] | None:
        """The TensorFlow shape: unknown and symbolic dims are None."""
        if self.type.shape is None:
            return None
        return tuple(d if isinstance(d, int) else None for d in self.type.shape)

    def example_shape(self, batch: int = 1) -> tuple[int, ...]:
        return tuple(d if d is not None else (batch if i == 0 else 1) for i, d in enumerate(self.shape or ()))


@dataclass
class ModelSource:
    """The generated function and everything needed to run it."""

    name: str
    code: str
    weights: dict[str, np.ndarray]
    inputs: list[InputSpec]
    outputs: list[str]
    helpers: tuple[str, ...]
    op_count: int
    layers: list[str] = field(default_factory=list)
    output_types: dict[str, TensorType] = field(default_factory=dict)

    def namespace(self) -> dict:
        import tensorflow as tf

        from irc.backends.tfemit import runtime

        return {"tf": tf, **{name: getattr(runtime, name) for name in self.helpers}}

    def function(self) -> Callable:
        """The generated ``model(w, *inputs)`` as a Python function."""
        namespace = self.namespace()
        exec(compile(self.code, f"<irc:{self.name}>", "exec"), namespace)  # noqa: S102  (irc's own generated code)
        return namespace["model"]

    def helper_source(self) -> str:
        """The source of the runtime helpers the code calls, to paste into a standalone program."""
        import inspect

        from irc.backends.tfemit import runtime

        return "\n\n".join(inspect.getsource(getattr(runtime, name)) for name in self.helpers)


def generate(graph: Graph, options: EmitOptions | None = None) -> ModelSource:
    """The graph as Python source of ``def model(w, <inputs>)`` returning a dict of outputs by name.

    Raises TargetError naming every op without an emitter (``check`` reports them earlier, per node).
    """
    from irc.backends.tfemit import rules  # noqa: F401  (fills EMITTERS)

    missing = sorted({n.op for n in graph.walk(recursive=True) if not has_emitter(n.op)})
    if missing:
        raise TargetError(f"irc's TensorFlow emitter has no rule for op(s): {', '.join(missing)}")
    return Emitter(graph, options or EmitOptions()).run()


class Emitter:
    """Per-graph state of one code generation; emitters call its helpers to build expressions."""

    def __init__(self, graph: Graph, options: EmitOptions, parent: Emitter | None = None):
        self.graph = graph
        self.options = options
        self.lines: list[str] = []
        self.node: Node | None = None  # the node being emitted
        self._names: dict[Value, str] = {}
        self._live: set[Node] = set()
        if parent is None:
            self.weights: dict[str, np.ndarray] = {}
            self.helpers: dict[str, None] = {}
            self._taken: set[str] = set(_RESERVED)
            self._counts: dict[str, int] = {}
        else:  # a region's function: weights, helpers and local names are the enclosing function's
            self.weights, self.helpers = parent.weights, parent.helpers
            self._taken, self._counts = parent._taken, parent._counts

    # ----- the walk ---------------------------------------------------------------------------------------------
    def run(self) -> ModelSource:
        graph = self.graph
        inputs = []
        for v in graph.inputs:
            arg = self._fresh(_identifier(v.name), numbered=False)
            self._names[v] = arg
            inputs.append(InputSpec(v.name, arg, v.type))
        count, layers = self._walk()
        returns = []
        for name, v in graph.outputs.items():
            expr = self._names[v]
            if v.producer is None or v.is_constant:
                expr = f"tf.identity({expr})"
            returns.append(f"{_quote(name)}: {expr}")
        body = "\n".join("    " + line for stmt in self.lines for line in _wrap(stmt).split("\n"))
        args = ", ".join(["w"] + [spec.arg for spec in inputs])
        doc = f'"""{_comment(graph.name)} as irc rebuilt it: {count} ops. ``w`` maps weight names to tensors."""'
        code = f"def model({args}):\n    {doc}\n{body}\n    return {{{', '.join(returns)}}}\n"
        helpers = tuple(h for h in RUNTIME_HELPERS if h in self.helpers)
        return ModelSource(graph.name, code, self.weights, inputs, list(graph.outputs), helpers, count, list(layers),
                           {name: v.type for name, v in graph.outputs.items()})

    def region(self, graph: Graph, hint: str, single: bool = False) -> str:
        """Region ``graph`` as a local function (``def cond_1(x, y): ... return [...]``) written before the
        current node's statement; returns its name. ``single``: it returns its one result itself, not a list."""
        inner = Emitter(graph, self.options, parent=self)
        args = []
        for v in graph.inputs:
            inner._names[v] = self._fresh(_identifier(v.name) or "arg")
            args.append(inner._names[v])
        inner._walk()
        results = [inner._names[v] for v in graph.outputs.values()]
        name = self._fresh(hint)
        body = [line for stmt in inner.lines for line in _wrap(stmt).split("\n")]
        returned = results[0] if single else f"[{', '.join(results)}]"
        self.lines.append("\n".join([f"def {name}({', '.join(args)}):", *("    " + line for line in body),
                                      f"    return {returned}"]))
        return name

    def _walk(self) -> tuple[int, dict[str, None]]:
        """Emits the nodes the outputs need; returns how many (constants aside) and the layers they came from."""
        graph = self.graph
        self._live = live_nodes(graph)
        layer = None
        count = 0
        layers: dict[str, None] = {}
        for node in graph.topo_order():
            if node not in self._live:
                continue  # contributes to no output
            here = node.loc.layers[0] if node.loc.layers else None
            if here and here != layer and node.op != "const":
                self.lines.append(f"# {_comment(here)}")
                layer = here
                layers[here] = None
            self.node = node
            if node.op == "const":
                self._emit_const(node)
            else:
                self._emit_node(node)
                count += 1
        self.node = None
        return count, layers

    def _emit_const(self, node: Node) -> None:
        value = node.attrs["value"]
        expr = self.array(value, hint=_weight_hint(node, self._live))
        if expr.startswith("w["):
            self._names[node.result] = expr
        else:
            self._names[node.result] = self.bind(expr, "const")

    def _emit_node(self, node: Node) -> None:
        args = [self._names[v] for v in node.operands]
        quantized = node.op not in QUANT_OPS and not node.is_opaque and (
            any(v.type.quant for v in node.operands) or any(r.type.quant for r in node.results))
        if quantized:  # as the reference interpreter: dequantize -> float op -> quantize
            args = [self.dequantize(a, v.type) if v.type.quant else a for a, v in zip(args, node.operands)]
        rule = _opaque if node.is_opaque else EMITTERS[node.op]
        base = _identifier(node.core_op.removeprefix("tf.").lower())
        out = self._per_result(node, rule(self, node, args), "float" if quantized else base)
        if quantized:
            out = [self.quantize(x, r.type) if r.type.quant else x for x, r in zip(out, node.results)]
        for r, expr in zip(node.results, out):
            self._names[r] = self.bind(expr, base) if self._used(r) else expr

    def _per_result(self, node: Node, out: str | list[str], base: str) -> list[str]:
        """One expression per result: a tuple-valued expression is unpacked into fresh names (``_`` if unused)."""
        if isinstance(out, str):
            if len(node.results) == 1:
                return [out]
            names = [self._fresh(base) if self._used(r) else "_" for r in node.results]
            self.lines.append(f"{', '.join(names)}{',' if len(names) == 1 else ''} = {out}")
            return names
        if len(out) != len(node.results):
            raise TargetError(f"the {node.op} emitter gave {len(out)} results for {len(node.results)}",
                              where=_where(node))
        return list(out)

    def _used(self, value: Value) -> bool:
        return self.graph.is_output(value) or any(user in self._live for user, _ in value.uses)

    # ----- helpers for emitters ---------------------------------------------------------------------------------
    def bind(self, expr: str, hint: str = "t") -> str:
        """Assigns ``expr`` to a fresh local and returns its name."""
        if _IDENTIFIER.fullmatch(expr) or expr.startswith("w["):
            return expr
        name = self._fresh(hint)
        self.lines.append(f"{name} = {expr}")
        return name

    def op_name(self, suffix: str = "") -> str:
        """The TF op name for the current node: its TF name, so HLO and traces name the model's layers."""
        node = self.node
        base = node.loc.names[0] if node is not None and node.loc.names else (node.core_op if node else "op")
        base = _op_name(_strip_call_scopes(base))
        return base + "/" + suffix if suffix else base

    def name(self, suffix: str = "") -> str:
        """``name="..."``, the keyword argument naming the TF op made from the current node."""
        return f"name={_quote(self.op_name(suffix))}"

    def helper(self, name: str) -> str:
        """Marks a runtime helper (``runtime.py``) as used and returns its name."""
        self.helpers[name] = None
        return name

    def array(self, value: np.ndarray, hint: str = "const") -> str:
        """An expression for a constant array: a literal when small and finite, else a weight ``w["name"]``."""
        value = np.asarray(value)
        dtype = DType.from_numpy(value.dtype)
        finite = dtype is DType.str or not np.issubdtype(value.dtype, np.floating) or bool(np.isfinite(value).all())
        if dtype is DType.str or (value.size <= self.options.weight_threshold and finite):
            return f"tf.constant({_literal(value.tolist(), dtype)}, {TF_DTYPES[dtype]})"
        key = _weight_key(hint, self.weights)
        self.weights[key] = value
        return f"w[{_quote(key)}]"

    def blob(self, data: bytes, hint: str) -> str:
        """Serialized bytes as base64 text: a literal when short, else a local holding it in lines of 100."""
        import base64

        text = base64.b64encode(data).decode("ascii")
        if len(text) <= 100:
            return _quote(text)
        name = self._fresh(hint)
        chunks = "\n".join(f"    {_quote(text[i:i + 100])}" for i in range(0, len(text), 100))
        self.lines.append(f"{name} = (\n{chunks}\n)")
        return name

    def activation(self, expr: str, activation: str) -> str:
        """``expr`` followed by a fused activation (``none, relu, relu6, relu_n1_to_1, tanh, sigmoid``)."""
        if activation == "none":
            return expr
        x = self.bind(expr, "pre_activation")
        return {
            "relu": f"tf.nn.relu({x}, {self.name('Relu')})",
            "relu6": f"tf.nn.relu6({x}, {self.name('Relu6')})",
            "relu_n1_to_1": f"tf.clip_by_value({x}, -1.0, 1.0, {self.name('ReluN1To1')})",
            "tanh": f"tf.math.tanh({x}, {self.name('Tanh')})",
            "sigmoid": f"tf.math.sigmoid({x}, {self.name('Sigmoid')})",
        }[activation]

    def dequantize(self, expr: str, type: TensorType, out: str = "float32") -> str:
        """``expr`` (quantized as ``type`` says) as real numbers of dtype ``out``, bound to a local."""
        scale, zp = self._quant_params(type)
        extra = self._precision() + (f", out={_quote(out)}" if out != "float32" else "")
        return self.bind(f"{self.helper('dequantize')}({expr}, {scale}, {zp}, {type.quant.axis!r}{extra})",
                         "dequantized")

    def quantize(self, expr: str, type: TensorType) -> str:
        scale, zp = self._quant_params(type)
        return (f"{self.helper('quantize')}({expr}, {TF_DTYPES[type.dtype]}, {scale}, {zp}, {type.quant.axis!r}"
                f"{self._precision()})")

    def _quant_params(self, type: TensorType) -> tuple[str, str]:
        q = type.quant
        scale = self.array(np.asarray(q.scale, np.float64), "quant/scale") if len(q.scale) > 1 else lit(q.scale[0])
        zp = self.array(np.asarray(q.zero_point, np.int32), "quant/zero_point") if len(q.zero_point) > 1 \
            else lit(q.zero_point[0])
        return scale, zp

    def _precision(self) -> str:
        return "" if self.options.quant_float64 else ', precision="float32"'

    def _fresh(self, base: str, numbered: bool = True) -> str:
        base = base or "t"
        if not numbered and base not in self._taken:
            self._taken.add(base)
            return base
        while True:
            n = self._counts.get(base, 0) + 1
            self._counts[base] = n
            name = f"{base}_{n}"
            if name not in self._taken:
                self._taken.add(name)
                return name


def lit(value) -> str:
    """A Python literal for an attribute value (tuples become lists, DTypes TF dtypes)."""
    if isinstance(value, DType):
        return TF_DTYPES[value]
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(lit(v) for v in value) + "]"
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, np.generic):
        return lit(value.item())
    if isinstance(value, str):
        return _quote(value)
    return repr(value)


def _quote(text: str) -> str:
    """A string literal, double-quoted where it can be (the generated code's quote style)."""
    body = repr(text)
    return '"' + body[1:-1] + '"' if body.startswith("'") and '"' not in text else body


def _opaque(e: Emitter, node: Node, args: list[str]) -> str | list[str]:
    """A ``tf.<Op>`` node, re-created from its NodeDef (and the functions it calls)."""
    blobs = [e.blob(bytes(node.attrs["node_def"]), "node_def")]
    if node.attrs.get("library"):
        blobs.append(e.blob(bytes(node.attrs["library"]), "library"))
    library = f", {blobs[1]}" if len(blobs) > 1 else ""
    call = f"{e.helper('tf_op')}({blobs[0]}, [{', '.join(args)}], {_quote(e.op_name())}{library})"
    if len(node.results) == 1:
        return f"{call}[0]"
    outputs = e.bind(call, "outputs")
    return [f"{outputs}[{i}]" for i in range(len(node.results))]


def _weight_hint(node: Node, live: set[Node]) -> str:
    """A name for a constant: its user's Keras layer and operand (``Conv1/filter``), else its TF name."""
    for user, index in node.result.uses:
        if user in live and not user.is_opaque:
            layer = (user.loc.layers or node.loc.layers or (None,))[0]
            operands = user.opdef.operands
            role = operands[min(index, len(operands) - 1)].rstrip("?*") if operands else f"operand{index}"
            if layer:
                return f"{layer}/{role}"
    name = _strip_call_scopes(node.loc.names[0]) if node.loc.names else ""
    return name if name and name.rsplit("/", 1)[-1] != "unknown" else "const"


_CALL_SCOPE = re.compile(r"^(Stateful)?PartitionedCall(_\d+)?$")


def _strip_call_scopes(name: str) -> str:
    """``StatefulPartitionedCall/model/conv/Conv2D`` without the scopes function calls add in front."""
    parts = name.split("/")
    while len(parts) > 1 and _CALL_SCOPE.match(parts[0]):
        parts = parts[1:]
    return "/".join(parts)




_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _identifier(name: str) -> str:
    text = re.sub(r"\W+", "_", name).strip("_") or "x"
    if text[0].isdigit():
        text = "x_" + text
    if keyword.iskeyword(text) or text in _RESERVED:
        text += "_"
    return text


def _op_name(name: str) -> str:
    """A valid TensorFlow op name (``[A-Za-z0-9.][A-Za-z0-9_./>-]*``)."""
    text = re.sub(r"[^A-Za-z0-9_./>-]", "_", name).strip("/")
    if not text or not re.match(r"[A-Za-z0-9.]", text[0]):
        text = "op" + text
    return text


def _weight_key(hint: str, taken: dict) -> str:
    key = re.sub(r"[^A-Za-z0-9_./-]", "_", hint).strip("/") or "const"
    key = re.sub(r"/ReadVariableOp(_\d+)?$", "", key) or "const"
    base, n = key, 1
    while key in taken:
        n += 1
        key = f"{base}_{n}"
    return key


def _float(x: float) -> str:
    if math.isinf(x):
        return "float('inf')" if x > 0 else "float('-inf')"
    if math.isnan(x):
        return "float('nan')"
    return repr(float(x))


def _literal(value, dtype: DType) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v, dtype) for v in value) + "]"
    if isinstance(value, float):
        return _short_float(value, dtype)
    return repr(value)


def _short_float(x: float, dtype: DType) -> str:
    """The shortest literal that gives back ``x`` in ``dtype`` (0.1 for float32's 0.100000001490116...)."""
    if not math.isfinite(x) or dtype not in (DType.f32, DType.f16, DType.bf16):
        return _float(x)
    narrow = np.float16 if dtype is DType.f16 else np.float32
    text = str(narrow(x))
    return text if narrow(float(text)) == narrow(x) else _float(x)


def _wrap(line: str, width: int = 110) -> str:
    """Breaks a long ``x = f(a, b, ...)`` line after top-level commas of the call, with a hanging indent; a list
    argument too long for a line is broken the same way."""
    start = line.find("(")
    if len(line) <= width or start < 0 or not line.endswith(")") or line.startswith("#") or "\n" in line:
        return line
    parts = _split_args(line[start + 1:-1])
    if parts is None:
        return line
    pieces = [part + ("," if i < len(parts) - 1 else ")") for i, part in enumerate(parts)]
    return _fill(line[:start + 1], pieces, width, "    ")


def _fill(head: str, pieces: list[str], width: int, indent: str) -> str:
    """``head`` followed by ``pieces``, as many to a line as fit; a list piece longer than a line is split too."""
    lines, current = [], head
    for piece in pieces:
        if len(indent) + len(piece) > width and piece.startswith("[") and piece.rstrip(",)").endswith("]"):
            body = piece.rstrip(",)")
            tail = piece[len(body):]
            items = _split_args(body[1:-1])
            if items:
                lines.append(current + "[" if current.endswith("(") else current)
                inner = [item + ("," if i < len(items) - 1 else "]" + tail) for i, item in enumerate(items)]
                block = _fill(indent + "    ", inner, width, indent + "    ")
                lines.extend(block.split("\n"))
                current = lines.pop()
                if not current.startswith(indent + "    "):
                    current = indent + "    " + current.lstrip()
                continue
        if current.endswith(("(", "[")) and len(current) + len(piece) <= width:
            current += piece
        elif len(current) + 1 + len(piece) > width or current.strip() == "":
            if current.strip():
                lines.append(current)
            current = indent + piece
        else:
            current += " " + piece
    return "\n".join(lines + [current])


def _split_args(text: str) -> list[str] | None:
    """``text`` split at commas outside brackets and strings; None if the brackets do not balance."""
    parts, depth, quote, begin = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                return None
        elif ch == "," and depth == 0:
            parts.append(text[begin:i].strip())
            begin = i + 1
    if depth or quote:
        return None
    parts.append(text[begin:].strip())
    return parts


def _comment(text: str) -> str:
    return re.sub(r"[\r\n]+", " ", text)


def _where(node: Node) -> str:
    from irc.ir.verify import node_label

    return f"node {node_label(node)}"
