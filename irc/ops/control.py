"""Control flow: ops that own regions (nested graphs), as TensorFlow's functional While and If.

A region is an ordinary Graph isolated from above: its inputs are its arguments, its outputs (in order) its
results, and it uses no value of an enclosing graph (see docs/ir.md). The ops here give their result types from
their regions' signatures (``infer_regions``, which the verifier also runs) and run them through the interpreter
(``evaluate``), with ``irc.limits``' ``max_loop_iterations`` bounding the iterations of a run.

- ``while(init...)`` with regions (cond, body): cond maps the n carried values to one bool scalar, body maps them
  to their next values, of the same types. A carried dimension that changes across iterations is ``?`` in the
  regions' arguments (the join of every iteration's type); the results have the arguments' types.
- ``if(pred, inputs...)`` with regions (then, else): each maps the inputs to k results; the branches agree in
  count and dtypes, and the results' shapes are the join of theirs. TensorFlow's ``Case`` becomes nested ``if``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from irc.ir.types import DType, TensorType, join_types, shapes_compatible
from irc.ops.base import Attr, OpDef, register

# Runs a region on arrays (its arguments, in order) and returns its results in order.
RegionRunner = Callable[[object, list[np.ndarray]], list[np.ndarray]]


def _signature(region) -> tuple[list[TensorType], list[TensorType]]:
    return [v.type for v in region.inputs], [v.type for v in region.outputs.values()]


def _fits(value: TensorType, slot: TensorType) -> bool:
    """Whether a value of type ``value`` may be passed where ``slot`` is expected: same dtype, compatible shape."""
    return value.dtype == slot.dtype and shapes_compatible(value.shape, slot.shape)


def _check_args(region, name: str, types: Sequence[TensorType], what: str) -> None:
    args, _ = _signature(region)
    if len(args) != len(types):
        raise ValueError(f"region '{name}' takes {len(args)} argument(s), the op passes {len(types)} {what}")
    for i, (arg, t) in enumerate(zip(args, types)):
        if not _fits(t, arg):
            raise ValueError(f"region '{name}' argument {i} is {arg}, but {what} {i} is {t}")


def _is_bool_scalar(t: TensorType) -> bool:
    return t.dtype is DType.bool and (t.shape is None or len(t.shape) == 0)


class RegionOp(OpDef):
    """An op that owns regions: no plain kernel, the interpreter calls ``evaluate`` with a region runner."""

    traits = frozenset()  # not PURE until passes compare regions: two loops with equal operands may differ

    def infer(self, types, attrs, consts):
        raise ValueError(f"{self.name} needs its regions ({', '.join(self.regions)}) to give its result types")

    def kernel(self, inputs, attrs):
        raise NotImplementedError(f"{self.name} runs its regions: use irc.ir.interpreter.run_node")

    def evaluate(self, args: list[np.ndarray], attrs: dict, regions: Sequence, run_region: RegionRunner,
                 where: str) -> list[np.ndarray]:
        raise NotImplementedError


@register
class While(RegionOp):
    name = "while"
    summary = "Loop: while cond(values) holds, values = body(values); results are the final values."
    operands = ("init*",)
    regions = ("cond", "body")
    # At most this many iterations run, when known (a static trip count, TF's maximum_iterations); -1: unknown.
    attrs: ClassVar[dict[str, Attr]] = {"max_trip_count": Attr("int", -1)}

    def infer_regions(self, types, attrs, regions):
        cond, body = regions
        _check_args(cond, "cond", types, "loop value")
        _check_args(body, "body", types, "loop value")
        cond_args, cond_results = _signature(cond)
        body_args, body_results = _signature(body)
        if len(cond_results) != 1 or not _is_bool_scalar(cond_results[0]):
            got = ", ".join(map(str, cond_results)) or "nothing"
            raise ValueError(f"region 'cond' must return one bool[] value, returns {got}")
        if len(body_results) != len(body_args):
            raise ValueError(f"region 'body' returns {len(body_results)} value(s), the loop carries {len(body_args)}")
        for i, (arg, cond_arg, out) in enumerate(zip(body_args, cond_args, body_results)):
            if not _fits(out, arg):
                raise ValueError(f"region 'body' changes loop value {i} from {arg} to {out} (a dimension that "
                                 "varies across iterations is ? in the loop's types)")
            if not _fits(cond_arg, arg):
                raise ValueError(f"regions 'cond' and 'body' disagree on loop value {i}: {cond_arg} and {arg}")
        if attrs["max_trip_count"] < -1:
            raise ValueError(f"max_trip_count is {attrs['max_trip_count']}, neither a count nor -1 (unknown)")
        return list(body_args)

    def evaluate(self, args, attrs, regions, run_region, where):
        from irc.ir.interpreter import count_iteration

        cond, body = regions
        values = list(args)
        bound = attrs["max_trip_count"]
        iterations = 0
        while bool(np.asarray(run_region(cond, values)[0]).reshape(-1)[0]):
            if bound >= 0 and iterations >= bound:
                break
            count_iteration(where)
            values = run_region(body, values)
            iterations += 1
        return values


@register
class If(RegionOp):
    name = "if"
    summary = "Conditional: then(inputs) if pred else else(inputs)."
    operands = ("pred", "inputs*")
    regions = ("then", "else")

    def infer_regions(self, types, attrs, regions):
        pred, inputs = types[0], types[1:]
        if not _is_bool_scalar(pred):
            raise ValueError(f"the condition is {pred}, not a bool[] scalar")
        then, other = regions
        _check_args(then, "then", inputs, "input")
        _check_args(other, "else", inputs, "input")
        _, then_results = _signature(then)
        _, else_results = _signature(other)
        if len(then_results) != len(else_results):
            raise ValueError(f"the branches disagree: 'then' returns {len(then_results)} value(s), 'else' "
                             f"returns {len(else_results)}")
        results = []
        for i, (a, b) in enumerate(zip(then_results, else_results)):
            if a.dtype != b.dtype or (a.rank is not None and b.rank is not None and a.rank != b.rank):
                raise ValueError(f"the branches disagree on result {i}: 'then' returns {a}, 'else' returns {b}")
            results.append(join_types(a, b))
        return results

    def evaluate(self, args, attrs, regions, run_region, where):
        taken = regions[0] if bool(np.asarray(args[0]).reshape(-1)[0]) else regions[1]
        return run_region(taken, list(args[1:]))
