"""The parser for irc's text form (grammar in grammar.lark; syntax in docs/ir.md).

Errors are ``ParseError`` with ``file:line:column``, the offending token and what was expected.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gc
import json
import math
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import resources

import numpy as np
from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, v_args

from irc import limits
from irc.errors import ParseError
from irc.ir.graph import Graph, Location
from irc.ir.printer import ElidedTensor
from irc.ir.types import DType, QuantParams, SymDim, TensorType


@functools.cache
def _lark() -> Lark:
    # The transformer runs inside the LALR parser, as each rule is reduced: no parse tree is built.
    grammar = resources.files("irc.ir").joinpath("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", propagate_positions=False, maybe_placeholders=True, transformer=_Build(),
                lexer_callbacks={"CARET": _open_region, "LBRACE": _open_brace, "RBRACE": _close_brace})


# Named weights for elided constants, for the parse under way (set by parse()).
_weights: ContextVar[Mapping[str, np.ndarray] | None] = ContextVar("irc_parse_weights", default=None)


@dataclass
class _Head:
    """The dtype and shape of the tensor literal being read: its items are checked against them one by one, as
    the parser reaches each, so an error names the item's own line and column."""

    token: Token
    dtype: DType
    shape: tuple[int, ...]
    size: int
    count: int = 0


_head: ContextVar[_Head | None] = ContextVar("irc_parse_tensor_head", default=None)
# How deep each attribute list read so far nests, by id (set by parse()).
_depths: ContextVar[dict[int, int]] = ContextVar("irc_parse_list_depths")
MAX_LIST_DEPTH = 32  # irc's deepest attribute kind is a list of int lists
MAX_REGION_DEPTH = limits.MAX_REGION_DEPTH


@dataclass
class _Region:
    """A region as read: its ``^`` token, name, and items (params, nodes, return)."""

    caret: Token
    name: str
    items: tuple


@dataclass
class _Braces:
    """The braces open where the lexer stands, and how many of them open regions: regions nest too deep is said
    as the lexer reaches the first one too many, before the parser has read (and held) the rest of the text."""

    region_next: bool = False  # a ``^`` was read: the next ``{`` opens a region (its params hold no braces)
    opens_region: list[bool] | None = None
    regions: int = 0


_braces: ContextVar[_Braces] = ContextVar("irc_parse_braces")


def _open_region(tok: Token) -> Token:
    _braces.get().region_next = True
    return tok


def _open_brace(tok: Token) -> Token:
    state = _braces.get()
    region, state.region_next = state.region_next, False
    state.opens_region.append(region)
    if region:
        state.regions += 1
        if state.regions > MAX_REGION_DEPTH:  # the printer, verifier and interpreter recurse once per level
            raise _Fail(tok, f"regions nest more than {MAX_REGION_DEPTH} deep")
    return tok


def _close_brace(tok: Token) -> Token:
    state = _braces.get()
    if state.opens_region and state.opens_region.pop():  # an unbalanced "}" is the parser's to report
        state.regions -= 1
    return tok


class _Fail(Exception):
    def __init__(self, token, message):
        self.token, self.message = token, message


