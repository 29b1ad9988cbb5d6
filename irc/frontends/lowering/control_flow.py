"""While, If and Case as region ops, and the TensorList ops Keras' RNN loops and tf.TensorArray use.

A ``While`` becomes a ``while`` node whose cond and body regions are lowered from the TF functions, an ``If`` an
``if`` node with then and else regions, a ``Case`` nested ``if``s (irc/ops/control.py, docs/ir.md). Loops are
not unrolled: a trip count known only at run time works as a constant one does. A region is lowered like a
graph of its own (isolated from above): its arguments are the op's operands that are not constants; a constant
operand (a weight captured by the loop, which the body passes on unchanged) becomes a constant inside the region
instead, so the region folds and fuses as the top level does. A loop value whose shape changes across
iterations gets ``?`` there: the body is lowered again with the joined types until they settle.
An ``If`` or ``Case`` whose condition is a constant inlines the branch taken.

TensorLists (``variant`` tensors) become plain tensors: a list of n items of shape S is an ``[n, *S]`` tensor
(a list of run-time length is made with ``fill``). GetItem is a ``gather``, SetItem a ``dynamic_update_slice``,
Stack the tensor itself, PushBack a ``concat``, PopBack two ``strided_slice``s.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from irc import limits
from irc.errors import InputError
from irc.frontends.lowering import lower_nodes, lowers
from irc.frontends.lowering.context import CannotLower, Lowerer, ref_value, tf_dtype
from irc.frontends.tfgraph import TFFunction, TFNode
from irc.ir.graph import Graph, Value
from irc.ir.liveness import remove_dead
from irc.ir.types import DType, SymDim, TensorType, join_types

MAX_SETTLE = 4  # lowerings of a loop body before the loop values' types must have settled


@dataclass
class PendingList:
    """A TensorList made without its full element shape (``tf.TensorArray(size=6)``): it becomes an
    ``[n, *S]`` tensor where the first item set shows S. A loop that sets its items is lowered once as a probe
    to learn S (``learned``), and the list is made before the loop."""

    count: Value | int
    element: tuple | None
    dtype: DType
    learned: TensorType | None = None


def _function(cx: Lowerer, name: str) -> TFFunction:
    fn: TFFunction | None = cx.tfgraph.functions.get(name)
    if fn is None:
        raise CannotLower(f"function {name!r} is missing from the model")
    return fn


def call_function(cx: Lowerer, name: str, args: list) -> list:
    """Lowers the body of TF function ``name`` into the graph being built, its arguments bound to ``args``."""
    fn = _function(cx, name)
    if len(fn.inputs) != len(args):
        raise CannotLower(f"function {name!r} takes {len(fn.inputs)} arguments, got {len(args)}")
    env: dict[str, list] = {arg: [value] for (arg, _), value in zip(fn.inputs, args)}
    saved = cx.node, cx.loc
    lower_nodes(cx, fn.nodes, env)
    cx.node, cx.loc = saved
    return [ref_value(env, ref) for _, ref in fn.outputs]


def build_region(cx: Lowerer, name: str, arg_names: Sequence[str], arg_types: Sequence[TensorType],
                 fill: Callable[[list[Value]], list]) -> Graph:
    """A region whose arguments have ``arg_types``; ``fill(arguments)`` lowers its contents (into ``cx.graph``,
    which is the region meanwhile) and returns its results."""
    depth = getattr(cx, "region_depth", 0) + 1
    if depth > limits.MAX_REGION_DEPTH:
        raise InputError(f"loops and conditionals nest more than {limits.MAX_REGION_DEPTH} deep",
                         where=cx.tfgraph.source)
    region = Graph(name)
    saved = cx.graph, cx.sym_sources, cx._masks, cx._folded, getattr(cx, "region_depth", 0)
    cx.graph, cx.sym_sources, cx._masks, cx._folded, cx.region_depth = region, {}, {}, {}, depth
    try:
        args = []
        taken: set[str] = set()
        for i, (arg_name, t) in enumerate(zip(_short_names(arg_names), arg_types)):
            unique = arg_name if arg_name and arg_name not in taken else f"arg{i}"
            taken.add(unique)
            value = region.add_input(unique, t)
            for axis, d in enumerate(t.shape or ()):
                if isinstance(d, SymDim):
                    cx.sym_sources.setdefault(d, (value, axis))
            args.append(value)
        outs = fill(args)
        for i, out in enumerate(outs):
            if not isinstance(out, Value) or (out.producer is not None and out.producer.graph is not region):
                raise CannotLower(f"region '{name}' result {i} is not a tensor irc tracks")
            region.set_output(str(i), out)
    finally:
        cx.graph, cx.sym_sources, cx._masks, cx._folded, cx.region_depth = saved
    remove_dead(region)
    return region


def _short_names(names: Sequence[str]) -> list[str]:
    """TF function argument names without the prefix they all share (``functional_1_lstm_1_while_``)."""
    names = list(names)
    if len(names) < 2:
        return names
    prefix = os.path.commonprefix(names)
    cut = prefix.rfind("_") + 1
    return [name[cut:] for name in names] if cut and all(len(n) > cut for n in names) else names


def _local(cx: Lowerer, values: Sequence, passed: Sequence[int], args: Sequence[Value]) -> list:
    """The operands as a region sees them: its arguments where passed, constants made inside it otherwise."""
    local = list(values)
    for k, i in enumerate(passed):
        local[i] = args[k]
    for i, v in enumerate(values):
        if i not in passed:
            local[i] = cx.const(v.constant)
    return local


def _tensors(values: Sequence, what: str) -> None:
    for i, v in enumerate(values):
        if not isinstance(v, Value):
            raise CannotLower(f"{what} {i} is not a tensor irc tracks")


def _passed_through(fn: TFFunction) -> set[int]:
    """The loop values a body function returns unchanged (directly or through Identity nodes)."""
    identity = {n.name: n.inputs[0] for n in fn.nodes if n.op in ("Identity", "IdentityN") and n.inputs}
    args = {name: i for i, (name, _) in enumerate(fn.inputs)}
    same = set()
    for i, (_, ref) in enumerate(fn.outputs):
        seen = 0
        while ref.split(":")[0] in identity and seen < len(identity):
            ref, seen = identity[ref.split(":")[0]], seen + 1
        name = ref.split(":")[0]
        if args.get(name) == i and (ref == name or ref.endswith(":0")):
            same.add(i)
    return same


@lowers("While", "StatelessWhile")
def while_loop(cx: Lowerer, node: TFNode, args: list) -> list:
    """A ``while`` node: cond and body regions from the TF functions, the non-constant loop values carried."""
    cond_fn, body_fn = _function(cx, node.attrs["cond"].name), _function(cx, node.attrs["body"].name)
    if len(body_fn.inputs) != len(args) or len(body_fn.outputs) != len(args) or len(cond_fn.inputs) != len(args):
        raise CannotLower(f"its functions take or return other than its {len(args)} loop values")
    args = _make_pending_lists(cx, args, body_fn)
    _tensors(args, "loop value")
    invariant = _passed_through(body_fn)
    carried = [i for i, v in enumerate(args) if not (v.is_constant and i in invariant)]
    types = [args[i].type for i in carried]

    def lowering(fn: TFFunction, results: Callable[[list], list]):
        return lambda values: results(call_function(cx, fn.name, _local(cx, args, carried, values)))

    for _ in range(MAX_SETTLE):
        body = build_region(cx, "body", [body_fn.inputs[i][0] for i in carried], types,
                            lowering(body_fn, lambda o: [o[i] for i in carried]))
        outs = list(body.outputs.values())
        joined = []
        for i, (t, out) in zip(carried, zip(types, outs)):
            if t.dtype != out.type.dtype:
                raise CannotLower(f"its body turns loop value {i} from {t.dtype.value} into {out.type.dtype.value}")
            joined.append(join_types(t, out.type))
        if joined == types:
            break
        types = joined
    else:
        raise CannotLower(f"the shapes of its loop values do not settle after {MAX_SETTLE} lowerings of the body")
    cond = build_region(cx, "cond", [cond_fn.inputs[i][0] for i in carried], types,
                        lowering(cond_fn, lambda o: [_bool_scalar(cx, o[0], "its condition")]))
    loop = cx.graph.add("while", [args[i] for i in carried], regions=[cond, body], loc=cx.loc)
    results = list(args)
    for k, i in enumerate(carried):
        results[i] = loop.results[k]
    return results


def _make_pending_lists(cx: Lowerer, args: list, body_fn: TFFunction) -> list:
    """The loop values with each PendingList made a tensor, its element shape learned from a probe lowering of
    the body (the pending lists stay lists there, so the first item set into each shows its shape)."""
    pending = [i for i, a in enumerate(args) if isinstance(a, PendingList)]
    if not pending:
        return args
    others = [i for i in range(len(args)) if i not in pending]
    for i in others:
        if not isinstance(args[i], Value):
            raise CannotLower(f"loop value {i} is not a tensor irc tracks")

    # stand-ins of length 1: the lists' own lengths are values of the enclosing graph, which the probe cannot use
    proxies = {i: PendingList(1, args[i].element, args[i].dtype) for i in pending}

    def probe(values):
        local = list(args)
        for k, i in enumerate(others):
            local[i] = values[k] if not args[i].is_constant else cx.const(args[i].constant)
        for i, proxy in proxies.items():
            local[i] = proxy
        call_function(cx, body_fn.name, local)
        return []

    build_region(cx, "probe", [body_fn.inputs[i][0] for i in others], [args[i].type for i in others], probe)
    made = list(args)
    for i in pending:
        learned = proxies[i].learned
        if learned is None or learned.shape is None:
            raise CannotLower(f"loop value {i} is a TensorList whose element shape irc cannot learn from the loop")
        made[i] = _zeros(cx, args[i].count, learned.shape, args[i].dtype)
    return made


def _bool_scalar(cx: Lowerer, value, what: str) -> Value:
    """A condition as a bool[] (TensorFlow reads a number as true when it is not zero)."""
    if not isinstance(value, Value):
        raise CannotLower(f"{what} is not a tensor")
    shape = value.type.shape
    if shape is None or any(d != 1 for d in shape):
        raise CannotLower(f"{what} has shape {value.type}, not a scalar")
    if shape:
        value = cx.op("reshape", value, shape=())
    if value.type.dtype is not DType.bool:
        value = cx.op("not_equal", value, cx.const(np.zeros((), value.type.dtype.numpy)))
    return value


def emit_if(cx: Lowerer, pred: Value, inputs: Sequence[Value], arg_names: Sequence[str],
            branches: tuple[Callable[[list], list], Callable[[list], list]]) -> list[Value]:
    """An ``if`` node over ``inputs``: each branch lowers from the inputs (constants made inside it) to results."""
    _tensors(inputs, "input")
    passed = [i for i, v in enumerate(inputs) if not v.is_constant]
    names = [arg_names[i] if i < len(arg_names) else f"arg{i}" for i in passed]
    types = [inputs[i].type for i in passed]
    regions = [build_region(cx, label, names, types, lambda values, b=branch: b(_local(cx, inputs, passed, values)))
               for label, branch in zip(("then", "else"), branches)]
    then_types = [v.type for v in regions[0].outputs.values()]
    else_types = [v.type for v in regions[1].outputs.values()]
    if len(then_types) != len(else_types) or any(a.dtype != b.dtype for a, b in zip(then_types, else_types)):
        shown = ", ".join(map(str, then_types)), ", ".join(map(str, else_types))
        raise CannotLower(f"its branches return different types ({shown[0]} and {shown[1]})")
    node = cx.graph.add("if", [pred, *(inputs[i] for i in passed)], regions=regions, loc=cx.loc)
    return list(node.results)


@lowers("If", "StatelessIf")
def if_(cx: Lowerer, node: TFNode, args: list) -> list:
    """A constant condition inlines one branch; otherwise an ``if`` node with the two branches as regions."""
    cond, inputs = args[0], args[1:]
    then_name, else_name = node.attrs["then_branch"].name, node.attrs["else_branch"].name
    if isinstance(cond, Value) and cond.is_constant:
        truth = bool(np.asarray(cond.constant).reshape(-1)[0]) if cond.constant.size else False
        return call_function(cx, then_name if truth else else_name, inputs)
    pred = _bool_scalar(cx, cond, "the condition")
    names = [name for name, _ in _function(cx, then_name).inputs]
    return emit_if(cx, pred, inputs, names, (lambda values: call_function(cx, then_name, values),
                                             lambda values: call_function(cx, else_name, values)))


@lowers("Case", "StatelessCase")
def case(cx: Lowerer, node: TFNode, args: list) -> list:
    """Nested ``if``s: index 0 takes the first branch, else 1 the second, ..., anything else the last (as TF)."""
    index, inputs = args[0], args[1:]
    branches = [f.name for f in node.attrs["branches"]]
    if not branches:
        raise CannotLower("it has no branches")
    if not isinstance(index, Value) or index.type.rank not in (0, None):
        raise CannotLower("its branch index is not a scalar")
    if index.is_constant:
        i = int(np.asarray(index.constant).reshape(-1)[0])
        return call_function(cx, branches[i if 0 <= i < len(branches) else -1], inputs)
    return _case(cx, index, list(inputs), branches, 0)


def _case(cx: Lowerer, index: Value, inputs: list, branches: list[str], first: int) -> list:
    if len(branches) == 1:
        return call_function(cx, branches[0], inputs)
    pred = cx.op("equal", index, cx.const(np.asarray(first, index.type.dtype.numpy)))
    names = ["branch_index", *(name for name, _ in _function(cx, branches[0]).inputs)]
    return emit_if(cx, pred, [index, *inputs], names,
                   (lambda values: call_function(cx, branches[0], values[1:]),
                    lambda values: _case(cx, values[0], values[1:], branches[1:], first + 1)))


# ----- TensorLists: a list of n items of shape S is an [n, *S] tensor ------------------------------------------------
def _element_shape(cx: Lowerer, value: Value) -> tuple | None:
    """An element_shape operand: None for an unknown rank, None entries for unknown dims (-1)."""
    dims = cx.dims(value)
    if dims is None or (value.type.rank == 0 and dims == (-1,)):
        return None
    return tuple(None if isinstance(d, int) and d < 0 else d for d in dims)


def _list(cx: Lowerer, value, what: str = "a TensorList operand") -> Value:
    if isinstance(value, PendingList):
        if value.element is None or None in value.element:
            raise CannotLower(f"{what} is read before an item shows its element shape")
        return _zeros(cx, value.count, value.element, value.dtype)
    if not isinstance(value, Value) or value.type.rank in (0, None):
        raise CannotLower(f"{what} is not a list irc tracks as a tensor")
    return value


def _scalar_index(cx: Lowerer, value: Value) -> Value:
    """An index operand as an i32 scalar."""
    if value.type.shape not in ((), (1,)):
        raise CannotLower(f"the index has shape {value.type}, not a scalar")
    if value.type.shape:
        value = cx.op("reshape", value, shape=())
    if value.type.dtype is not DType.i32:
        value = cx.op("cast", value, to=DType.i32)
    return value


def _size(cx: Lowerer, d, what: str) -> Value:
    """One dimension as an i32 scalar: a known size, a symbolic dim read from a value having it, or a value."""
    if isinstance(d, Value):
        return _scalar_index(cx, d)
    if isinstance(d, tuple):  # (value, axis): the value's size along the axis
        source, axis = d
        return cx.op("gather", cx.op("shape", source), cx.const(np.asarray(axis, np.int32)))
    if isinstance(d, int):
        return cx.const(np.asarray(d, np.int32))
    if isinstance(d, SymDim) and d in cx.sym_sources:
        source, axis = cx.sym_sources[d]
        return cx.op("gather", cx.op("shape", source), cx.const(np.asarray(axis, np.int32)))
    raise CannotLower(f"{what} is not known where the list is made")


def _zeros(cx: Lowerer, count, element: Sequence, dtype: DType) -> Value:
    """An [count, *element] tensor of zeros. ``count`` is an int or a run-time scalar; an element dim is an int,
    a symbolic dim, or (value, axis) for a size read at run time."""
    count_dims = cx.dims(count) if isinstance(count, Value) else (count,)
    n = count_dims[0] if count_dims and len(count_dims) == 1 else None
    if isinstance(n, int) and n < 0:
        raise CannotLower(f"a TensorList of length {n}")
    dims = (n, *element)
    if all(isinstance(d, (int, SymDim)) for d in dims):
        return cx.full(dims, 0, dtype)
    sizes = [_size(cx, count, "its length") if not isinstance(n, (int, SymDim)) else _size(cx, n, "its length")]
    sizes += [_size(cx, d, f"element dim {i}") for i, d in enumerate(element)]
    shape = cx.op("pack", *sizes, axis=0)
    return cx.op("fill", shape, cx.const(np.zeros((), dtype.numpy)))


def _made(cx: Lowerer, lst, item: Value) -> Value:
    """A list as a tensor, a pending one made now that ``item`` shows its element shape."""
    if not isinstance(lst, PendingList):
        return _list(cx, lst)
    if item.type.shape is None:
        raise CannotLower("a TensorList item of unknown rank")
    if lst.learned is None:
        lst.learned = item.type
    dims = tuple(d if d is not None else (item, axis) for axis, d in enumerate(item.type.shape))
    return _zeros(cx, lst.count, dims, lst.dtype)


@lowers("TensorListReserve")
def tensor_list_reserve(cx: Lowerer, node: TFNode, args: list):
    element_shape, count = args
    element, dtype = _element_shape(cx, element_shape), tf_dtype(node.attrs["element_dtype"])
    if element is None or None in element:
        return PendingList(count, element, dtype)
    return _zeros(cx, count, element, dtype)


@lowers("EmptyTensorList")
def empty_tensor_list(cx: Lowerer, node: TFNode, args: list):
    element, dtype = _element_shape(cx, args[0]), tf_dtype(node.attrs["element_dtype"])
    if element is None or None in element:
        return PendingList(0, element, dtype)
    return _zeros(cx, 0, element, dtype)


@lowers("TensorListFromTensor")
def tensor_list_from_tensor(cx: Lowerer, node: TFNode, args: list) -> Value:
    return _list(cx, args[0], "the tensor a TensorList is made from")


@lowers("TensorListGetItem")
def tensor_list_get_item(cx: Lowerer, node: TFNode, args: list) -> Value:
    lst, index = _list(cx, args[0]), args[1]
    return cx.op("gather", lst, _scalar_index(cx, index), axis=0)


@lowers("TensorListSetItem")
def tensor_list_set_item(cx: Lowerer, node: TFNode, args: list) -> Value:
    index, item = args[1], args[2]
    if not isinstance(item, Value):
        raise CannotLower("the item is not a tensor")
    lst = _made(cx, args[0], item)
    if item.type.dtype != lst.type.dtype:
        raise CannotLower(f"the item is not a {lst.type.dtype.value} tensor")
    if node.attrs.get("resize_if_index_out_of_bounds"):
        raise CannotLower("a list that grows when set past its end")
    update = cx.op("expand_dims", item, axis=0)
    zeros = [cx.const(np.zeros((), np.int32))] * (lst.type.rank - 1)
    start = cx.op("pack", _scalar_index(cx, index), *zeros, axis=0)
    return cx.op("dynamic_update_slice", lst, update, start)


@lowers("TensorListStack")
def tensor_list_stack(cx: Lowerer, node: TFNode, args: list) -> Value:
    return _list(cx, args[0])


@lowers("TensorListGather")
def tensor_list_gather(cx: Lowerer, node: TFNode, args: list) -> Value:
    lst, indices = _list(cx, args[0]), args[1]
    if indices.type.dtype not in (DType.i32, DType.i64):
        indices = cx.op("cast", indices, to=DType.i32)
    return cx.op("gather", lst, indices, axis=0)


@lowers("TensorListLength")
def tensor_list_length(cx: Lowerer, node: TFNode, args: list) -> Value:
    lst = _list(cx, args[0])
    n = lst.type.shape[0]
    if isinstance(n, int):
        return cx.const(np.asarray(n, np.int32))
    return cx.op("gather", cx.op("shape", lst), cx.const(np.asarray(0, np.int32)))


@lowers("TensorListPushBack")
def tensor_list_push_back(cx: Lowerer, node: TFNode, args: list) -> Value:
    item = args[1]
    if not isinstance(item, Value):
        raise CannotLower("the item is not a tensor")
    lst = _made(cx, args[0], item)
    if item.type.dtype != lst.type.dtype:
        raise CannotLower(f"the item is not a {lst.type.dtype.value} tensor")
    return cx.op("concat", lst, cx.op("expand_dims", item, axis=0), axis=0)


@lowers("TensorListPopBack")
def tensor_list_pop_back(cx: Lowerer, node: TFNode, args: list) -> list:
    lst = _list(cx, args[0])
    if lst.type.shape[0] == 0:
        raise CannotLower("popping from an empty TensorList")
    rest = cx.op("strided_slice", lst, begin=(0,), end=(-1,), strides=(1,))
    last = cx.op("strided_slice", lst, begin=(-1,), end=(0,), strides=(1,), end_mask=1, shrink_axis_mask=1)
    return [rest, last]


@lowers("TensorListElementShape")
def tensor_list_element_shape(cx: Lowerer, node: TFNode, args: list) -> Value:
    lst = _list(cx, args[0])
    dtype = tf_dtype(node.attrs.get("shape_type", "int32"))
    element = lst.type.shape[1:]
    if all(isinstance(d, int) for d in element):
        return cx.const(np.asarray(element, dtype=dtype.numpy))
    shape = cx.op("shape", lst, dtype=dtype)
    return cx.op("slice", shape, begin=(1,), size=(-1,))
