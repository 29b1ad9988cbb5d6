"""split-complex: complex (c64) arithmetic as pairs of f32 tensors, Fourier transforms as products with DFT matrices.

TFLite's kernels take complex tensors in a handful of operators only (RFFT2D makes them; REAL, IMAG, COMPLEX_ABS
read them), and the complex transforms (FFT, FFT2D, IRFFT, ...) are Flex ops, which most TFLite runtimes do not
link. This pass follows each complex value as its (real, imaginary) parts and writes the transforms as matrix
products over the transformed dims, which must be static:

    fft(a + ib) over n = (a + ib) @ (C - iS),   C[m, k] = cos(2 pi m k / n),  S[m, k] = sin(2 pi m k / n)

the 2-D ones as the same product along the innermost dim and from the left along the one before it, the real
transforms with their cropping/zero-padding to ``fft_length`` and Hermitian weights folded into the matrices. An
imaginary part known to be zero (``complex(x, 0)``, a cast from f32) is not materialized, and a 2-D transform of
such a real value with stored matrices takes one product each way: ``x @ [C_h | S_h]`` reshaped to twice the rows
interleaves ``x C_h`` and ``x S_h``, which one product from the left with ``C_s`` and ``-S_s`` interleaved column by
column combines, so FNet's token mixing ``real(fft2d(complex(x, 0)))`` (C_s x C_h - S_s x S_h) is three operators
and two matrices. Dense DFTs cost O(n^2) per transformed row (FNet's authors use them on accelerators for the same
reason). A square DFT matrix (the complex transforms') has only n distinct entries, so one larger than
``table-bytes`` is not stored: it is gathered at run time from an n-entry table of cos (or sin) values with the
indices ``(r * c) mod n`` (also computed at run time from two n-entry ranges), which gives exactly the stored
matrix's values; fold-constants then leaves it (its result grows far past its operands). Smaller matrices, and those
of the real transforms, are ``2 n^2`` f32 constants.

A complex value that something else still reads (a graph output, an op this pass does not convert) is rebuilt
with ``complex(re, im)``; transforms over dims known only at run time are left as they are, and with
``keep-rfft`` so is an ``rfft2d`` that TFLite's RFFT2D kernel computes (the ``tflite`` pipeline does not keep it:
that kernel was seen to overwrite other tensors when XNNPACK delegates operators before it).
"""

from __future__ import annotations

import numpy as np

from irc import limits
from irc.ir.graph import Graph, Node, Value
from irc.ir.liveness import remove_dead
from irc.ir.types import DType
from irc.passes import register_pass

TRANSFORMS = ("fft", "ifft", "fft2d", "ifft2d", "rfft", "irfft", "rfft2d", "irfft2d")
ARITHMETIC = ("add", "sub", "mul")
Pair = tuple[Value, "Value | None"]  # (real part, imaginary part or None for a known zero)


def _static_dims(v: Value, count: int) -> tuple[int, ...] | None:
    shape = v.type.shape
    if shape is None or len(shape) < max(count, 2) or not all(isinstance(d, int) for d in shape[-count:]):
        return None
    return tuple(shape[-count:])


def _square_dft_table(n: int, scale: float, sign: float) -> tuple[np.ndarray, np.ndarray]:
    """The n distinct entries of the square DFT matrices ``scale * cos`` and ``sign * scale * sin`` of
    2 pi j / n, computed in float64 like ``_dft``'s."""
    angle = 2 * np.pi * np.arange(n, dtype=np.float64) / n
    return np.cos(angle) * scale, np.sin(angle) * scale * sign