def _blockwise_problem(dims, q: QuantParams) -> str | None:
    """Why blockwise parameters do not fit a tensor of shape ``dims`` (None if they do)."""
    if dims is None or len(dims) != 2 or not all(isinstance(d, int) for d in dims) or q.axis not in (0, 1):
        return "blockwise quantization needs a matrix of known shape, quantized along axis 0 or 1"
    length = dims[1 - q.axis]
    if length % q.block_size or len(q.scale) != dims[q.axis] * (length // q.block_size):
        return (f"{len(q.scale)} block scales do not fit a {list(dims)} tensor in blocks of {q.block_size} "
                f"along axis {1 - q.axis}")
    return None


def _unquote(token: str) -> str:
    try:
        return json.loads(token)
    except json.JSONDecodeError as e:
        raise _Fail(token, f"bad string literal: {e.msg}") from None


def _b64(token: str) -> bytes:
    try:
        return base64.b64decode(token[4:-1], validate=True)
    except binascii.Error:
        raise _Fail(token, "bad base64 data") from None


def _abbreviated(text: str, at_most: int = 40) -> str:
    """A token as an error message shows it: a 5 MB string literal is not repeated in full."""
    text = str(text)
    return text if len(text) <= at_most else f"{text[:at_most - 3]}..."


def _value_name(token: str) -> str:
    body = token[1:]
    return _unquote(body) if body.startswith('"') else body


_UNKNOWN_DIM = object()
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # integers are int64, as in TensorFlow


def _exact_int(tok) -> int | None:
    """The integer an INT token writes, or None when it has more digits than any 64-bit integer (Python's int()
    refuses past 4,300 digits, and is slow long before)."""
    text = str(tok)
    sign = "-" if text.startswith("-") else ""
    digits = text.lstrip("-").lstrip("0") or "0"
    return int(sign + digits) if len(digits) <= 20 else None


def _int(tok, what: str = "integer") -> int:
    value = _exact_int(tok)
    if value is None or not _INT64_MIN <= value <= _INT64_MAX:
        raise _Fail(tok, f"{what} {_abbreviated(tok)} does not fit in 64 bits")
    return value


def _dim(tok) -> int:
    value = _exact_int(tok)
    if value is not None and value < 0:
        raise _Fail(tok, f"dimension {value} is negative (write ? for a dimension not known until run time)")
    if value is None or value > _INT64_MAX:
        raise _Fail(tok, f"dimension {_abbreviated(tok)} does not fit in 64 bits")
    return value


def _float(tok) -> float:
    """A FLOAT, SPECIAL_FLOAT or INT token as a float: only ``inf`` may be infinite, not ``1e400``."""
    value = float(str(tok))
    if math.isinf(value) and tok.type != "SPECIAL_FLOAT":
        raise _Fail(tok, f"{_abbreviated(tok)} is beyond the range of a 64-bit float (write inf for infinity)")
    return value


@functools.cache
def _int_range(dtype: DType) -> tuple[int, int]:
    info = np.iinfo(dtype.numpy)
    return int(info.min), int(info.max)


# (maxexp, nmant) of each float format narrower than Python's float, as numpy.finfo gives them
_FLOAT_FORMATS = {DType.f16: (16, 10), DType.bf16: (128, 7), DType.f32: (128, 23)}


def _overflows_at(dtype: DType) -> float:
    """The smallest magnitude that rounds to infinity in ``dtype``: halfway past its largest finite value."""
    if dtype not in _FLOAT_FORMATS:
        return math.inf  # f64: float() itself gives inf
    maxexp, nmant = _FLOAT_FORMATS[dtype]
    return 2.0 ** maxexp - 2.0 ** (maxexp - nmant - 2)


def _item(dtype: DType, tok: Token):
    """One item of a tensor literal, checked against the tensor's dtype: exact, or an error at the item."""
    kind = tok.type
    if dtype is DType.str:
        if kind != "STRING":
            raise _Fail(tok, f"a str tensor holds strings, not {_abbreviated(tok)}")
        return _unquote(tok).encode()
    if dtype is DType.c64:
        raise _Fail(tok, "a c64 tensor is written as bytes (b64\"...\"), not as a list of numbers")
    if dtype is DType.bool:
        if kind not in ("TRUE", "FALSE"):
            raise _Fail(tok, f"a bool tensor holds true or false, not {_abbreviated(tok)}")
        return kind == "TRUE"
    if dtype.is_integer:
        if kind != "INT":
            raise _Fail(tok, f"an {dtype.value} tensor holds integers, not {_abbreviated(tok)}")
        low, high = _int_range(dtype)
        value = _exact_int(tok)
        if value is None or not low <= value <= high:
            raise _Fail(tok, f"{_abbreviated(tok)} is out of range for {dtype.value} ({low} to {high})")
        return value
    if kind not in ("INT", "FLOAT", "SPECIAL_FLOAT"):
        raise _Fail(tok, f"a {dtype.value} tensor holds numbers, not {_abbreviated(tok)}")
    value = float(str(tok))
    if abs(value) >= _overflows_at(dtype) and kind != "SPECIAL_FLOAT":
        raise _Fail(tok, f"{_abbreviated(tok)} overflows {dtype.value} to infinity (write inf if that is meant)")
    return value


@v_args(inline=True)
class _Build(Transformer):
    """Turns each rule into plain data as it is parsed, checking literals; ``_assemble`` builds the Graph."""

    # -- scalars, types and attributes --
    def name(self, tok):
        return _unquote(tok) if tok.type == "STRING" else str(tok)

    opname = key = name

    def number_nonint(self, tok):
        return _float(tok)

    def int_value(self, tok):
        return _int(tok)

    def float_value(self, x):
        return x

    def true(self):
        return True

    def false(self):
        return False

    def string(self, tok):
        return _unquote(tok)

    def bytes_value(self, tok):
        return _b64(tok)

    def dtype_value(self, tok):
        return DType(str(tok))

    def list_value(self, opening, *rest):
        items = tuple(i for i in rest if i is not None and not (isinstance(i, Token) and i.type in ("COMMA", "RSQB")))
        depths = _depths.get()
        depth = 1 + max((depths.get(id(i), 1) for i in items if isinstance(i, tuple)), default=0)
        if depth > MAX_LIST_DEPTH:  # every consumer of attributes (printer, verifier, emitters) may recurse
            raise _Fail(opening, f"attribute lists nest more than {MAX_LIST_DEPTH} deep")
        depths[id(items)] = depth  # the parse holds every list, so ids stay unique until it ends
        return items

    def numbers(self, *items):
        return tuple(i if isinstance(i, float) else _float(i) for i in items if i is not None)

    def ints(self, *items):
        return tuple(_int(i) for i in items if i is not None)

    def dim(self, tok=None):
        if tok is None:
            return _UNKNOWN_DIM
        return _dim(tok) if tok.type == "INT" else SymDim(str(tok))

    def unranked(self):
        return None

    def ranked(self, *dims):
        # An empty shape reaches us as one None placeholder; "?" dims as _UNKNOWN_DIM.
        return tuple(None if d is _UNKNOWN_DIM else d for d in dims if d is not None)

    def per_tensor(self, scale, zp):
        return QuantParams((scale if isinstance(scale, float) else _float(scale),), (_int(zp),))

    def per_axis(self, axis, scales, zps):
        try:
            return QuantParams(scales, zps, _int(axis))
        except ValueError as e:
            raise _Fail(axis, str(e)) from None

    def blockwise(self, axis, block, scales, zps):
        try:
            return QuantParams(scales, zps, _int(axis), _int(block))
        except ValueError as e:
            raise _Fail(axis, str(e)) from None

    def type(self, dtype, dims, quant):
        if quant is not None and quant.block_size is not None:
            why = _blockwise_problem(dims, quant)
            if why:
                raise _Fail(dtype, why)
        return TensorType(DType(str(dtype)), dims, quant)

    def tensor_head(self, dtype_tok, *dims):
        dtype = DType(str(dtype_tok))
        shape = tuple(_dim(d) for d in dims if d is not None)
        head = _Head(dtype_tok, dtype, shape, math.prod(shape))
        _head.set(head)  # the items that follow are read as this tensor's
        return head

    def item(self, tok):
        head = _head.get()
        head.count += 1
        if head.count > head.size:  # said at the first item too many: the rest is never held
            raise _Fail(tok, f"tensor has more than {head.size} values, {head.dtype.value}{list(head.shape)} "
                             f"needs {head.size}")
        return _item(head.dtype, tok)

    def tensor(self, head, data):
        dtype, shape, size, dtype_tok = head.dtype, head.shape, head.size, head.token
        kind, payload = data
        if kind == "elided":
            weights = _weights.get() or {}
            if payload in weights:
                array = np.asarray(weights[payload])
                if array.shape != shape:
                    raise _Fail(dtype_tok, f"weights entry {payload} has shape {array.shape}, not {shape}")
                return array
            return ElidedTensor(dtype, shape, payload)
        if kind == "bytes":
            tok, data = payload
            if dtype is DType.str:
                raise _Fail(dtype_tok, "string tensors are written as lists")
            npdtype = dtype.numpy.newbyteorder("<")
            if len(data) != size * npdtype.itemsize:
                raise _Fail(dtype_tok, f"tensor data has {len(data)} bytes, {dtype.value}{list(shape)} needs "
                                       f"{size * npdtype.itemsize}")
            if dtype is DType.bool and data.translate(None, b"\x00\x01"):
                raise _Fail(tok, "bool tensor data holds a byte other than 0 (false) or 1 (true)")
            return np.frombuffer(data, npdtype).astype(dtype.numpy).reshape(shape)
        items = payload  # each already checked against the dtype by item()
        if len(items) != size:
            raise _Fail(dtype_tok, f"tensor has {len(items)} values, {dtype.value}{list(shape)} needs {size}")
        if dtype is DType.str:
            return np.array(items, dtype=object).reshape(shape)
        return np.array(items, dtype=np.float64 if dtype.is_float else dtype.numpy).astype(dtype.numpy).reshape(shape)

    def tensor_items(self, *items):
        return ("items", [i for i in items if i is not None])

    def tensor_bytes(self, tok):
        return ("bytes", (tok, _b64(tok)))

    def tensor_elided(self, tok):
        return ("elided", str(tok)[len("sha256:"):])

    def attr(self, key, value):
        return key, value

    def attrs(self, *items):
        return dict(i for i in items if i is not None)

    def loc_names(self, *strings):
        return ("names", tuple(_unquote(s) for s in strings))

    def loc_layers(self, *strings):
        return ("layers", tuple(_unquote(s) for s in strings))

    def loc(self, *parts):
        found = dict(p for p in parts if p is not None)
        return Location(found.get("names", ()), found.get("layers", ()))

    # -- graph structure: kept as plain data, assembled in build() --
    def param(self, tok, type):
        return tok, type

    def results(self, *toks):
        return list(toks)

    def operand(self, tok):
        return tok

    def node(self, results, opname, *rest):
        return ("node", results or [], opname, rest)

    def region(self, caret, name, *rest):
        return _Region(caret, name, rest)

    def output(self, tok, name):
        return tok, (None if name is None else _unquote(name))

    def ret(self, *outputs):
        return [o for o in outputs if o is not None]

    def graph(self, name, *rest):
        return name, rest

    def start(self, graph):
        return graph


def parse(text: str, source: str = "<string>", weights: Mapping[str, np.ndarray] | None = None) -> Graph:
    """Parses irc text into a Graph. ``weights`` resolves elided constants by hash (from a ``--weights`` file)."""
    reset, reset_head, reset_depths = _weights.set(weights), _head.set(None), _depths.set({})
    reset_braces = _braces.set(_Braces(opens_region=[]))
    collecting = gc.isenabled()
    gc.disable()  # parsing allocates millions of objects and no cycles: collecting as it goes doubles the time
    try:
        name, rest = _lark().parse(text)
        return _assemble(name, rest, source)
    except _Fail as f:
        raise _error(source, f.token, f.message) from None
    except UnexpectedInput as e:
        raise _syntax_error(source, text, e) from None
    except RecursionError:
        raise _too_deep(source) from None
    except Exception as e:  # lark wraps errors raised inside transformer callbacks
        inner = getattr(e, "orig_exc", None)
        if isinstance(inner, _Fail):
            raise _error(source, inner.token, inner.message) from None
        if isinstance(inner, RecursionError):
            raise _too_deep(source) from None
        raise
    finally:
        _weights.reset(reset)
        _head.reset(reset_head)
        _depths.reset(reset_depths)
        _braces.reset(reset_braces)
        if collecting:
            gc.enable()


def _too_deep(source: str) -> ParseError:
    return ParseError("nested too deeply to read (lists or attributes hundreds of levels deep)", where=source)


def _assemble(name, rest, source) -> Graph:
    graph = Graph(name)
    _fill(graph, list(rest), [], top=True)
    return graph


def _fill(graph: Graph, items: list, outer: list[dict], top: bool) -> None:
    """Adds the params, nodes (and their regions) and return of one graph as read; ``outer`` holds the value
    names of the graphs enclosing a region, which it may not use (regions are isolated from above)."""
    values = {}
    ret = items.pop()
    params = [p for p in items if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], Token)]
    nodes = [n for n in items if isinstance(n, tuple) and n and n[0] == "node"]
    for tok, type in params:
        vname = _value_name(tok)
        if str(tok) in values:
            raise _Fail(tok, f"input {tok} is declared twice")
        values[str(tok)] = graph.add_input(vname, type)
    for _, results, opname, rest in nodes:
        operand_toks = [r for r in rest if isinstance(r, Token) and r.type == "VALUE"]
        attrs = next((r for r in rest if isinstance(r, dict)), {})
        types = [r for r in rest if isinstance(r, TensorType)]
        loc = next((r for r in rest if isinstance(r, Location)), Location())
        operands = [_lookup(values, outer, tok) for tok in operand_toks]
        if len(types) != len(results):
            where = results[0] if results else operand_toks[0] if operand_toks else None
            raise _Fail(where, f"{opname} has {len(results)} result(s) but {len(types)} type(s)")
        regions = []
        for read in (r for r in rest if isinstance(r, _Region)):
            region = Graph(read.name)
            _fill(region, list(read.items), [*outer, values], top=False)
            regions.append(region)
        node = graph.add(opname, operands, attrs, types=types, loc=loc, regions=regions)
        for tok, value in zip(results, node.results):
            if str(tok) in values:
                raise _Fail(tok, f"value {tok} is defined twice")
            values[str(tok)] = value
    for index, (tok, out_name) in enumerate(ret):
        if out_name is None:
            if top:
                raise _Fail(tok, f'a graph output needs a name: write {tok} as "NAME"')
            out_name = str(index)
        value = _lookup(values, outer, tok)
        if out_name in graph.outputs:
            raise _Fail(tok, f"output {out_name!r} is returned twice")
        graph.outputs[out_name] = value


