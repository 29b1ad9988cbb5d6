"""Quantization recipes: which scheme each layer gets, from a TOML or JSON file.

    default = "int8"                 # the scheme of every layer no entry names (float if left out)

    [[layers]]
    select = "predictions"           # a Keras layer, a node name, /regex/ or op:TYPE (or a list of them)
    scheme = "int16x8"

    [[layers]]
    select = ["/block_1.*/", "op:mean"]
    scheme = "float"

The JSON form is the same object: ``{"default": "int8", "layers": [{"select": "predictions", "scheme":
"int16x8"}]}``. Entries apply in order, so a later entry overrides an earlier one for the nodes both select.
``load_recipe`` checks the file on its own (keys, schemes, regular expressions: a one-line error naming
``file:line``); ``resolve`` checks it against a graph (every selector matches, every entry selects a node that
can take its scheme) and gives each node its scheme, before any calibration or rewriting.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from irc.errors import QuantizationError
from irc.ir.graph import Graph, Node

STATIC = ("int8", "int16x8")  # calibrated activations
WEIGHT_ONLY = {"int8-weight-only": (8, False), "int4-weight-only": (4, False), "dynamic-int4": (4, True)}
SCHEMES = ("float", "float16", "dynamic-int8", *STATIC, *WEIGHT_ONLY)
GRANULARITIES = ("per-tensor", "per-channel", "blockwise")
TOP_KEYS = ("default", "layers")
ENTRY_KEYS = ("select", "scheme", "granularity", "block_size")
MAX_BYTES = 1 << 20  # a recipe is a few lines: a bigger file is not one


@dataclass(frozen=True)
class Entry:
    """One recipe entry: the nodes its selectors match get ``scheme``."""

    select: tuple[str, ...]
    scheme: str
    granularity: str | None = None  # weight-only and int4 schemes
    block_size: int | None = None  # with granularity = "blockwise"
    where: str = ""  # "file:line" or "--keep-float", for messages

    def label(self) -> str:
        return f"{self.where}: " if self.where else ""


@dataclass(frozen=True)
class Recipe:
    default: str = "float"
    entries: tuple[Entry, ...] = ()
    source: str | None = None

    def with_default(self, scheme: str | None) -> Recipe:
        return self if scheme is None else replace(self, default=_scheme(scheme, "the default scheme"))

    def plus(self, *entries: Entry) -> Recipe:
        return replace(self, entries=(*self.entries, *entries))

    def schemes(self) -> set[str]:
        return {self.default, *(e.scheme for e in self.entries)}

    def static(self) -> bool:
        """Whether some scheme needs calibrated activation ranges."""
        return bool(self.schemes() & set(STATIC))

    def to_toml(self, comment: str = "") -> str:
        lines = [f"# {line}" for line in comment.splitlines()]
        lines.append(f"default = {_toml_str(self.default)}")
        for e in self.entries:
            lines += ["", "[[layers]]"]
            sel = e.select[0] if len(e.select) == 1 else e.select
            lines.append(f"select = {_toml_str(sel) if isinstance(sel, str) else _toml_list(sel)}")
            lines.append(f"scheme = {_toml_str(e.scheme)}")
            if e.granularity:
                lines.append(f"granularity = {_toml_str(e.granularity)}")
            if e.block_size:
                lines.append(f"block_size = {e.block_size}")
        return "\n".join(lines) + "\n"


def keep_float_entries(selectors) -> tuple[Entry, ...]:
    """``--keep-float X``: the short form of an entry ``{select = X, scheme = "float"}``."""
    return tuple(Entry((s,), "float", where="--keep-float") for s in selectors)


def selector_for(name: str) -> str:
    """A selector that matches the layer or node ``name`` exactly (regex characters escaped)."""
    escaped = re.escape(name)
    return name if escaped == name and not name.startswith("op:") else f"/{escaped}/"


# ----- reading ---------------------------------------------------------------------------------------------------------
def load_recipe(path) -> Recipe:
    """The recipe in a ``.toml`` or ``.json`` file, checked on its own (no model needed)."""
    import tomllib

    where = str(path)
    if Path(path).exists() and not Path(path).is_file():  # a directory, a FIFO or a device would block or mislead
        raise QuantizationError("a recipe is a regular file", where=where)
    try:
        size = Path(path).stat().st_size
        if size > MAX_BYTES:
            raise QuantizationError(f"a recipe file of {size} bytes is too big (at most {MAX_BYTES})", where=where)
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QuantizationError("no such recipe file", where=where) from None
    except UnicodeDecodeError:
        raise QuantizationError("a recipe is UTF-8 text", where=where) from None
    except OSError as error:
        raise QuantizationError(f"cannot read the recipe: {error.strerror}", where=where) from None
    if where.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise QuantizationError(f"bad JSON: {error.msg}", where=f"{where}:{error.lineno}:{error.colno}") from None
        except RecursionError:
            raise QuantizationError("bad JSON: nested too deeply", where=where) from None
        lines = None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            # Python < 3.14 has the place only in the message: "... (at line 2, column 9)"
            found = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(error), re.DOTALL)
            message, place = (found[1], f":{found[2]}:{found[3]}") if found else (str(error), "")
            raise QuantizationError(f"bad TOML: {message}", where=f"{where}{place}") from None
        except RecursionError:
            raise QuantizationError("bad TOML: nested too deeply", where=where) from None
        lines = text.splitlines()
    return parse_recipe(data, where, lines)


def parse_recipe(data, where: str = "recipe", lines: list[str] | None = None) -> Recipe:
    """A recipe from its parsed form (a dict as in the module docstring). ``lines``: the TOML text, to give
    entries line numbers."""
    if not isinstance(data, dict):
        raise QuantizationError("a recipe is a table (a JSON object) with keys default and layers", where=where)
    _no_unknown(data, TOP_KEYS, "recipe", where)
    default = _scheme(data.get("default", "float"), "default", where)
    layers = data.get("layers", [])
    if not isinstance(layers, list):
        raise QuantizationError("layers must be a list of tables ([[layers]] in TOML)", where=where)
    headers = _entry_lines(lines)
    entries = []
    for i, raw in enumerate(layers):
        line = headers[i] if i < len(headers) else None
        here = f"{where}:{line}" if line else f"{where}: layers[{i}]"
        entries.append(_entry(raw, here))
    return Recipe(default, tuple(entries), where)


def _entry_lines(lines: list[str] | None) -> list[int]:
    if lines is None:
        return []
    return [n for n, text in enumerate(lines, 1) if re.match(r"\s*\[\[\s*layers\s*\]\]", text)]


def _entry(raw, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise QuantizationError("a layers entry is a table with select and scheme", where=where)
    _no_unknown(raw, ENTRY_KEYS, "layers entry", where)
    for key in ("select", "scheme"):
        if key not in raw:
            raise QuantizationError(f"the entry has no {key}", where=where)
    select = raw["select"]
    select = (select,) if isinstance(select, str) else select
    if not isinstance(select, (list, tuple)) or not select or not all(isinstance(s, str) and s for s in select):
        raise QuantizationError("select is a selector or a non-empty list of them (strings)", where=where)
    for s in select:
        _check_regex(s, where)
    scheme = _scheme(raw["scheme"], "scheme", where)
    granularity, block = raw.get("granularity"), raw.get("block_size")
    if (granularity is not None or block is not None) and scheme not in WEIGHT_ONLY:
        raise QuantizationError(f"granularity and block_size go with the weight-only and int4 schemes "
                                f"({', '.join(WEIGHT_ONLY)}), not {scheme}", where=where)
    if granularity is not None and granularity not in GRANULARITIES:
        raise QuantizationError(f"unknown granularity {granularity!r}", where=where,
                                hint=f"one of {', '.join(GRANULARITIES)}")
    if block is not None:
        if isinstance(block, bool) or not isinstance(block, int) or block < 1:
            raise QuantizationError(f"block_size must be a positive integer, not {block!r}", where=where)
        if granularity != "blockwise":
            raise QuantizationError("block_size goes with granularity = \"blockwise\"", where=where)
    return Entry(tuple(select), scheme, granularity, block, where)


def _no_unknown(table: dict, known: tuple[str, ...], what: str, where: str) -> None:
    unknown = [k for k in table if k not in known]
    if unknown:
        raise QuantizationError(f"unknown key {unknown[0]!r} in the {what}", where=where,
                                hint=f"keys: {', '.join(known)}")


def _scheme(value, what: str, where: str | None = None) -> str:
    if value not in SCHEMES:
        raise QuantizationError(f"unknown {what} {value!r}", where=where, hint=f"schemes: {', '.join(SCHEMES)}")
    return value


def _check_regex(selector: str, where: str) -> None:
    explicit = len(selector) > 2 and selector.startswith("/") and selector.endswith("/")
    if explicit:
        try:
            re.compile(selector[1:-1])
        except re.error as error:
            raise QuantizationError(f"bad regular expression {selector!r}: {error.msg}", where=where) from None


def _toml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string (\", \\, \uXXXX escapes) is a TOML basic string


def _toml_list(items) -> str:
    return "[" + ", ".join(_toml_str(s) for s in items) + "]"


# ----- against a graph -------------------------------------------------------------------------------------------------
@dataclass
class Assignment:
    """Each non-constant node's scheme (and the entry that set it; None for the default)."""

    schemes: dict[Node, str] = field(default_factory=dict)
    entries: dict[Node, Entry | None] = field(default_factory=dict)

    def nodes(self, scheme: str, named: bool | None = None) -> set[Node]:
        """The nodes of ``scheme``; ``named``: only those an entry set (True) or the default set (False)."""
        return {n for n, s in self.schemes.items() if s == scheme
                and (named is None or (self.entries[n] is not None) == named)}