def _dft(rows: int, cols: int, length: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin) of 2 pi r c / length for r < min(rows, length), zero rows beyond: a signal of ``rows`` entries
    cropped or zero-padded to ``length``, giving ``cols`` frequencies."""
    # sized from the graph's description (a crafted fft_length): refused past the memory limit, not allocated
    limits.check_array((4, rows, cols), 8, f"a {rows}x{cols} DFT matrix (split-complex)")
    r = np.arange(min(rows, length))[:, None].astype(np.float64)
    c = np.arange(cols)[None, :].astype(np.float64)
    angle = 2 * np.pi * ((r * c) % length) / length  # the remainder keeps the angles small and exact
    cos, sin = np.zeros((rows, cols)), np.zeros((rows, cols))
    cos[: len(r)], sin[: len(r)] = np.cos(angle) * scale, np.sin(angle) * scale
    return cos, sin


class Splitter:
    def __init__(self, graph: Graph, keep_rfft: bool, table_bytes: int):
        self.graph = graph
        self.keep_rfft = keep_rfft
        self.table_bytes = table_bytes
        self.pairs: dict[Value, Pair] = {}
        self.converted: set[Node] = set()

    # ----- building ----------------------------------------------------------------------------------------------
    def op(self, node: Node, name: str, *operands: Value, **attrs) -> Value:
        return self.graph.op(name, *operands, loc=node.loc, **attrs)

    def const(self, node: Node, array: np.ndarray) -> Value:
        return self.graph.const(np.asarray(array, np.float32), loc=node.loc)

    def combine(self, node: Node, name: str, x: Value | None, y: Value | None) -> Value | None:
        """x (+|-) y where None is zero."""
        if y is None:
            return x
        if x is None:
            return y if name == "add" else self.op(node, "neg", y)
        return self.op(node, name, x, y)

    def times(self, node: Node, x: Value | None, m: np.ndarray | Value, left: bool) -> Value | None:
        """x @ m (or m @ x over the second innermost dim); None stays None, a zero matrix gives None."""
        if x is None or (isinstance(m, np.ndarray) and not np.any(m)):
            return None
        if isinstance(m, np.ndarray):
            m = self.const(node, m)
        return self.op(node, "batch_matmul", m, x) if left else self.op(node, "batch_matmul", x, m)

    def square_dft(self, node: Node, n: int, scale: float, sign: float) -> tuple[np.ndarray | Value, ...]:
        """(C, sign * S) of the n x n DFT, each times ``scale``: symmetric, so also their transposes. Matrices
        over ``table-bytes`` are gathered at run time from their n distinct values."""
        if n * n * 4 <= self.table_bytes or n > 46340:  # (n - 1)^2 must stay within int32
            cos, sin = _dft(n, n, n, scale)
            return cos, sin * sign
        limits.check_array((2, n, n), 4, f"a {n}x{n} DFT matrix (split-complex)")  # what run time will hold
        ranks = np.arange(n, dtype=np.int32)
        index = self.op(node, "floor_mod", self.op(node, "mul", self.graph.const(ranks.reshape(n, 1), loc=node.loc),
                                                   self.graph.const(ranks.reshape(1, n), loc=node.loc)),
                        self.graph.const(np.int32(n), loc=node.loc))
        return tuple(self.op(node, "gather", self.const(node, table), index, axis=0, batch_dims=0)
                     for table in _square_dft_table(n, scale, sign))

    def complex_times(self, node: Node, pair: Pair, c: np.ndarray | Value, t: np.ndarray | Value, left: bool) -> Pair:
        """(a + ib) times (C + iT) = (aC - bT) + i(aT + bC), from the right or (over dim -2) the left."""
        a, b = pair
        re = self.combine(node, "sub", self.times(node, a, c, left), self.times(node, b, t, left))
        im = self.combine(node, "add", self.times(node, a, t, left), self.times(node, b, c, left))
        if re is None:  # a zero matrix product: keep a real part of the right shape
            re = self.op(node, "mul", a, self.const(node, 0.0)) if im is None else self.op(node, "sub", im, im)
        return re, im

    # ----- the parts of a complex value ----------------------------------------------------------------------------
    def pair_of(self, v: Value, node: Node) -> Pair:
        if v in self.pairs:
            return self.pairs[v]
        if v.is_constant:
            z = v.constant
            pair = (self.const(node, z.real), self.const(node, z.imag) if np.any(z.imag) else None)
        elif v.producer is not None and v.producer.op == "cast" and v.producer.operands[0].type.dtype is DType.f32:
            pair = (v.producer.operands[0], None)
        else:
            pair = (self.op(node, "real", v), self.op(node, "imag", v))
        self.pairs[v] = pair
        return pair

    # ----- the rewrites ------------------------------------------------------------------------------------------------
    def visit(self, node: Node) -> None:
        op = node.op
        if op == "complex":
            re, im = node.operands
            if re.type.shape != node.result.type.shape or (im.type.shape != re.type.shape and not _zero(im)):
                return  # a broadcasting complex: left to its emitter
            self.pairs[node.result] = (re, None if _zero(im) else im)
        elif op in ("real", "imag", "complex_abs"):
            z = node.operands[0]
            if z not in self.pairs and not z.is_constant:
                return  # a complex value this pass does not follow (a kept rfft2d): its builtins read it
            a, b = self.pair_of(z, node)
            if op == "real":
                out = a
            elif op == "imag":
                if b is None and not node.result.type.is_static:
                    return
                out = b if b is not None else self.op(node, "broadcast_to", self.const(node, 0.0),
                                                       shape=node.result.type.shape)
            elif b is None:
                out = self.op(node, "abs", a)
            else:
                out = self.op(node, "sqrt", self.op(node, "add", self.op(node, "square", a), self.op(node, "square", b)))
            self.graph.replace_all_uses(node.result, out)
        elif op in ARITHMETIC and node.result.type.dtype is DType.c64:
            (a, b), (c, d) = (self.pair_of(v, node) for v in node.operands)
            if op == "mul":
                pair = (self.combine(node, "sub", self.op(node, "mul", a, c), _mul(self, node, b, d)),
                        self.combine(node, "add", _mul(self, node, a, d), _mul(self, node, b, c)))
            else:
                pair = (self.op(node, op, a, c), self.combine(node, op, b, d))
            if any(v is not None and v.type.shape != node.result.type.shape for v in pair):
                return  # a broadcast: a part alone would have another shape than the value
            self.pairs[node.result] = pair
        elif op in TRANSFORMS:
            if self.keep_rfft and op == "rfft2d" and power_of_two(node.attr("fft_length")):
                return
            pair = self.transform(node)
            if pair is None:
                return
            if op in ("irfft", "irfft2d"):
                self.graph.replace_all_uses(node.result, pair[0])
            else:
                self.pairs[node.result] = pair
        else:
            return
        self.converted.add(node)

    def transform(self, node: Node) -> Pair | None:
        """The transform's (real, imaginary) parts. Operands of rank > 3 are flattened to rank 3 around it, so the
        products stay within every target's batch_matmul (TFLite's BATCH_MATMUL takes rank 5 at most)."""
        x = node.operands[0]
        two = node.op.endswith("2d")
        dims = _static_dims(x, 2 if two else 1)
        if dims is None:
            return None
        source = x if node.op in ("rfft", "rfft2d") else self.pair_of(x, node)
        lead = x.type.shape[:-2]
        if len(lead) <= 1:
            return self.transform_parts(node, source, dims)
        if sum(not isinstance(d, int) for d in lead) > 1:
            return None
        flat = (-1, *x.type.shape[-2:])
        if isinstance(source, Value):
            source = self.op(node, "reshape", source, shape=flat)
        else:
            source = tuple(None if v is None else self.op(node, "reshape", v, shape=flat) for v in source)
        pair = self.transform_parts(node, source, dims)
        back = tuple(d if isinstance(d, int) else -1 for d in lead) + tuple(node.result.type.shape[-2:])
        return tuple(None if v is None else self.op(node, "reshape", v, shape=back) for v in pair)

    def transform_parts(self, node: Node, source: Value | Pair, dims: tuple[int, ...]) -> Pair:
        """The transform of ``source`` (the real operand of rfft/rfft2d, the parts of the others)."""
        op = node.op
        two = op.endswith("2d")
        lengths = tuple(node.attr("fft_length")) if op in ("rfft", "irfft", "rfft2d", "irfft2d") else dims
        inverse = op.startswith("i")
        if op in ("rfft", "rfft2d"):
            n = lengths[-1]
            cos, sin = _dft(dims[-1], n // 2 + 1, n)
            source, right = (source, None), (cos, -sin)
        elif op in ("irfft", "irfft2d"):
            pair = source
            if two:  # the inverse transform over dim -2 first, cropped or padded to fft_length[0]
                cos, sin = _dft(dims[0], lengths[0], lengths[0], 1.0 / lengths[0])
                pair = self.complex_times(node, pair, cos.T, sin.T, left=True)
            n = lengths[-1]
            cos, sin = _dft(dims[-1], n, n, 1.0 / n)
            weights = np.full((dims[-1], 1), 2.0)
            weights[0] = 1.0
            if n % 2 == 0 and n // 2 < dims[-1]:
                weights[n // 2] = 1.0
            weights[n // 2 + 1:] = 0.0  # entries past n // 2 + 1 are not read
            a, b = pair
            re = self.combine(node, "sub", self.times(node, a, cos * weights, False),
                              self.times(node, b, sin * weights, False))
            return re, None
        else:
            n = dims[-1]
            right = self.square_dft(node, n, 1.0 / n if inverse else 1.0, 1.0 if inverse else -1.0)
        if not two:
            return self.complex_times(node, source, *right, left=False)
        if lengths[0] == dims[0]:  # then over dim -2, from the left: W[k, m] x[m, :] (W is symmetric)
            n = dims[0]
            left = self.square_dft(node, n, 1.0 / n if inverse else 1.0, 1.0 if inverse else -1.0)
        else:
            rows, n = dims[0], lengths[0]
            cos, sin = _dft(rows, n, n, 1.0 / n if inverse else 1.0)
            left = (cos.T, (sin if inverse else -sin).T)
        if source[1] is None and all(isinstance(m, np.ndarray) and np.any(m) for m in (*right, *left)):
            return self.real_2d(node, source[0], right, left)
        return self.complex_times(node, self.complex_times(node, source, *right, left=False), *left, left=True)

    def real_2d(self, node: Node, x: Value, right: tuple[np.ndarray, ...], left: tuple[np.ndarray, ...]) -> Pair:
        """The 2-D transform of a real ``x`` with stored matrices in three products instead of six:
        ``x @ [C_r | T_r]`` holds ``x C_r`` and ``x T_r`` side by side, so reshaped to twice the rows it interleaves
        their rows, and each part is one product from the left with the left matrices' columns interleaved alike:
        re = C_l (x C_r) - T_l (x T_r), im = T_l (x C_r) + C_l (x T_r)."""
        (c_r, t_r), (c_l, t_l) = right, left
        rows, cols = c_l.shape[1], c_r.shape[1]
        both = self.op(node, "batch_matmul", x, self.const(node, np.concatenate([c_r, t_r], axis=1)))
        lead = tuple(d if isinstance(d, int) else -1 for d in x.type.shape[:-2])
        both = self.op(node, "reshape", both, shape=(*lead, 2 * rows, cols))
        re = np.stack([c_l, -t_l], axis=-1).reshape(len(c_l), 2 * rows)
        im = np.stack([t_l, c_l], axis=-1).reshape(len(c_l), 2 * rows)
        return tuple(self.op(node, "batch_matmul", self.const(node, m), both) for m in (re, im))

    def rebuild(self) -> None:
        """A complex value still read by an unconverted node or an output becomes complex(re, im) again."""
        for value, (re, im) in list(self.pairs.items()):
            producer = value.producer
            if producer is None or producer not in self.converted or producer.op == "complex":
                continue
            if not value.uses and not self.graph.is_output(value):
                continue
            imag = im if im is not None else self.graph.const(np.float32(0.0), loc=producer.loc)
            self.graph.replace_all_uses(value, self.graph.op("complex", re, imag, loc=producer.loc))


def power_of_two(lengths) -> bool:
    """Whether TFLite's RFFT2D kernel takes these lengths: powers of two, each at least 2 (its rdft2d is not made
    for a height of 1)."""
    return all(n >= 2 and n & (n - 1) == 0 for n in lengths)


def _zero(v: Value, depth: int = 8) -> bool:
    """Whether ``v`` is all zeros: a zero constant, broadcast or selected (how lowerings fill a symbolic shape)."""
    if v.is_constant:
        return not np.any(v.constant)
    node = v.producer
    if node is None or depth == 0:
        return False
    if node.op == "broadcast_to":
        return _zero(node.operands[0], depth - 1)
    return node.op == "select" and all(_zero(x, depth - 1) for x in node.operands[1:])


def _mul(s: Splitter, node: Node, x: Value | None, y: Value | None) -> Value | None:
    return None if x is None or y is None else s.op(node, "mul", x, y)


@register_pass(name="split-complex")
def split_complex(graph: Graph, *, keep_rfft: bool = False, table_bytes: int = 8 << 10) -> dict:
    """Complex arithmetic as pairs of f32 tensors; Fourier transforms over static dims as DFT matrix products.
    ``keep-rfft`` leaves an rfft2d whose lengths are powers of two (TFLite's RFFT2D builtin); a square DFT matrix
    of more than ``table-bytes`` is gathered at run time from its n distinct values."""
    if not any(v.type.dtype is DType.c64 for n in graph.nodes for v in n.results):
        return {"complex ops split": 0}
    splitter = Splitter(graph, keep_rfft, table_bytes)
    for node in graph.topo_order():
        splitter.visit(node)
    splitter.rebuild()
    remove_dead(graph)
    return {"complex ops split": len(splitter.converted)}