def _lookup(values: dict, outer: list[dict], tok):
    if str(tok) in values:
        return values[str(tok)]
    if any(str(tok) in scope for scope in outer):
        raise _Fail(tok, f"value {tok} belongs to an enclosing graph: a region uses only its own arguments "
                         "(pass it in as one)")
    raise _Fail(tok, f"value {tok} is used before it is defined")


def _error(source: str, token, message: str) -> ParseError:
    if isinstance(token, Token) and token.line is not None:
        return ParseError(f"{message} (at {_abbreviated(token)!r})", where=f"{source}:{token.line}:{token.column}")
    return ParseError(message, where=source)


_FRIENDLY = {
    "VALUE": "a value like %0", "IDENT": "a name", "STRING": "a quoted string", "INT": "an integer",
    "FLOAT": "a number", "DTYPE": "a dtype like f32", "LPAR": "'('", "RPAR": "')'", "LBRACE": "'{'",
    "RBRACE": "'}'", "LSQB": "'['", "RSQB": "']'", "COMMA": "','", "COLON": "':'", "EQUAL": "'='",
    "SPECIAL_FLOAT": "inf or nan", "RETURN": "'return'", "CARET": "'^' (a region)", "LESSTHAN": "'<'", "MORETHAN": "'>'", "AT": "'@'",
}


