"""Einsum as transpose, reshape and batch_matmul (Keras' MultiHeadAttention and EinsumDense use it).

A two-operand equation sorts its labels into batch (in both operands and the result), contracted (in both,
not in the result) and free (in one operand and the result) labels. Each operand is transposed to
[batch..., free, contracted] (or [batch..., contracted, free] with adj_x/adj_y when that avoids a transpose),
its free and contracted groups are reshaped to one dim each, one batch_matmul multiplies them, and a reshape
and a transpose give the result's layout. Labels in one operand only are summed out first; three or more
operands are contracted left to right. Repeated labels in one operand (diagonals) are not lowered.
"""

from __future__ import annotations

from math import prod

from irc.frontends.lowering import lowers
from irc.frontends.lowering.array import reshape_target, reshape_value
from irc.frontends.lowering.context import CannotLower, Lowerer
from irc.frontends.tfgraph import TFNode
from irc.ir.graph import Value
from irc.ir.types import Dim, SymDim


@lowers("Einsum")
def einsum(cx: Lowerer, node: TFNode, args: list) -> Value:
    specs, out = parse_equation(node.attrs["equation"], [cx.rank(v) for v in args])
    for spec in specs:
        if len(set(spec)) != len(spec):
            raise CannotLower(f"equation {node.attrs['equation']!r} takes a diagonal (a repeated label)")
    values = list(zip(args, specs))
    while len(values) > 1:
        (a, la), (b, lb) = values[0], values[1]
        later = {label for _, spec in values[2:] for label in spec}
        keep = [label for label in dict.fromkeys(la + lb) if label in out or label in later]
        values[:2] = [(contract(cx, a, la, b, lb, keep), keep)]
    x, labels = values[0]
    x, labels = _sum_out(cx, x, labels, set(out))
    return _permute(cx, x, labels, out)


def parse_equation(equation: str, ranks: list[int]) -> tuple[list[list[str]], list[str]]:
    """Operand and result label lists; an ellipsis becomes labels "...0", "...1", ... aligned at the right."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(ranks):
        raise CannotLower(f"equation {equation!r} has {len(inputs)} operands, the op {len(ranks)}")
    widths = [rank - len(spec.replace("...", "")) if "..." in spec else 0 for spec, rank in zip(inputs, ranks)]
    width = max(widths, default=0)
    ellipsis = [f"...{i}" for i in range(width)]
    specs = [_labels(spec, ellipsis[width - w:]) for spec, w in zip(inputs, widths)]
    for spec, rank in zip(specs, ranks):
        if len(spec) != rank:
            raise CannotLower(f"equation {equation!r} does not match an operand of rank {rank}")
    if arrow:
        out = _labels(rhs, ellipsis)
    else:  # implicit result: the ellipsis, then the labels used once, sorted
        counts: dict[str, int] = {}
        for spec in specs:
            for label in spec:
                counts[label] = counts.get(label, 0) + 1
        out = ellipsis + sorted(label for label, n in counts.items() if n == 1 and not label.startswith("..."))
    return specs, out


def _labels(spec: str, ellipsis: list[str]) -> list[str]:
    head, dots, tail = spec.partition("...")
    return list(head) + (ellipsis if dots else []) + list(tail)


def contract(cx: Lowerer, a: Value, la: list[str], b: Value, lb: list[str], out: list[str]) -> Value:
    """The einsum of a and b whose result has labels ``out`` (in that order)."""
    keep = set(out)
    a, la = _sum_out(cx, a, la, keep | set(lb))
    b, lb = _sum_out(cx, b, lb, keep | set(la))
    size, where = {}, {}  # a label's size, and a (value, axis) having it to read at run time
    for v, labels in ((a, la), (b, lb)):
        for axis, (label, d) in enumerate(zip(labels, cx.shape(v))):
            if label not in size or size[label] == 1:
                size[label], where[label] = d, (v, axis)
    batch = [label for label in la if label in lb and label in keep]
    summed = [label for label in la if label in lb and label not in keep]
    free_a = [label for label in la if label not in lb]
    free_b = [label for label in lb if label not in la]

    a2, adj_x = _arrange(cx, a, la, batch, free_a, summed, size, where, left=True)
    b2, adj_y = _arrange(cx, b, lb, batch, free_b, summed, size, where, left=False)
    y = cx.op("batch_matmul", a2, b2, adj_x=adj_x, adj_y=adj_y)
    labels = batch + free_a + free_b
    y = _reshape(cx, y, [size[label] for label in labels],
                 [size[label] if isinstance(size[label], (int, SymDim)) else where[label] for label in labels])
    return _permute(cx, y, labels, out)


def _arrange(cx: Lowerer, x: Value, labels: list[str], batch: list[str], free: list[str], summed: list[str],
             size: dict, where: dict, left: bool) -> tuple[Value, bool]:
    """x as [batch..., rows, cols] for batch_matmul, and whether it is stored transposed (adj)."""
    plain = batch + (free + summed if left else summed + free)
    swapped = batch + (summed + free if left else free + summed)
    adj = _is_identity(labels, swapped) and not _is_identity(labels, plain)
    order = swapped if adj else plain
    x = _permute(cx, x, labels, order)
    first, second = (summed, free) if adj == left else (free, summed)
    dims = [cx.shape(x)[labels_index] for labels_index in range(len(batch))]
    dims += [_product([size[label] for label in first]), _product([size[label] for label in second])]
    sources = [d if isinstance(d, (int, SymDim)) else (x, i) for i, d in enumerate(dims[:len(batch)])]
    for group, d in zip((first, second), dims[len(batch):]):
        known = isinstance(d, (int, SymDim))
        sources.append(d if known else where[group[0]] if len(group) == 1 else None)  # None: -1, inferred
    return _reshape(cx, x, dims, sources), adj


def _product(dims: list[Dim]) -> Dim:
    if all(isinstance(d, int) for d in dims):
        return prod(dims)
    return dims[0] if len(dims) == 1 else None


def _sum_out(cx: Lowerer, x: Value, labels: list[str], keep: set[str]) -> tuple[Value, list[str]]:
    axes = tuple(i for i, label in enumerate(labels) if label not in keep)
    if not axes:
        return x, labels
    return cx.op("sum", x, axes=axes), [label for label in labels if label in keep]


def _is_identity(labels: list[str], order: list[str]) -> bool:
    return labels == order


def _permute(cx: Lowerer, x: Value, labels: list[str], order: list[str]) -> Value:
    if labels == order:
        return x
    return cx.op("transpose", x, perm=tuple(labels.index(label) for label in order))


def _reshape(cx: Lowerer, x: Value, dims: list[Dim], sources: list | None = None) -> Value:
    """x reshaped to dims; ``sources`` (ints, symbols or (value, axis) pairs) read the dims at run time when more
    than one is unknown until then (two inputs' sequence lengths, which irc cannot tell are equal)."""
    shape = cx.shape(x)
    if tuple(dims) == tuple(shape) and all(isinstance(d, (int, SymDim)) for d in dims):
        return x
    runtime = None
    if sources is not None and reshape_target(shape, tuple(dims))[0].count(-1) > 1:
        runtime = cx.dims_vector(sources)
    return reshape_value(cx, x, tuple(dims), runtime=runtime)
