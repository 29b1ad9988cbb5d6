"""What a pass is: a frozen dataclass whose fields are its options.

    @register_pass
    @dataclass(frozen=True)
    class TflFuse(Pass):
        "TFLite: fuse activations into the op before them, as tfl.* ops."
        name = "tfl-fuse"
        activations: tuple[str, ...] = option(("relu", "relu6"), "activations to fuse")

        def apply(self, graph, stats): ...

``tfl-fuse{activations=relu,tanh}`` in a pipeline maps onto the fields: option names use dashes (``max-size``) or
underscores, values are parsed by the field's type (bool, int, float, str, a ``Literal`` of choices, or a tuple of
those) and checked, so a bad option is an error that names the pass and lists what is valid.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from irc.errors import PipelineError
from irc.ir.graph import Graph

Stats = Counter  # statistic name ("nodes removed", "activations fused", ...) -> count


def option(default: Any, help: str = "", aliases: tuple[str, ...] = ()) -> Any:
    """A pass option: a dataclass field with a default, a one-line help and optional other names."""
    return dataclasses.field(default=default, metadata={"help": help, "aliases": aliases})


@dataclass(frozen=True)
class OptionSpec:
    """One option of a pass, as ``irc passes`` lists it."""

    name: str  # as written in pipelines: dashes
    field: str  # the dataclass field
    type: Any
    default: Any
    help: str
    aliases: tuple[str, ...]

    @property
    def type_name(self) -> str:
        return _type_name(self.type)


@dataclass(frozen=True)
class Pass:
    """Base of every pass. Subclasses set ``name`` (and a docstring: its first line is the summary) and ``apply``."""

    name: ClassVar[str] = ""
    # How the pass manager walks regions (docs/writing-passes.md, "Regions"): "each" applies the pass to every
    # region graph, innermost first, then to the top graph; "top" (the default, safe for a pass that knows nothing
    # of regions: it may treat graph outputs as the model's) gives it the top graph only; "self" is "top" for a
    # pass that reaches into regions itself (unroll-loops, hoist-invariants, quantize).
    walks_regions: ClassVar[Literal["each", "top", "self"]] = "top"
    # options a pass no longer has -> where they went, said when a pipeline still uses them
    moved_options: ClassVar[dict[str, str]] = {}

    def apply(self, graph: Graph, stats: Stats) -> None:
        """Transforms ``graph`` in place through Graph methods, counting what it did in ``stats``."""
        raise NotImplementedError(f"pass '{self.name}' ({type(self).__qualname__}) defines no "
                                  "apply(self, graph, stats) method")

    # ----- description -----------------------------------------------------------------------------------------
    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @classmethod
    def options(cls) -> list[OptionSpec]:
        hints = typing.get_type_hints(cls)
        specs = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            specs.append(OptionSpec(f.name.replace("_", "-"), f.name, hints[f.name], default,
                                    f.metadata.get("help", ""), tuple(f.metadata.get("aliases", ()))))
        return specs

    @classmethod
    def from_options(cls, raw: dict[str, list[str]]) -> Pass:
        """An instance from option text (``{"activations": ["relu", "tanh"]}``), every name and value checked."""
        specs = {}
        for spec in cls.options():
            for key in (spec.name, spec.field, *spec.aliases):
                specs[key] = spec
        values = {}
        for key, texts in raw.items():
            spec = specs.get(key)
            if spec is None:
                valid = ", ".join(s.name for s in cls.options()) or "none"
                moved = cls.moved_options.get(key)
                raise PipelineError(f"pass '{cls.name}' has no option '{key}' (options: {valid})"
                                    + (f": {moved}" if moved else ""))
            try:
                values[spec.field] = parse_value(spec.type, texts)
            except ValueError as e:
                raise PipelineError(f"pass '{cls.name}': option '{spec.name}': {e}") from None
        return cls(**values)

    def __str__(self) -> str:
        """The pass as a pipeline element, non-default options only: ``tfl-fuse{activations=relu,tanh}``."""
        parts = []
        for spec in self.options():
            value = getattr(self, spec.field)
            if value != spec.default:
                parts.append(f"{spec.name}={format_value(value)}")
        return f"{self.name}{{{' '.join(parts)}}}" if parts else self.name


def check_pass_class(cls: type[Pass]) -> None:
    """Refuses, with a message saying what to write, a Pass class that cannot run (``register_pass`` calls it)."""
    if cls.apply is Pass.apply:
        raise TypeError(f"pass {cls.__qualname__} defines no apply(self, graph, stats) method")
    if not dataclasses.is_dataclass(cls) or "__dataclass_fields__" not in cls.__dict__:
        annotations = inspect.get_annotations(cls)
        fields = [n for n, a in annotations.items() if not n.startswith("_") and "ClassVar" not in str(a)]
        if fields:
            raise TypeError(f"pass {cls.__qualname__} has options ({', '.join(fields)}) but is not a dataclass: "
                            "decorate it with @dataclass(frozen=True) below @register_pass")


# ----- option values ----------------------------------------------------------------------------------------------
def _is_tuple(tp) -> bool:
    return typing.get_origin(tp) is tuple


def _type_name(tp) -> str:
    if _is_tuple(tp):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if typing.get_origin(tp) is Literal:
        return "|".join(str(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def parse_value(tp, texts: list[str]):
    """Parses the text of an option (one string, or several for a list) as type ``tp``; ValueError when bad."""
    if _is_tuple(tp):
        item = typing.get_args(tp)[0]
        return tuple(_parse_scalar(item, t) for t in texts if t != "")
    if len(texts) != 1:
        raise ValueError(f"expected one {_type_name(tp)}, got a list {','.join(texts)}")
    return _parse_scalar(tp, texts[0])


def _parse_scalar(tp, text: str):
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        for choice in choices:
            if str(choice).lower() == text.lower():
                return choice
        raise ValueError(f"expected one of {', '.join(map(str, choices))}, got '{text}'")
    if tp is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on", ""):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got '{text}'")
    if tp is int:
        try:
            return int(text.replace("_", ""))
        except ValueError:
            raise ValueError(f"expected an integer, got '{text}'") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got '{text}'") from None
    if tp is str:
        return text
    raise ValueError(f"options of type {_type_name(tp)} are not supported")


def format_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(format_value(v) for v in value)
    return str(value)