def _syntax_error(source: str, text: str, e: UnexpectedInput) -> ParseError:
    expected = sorted(getattr(e, "expected", None) or getattr(e, "allowed", None) or [])
    want = ", ".join(dict.fromkeys(_FRIENDLY.get(x, x.lower().strip("_")) for x in expected))
    if isinstance(e, UnexpectedEOF):
        lines = text.splitlines() or [""]
        return ParseError(f"unexpected end of input; expected {want}", where=f"{source}:{len(lines)}:{len(lines[-1]) + 1}")
    if isinstance(e, UnexpectedCharacters):
        bad = text[e.pos_in_stream:e.pos_in_stream + 1] if e.pos_in_stream is not None else "?"
        return ParseError(f"unexpected character {bad!r}" + (f"; expected {want}" if want else ""),
                          where=f"{source}:{e.line}:{e.column}")
    token = getattr(e, "token", None)
    if token is not None and token.type == "$END":
        lines = text.splitlines() or [""]
        return ParseError(f"unexpected end of input; expected {want}", where=f"{source}:{len(lines)}:{len(lines[-1]) + 1}")
    shown = repr(_abbreviated(token)) if token is not None else "?"
    return ParseError(f"unexpected {shown}" + (f"; expected {want}" if want else ""),
                      where=f"{source}:{e.line}:{e.column}")