def resolve(graph: Graph, recipe: Recipe, min_elements: int = 1) -> Assignment:
    """Each node's scheme under ``recipe``; QuantizationError for a selector that matches nothing or an entry
    none of whose nodes can take its scheme (both before any work)."""
    from irc.passes.quantize.select import select

    nodes = [n for n in graph.walk(recursive=True) if n.op != "const"]  # inside regions too
    result = Assignment({n: recipe.default for n in nodes}, {n: None for n in nodes})
    for entry in recipe.entries:
        what = "--keep-float" if entry.where == "--keep-float" else f"{entry.label()}select"
        chosen = select(graph, entry.select, what)
        if entry.scheme in WEIGHT_ONLY:
            _check_weight_only(entry, chosen)
        elif entry.scheme != "float":
            reasons = [why_not(n, entry.scheme) for n in chosen]
            if all(reasons):
                ops = sorted({n.op for n in chosen})
                raise QuantizationError(f"{entry.label()}scheme {entry.scheme} fits no node that "
                                        f"{', '.join(map(repr, entry.select))} selects (ops: {', '.join(ops)}): "
                                        f"{reasons[0]}")
        for n in chosen:
            result.schemes[n] = entry.scheme
            result.entries[n] = entry
    return result


def _check_weight_only(entry: Entry, chosen) -> None:
    """Before any work: every selected node with constant weights must take the entry's scheme in LiteRT."""
    from irc.passes.quantize import weights

    bits, dynamic = WEIGHT_ONLY[entry.scheme]
    granularity = entry.granularity or "per-channel"
    scheme = weights.WeightScheme(bits, granularity, entry.block_size, dynamic)
    for node in chosen:
        if weights._weights(node) is not None and (why := weights.refusal(node, scheme)) is not None:
            raise QuantizationError(f"{entry.label()}{weights.describe(node)}: {why}")


def why_not(node: Node, scheme: str) -> str | None:
    """None if ``node`` can take ``scheme``, else why not."""
    from irc.passes.quantize import constraints as C
    from irc.passes.quantize.rewrite import DYNAMIC_OPS

    if scheme in STATIC:
        return C.integer_kernel(node, scheme)
    if scheme == "dynamic-int8":
        if node.core_op not in DYNAMIC_OPS or not C.has_weights(node):
            return f"TFLite's hybrid kernels take convolution and fully-connected weights, not {node.op}"
        return None
    if scheme == "float16" and not any(v.is_constant and v.type.dtype.value == "f32" for v in node.operands):
        return f"{node.op} has no float32 constant to store as float16"
    return None
