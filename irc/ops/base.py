"""The op registry: each op is declared once, as a small class.

An op declares its operands, its typed attributes with defaults, its traits, a shape/type rule (``infer``) and
a numpy reference kernel (``kernel``). The interpreter, constant folding and the verifier all use these, so an
op's semantics live in exactly one place. Look an op up by name with ``irc.ops.get_op("conv2d")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from irc.ir.types import Dim, DType, SymDim, TensorType
from irc.registry import Registry, owner_of

# ----- traits: properties of an op, as plain strings collected in a set ---------------------------------------------
PURE = "pure"  # no side effects: may be folded, deduplicated and removed when unused
ELEMENTWISE = "elementwise"  # output[i] depends only on inputs[i] (after broadcasting)
COMMUTATIVE = "commutative"  # f(a, b) == f(b, a)
LAYOUT_AGNOSTIC = "layout-agnostic"  # commutes with any transpose of its (single, or same-shaped) inputs
FUSABLE_ACTIVATION = "fusable-activation"  # a target may fuse it into the producing op (relu, relu6, tanh, ...)
QUANT_PRESERVING = "quant-preserving"  # output keeps the input's quantization parameters (reshape, max_pool ...)

_REQUIRED = object()

# Attribute kinds and the Python type each value has inside the IR.
ATTR_KINDS = {
    "int": int, "float": float, "bool": bool, "str": str, "bytes": bytes,
    "ints": tuple, "floats": tuple, "ints2": tuple, "strs": tuple,
    "dtype": DType, "tensor": np.ndarray, "any": object,
}


@dataclass(frozen=True)
class Attr:
    """A typed attribute. ``choices`` restricts a ``str`` attribute to an enumeration."""

    kind: str
    default: Any = _REQUIRED
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def check(self, value) -> str | None:
        """None if ``value`` is valid, else what is wrong with it."""
        want = ATTR_KINDS[self.kind]
        if self.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            return None
        if self.kind == "int" and isinstance(value, bool):
            return f"expected an int, got {value!r}"
        if not isinstance(value, want):
            return f"expected {self.kind}, got {type(value).__name__} {value!r}"
        if self.choices and value not in self.choices:
            return f"expected one of {', '.join(self.choices)}, got {value!r}"
        if self.kind == "ints" and not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
            return f"expected a list of ints, got {value!r}"
        if self.kind == "floats" and not all(isinstance(x, (int, float)) for x in value):
            return f"expected a list of floats, got {value!r}"
        if self.kind == "ints2" and not all(isinstance(x, tuple) for x in value):
            return f"expected a list of int lists, got {value!r}"
        return None


ACTIVATIONS = ("none", "relu", "relu6", "relu_n1_to_1", "tanh", "sigmoid")


def fused_activation_attr() -> Attr:
    """The ``fused_activation`` attribute of a target dialect's fused forms (``tfl.conv2d``, ``tfl.add``, ...)."""
    return Attr("str", "none", ACTIVATIONS)


class OpDef:
    """Base of every op declaration. Subclasses set the class attributes and override infer/kernel."""

    name: ClassVar[str]
    # The namespace the op belongs to: "core" (target-neutral, unqualified names) or a target's ("tfl" for
    # ``tfl.conv2d``); ``core`` names the core op a target form extends, if any.
    dialect: ClassVar[str] = "core"
    core: ClassVar[str | None] = None
    # Operand names, in order. "name?" is optional (may be absent at the end), "name*" takes the rest.
    operands: ClassVar[tuple[str, ...]] = ()
    attrs: ClassVar[dict[str, Attr]] = {}
    traits: ClassVar[frozenset[str]] = frozenset({PURE})
    summary: ClassVar[str] = ""
    # The names of the regions (nested graphs) the op owns, in order: ("cond", "body") for ``while``. Ordinary
    # ops own none. An op with regions gives its result types from them (``infer_regions``) and runs them through
    # the interpreter (``evaluate``), as irc/ops/control.py does.
    regions: ClassVar[tuple[str, ...]] = ()

    def infer(self, types: list[TensorType], attrs: dict, consts: list[np.ndarray | None]) -> list[TensorType]:
        raise NotImplementedError

    def infer_regions(self, types: list[TensorType], attrs: dict, regions: Sequence) -> list[TensorType]:
        """Result types of an op with regions, checking each region's signature against the operands (a
        ValueError says what disagrees)."""
        raise NotImplementedError

    def check_region_count(self, count: int) -> str | None:
        if count == len(self.regions):
            return None
        if not self.regions:
            return f"owns no regions, got {count}"
        return f"owns {len(self.regions)} region(s) ({', '.join(self.regions)}), got {count}"

    def kernel(self, inputs: list[np.ndarray], attrs: dict) -> list[np.ndarray]:
        raise NotImplementedError

    # ----- helpers used by the registry, verifier and interpreter ------------------------------------------------
    def attr_default(self, name: str):
        spec = self.attrs.get(name)
        if spec is None or spec.required:
            raise KeyError(f"{self.name} has no default for attribute {name!r}")
        return spec.default

    def with_defaults(self, attrs: dict) -> dict:
        full = {k: spec.default for k, spec in self.attrs.items() if not spec.required}
        full.update(attrs)
        return full

    def check_attrs(self, attrs: dict) -> list[str]:
        problems = []
        for key, value in attrs.items():
            spec = self.attrs.get(key)
            if spec is None:
                problems.append(f"unknown attribute {key!r} (valid: {', '.join(sorted(self.attrs)) or 'none'})")
            elif (why := spec.check(value)) is not None:
                problems.append(f"attribute {key!r}: {why}")
        for key, spec in self.attrs.items():
            if spec.required and key not in attrs:
                problems.append(f"missing required attribute {key!r}")
        return problems

    def check_arity(self, count: int) -> str | None:
        fixed = [o for o in self.operands if not o.endswith(("?", "*"))]
        optional = [o for o in self.operands if o.endswith("?")]
        variadic = any(o.endswith("*") for o in self.operands)
        if count < len(fixed) or (not variadic and count > len(fixed) + len(optional)):
            want = ", ".join(self.operands) or "no operands"
            return f"takes ({want}), got {count} operand(s)"
        return None

    def has(self, trait: str) -> bool:
        return trait in self.traits


