import numpy as np
import pytest

from irc.ir import DType, Graph, Location, SymDim, TensorType
from irc.ir.types import QuantParams

F32 = DType.f32


def t(*shape, dtype=F32):
    return TensorType(dtype, shape)


def chain():
    g = Graph("g")
    x = g.add_input("x", t(1, 4))
    a = g.add("neg", [x], types=[t(1, 4)], loc=Location.of("a", "layer_a"))
    b = g.add("exp", [a.result], types=[t(1, 4)], loc=Location.of("b"))
    g.set_output("y", b.result)
    return g, x, a, b


def test_use_lists_follow_edits():
    g, x, a, b = chain()
    assert x.uses == [(a, 0)] and a.result.users == [b]
    c = g.add("abs", [x], types=[t(1, 4)])
    g.replace_all_uses(a.result, c.result)
    assert b.operands[0] is c.result and a.result.uses == []
    g.erase(a)
    assert a not in g and x.users == [c]
    assert [n.op for n in g.topo_order()] == ["abs", "exp"]


def test_replace_all_uses_updates_outputs_and_erase_refuses_used_node():
    g, x, a, b = chain()
    with pytest.raises(ValueError):
        g.erase(b)
    g.replace_all_uses(b.result, a.result)
    assert g.outputs["y"] is a.result
    g.erase(b)
    assert len(g) == 1


def test_topological_order_is_stable_and_respects_dependencies():
    g = Graph()
    x = g.add_input("x", t(2))
    late = g.add("neg", [x], types=[t(2)])
    early = g.add("abs", [x], types=[t(2)])
    user = g.add("add", [early.result, late.result], types=[t(2)])
    g.set_operand(user, 0, late.result)
    assert g.topo_order() == [late, early, user]
    assert g.topo_order() == g.topo_order()


def test_cycle_is_detected():
    g = Graph()
    x = g.add_input("x", t(2))
    a = g.add("neg", [x], types=[t(2)])
    b = g.add("neg", [a.result], types=[t(2)])
    g.set_operand(a, 0, b.result)
    with pytest.raises(ValueError, match="cycle"):
        g.topo_order()


def test_deep_chain_has_no_recursion_limit():
    g = Graph()
    v = g.add_input("x", t(1))
    for _ in range(20000):
        v = g.add("neg", [v], types=[t(1)]).result
    g.set_output("y", v)
    assert len(g.topo_order()) == 20000
    assert len(g.copy()) == 20000


def test_copy_is_independent():
    g, x, a, b = chain()
    h = g.copy()
    assert h.dump() == g.dump()
    h.set_output("z", h.inputs[0])
    assert "z" not in g.outputs


def test_fused_location_keeps_every_source():
    loc = Location.fused([Location.of("conv", "conv1"), Location.of("bn", "bn1"), Location.of("conv", "conv1")])
    assert loc.names == ("conv", "bn") and loc.layers == ("conv1", "bn1")
    assert str(loc) == "conv, bn (layer conv1, bn1)"


def test_const_and_types():
    g = Graph()
    c = g.const(np.zeros((2, 3), np.int8))
    assert c.is_constant and c.type == t(2, 3, dtype=DType.i8)
    ty = TensorType(DType.i8, (SymDim("batch"), None, 3), QuantParams((0.5,), (1,)))
    assert not ty.is_static and ty.rank == 3 and str(ty) == "i8[batch,?,3] q(0.5, 1)"
    with pytest.raises(ValueError):
        QuantParams((0.1, 0.2), (0, 0))  # per-tensor needs one scale
    assert DType.parse("float32") is F32 and DType.parse("bf16") is DType.bf16
    assert DType.bf16.numpy.name == "bfloat16"
