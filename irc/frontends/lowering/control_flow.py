"""While and If, and the TensorList ops Keras' RNN loops use.

irc's IR has no loops: a While loop is **unrolled**. Its cond function is lowered with the current loop
values; constant folding turns it into a constant (the loop counters start as constants and the body adds
constants to them), and while it is true the body function is lowered once more with the loop values bound
to its arguments. A cond that stays a run-time value (a trip count that depends on the input) cannot be
unrolled and is reported. An If with a constant condition inlines one branch; otherwise both branches are
lowered and each output is a select on the condition (the branches must be side-effect free, as inference
graphs are).

TensorLists (``variant`` tensors) exist only while lowering: a ``TensorList`` holds one irc value per item,
TensorListFromTensor unpacks a tensor, Get/SetItem index it with constant indices, TensorListStack packs it.
What is left in the IR are plain unpack, pack and elementwise ops, which every backend handles.
"""

from __future__ import annotations

from irc.frontends.lowering import lower_nodes, lowers
from irc.frontends.lowering.context import CannotLower, Lowerer, TensorList, ref_value, tf_dtype
from irc.frontends.tfgraph import TFFunction, TFNode
from irc.ir.graph import Value

MAX_ITERATIONS = 4096  # a longer loop would make a graph too big to be useful


def call_function(cx: Lowerer, name: str, args: list) -> list:
    """Lowers the body of TF function ``name`` with its arguments bound to ``args``; returns its outputs."""
    fn: TFFunction | None = cx.tfgraph.functions.get(name)
    if fn is None:
        raise CannotLower(f"function {name!r} is missing from the model")
    if len(fn.inputs) != len(args):
        raise CannotLower(f"function {name!r} takes {len(fn.inputs)} arguments, got {len(args)}")
    env: dict[str, list] = {arg: [value] for (arg, _), value in zip(fn.inputs, args)}
    lower_nodes(cx, fn.nodes, env)
    return [ref_value(env, ref) for _, ref in fn.outputs]


@lowers("While", "StatelessWhile")
def while_loop(cx: Lowerer, node: TFNode, args: list) -> list:
    """Unrolls the loop: lowers cond and body once per iteration while cond folds to True."""
    cond, body = node.attrs["cond"].name, node.attrs["body"].name
    loc = cx.node, cx.loc
    values = list(args)
    for iteration in range(MAX_ITERATIONS + 1):
        (flag,) = call_function(cx, cond, values)[:1]
        cx.node, cx.loc = loc
        if not isinstance(flag, Value) or not flag.is_constant:
            raise CannotLower(f"its condition is computed at run time (after {iteration} iterations), so the loop "
                              "has no static trip count to unroll")
        if not bool(flag.constant.reshape(-1)[0]):
            return values
        if iteration == MAX_ITERATIONS:
            break
        values = call_function(cx, body, values)
        cx.node, cx.loc = loc
    raise CannotLower(f"the loop runs more than {MAX_ITERATIONS} iterations; irc unrolls loops")


@lowers("If", "StatelessIf")
def if_(cx: Lowerer, node: TFNode, args: list) -> list:
    """A constant condition inlines one branch; otherwise both run and select(cond, then, else) picks."""
    cond, inputs = args[0], args[1:]
    then_name, else_name = node.attrs["then_branch"].name, node.attrs["else_branch"].name
    loc = cx.node, cx.loc
    if cond.is_constant:
        taken = then_name if bool(cond.constant.reshape(-1)[0]) else else_name
        outs = call_function(cx, taken, inputs)
        cx.node, cx.loc = loc
        return outs
    then_outs = call_function(cx, then_name, inputs)
    else_outs = call_function(cx, else_name, inputs)
    cx.node, cx.loc = loc
    if cond.type.rank not in (0, None):
        raise CannotLower(f"the condition has shape {cond.type}, not a scalar")
    if cond.type.dtype.value != "bool":
        cond = cx.op("cast", cond, to=tf_dtype("bool"))
    outs = []
    for t, e in zip(then_outs, else_outs):
        if not isinstance(t, Value) or not isinstance(e, Value):
            raise CannotLower("a branch returns a TensorList and the condition is computed at run time")
        if t.type.shape != e.type.shape:
            raise CannotLower(f"the branches return different shapes ({t.type} and {e.type})")
        outs.append(cx.op("select", cond, t, e))
    return outs


# ----- TensorLists -------------------------------------------------------------------------------------------------
def _element_shape(cx: Lowerer, value: Value) -> tuple | None:
    dims = cx.dims(value)
    if dims is None or (value.type.rank == 0 and dims == (-1,)):
        return None  # unknown rank
    return tuple(None if isinstance(d, int) and d < 0 else d for d in dims)


def _list(value) -> TensorList:
    if not isinstance(value, TensorList):
        raise CannotLower("a TensorList operand that is not a list irc tracks")
    return value


def _index(cx: Lowerer, lst: TensorList, value: Value, what: str) -> int:
    index = cx.int_scalar(value, what)
    if not -len(lst.items) <= index < len(lst.items):
        raise CannotLower(f"{what} {index} is out of range for a list of {len(lst.items)}")
    return index % len(lst.items)


