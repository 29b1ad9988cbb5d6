"""tfl-fuse-lstm: the ``while`` a Keras LSTM lowers to, as one ``tfl.unidirectional_sequence_lstm``.

Keras runs an LSTM as a loop over time steps (``tf.while_loop``), which the frontend keeps as a ``while``. TFLite has
the whole layer as one fused operator, many times faster than a WHILE that runs a dozen operators per step. The
pass recognizes the loop by what its body computes, not by names:

- the step's input ``x_t`` read from a loop-invariant sequence at the step counter (``gather(seq, t)``);
- ``z = x_t @ kernel + h @ recurrent_kernel + bias`` (constant weights; the adds in any order and grouping, the
  bias possibly a matmul's own), split into four along the last axis;
- ``c' = sigmoid(z1) * c + sigmoid(z0) * tanh(z2)`` and ``h' = sigmoid(z3) * tanh(c')`` (products either way
  round), ``h'`` and ``c'`` carried back in the places of ``h`` and ``c``;
- the counter starting at 0 and going up by 1 while ``t < T``, T the sequence's length (a second counter bounded
  by at least T, Keras's ``maximum_iterations``, may run beside it), and every step's ``h'`` written into a
  ``[T, batch, units]`` buffer at ``t`` (when the loop keeps the whole sequence).

Then the loop's results are the fused op's output (the buffer, time-major), its last step (the final h) and
the sequence and counters' known final values. Anything else about the loop (another carried value that changes,
a final c that is used, other activations, a peephole) leaves the ``while`` as it is: the pass only rewrites what
it fully understands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irc.ir.graph import Graph, Location, Node, Value
from irc.passes import register_pass
from irc.passes.base import Pass
from irc.passes.util import real_array

# ops that only pass a value along as far as a counter or an index is concerned
_SAME_INDEX = ("reshape", "squeeze", "cast")


@dataclass
class Cell:
    """What the body of an LSTM loop computes, found by ``match_cell``."""

    h: int  # positions of h and c among the carried values
    c: int
    x_t: Value  # the body value of the step's input
    kernel: np.ndarray  # [features, 4 units], Keras's gate order i, f, g, o
    recurrent: np.ndarray  # [units, 4 units]
    bias: np.ndarray  # [4 units]


class Constants:
    """The constant value of a region value: a constant, or a loop-invariant carried value whose initial value
    is a constant (TensorFlow passes a loop's captured weights and bounds in as carried values)."""

    def __init__(self, loop: Node):
        self.loop = loop
        body = loop.regions[1]
        self.invariant = {p for p, (arg, out) in enumerate(zip(body.inputs, body.outputs.values())) if out is arg}

    def array(self, value: Value) -> np.ndarray | None:
        array = real_array(value)
        if array is not None:
            return array
        for region in self.loop.regions:
            if value in region.inputs:
                position = region.inputs.index(value)
                return real_array(self.loop.operands[position]) if position in self.invariant else None
        return None

    def int(self, value: Value) -> int | None:
        array = self.array(value)
        if array is None or array.size != 1 or array.dtype.kind not in "iu":
            return None
        return int(array.reshape(-1)[0])


def _producer(value: Value, *ops: str) -> Node | None:
    node = value.producer
    return node if node is not None and node.op in ops else None


def _pair(node: Node | None) -> list[tuple[Value, Value]]:
    """The operands of a commutative binary node, both ways round ([] when there is no node)."""
    if node is None or len(node.operands) != 2:
        return []
    a, b = node.operands
    return [(a, b), (b, a)]


def _activation_of(value: Value, op: str) -> Value | None:
    node = _producer(value, op)
    return node.operands[0] if node is not None else None


def _terms(value: Value, out: list, consts: Constants) -> bool:
    """The summands of an add tree: ("matmul", a, weights [k, n]) or ("const", array); False on anything else."""
    node = value.producer
    if node is not None and node.op == "add":
        return all(_terms(v, out, consts) for v in node.operands)
    if node is not None and node.op == "matmul" and not node.attr("transpose_a"):
        w = consts.array(node.operands[1])
        if w is None or w.ndim != 2:
            return False
        out.append(("matmul", node.operands[0], w.T if node.attr("transpose_b") else w))
        return len(node.operands) < 3 or _terms(node.operands[2], out, consts)
    array = consts.array(value)
    if array is not None:
        out.append(("const", array))
        return True
    return False


def _gates(h_new: Value, c_new: Value, c_arg: Value) -> list[Value] | None:
    """z0..z3 (the four gate pre-activations) when h' and c' are the LSTM's update of c_arg, else None."""
    for o_act, tanh_c in _pair(_producer(h_new, "mul")):
        z3 = _activation_of(o_act, "sigmoid")
        if z3 is None or _activation_of(tanh_c, "tanh") is not c_new:
            continue
        for forget, update in _pair(_producer(c_new, "add")):
            for f_act, c_old in _pair(_producer(forget, "mul")):
                z1 = _activation_of(f_act, "sigmoid")
                if z1 is None or c_old is not c_arg:
                    continue
                for i_act, g_act in _pair(_producer(update, "mul")):
                    z0, z2 = _activation_of(i_act, "sigmoid"), _activation_of(g_act, "tanh")
                    if z0 is not None and z2 is not None:
                        return [z0, z1, z2, z3]
    return None


def _split_of(gates: list[Value]) -> Value | None:
    """The value z whose split into four equal parts along its last axis gives ``gates`` in order."""
    node = _producer(gates[0], "split")
    if node is None or any(g.producer is not node or g.index != i for i, g in enumerate(gates)):
        return None
    z = node.operands[0]
    rank = z.type.rank
    sizes = node.attr("sizes")
    if rank is None or node.attr("axis") % rank != rank - 1 or len(sizes) != 4 or len(set(sizes)) != 1:
        return None
    return z


def _depends_on(value: Value, args: set[Value]) -> bool:
    stack, seen = [value], set()
    while stack:
        v = stack.pop()
        if v in args:
            return True
        if v.producer is not None and v.producer not in seen:
            seen.add(v.producer)
            stack.extend(v.producer.operands)
    return False


def match_cell(loop: Node, consts: Constants) -> Cell | None:
    """The LSTM cell a loop's body computes, when it computes one exactly."""
    body = loop.regions[1]
    args, results = body.inputs, list(body.outputs.values())
    for h, h_new in enumerate(results):
        for c, c_new in enumerate(results):
            if h == c:
                continue
            gates = _gates(h_new, c_new, args[c])
            z = _split_of(gates) if gates is not None else None
            terms: list = []
            if z is None or not _terms(z, terms, consts):
                continue
            products = [t for t in terms if t[0] == "matmul"]
            if len(products) != 2:
                continue
            recurrent = [t for t in products if t[1] is args[h]]
            inputs = [t for t in products if t[1] is not args[h]]
            if len(recurrent) != 1 or len(inputs) != 1 or _depends_on(inputs[0][1], {args[h], args[c]}):
                continue
            units4 = recurrent[0][2].shape[1]
            if recurrent[0][2].shape != (units4 // 4, units4) or inputs[0][2].shape[1] != units4:
                continue
            bias = np.zeros(units4, np.float32)
            try:
                for t in terms:
                    if t[0] == "const":
                        bias = bias + np.broadcast_to(t[1], (units4,))
            except ValueError:
                continue
            return Cell(h, c, inputs[0][1], inputs[0][2].astype(np.float32), recurrent[0][2].astype(np.float32),
                        bias.astype(np.float32))
    return None


def _index_source(value: Value) -> Value:
    while value.producer is not None and value.producer.op in _SAME_INDEX:
        value = value.producer.operands[0]
    return value


def _counter_step(loop: Node, position: int, consts: Constants) -> bool:
    """Whether carried value ``position`` starts at 0 and goes up by exactly 1 each step."""
    body = loop.regions[1]
    arg, result = body.inputs[position], list(body.outputs.values())[position]
    return (real_array(loop.operands[position]) is not None and consts.int(loop.operands[position]) == 0
            and any(a is arg and consts.int(b) == 1 for a, b in _pair(_producer(result, "add"))))


RUN_TIME_LENGTH = -1  # a bound that is the sequence's length, known only at run time


def _is_length_of(value: Value, sequence: Value) -> bool:
    """Whether ``value`` is ``shape(sequence)[0]`` (as a strided slice or a gather of the shape)."""
    node = value.producer
    if node is None or node.op not in ("strided_slice", "gather") or not node.operands:
        return False
    shape = _producer(node.operands[0], "shape")
    if shape is None or shape.operands[0] is not sequence:
        return False
    if node.op == "gather":
        return real_array(node.operands[1]) is not None and int(real_array(node.operands[1]).reshape(-1)[0]) == 0
    return (tuple(node.attr("begin")) == (0,) and tuple(node.attr("strides")) == (1,)
            and node.attr("shrink_axis_mask") == 1 and not node.attr("begin_mask"))


def _bounds(cond: Graph, consts: Constants, sequence: int) -> dict[int, int] | None:
    """{carried position: bound} when cond is a conjunction of ``counter < bound`` tests, each bound a constant
    or the sequence's run-time length (``RUN_TIME_LENGTH``), else None."""
    loop = consts.loop
    bounds: dict[int, int] = {}
    stack = [next(iter(cond.outputs.values()))]
    while stack:
        v = stack.pop()
        node = v.producer
        if node is not None and node.op == "logical_and":
            stack.extend(node.operands)
            continue
        if node is None or node.op != "less":
            return None
        arg, limit = _index_source(node.operands[0]), consts.int(node.operands[1])
        if limit is None and node.operands[1] in cond.inputs:
            at = cond.inputs.index(node.operands[1])
            if at in consts.invariant and _is_length_of(loop.operands[at], loop.operands[sequence]):
                limit = RUN_TIME_LENGTH
        if limit is None or arg not in cond.inputs:
            return None
        position = cond.inputs.index(arg)
        if position in bounds and bounds[position] != limit:
            return None
        bounds[position] = limit
    return bounds


@dataclass
class Loop:
    """An LSTM loop found in a ``while``: the cell, the step counter, the sequence and the buffer of outputs."""

    cell: Cell
    counter: int
    sequence: int
    steps: int | None  # None: known only at run time, the length of the sequence
    buffer: int | None  # position of the carried [T, batch, units] buffer of every step's h, if any
    counters: tuple[int, ...] = ()  # the step counter and any other counter bounded in cond
    keeps_all: bool = True  # the buffer keeps every step's h ([T, batch, units]), or only the last ([1, ...])


def match_loop(node: Node) -> Loop | None:
    cond, body = node.regions
    consts = Constants(node)
    cell = match_cell(node, consts)
    if cell is None:
        return None
    read = _producer(cell.x_t, "gather")
    if read is None or read.attr("axis") != 0 or read.attr("batch_dims") != 0:
        return None
    seq_arg, index = read.operands[0], _index_source(read.operands[1])
    if seq_arg not in body.inputs or index not in body.inputs:
        return None
    sequence, counter = body.inputs.index(seq_arg), body.inputs.index(index)
    seq_type = node.operands[sequence].type
    if sequence not in consts.invariant or seq_type.shape is None or len(seq_type.shape) != 3:
        return None
    steps = seq_type.shape[0] if isinstance(seq_type.shape[0], int) else None
    bounds = _bounds(cond, consts, sequence)
    if bounds is None or bounds.get(counter) != (RUN_TIME_LENGTH if steps is None else steps):
        return None
    for position, bound in bounds.items():  # every bounded counter starts at 0, steps by 1 and allows every step
        allows_all = bound == RUN_TIME_LENGTH or (steps is not None and bound >= steps)
        if not allows_all or not _counter_step(node, position, consts):
            return None
    trip = node.attr("max_trip_count")
    if 0 <= trip and (steps is None or trip < steps):
        return None
    buffer, keeps_all = None, True
    for position, (arg, result) in enumerate(zip(body.inputs, body.outputs.values())):
        if position in {cell.h, cell.c, sequence, *bounds} or position in consts.invariant:
            continue
        written = _writes_step(result, arg, index, list(body.outputs.values())[cell.h], consts)
        if buffer is None and written is not None:
            buffer, keeps_all = position, written == "all"
            continue
        return None  # a carried value the pass does not understand
    return Loop(cell, counter, sequence, steps, buffer, tuple(bounds), keeps_all)


def _writes_step(result: Value, buffer: Value, counter: Value, h_new: Value, consts: Constants) -> str | None:
    """"all" when ``result`` is ``buffer`` with step ``counter``'s h written at [counter, 0, 0] (TensorFlow's
    TensorListSetItem, as the frontend lowers it), "last" when it is written at [0, 0, 0] of a one-item buffer
    (Keras keeps only the last output so), else None."""
    node = _producer(result, "dynamic_update_slice")
    if node is None or node.operands[0] is not buffer:
        return None
    update, start = node.operands[1], node.operands[2]
    grown = _producer(update, "expand_dims", "reshape")
    if grown is None or grown.operands[0] is not h_new or update.type.shape != (1, *h_new.type.shape):
        return None
    if grown.op == "expand_dims" and grown.attr("axis") != 0:
        return None
    packed = _producer(start, "pack")
    if packed is not None:
        first, rest = packed.operands[0], packed.operands[1:]
        return "all" if _index_source(first) is counter and all(consts.int(v) == 0 for v in rest) else None
    origin = consts.array(start)
    if origin is not None and not origin.any() and buffer.type.shape is not None and buffer.type.shape[0] == 1:
        return "last"
    return None


def fuse_loop(graph: Graph, node: Node, loop: Loop) -> bool:
    """Replaces ``node`` (an LSTM ``while``) by ``tfl.unidirectional_sequence_lstm``; False when the final c, which
    the fused op does not give, is used."""
    cell = loop.cell
    if node.results[cell.c].uses or graph.is_output(node.results[cell.c]):
        return False
    sequence, h0, c0 = (node.operands[p] for p in (loop.sequence, cell.h, cell.c))
    loc = Location.fused([node.loc])
    x, time_major = _batch_major(graph, sequence, loc)
    weights = [graph.const(a, loc=loc) for a in (cell.kernel, cell.recurrent, cell.bias)]
    fused = graph.add("tfl.unidirectional_sequence_lstm", [x, *weights, h0, c0], {"time_major": time_major},
                      loc=loc)
    y = fused.result
    time_axis = 0 if time_major else 1
    last = graph.op("strided_slice", y, begin=tuple(-1 if a == time_axis else 0 for a in range(3)), end=(0, 0, 0),
                    strides=(1, 1, 1), begin_mask=7 ^ (1 << time_axis), end_mask=7 ^ (1 << time_axis),
                    shrink_axis_mask=1 << time_axis, loc=loc)
    replacements = {cell.h: last, loop.sequence: sequence}
    if loop.buffer is not None and loop.keeps_all:  # every step's h, time-major as the loop wrote them
        replacements[loop.buffer] = y if time_major else graph.op("transpose", y, perm=(1, 0, 2), loc=loc)
    elif loop.buffer is not None:  # the last h alone, as [1, batch, units]
        replacements[loop.buffer] = graph.op("expand_dims", last, axis=0, loc=loc)
    for position, (arg, result) in enumerate(zip(node.regions[1].inputs, node.regions[1].outputs.values())):
        if result is arg:
            replacements[position] = node.operands[position]
    if loop.steps is None:  # the loop stops when the step counter reaches T, the others with it
        length = graph.op("shape", sequence, dtype=node.results[loop.counter].type.dtype, loc=loc)
        length = graph.op("strided_slice", length, begin=(0,), end=(1,), strides=(1,), shrink_axis_mask=1, loc=loc)
    for position in loop.counters:
        replacements[position] = length if loop.steps is None else \
            graph.const(np.asarray(loop.steps, node.results[position].type.dtype.numpy), loc=loc)
    for position, result in enumerate(node.results):  # match_loop accounted for every carried value
        if position != cell.c:
            graph.replace_all_uses(result, replacements[position])
    graph.erase(node)
    return True


def _batch_major(graph: Graph, sequence: Value, loc: Location) -> tuple[Value, bool]:
    """The fused op's input for time-major ``sequence``: Keras's transpose of a batch-major input undone (through
    the reversal of a backward layer), else the sequence itself, time-major."""
    inner = _time_reversed(sequence)
    transposed = _producer(inner if inner is not None else sequence, "transpose")
    if transposed is None or tuple(transposed.attr("perm")) != (1, 0, 2):
        return sequence, True
    x = transposed.operands[0]
    if inner is not None:
        x = graph.op("reverse", x, axes=(1,), loc=loc)
    return x, False


def _time_reversed(sequence: Value) -> Value | None:
    """``s`` when ``sequence`` is ``s`` reversed along its first axis (a ``reverse``, or the stride -1
    ``strided_slice`` TensorFlow's ReverseV2 lowers to), else None."""
    node = sequence.producer
    if node is None:
        return None
    if node.op == "reverse" and tuple(a % 3 for a in node.attr("axes")) == (0,):
        return node.operands[0]
    if node.op == "strided_slice" and tuple(node.attr("strides")) == (-1, 1, 1) and node.attr("begin_mask") == 7 \
            and node.attr("end_mask") == 7 and not any(node.attr(m) for m in
                                                       ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask")):
        return node.operands[0]
    return None


@register_pass
@dataclass(frozen=True)
class TflFuseLstm(Pass):
    """TFLite: a while running a Keras LSTM cell over a sequence -> tfl.unidirectional_sequence_lstm."""

    name = "tfl-fuse-lstm"
    walks_regions = "self"  # it replaces while nodes, in every graph, itself

    def apply(self, graph, stats):
        for g in graph.all_graphs():
            for node in [n for n in g.nodes if n.op == "while"]:
                loop = match_loop(node)
                if loop is not None and fuse_loop(g, node, loop):
                    stats["LSTM loops fused"] += 1