FAMILIES = ("core", "elementwise", "activation", "nn", "shape", "indexing", "reduce", "quant", "control", "complex",
            "tfl")


def _adopt(name: str, obj) -> None:
    """An ``irc.ops`` entry point naming an OpDef subclass."""
    if not (isinstance(obj, type) and issubclass(obj, OpDef)):
        raise TypeError(f"expected an OpDef subclass or a module, got {obj!r}")
    register(obj)


OPS: Registry[OpDef] = Registry("op", [f"irc.ops.{family}" for family in FAMILIES], "irc.ops", _adopt)


def register(cls: type[OpDef]) -> type[OpDef]:
    """Class decorator that adds an op declaration to the registry (irc's own ops and installed plugins' are
    loaded first, so an op whose name is taken is refused at once, naming both)."""
    if not (isinstance(cls, type) and issubclass(cls, OpDef)):
        raise TypeError(f"register takes an OpDef subclass, got {cls!r}")
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        raise TypeError(f"op class {cls.__qualname__} has no name")
    prefix = cls.name.partition(".")[0] if "." in cls.name else "core"
    if prefix != cls.dialect:
        raise ValueError(f"op {cls.name!r} is declared in dialect {cls.dialect!r}: its name must be qualified so")
    OPS.add(cls.name, cls(), owner_of(cls))
    return cls


def registered_ops() -> dict[str, OpDef]:
    return OPS.items()


def lookup(name: str) -> OpDef | None:
    return OPS.get(name)


# ----- shape helpers shared by the op families ---------------------------------------------------------------------
def broadcast_shapes(*shapes: tuple[Dim, ...] | None) -> tuple[Dim, ...] | None:
    """numpy broadcasting over dims that may be unknown or symbolic."""
    if any(s is None for s in shapes):
        return None
    rank = max(len(s) for s in shapes)
    out: list[Dim] = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        known = {d for d in dims if isinstance(d, int) and d != 1}
        if len(known) > 1:
            raise ValueError(f"shapes {' and '.join(map(_fmt_shape, shapes))} do not broadcast")
        if known:
            out.append(known.pop())
        elif any(isinstance(d, SymDim) or d is None for d in dims):
            syms = {d for d in dims if d is not None and not isinstance(d, int)}
            out.append(syms.pop() if len(syms) == 1 and None not in dims else None)
        else:
            out.append(1)
    return tuple(out)


def _fmt_shape(shape) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def as_int_tuple(value: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(x) for x in value)


def same_type(t: TensorType) -> list[TensorType]:
    return [TensorType(t.dtype, t.shape)]


class UnaryElementwise(OpDef):
    """y = f(x), same type. Subclasses give ``name`` and ``fn``."""

    operands = ("x",)
    traits = frozenset({PURE, ELEMENTWISE, LAYOUT_AGNOSTIC})

    @staticmethod
    def fn(x: np.ndarray, attrs: dict) -> np.ndarray:
        raise NotImplementedError

    def infer(self, types, attrs, consts):
        return same_type(types[0])

    def kernel(self, inputs, attrs):
        x = inputs[0]
        return [np.asarray(self.fn(x, attrs)).astype(x.dtype, copy=False)]


class BinaryElementwise(OpDef):
    """z = f(x, y) with numpy broadcasting; both operands share a dtype."""

    operands = ("x", "y")
    traits = frozenset({PURE, ELEMENTWISE})
    result_dtype: ClassVar[DType | None] = None  # e.g. bool for comparisons

    @staticmethod
    def fn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def infer(self, types, attrs, consts):
        x, y = types
        if x.dtype != y.dtype:
            raise ValueError(f"operand dtypes differ: {x.dtype.value} and {y.dtype.value}")
        return [TensorType(self.result_dtype or x.dtype, broadcast_shapes(x.shape, y.shape))]

    def kernel(self, inputs, attrs):
        x, y = inputs
        out = np.asarray(self.fn(x, y))
        return [out.astype(self.result_dtype.numpy if self.result_dtype else x.dtype, copy=False)]
