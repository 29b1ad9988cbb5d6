"""Which opaque TensorFlow ops irc may run, and the user's permission to run them (docs/security.md).

An opaque ``tf.<Op>`` node (from ``--allow-tf-ops``, a TFLite Flex op or an ``.irc`` file) runs its serialized
NodeDef, and the functions of its ``library``, through TensorFlow. Nothing runs without the user's word:

- no permission (the default): no opaque node runs; the error names the ops and the flag that would run them;
- ``--allow-tf-ops`` (``allow_tf_ops=True``): ops TensorFlow registers as stateless run, as do random ops, Assert
  and function calls, whose bodies are checked the same way; never an op of a DENIED family (files, network,
  the process, Python, other sessions' state), whatever TensorFlow says of it;
- ``--unsafe``: every op runs; the user trusts the model.

What runs is what the NodeDef and the library say, not the irc op name, so the check reads those (without
TensorFlow: the families are decided from op names, before TensorFlow is imported). Every function of the library
is checked, reachable or not, as is every node inside it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
from dataclasses import dataclass

from irc.errors import InputError

# Op families irc never runs without --unsafe. Names are matched as regular expressions (re.search).
DENIED: dict[str, str] = {
    "reads or writes files": (
        r"File|Reader|Dataset|Iterator|Checkpoint|^Save|^Restore|^Write|SummaryWriter|Summary[A-Z]?.*Writer|"
        r"^ImmutableConst$|^LoadAndRemapMatrix$|^GenerateVocabRemapping$|^DecodeProto|^EncodeProto|^Load|"
        r"TPUEmbedding"),
    "talks to the network or other processes": (
        r"Send|Recv|Rpc|Collective|Nccl|^RemoteCall$|^Gcs|BigQuery|Bigtable|DataService|Kafka|Distributed"),
    "acts on the process (prints, aborts, keeps state across runs)": (
        r"^Abort$|^Print|^Debug|Queue|^Barrier|Stage$|^Stage|Accumulator|^Unbatch|^Batch$|^BatchFunction$|"
        r"^Variable|^TemporaryVariable|^DestroyTemporaryVariable"),
    "runs Python code": r"PyFunc",
    "is internal to TensorFlow": r"^_",
}
_DENIED = [(why, re.compile(pattern)) for why, pattern in DENIED.items()]

# Stateful ops that are harmless to run once in a fresh session: random numbers, assertions, function calls
# (their bodies are checked node by node).
SAFE_STATEFUL = frozenset({
    "Assert", "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal", "Multinomial",
    "RandomShuffle", "RandomGamma", "RandomPoisson", "RandomPoissonV2", "ParameterizedTruncatedNormal",
    "StatefulPartitionedCall", "PartitionedCall", "If", "While", "Case", "StatelessIf", "StatelessWhile",
    "StatelessCase", "For", "SymbolicGradient",
})

NO_PERMISSION_HINT = "pass --allow-tf-ops (Python: allow_tf_ops=True) to run them through TensorFlow"
UNSAFE_HINT = "irc runs such ops only with --unsafe (Python: unsafe=True), which trusts the model; see " \
              "docs/security.md"


@dataclass(frozen=True)
class Permission:
    run_tf_ops: bool = False  # ops that are not denied
    unsafe: bool = False  # every op

    @property
    def level(self) -> int:
        return 2 if self.unsafe else 1 if self.run_tf_ops else 0


_PERMISSION: contextvars.ContextVar[Permission] = contextvars.ContextVar(
    "irc_tf_ops", default=Permission())  # noqa: B039 - a frozen dataclass


@contextlib.contextmanager
def permitted(allow_tf_ops: bool = False, unsafe: bool = False):
    """Within the block, opaque TF ops may run: the non-denied ones with ``allow_tf_ops``, all with ``unsafe``."""
    token = _PERMISSION.set(Permission(run_tf_ops=allow_tf_ops or unsafe, unsafe=unsafe))
    try:
        yield
    finally:
        _PERMISSION.reset(token)


def current() -> Permission:
    return _PERMISSION.get()


def denied_reason(op: str) -> str | None:
    """Why irc never runs (or keeps, when lowering) TF op ``op`` without --unsafe; None if it is not denied."""
    for why, pattern in _DENIED:
        if pattern.search(op):
            return why
    return None


@dataclass(frozen=True)
class Verdict:
    """What running one opaque node would run: (op, node name) pairs, and those denied with the reason."""
    ops: tuple[tuple[str, str], ...]
    denied: tuple[tuple[str, str, str], ...]  # (op, node name, why)
    functions: frozenset[str]


@functools.lru_cache(maxsize=256)
def inspect(node_def: bytes, library: bytes = b"") -> Verdict:
    """Every TF op a NodeDef (and its function library) would run, read without TensorFlow."""
    from irc.formats import tfproto

    try:
        node = tfproto.parse("NodeDef", bytes(node_def))
        lib = tfproto.parse("FunctionDefLibrary", bytes(library or b""))
    except ValueError as e:
        raise InputError(f"an opaque TensorFlow node's NodeDef or library is not readable: {e}") from None
    ops = [(node.op, node.name)]
    functions = frozenset(fn.signature.name for fn in lib.function)
    for fn in lib.function:
        ops += [(n.op, f"{fn.signature.name}/{n.name}") for n in fn.node_def]
    denied = tuple((op, name, why) for op, name in ops if (why := denied_reason(op)) is not None)
    return Verdict(tuple(ops), denied, functions)


def check_may_run(node_def: bytes, library: bytes = b"", label: str = "") -> None:
    """Raises InputError unless the current permission lets this opaque node run. Decided without TensorFlow,
    except with --allow-tf-ops, where TensorFlow (about to run the op anyway) says which ops are stateful."""
    permission = current()
    if permission.unsafe:
        return
    verdict = inspect(node_def, library)
    what = f"opaque node {label} would run" if label else "an opaque node would run"
    if verdict.denied:
        raise InputError(f"{what} TensorFlow {describe_denied(verdict.denied)}; {UNSAFE_HINT}")
    if not permission.run_tf_ops:
        raise InputError(f"{what} TensorFlow ops ({describe(verdict.ops)}), and running TensorFlow ops needs "
                         "your permission", hint=NO_PERMISSION_HINT)
    stateful = _stateful_ops(verdict)
    if stateful:
        raise InputError(f"{what} stateful TensorFlow ops ({describe(stateful)}), which may keep state, touch "
                         f"files or the process; {UNSAFE_HINT}")


def check_graph_may_run(graph, where: str | None = None) -> None:
    """Refuses, before anything runs, a graph with opaque nodes the current permission does not let run;
    one error naming every such op type and node."""
    from irc.ir.verify import node_label

    opaque = [n for n in graph.nodes if n.is_opaque]
    permission = current()
    if not opaque or permission.unsafe:
        return
    verdicts = [(n, inspect(n.attrs.get("node_def", b""), n.attrs.get("library", b""))) for n in opaque]
    denied = [d for _, v in verdicts for d in v.denied]
    where = where or graph.name
    if denied:
        raise InputError(f"running it would run TensorFlow {describe_denied(denied)}; {UNSAFE_HINT}", where=where)
    if not permission.run_tf_ops:
        labels = ", ".join(node_label(n) for n in opaque[:4]) + (", ..." if len(opaque) > 4 else "")
        ops = sorted({op for _, v in verdicts for op, _ in v.ops})
        raise InputError(f"running it would run {len(opaque)} opaque node(s) through TensorFlow ({labels}; "
                         f"TensorFlow ops {', '.join(ops[:8])}{', ...' if len(ops) > 8 else ''})",
                         where=where, hint=NO_PERMISSION_HINT)
    for node, verdict in verdicts:
        stateful = _stateful_ops(verdict)
        if stateful:
            raise InputError(f"running it would run stateful TensorFlow ops ({describe(stateful)}) in node "
                             f"{node_label(node)}, which may keep state, touch files or the process; {UNSAFE_HINT}",
                             where=where)


def describe(ops, limit: int = 6) -> str:
    """``Op (node 'name'), ...`` for (op, name) pairs, at most ``limit`` of them."""
    parts = [f"{op} (node '{name}')" for op, name in ops[:limit]]
    return ", ".join(parts) + (f", and {len(ops) - limit} more" if len(ops) > limit else "")


def describe_denied(denied) -> str:
    op, name, why = denied[0]
    more = f", and {len(denied) - 1} more such op(s)" if len(denied) > 1 else ""
    return f"op {op} (node '{name}'), which {why}{more}"


def _stateful_ops(verdict: Verdict) -> list[tuple[str, str]]:
    """Ops TensorFlow's registry marks stateful (or does not know), other than SAFE_STATEFUL and the library's
    own functions (whose bodies are in ``verdict.ops``). Imports TensorFlow."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tensorflow.python.framework import op_def_registry

    found = []
    for op, name in verdict.ops:
        if op in verdict.functions or op in SAFE_STATEFUL:
            continue
        op_def = op_def_registry.get(op)
        if op_def is None or op_def.is_stateful:
            found.append((op, name))
    return found
