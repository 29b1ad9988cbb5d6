"""Limits on what one input may make irc do: every reader sizes its work against these before doing it.

A model file is untrusted. A few bytes can describe a tensor of 2^28 elements, a function that calls itself
twice twenty levels deep, or an archive member that inflates a thousandfold. Readers ask here before they
allocate or expand anything whose size comes from the input's description rather than from bytes the input
actually holds, and refuse with an InputError that says which limit was hit and how to raise it.

Defaults suit every model irc's tests and benchmarks convert; raise them for a model you trust:

    irc --max-memory 8G lower big_model/ ...        # or IRC_MAX_MEMORY=8G
    irc --max-graph-nodes 5000000 lower huge_graph.pb ... # or IRC_MAX_NODES=5000000

``limits.override(max_memory=...)`` does the same from Python, for a ``with`` block.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import re
from dataclasses import dataclass, replace

from irc.errors import InputError, UsageError

MiB = 1 << 20
GiB = 1 << 30
EXPANSION_FLOOR = 2048  # nodes any input may grow to, however small it is


@dataclass(frozen=True)
class Limits:
    # Bytes one array, string or decompressed member may take when its size comes from the input's description
    # (a splat constant's shape, shape arithmetic, an interpreter result, an archive's declared size). Data an
    # input really holds (a constant's bytes, a checkpoint's weights) is bounded by the input itself instead.
    max_memory: int = 256 * MiB
    # Graph nodes a reader may create in all: bounds function inlining and anything else that expands a graph.
    max_nodes: int = 2_000_000
    # Nodes a graph may grow to per node of the input that describes it (function inlining), above a floor of
    # EXPANSION_FLOOR: a few kilobytes of functions that call each other twice, twenty deep, describe a million
    # nodes. None once max_nodes is set explicitly: the user's node limit is then the only one.
    max_expansion: int | None = 100
    # Loop iterations the reference interpreter runs in one run, every loop (nested ones too) counted together:
    # three loops of 4,096 trips nested in one another would otherwise run 2^36 bodies, each loop under the limit.
    max_loop_iterations: int = 1_000_000


# How deep regions (a loop in a loop in a conditional...) may nest in a graph irc reads: the printer, verifier
# and interpreter recurse once per level. TensorFlow models nest a few levels at most.
MAX_REGION_DEPTH = 64

ENV = {"max_memory": "IRC_MAX_MEMORY", "max_nodes": "IRC_MAX_NODES", "max_loop_iterations": "IRC_MAX_LOOP_ITERATIONS"}
FLAG = {"max_memory": "--max-memory", "max_nodes": "--max-graph-nodes", "max_loop_iterations": "--max-loop-iterations"}

_current: contextvars.ContextVar[Limits | None] = contextvars.ContextVar("irc_limits", default=None)


def current() -> Limits:
    """The limits in force: an ``override`` block's, else the environment's, else the defaults."""
    limits = _current.get()
    return limits if limits is not None else from_environment()


def from_environment() -> Limits:
    values = {}
    for field, variable in ENV.items():
        text = os.environ.get(variable)
        if text:
            values[field] = parse_size(text, variable) if field == "max_memory" else parse_count(text, variable)
    return replace(Limits(), **_explicit(values))


def _explicit(changes: dict) -> dict:
    """A node limit the user sets replaces the relative one (max_expansion) as well."""
    if changes.get("max_nodes") is not None and "max_expansion" not in changes:
        return {**changes, "max_expansion": None}
    return changes


@contextlib.contextmanager
def override(**changes):
    """Runs a block under other limits: ``with override(max_memory=4 * GiB): ...``."""
    token = _current.set(replace(current(), **_explicit(changes)))
    try:
        yield current()
    finally:
        _current.reset(token)


def set_global(**changes) -> None:
    """Sets limits for the rest of the process (the CLI's ``--max-memory``)."""
    _current.set(replace(current(), **_explicit({k: v for k, v in changes.items() if v is not None})))


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": MiB, "g": GiB, "t": 1 << 40}


def parse_size(text: str, what: str = "--max-memory") -> int:
    """``512M``, ``4G``, ``1.5GiB`` or a byte count."""
    match = _SIZE.match(str(text))
    if not match:
        raise UsageError(f"{what}: {text!r} is not a size (write e.g. 512M, 4G or a number of bytes)")
    size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size <= 0:
        raise UsageError(f"{what}: the size must be positive, not {text!r}")
    return size


def parse_count(text: str, what: str) -> int:
    try:
        count = int(str(text).strip())
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a whole number") from None
    if count <= 0:
        raise UsageError(f"{what}: must be positive, not {text!r}")
    return count


def human(nbytes: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", MiB), ("KiB", 1 << 10)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes} bytes"


def nbytes(shape, itemsize: int) -> int:
    """Exact bytes of an array of ``shape``, in Python integers (no int64 overflow for hostile shapes)."""
    return math.prod(int(d) for d in shape) * int(itemsize)


def check_memory(size: int, what: str, *, where: str | None = None, backed_by: int = 0) -> None:
    """Refuses to make ``size`` bytes for ``what`` unless the input holds that many (``backed_by``) or the
    memory limit allows it."""
    limit = current().max_memory
    if size <= max(limit, backed_by):
        return
    raise InputError(f"{what} would take {human(size)}, over irc's memory limit of {human(limit)}", where=where,
                     hint=f"raise it with {FLAG['max_memory']} or {ENV['max_memory']} if you trust this input")


def check_array(shape, itemsize: int, what: str, *, where: str | None = None, backed_by: int = 0) -> None:
    """``check_memory`` for an array: also refuses negative dimensions, which numpy would misread."""
    if any(int(d) < 0 for d in shape):
        raise InputError(f"{what} has a negative dimension in shape {list(shape)}", where=where)
    check_memory(nbytes(shape, itemsize), what, where=where, backed_by=backed_by)


def check_nodes(count: int, what: str, *, where: str | None = None) -> None:
    """Refuses a graph that would grow past the node limit (function inlining, unrolling)."""
    limit = current().max_nodes
    if count <= limit:
        return
    raise InputError(f"{what} would make more than {limit:,} nodes", where=where,
                     hint=f"raise the limit with {FLAG['max_nodes']} or {ENV['max_nodes']} if you trust this input")


def expansion_allowed(source_nodes: int) -> int:
    """The most nodes ``check_expansion`` lets a graph grow to from ``source_nodes``."""
    limits = current()
    if limits.max_expansion is None:
        return limits.max_nodes
    return min(limits.max_nodes, max(EXPANSION_FLOOR, limits.max_expansion * source_nodes))


def check_expansion(count: int, source_nodes: int, what: str, *, where: str | None = None) -> None:
    """``check_nodes`` for a graph grown from a smaller description (function inlining): unless the user set the
    node limit, also refuses more than ``max_expansion`` nodes per node of the input (``source_nodes``)."""
    check_nodes(count, what, where=where)
    if count <= expansion_allowed(source_nodes):
        return
    factor = current().max_expansion
    raise InputError(f"{what} would make {count:,} nodes from the {source_nodes:,} in the input, more than "
                     f"{factor} times as many", where=where,
                     hint=f"give {FLAG['max_nodes']} or {ENV['max_nodes']} to allow up to that many nodes if you "
                          "trust this input")
