"""The state a TF op lowering works with: the irc graph being built, TF refs bound to irc values, folding.

``Lowerer`` is handed to every lowering. It builds irc nodes at the TF node's location, folds every pure op
whose operands are all constants (so TF's shape arithmetic and weight preprocessing disappear at lowering
time), and tracks *partly known* integer vectors: ``Shape`` of a tensor with a symbolic batch gives
``(batch, 224, 224, 3)``, which ``StridedSlice``, ``Pack``, ``ConcatV2``, ... carry along, so a later
``Reshape`` or ``Fill`` can still read its shape as an attribute.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Any

import numpy as np

from irc import limits
from irc.frontends.tfgraph import TFGraph, TFNode, split_ref
from irc.ir.graph import Graph, Location, Value
from irc.ir.types import Dim, DType, SymDim, TensorType, split_sym

# Folding a result bigger than this many elements would bloat the graph with a constant; leave it as an op.
FOLD_LIMIT = 1 << 24


class CannotLower(Exception):
    """A lowering that does not apply to this node (dynamic shapes, an unsupported attribute value, ...)."""


def tf_dtype(name: str) -> DType:
    """A TF dtype name ("float32") as an irc DType; raises CannotLower for variant, resource, complex, ..."""
    try:
        return DType.parse(name)
    except ValueError:
        raise CannotLower(f"irc has no dtype {name!r}") from None


class Lowerer:
    """Builds one irc Graph from one TFGraph. Lowerings call ``op``/``add``/``const`` and the readers below."""

    def __init__(self, tfgraph: TFGraph, graph: Graph, allow_tf_ops: bool = False, unsafe: bool = False):
        self.tfgraph = tfgraph
        self.graph = graph
        self.allow_tf_ops = allow_tf_ops
        self.unsafe = unsafe  # also keep ops that touch files, the network or the process (irc.ops.tf_policy)
        self.node: TFNode | None = None  # the TF node being lowered
        self.loc = Location()
        self.symbolic: dict[Value, tuple[Dim, ...]] = {}  # partly known int vectors (scalars: 1-tuples)
        self.sym_sources: dict[SymDim, tuple[Value, int]] = {}  # a value having the dim, and the axis
        self._masks: dict[tuple[SymDim, int, int], Value] = {}
        self._folded: dict[tuple, list[Value]] = {}  # (op, operands, attrs) -> folded results, reused in loops
        # SpaceToBatchND results -> (padded input, block), and convolutions lowered as dilated ones -> block: TF's
        # CPU Conv3D has no dilation, so tf.nn.convolution wraps it in SpaceToBatchND/BatchToSpaceND (nn.py)
        self.space_to_batch: dict[Value, tuple[Value, tuple[int, ...]]] = {}
        self.dilated: dict[Value, tuple[int, ...]] = {}
        # TF nodes lowered so far, counting each unrolled iteration and each inlined branch again: loops nested in
        # loops would otherwise lower a few nodes billions of times.
        self.lowered = 0
        self.source_nodes = len(tfgraph.nodes) + sum(len(fn.nodes) for fn in tfgraph.functions.values())
        self.max_lowered = limits.expansion_allowed(self.source_nodes)

    # ----- building ---------------------------------------------------------------------------------------------
    def add(self, op: str, operands: Sequence[Value] = (), attrs: dict[str, Any] | None = None,
            types: Sequence[TensorType] | None = None) -> list[Value]:
        """Adds an irc node at the current location; returns its results (folded to constants when possible)."""
        attrs = attrs or {}
        if operands and all(v.is_constant for v in operands):
            folded = self._fold(op, operands, attrs)
            if folded is not None:
                return folded
        try:
            node = self.graph.add(op, operands, attrs, types=types, loc=self.loc)
        except ValueError as e:
            shapes = ", ".join(str(v.type) for v in operands)
            raise CannotLower(f"irc's {op} rejects operands ({shapes}) with {_short(attrs)}: {e}") from None
        for result in node.results:  # a value having a symbol a shape rule made (a strided convolution's length)
            for axis, d in enumerate(result.type.shape or ()):
                if isinstance(d, SymDim) and split_sym(d)[1] == 1:
                    self.sym_sources.setdefault(d, (result, axis))
        return node.results

    def op(self, op: str, *operands: Value, types: Sequence[TensorType] | None = None, **attrs) -> Value:
        """A single-result node: ``cx.op("add", x, y)``."""
        results = self.add(op, operands, attrs, types)
        if len(results) != 1:
            raise ValueError(f"{op} gives {len(results)} results")
        return results[0]

    def const(self, array, dtype: DType | None = None) -> Value:
        array = np.asarray(array)
        if dtype is not None and array.dtype != dtype.numpy:
            array = array.astype(dtype.numpy)
        return self.graph.const(array, loc=self.loc)

    def _fold(self, op: str, operands: Sequence[Value], attrs: dict) -> list[Value] | None:
        """The op's results as constants, computed with its kernel; the same fold (an unrolled loop body
        transforming the same weights each iteration) gives the same constants."""
        from irc.ops import get_op, run_kernel
        from irc.ops.base import PURE

        opdef = get_op(op)
        if not opdef.has(PURE):
            return None
        try:
            key = (op, tuple(id(v) for v in operands), tuple(sorted(attrs.items())))
            hash(key)
        except TypeError:  # an unhashable attribute (a numpy array): fold without remembering
            key = None
        if key is not None and key in self._folded:
            return self._folded[key]
        try:
            from irc.ops import infer_types

            types = infer_types(op, [v.type for v in operands], attrs, [v.constant for v in operands])
            if any(t.num_elements is None or t.num_elements > FOLD_LIMIT for t in types):
                return None  # decided before computing: a huge result would exhaust memory
            from irc.passes.fold_constants import grows_too_much

            result_bytes = sum(t.num_elements * t.dtype.itemsize for t in types)
            if grows_too_much(result_bytes, sum(np.asarray(v.constant).nbytes for v in operands)):
                return None  # a broadcast or outer product of small constants: computed at run time
            outs = run_kernel(op, [v.constant for v in operands], attrs)
        except Exception:  # noqa: BLE001 - a kernel that cannot fold leaves the op in place to report properly
            return None
        if sum(np.asarray(o).size for o in outs) > FOLD_LIMIT:
            return None
        results = [self.const(o) for o in outs]
        if key is not None:
            self._folded[key] = results
        return results

    # ----- reading operands -------------------------------------------------------------------------------------
    @staticmethod
    def constant(v) -> np.ndarray | None:
        return v.constant if isinstance(v, Value) else None

    def ints(self, v: Value, what: str) -> list[int]:
        """A constant int vector (or scalar, as a 1-list) operand; CannotLower when it is computed at run time."""
        dims = self.dims(v)
        if dims is None or not all(isinstance(d, int) for d in dims):
            raise CannotLower(f"{what} is computed at run time; irc needs it constant"
                              + (f" (it is {_fmt_dims(dims)})" if dims is not None else ""))
        return [int(d) for d in dims]

    def int_scalar(self, v: Value, what: str) -> int:
        values = self.ints(v, what)
        if len(values) != 1:
            raise CannotLower(f"{what} must be a scalar, got {values}")
        return values[0]

    def floats(self, v: Value, what: str) -> np.ndarray:
        value = self.constant(v)
        if value is None:
            raise CannotLower(f"{what} is computed at run time; irc needs it constant")
        return value

    def dims(self, v: Value) -> tuple[Dim, ...] | None:
        """An int scalar or vector as far as it is known: ints, SymDims and None (unknown) entries."""
        value = self.constant(v)
        if value is not None:
            if value.dtype.kind not in "iu" or value.ndim > 1:
                return None
            return tuple(int(x) for x in value.reshape(-1))
        return self.symbolic.get(v)

    def shape(self, v: Value, rank: int | None = None, min_rank: int = 0, what: str = "the input") -> tuple[Dim, ...]:
        """``v``'s shape; CannotLower when its rank is unknown or not ``rank`` (or below ``min_rank``)."""
        if v.type.shape is None:
            raise CannotLower("an operand has an unknown rank")
        shape = v.type.shape
        if (rank is not None and len(shape) != rank) or len(shape) < min_rank:
            need = f"rank {rank}" if rank is not None else f"rank {min_rank} or more"
            raise CannotLower(f"{what} has rank {len(shape)}, where the op needs {need}")
        return shape

    @staticmethod
    def axes(values, rank: int, what: str = "the axis") -> list[int]:
        """Axes normalized to 0..rank-1 (a scalar, rank 0, takes 0 or -1); CannotLower when one lies outside."""
        values = [int(a) for a in values]
        if any(not -max(rank, 1) <= a < max(rank, 1) for a in values):
            raise CannotLower(f"{what} {values} lie outside rank {rank}")
        return [a % rank if rank else 0 for a in values]

    def scalars(self, values: Sequence[Value], what: str) -> list:
        """The constant scalars ``values`` hold; CannotLower when one is computed at run time or not a scalar."""
        arrays = [self.constant(v) for v in values]
        if any(a is None for a in arrays):
            raise CannotLower(f"{what} are computed at run time; irc needs them constant")
        if any(a.size != 1 for a in arrays):
            raise CannotLower(f"{what} must be scalars, got shapes {[list(a.shape) for a in arrays]}")
        return [a.reshape(()).item() for a in arrays]

    def rank(self, v: Value) -> int:
        return len(self.shape(v))

    # ----- partly known int vectors ---------------------------------------------------------------------------
    def dims_value(self, dims: Sequence[Dim], runtime: Value | None, dtype: DType = DType.i32,
                   scalar: bool = False) -> Value:
        """The value of an int vector whose entries are ``dims``: a constant when all are known, else
        ``runtime`` (the op computing it at run time) remembered with what is known of it."""
        if all(isinstance(d, int) for d in dims):
            array = np.asarray(dims, dtype=dtype.numpy)
            return self.const(array.reshape(()) if scalar else array)
        if runtime is None:
            raise CannotLower(f"cannot compute {_fmt_dims(dims)} at run time")
        self.symbolic[runtime] = tuple(dims)
        return runtime

    def dims_vector(self, dims: Sequence) -> Value:
        """An i32 vector holding ``dims`` at run time: ints as constants, each symbol read from the shape of a
        value that has it (times its factor: ``batch_x16``), a (value, axis) pair read from that value's shape, and
        at most one None, written -1 (for a reshape to infer)."""
        shown = _fmt_dims([None if isinstance(d, tuple) else d for d in dims])
        if sum(d is None for d in dims) > 1 or any(isinstance(d, int) and not 0 <= d < 2**31 for d in dims):
            raise CannotLower(f"cannot compute {shown} at run time")
        parts = []
        for d in dims:
            if isinstance(d, int) or d is None:
                parts.append(self.const(np.asarray([-1 if d is None else d], np.int32)))
                continue
            factor = 1
            if isinstance(d, SymDim) and split_sym(d)[0] in self.sym_sources:
                base, factor = split_sym(d)
                d = self.sym_sources[base]
            if not (isinstance(d, tuple) and len(d) == 2 and isinstance(d[0], Value)) or factor >= 2**31:
                raise CannotLower(f"cannot compute {shown} at run time")
            source, axis = d
            size = self.op("slice", self.op("shape", source), begin=(axis,), size=(1,))
            if factor > 1:
                size = self.op("mul", size, self.const(np.asarray([factor], np.int32)))
            parts.append(size)
        return self.op("concat", *parts, axis=0) if len(parts) > 1 else parts[0]

    def full(self, dims: Sequence[Dim], value, dtype: DType) -> Value:
        """A tensor of shape ``dims`` filled with ``value``; symbolic dims are taken from a value having them."""
        dims = tuple(dims)
        if any(d is None or (isinstance(d, int) and d < 0) for d in dims):
            raise CannotLower(f"cannot make a tensor of shape {_fmt_dims(dims)} (unknown or negative dims)")
        if all(isinstance(d, int) for d in dims):
            if math.prod(dims) <= FOLD_LIMIT:
                return self.const(np.full(dims, value, dtype=dtype.numpy))
            return self.op("broadcast_to", self.const(np.asarray(value, dtype.numpy)), shape=dims)
        base = self.const(np.full([d if isinstance(d, int) else 1 for d in dims], value, dtype=dtype.numpy))
        # select(mask, base, base) broadcasts base to the mask's shape, whatever the mask's values are.
        for axis, d in enumerate(dims):
            if isinstance(d, SymDim):
                mask = self.sym_mask(d, axis, len(dims))
                base = self.op("select", mask, base, base)
        return base

    def sym_mask(self, dim: SymDim, axis: int, rank: int) -> Value:
        """A bool tensor of rank ``rank`` that is 1 everywhere except ``dim`` on ``axis`` (made once per graph)."""
        key = (dim, axis, rank)
        if key not in self._masks:
            self._masks[key] = self._make_mask(dim, axis, rank)
        return self._masks[key]

    def _make_mask(self, dim: SymDim, axis: int, rank: int) -> Value:
        if dim not in self.sym_sources:
            raise CannotLower(f"no value has the symbolic dim {dim}")
        source, src_axis = self.sym_sources[dim]
        src_rank = len(source.type.shape)
        begin = [0] * src_rank
        size = [1] * src_rank
        size[src_axis] = -1
        line = self.op("slice", source, begin=tuple(begin), size=tuple(size))
        shape = [1] * rank
        shape[axis] = -1
        out_shape = tuple(dim if i == axis else 1 for i in range(rank))
        line = self.op("reshape", line, shape=tuple(shape), types=[TensorType(line.type.dtype, out_shape)])
        if line.type.dtype is not DType.bool:
            line = self.op("cast", line, to=DType.bool)
        return line


def _fmt_dims(dims) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _short(attrs: dict) -> str:
    if not attrs:
        return "no attributes"
    parts = []
    for k, v in sorted(attrs.items()):
        text = f"<{v.dtype}{list(v.shape)}>" if isinstance(v, np.ndarray) else repr(v)
        parts.append(f"{k}={text[:60]}")
    return ", ".join(parts)


def ref_value(env: dict[str, list], ref: str):
    """The irc value a TF ref ("node", "node:k") names in ``env``."""
    name, idx = split_ref(ref)
    outs = env.get(name)
    if outs is None and ref in env:  # a function argument spelled with a colon
        outs = env[ref]
    if outs is None:
        raise KeyError(ref)
    if idx >= len(outs) or outs[idx] is None:
        raise CannotLower(f"output {idx} of '{name}' is not available")
    return outs[idx]
