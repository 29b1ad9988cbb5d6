"""TFLite emitters for control flow: ``while`` as WHILE and ``if`` as IF, each region a subgraph of its own.

TFLite's WHILE takes the loop's carried values as its inputs and gives their final values as its outputs, by
position; its condition subgraph maps them to one bool and its body subgraph to their next values, as irc's
``while`` regions do. IF takes the condition, then the branches' inputs. ``b.region`` writes a region (and the
regions nested in it) as subgraphs after the ones already written, so subgraph 0 stays the main graph.

A ``while`` whose trip count is bounded (``max_trip_count``, TensorFlow's ``maximum_iterations``) carries one more
value in TFLite, a step counter, and its condition subgraph ends in ``counter < bound and cond(values)``.
"""

from __future__ import annotations

import numpy as np

from irc.backends.tflite.ops import emits
from irc.formats.tflite.flatbuffer import Buffer, Operator, Tensor, options
from irc.ir.graph import Node
from irc.ir.types import DType, TensorType


def _region_name(b, node: Node, role: str) -> str:
    return f"{b.name_of(node)}/{role}"


@emits("while")
def while_(b, node):
    cond, body = node.regions
    cond_index = b.region(cond, _region_name(b, node, "cond"))
    body_index = b.region(body, _region_name(b, node, "body"))
    inputs = [b.tensor(v) for v in node.operands]
    outputs = [b.result(r) for r in node.results]
    bound = node.attr("max_trip_count")
    if bound >= 0:
        _count_steps(b, cond_index, body_index, bound)
        counter = b.int_constant(0)
        inputs = [counter, *inputs]
        outputs = [b.temp(TensorType(DType.i32, ()), "steps"), *outputs]
    b.op("WHILE", inputs, outputs, {"cond_subgraph_index": cond_index, "body_subgraph_index": body_index})


@emits("if")
def if_(b, node):
    then, other = node.regions
    then_index = b.region(then, _region_name(b, node, "then"))
    else_index = b.region(other, _region_name(b, node, "else"))
    b.op("IF", [b.tensor(v) for v in node.operands], [b.result(r) for r in node.results],
         {"then_subgraph_index": then_index, "else_subgraph_index": else_index})


def _count_steps(b, cond_index: int, body_index: int, bound: int) -> None:
    """Adds a leading int32 step counter to the written cond and body subgraphs: the cond also requires
    ``counter < bound``, the body adds one to it."""
    cond, body = b.subgraphs[cond_index], b.subgraphs[body_index]
    for sg in (cond, body):
        sg.tensors.append(Tensor("steps", [], "INT32"))
        sg.inputs.insert(0, len(sg.tensors) - 1)
    limit = _scalar(b, cond, bound, "max_trip_count")
    below = _new(cond, "steps_below_bound", "BOOL")
    both = _new(cond, "while_cond", "BOOL")
    cond.operators += [_op(b, "LESS", [cond.inputs[0], limit], [below]),
                       _op(b, "LOGICAL_AND", [below, cond.outputs[0]], [both])]
    cond.outputs[0] = both
    one = _scalar(b, body, 1, "one")
    following = _new(body, "next_steps", "INT32")
    body.operators.append(_op(b, "ADD", [body.inputs[0], one], [following]))
    body.outputs.insert(0, following)


def _new(sg, name: str, type: str) -> int:
    sg.tensors.append(Tensor(name, [], type))
    return len(sg.tensors) - 1


def _scalar(b, sg, value: int, name: str) -> int:
    b.buffers.append(Buffer(np.asarray(value, "<i4")))
    sg.tensors.append(Tensor(name, [], "INT32", len(b.buffers) - 1))
    return len(sg.tensors) - 1


def _op(b, code: str, inputs: list[int], outputs: list[int]) -> Operator:
    opts = {"ADD": {"fused_activation_function": "NONE"}}.get(code)
    return Operator(b.opcode(code), inputs, outputs, options(code, **opts) if opts else None)