def _item(cx: Lowerer, lst: TensorList, index: int, shape_hint: tuple | None) -> Value:
    item = lst.items[index]
    if item is not None:
        return item
    shape = lst.element_shape if lst.element_shape is not None and None not in lst.element_shape else shape_hint
    if shape is None or None in shape:
        raise CannotLower(f"item {index} of the list is read before it is set and its shape is not known")
    return cx.full(shape, 0, lst.dtype)


@lowers("TensorListReserve")
def tensor_list_reserve(cx: Lowerer, node: TFNode, args: list) -> TensorList:
    element_shape, count = args
    n = cx.int_scalar(count, "the number of elements")
    if n < 0:
        raise CannotLower("a TensorList of unknown length")
    return TensorList((None,) * n, _element_shape(cx, element_shape), tf_dtype(node.attrs["element_dtype"]))


@lowers("EmptyTensorList")
def empty_tensor_list(cx: Lowerer, node: TFNode, args: list) -> TensorList:
    return TensorList((), _element_shape(cx, args[0]), tf_dtype(node.attrs["element_dtype"]))


@lowers("TensorListFromTensor")
def tensor_list_from_tensor(cx: Lowerer, node: TFNode, args: list) -> TensorList:
    tensor = args[0]
    shape = cx.shape(tensor)
    if not shape or not isinstance(shape[0], int):
        raise CannotLower(f"a TensorList made from {tensor.type}, whose length is known only at run time")
    items = tuple(cx.add("unpack", [tensor], {"axis": 0})) if shape[0] else ()
    return TensorList(items, tuple(shape[1:]), tensor.type.dtype)


@lowers("TensorListGetItem")
def tensor_list_get_item(cx: Lowerer, node: TFNode, args: list) -> Value:
    lst, index, element_shape = _list(args[0]), args[1], args[2]
    return _item(cx, lst, _index(cx, lst, index, "the index"), _element_shape(cx, element_shape))


@lowers("TensorListSetItem")
def tensor_list_set_item(cx: Lowerer, node: TFNode, args: list) -> TensorList:
    lst, index, item = _list(args[0]), args[1], args[2]
    if not isinstance(item, Value):
        raise CannotLower("a TensorList of TensorLists")
    i = _index(cx, lst, index, "the index")
    items = lst.items[:i] + (item,) + lst.items[i + 1:]
    return TensorList(items, lst.element_shape, lst.dtype)


@lowers("TensorListStack")
def tensor_list_stack(cx: Lowerer, node: TFNode, args: list) -> Value:
    lst, element_shape = _list(args[0]), args[1]
    hint = _element_shape(cx, element_shape)
    if not lst.items:
        if hint is None or None in hint:
            raise CannotLower("stacking an empty TensorList of unknown element shape")
        return cx.full((0,) + hint, 0, lst.dtype)
    items = [_item(cx, lst, i, hint) for i in range(len(lst.items))]
    return cx.op("pack", *items, axis=0)


@lowers("TensorListGather")
def tensor_list_gather(cx: Lowerer, node: TFNode, args: list) -> Value:
    lst, indices, element_shape = _list(args[0]), args[1], args[2]
    hint = _element_shape(cx, element_shape)
    count, wanted = len(lst.items), cx.ints(indices, "the indices")
    if any(not -count <= i < count for i in wanted):
        raise CannotLower(f"the indices {wanted} are out of range for a list of {count}")
    picked = [_item(cx, lst, i % count, hint) for i in wanted]
    return cx.op("pack", *picked, axis=0)


@lowers("TensorListLength")
def tensor_list_length(cx: Lowerer, node: TFNode, args: list) -> Value:
    import numpy as np

    return cx.const(np.asarray(len(_list(args[0]).items), dtype=np.int32))


@lowers("TensorListPushBack")
def tensor_list_push_back(cx: Lowerer, node: TFNode, args: list) -> TensorList:
    lst, item = _list(args[0]), args[1]
    return TensorList(lst.items + (item,), lst.element_shape, lst.dtype)


@lowers("TensorListPopBack")
def tensor_list_pop_back(cx: Lowerer, node: TFNode, args: list) -> list:
    lst, element_shape = _list(args[0]), args[1]
    if not lst.items:
        raise CannotLower("popping from an empty TensorList")
    last = _item(cx, lst, len(lst.items) - 1, _element_shape(cx, element_shape))
    return [TensorList(lst.items[:-1], lst.element_shape, lst.dtype), last]


@lowers("TensorListElementShape")
def tensor_list_element_shape(cx: Lowerer, node: TFNode, args: list) -> Value:
    import numpy as np

    shape = _list(args[0]).element_shape
    if shape is None or not all(isinstance(d, int) for d in shape):
        raise CannotLower("the list's element shape is known only at run time")
    return cx.const(np.asarray(shape, dtype=tf_dtype(node.attrs.get("shape_type", "int32")).numpy))
