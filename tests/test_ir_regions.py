"""Regions in the IR core: while and if as ops owning nested graphs (API, text form, verifier, interpreter).

TensorFlow models that produce these are in tests/test_control_flow.py; these tests need no TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pytest

from irc import limits
from irc.errors import InputError, ParseError, VerifyError
from irc.ir.graph import Graph, Location
from irc.ir.interpreter import run
from irc.ir.parser import MAX_REGION_DEPTH, parse
from irc.ir.printer import print_graph
from irc.ir.types import DType, TensorType
from irc.ir.verify import find_problems, verify
from tests.hostile import assert_refused, run_irc

F2 = TensorType(DType.f32, (2,))
I0 = TensorType(DType.i32, ())
B0 = TensorType(DType.bool, ())


def counting_loop(limit_from_input: bool = True) -> Graph:
    """y = x doubled n times, and the count: a loop whose trip count is an input."""
    g = Graph("g")
    x, n = g.add_input("x", F2), g.add_input("n", I0)
    cond = Graph("cond")
    _, i, m = cond.add_input("x", F2), cond.add_input("i", I0), cond.add_input("n", I0)
    cond.set_output("0", cond.op("less", i, m))
    body = Graph("body")
    bx, bi, bn = body.add_input("x", F2), body.add_input("i", I0), body.add_input("n", I0)
    body.set_output("0", body.op("add", bx, bx))
    body.set_output("1", body.op("add", bi, body.const(np.int32(1))))
    body.set_output("2", bn)
    loop = g.add("while", [x, g.const(np.int32(0)), n], regions=[cond, body], loc=Location.of("w", "rnn"))
    g.set_output("y", loop.results[0])
    g.set_output("count", loop.results[1])
    return g


def test_a_node_owns_its_regions_and_they_know_it():
    g = counting_loop()
    (loop,) = g.walk("while")
    cond, body = loop.regions
    assert cond.parent is loop and body.parent is loop and g.parent is None
    assert g.is_top_level and not body.is_top_level and body.depth == 1
    assert [r.type for r in loop.results] == [F2, I0, I0]
    with pytest.raises(AttributeError, match="read-only"):
        loop.regions = ()
    with pytest.raises(ValueError, match="already belongs"):
        g.add("while", list(g.inputs), regions=[cond, body])
    assert Graph().op("relu", Graph().add_input("x", F2)).producer.regions == ()


def test_walk_stays_on_top_unless_asked_and_all_graphs_reaches_every_region():
    g = counting_loop()
    assert [n.op for n in g.walk()] == ["const", "while"]
    assert [n.op for n in g.walk(recursive=True)] == ["const", "while", "less", "add", "const", "add"]
    assert [x.name for x in g.all_graphs()] == ["g", "cond", "body"]
    assert [n.graph.name for n in g.walk("add", recursive=True)] == ["body", "body"]


def test_an_edit_inside_a_region_changes_the_enclosing_graphs_version():
    g = counting_loop()
    body = next(g.walk("while")).regions[1]
    before = g.version
    body.set_attr(next(body.walk("const")), "value", np.int32(2))
    assert g.version == before + 1


def test_copy_is_deep():
    g = counting_loop()
    c = g.copy()
    assert print_graph(c) == print_graph(g)
    old, new = next(g.walk("while")), next(c.walk("while"))
    assert all(a is not b for a, b in zip(old.regions, new.regions))
    assert new.regions[1].parent is new


def test_text_round_trip_and_interpreter():
    g = counting_loop()
    text = print_graph(g)
    assert "^cond(%x: f32[2], %i: i32[], %n: i32[]) {" in text and "return %" in text
    back = parse(text)
    assert print_graph(back) == text
    verify(back)
    for n in (0, 1, 5):
        out = run(back, {"x": np.array([1.0, -2.0], np.float32), "n": np.int32(n)})
        np.testing.assert_array_equal(out["y"], np.array([1.0, -2.0]) * 2**n)
        assert out["count"] == n


def test_a_runaway_loop_is_an_error_not_a_hang():
    g = counting_loop()
    with limits.override(max_loop_iterations=100):
        run(g, {"x": np.zeros(2, np.float32), "n": np.int32(100)})
        with pytest.raises(InputError, match=r"'while' at w \(layer rnn\).*loops ran more than 100 iterations"):
            run(g, {"x": np.zeros(2, np.float32), "n": np.int32(101)})


def test_the_iteration_limit_counts_every_loop_of_a_run_together():
    text = print_graph(counting_loop())
    g = parse(text)
    with limits.override(max_loop_iterations=10):
        for _ in range(3):  # each run has a budget of its own
            run(g, {"x": np.zeros(2, np.float32), "n": np.int32(10)})
    nested = parse(NESTED)
    with limits.override(max_loop_iterations=4 * 4 + 4):
        assert run(nested, {"n": np.int32(4)})["total"] == 16
    with limits.override(max_loop_iterations=4 * 4 + 3), pytest.raises(InputError, match="loops ran more than 19"):
        run(nested, {"n": np.int32(4)})


NESTED = """
graph @g(%n: i32[]) {
  %0 = const() {value = dense<i32[] [0]>} : i32[]
  %1, %2, %3 = while(%0, %0, %n) : i32[], i32[], i32[]
    ^cond(%i: i32[], %t: i32[], %n: i32[]) {
      %4 = less(%i, %n) : bool[]
      return %4
    }
    ^body(%i: i32[], %t: i32[], %n: i32[]) {
      %5 = const() {value = dense<i32[] [1]>} : i32[]
      %6 = add(%i, %5) : i32[]
      %7 = const() {value = dense<i32[] [0]>} : i32[]
      %8, %9, %10 = while(%7, %t, %n) : i32[], i32[], i32[]
        ^cond(%j: i32[], %t: i32[], %n: i32[]) {
          %11 = less(%j, %n) : bool[]
          return %11
        }
        ^body(%j: i32[], %t: i32[], %n: i32[]) {
          %12 = const() {value = dense<i32[] [1]>} : i32[]
          %13 = add(%j, %12) : i32[]
          %14 = add(%t, %12) : i32[]
          return %13, %14, %n
        }
      return %6, %9, %n
    }
  return %2 as "total"
}
"""


def test_max_trip_count_stops_the_loop():
    g = counting_loop()
    g.set_attr(next(g.walk("while")), "max_trip_count", 3)
    verify(g)
    assert run(g, {"x": np.ones(2, np.float32), "n": np.int32(10)})["count"] == 3


def test_the_observer_sees_every_iteration():
    seen = []
    run(counting_loop(), {"x": np.ones(2, np.float32), "n": np.int32(4)},
        observer=lambda node, outs: seen.append(node.op))
    assert seen.count("less") == 5 and seen.count("add") == 8 and seen[-1] == "while"


IF_TEXT = """
graph @g(%p: bool[], %a: f32[2]) {
  %0, %1 = if(%p, %a) : f32[?], f32[2]
    ^then(%x: f32[2]) {
      %2 = concat(%x, %x) {axis = 0} : f32[4]
      return %2, %x
    }
    ^else(%x: f32[2]) {
      %3 = neg(%x) : f32[2]
      return %x, %3
    }
  return %0 as "y", %1 as "z"
}
"""


def test_if_joins_its_branches_shapes_and_takes_one():
    g = parse(IF_TEXT)
    verify(g)
    assert [r.type for r in next(g.walk("if")).results] == [TensorType(DType.f32, (None,)), F2]
    a = np.array([1.0, 2.0], np.float32)
    taken = run(g, {"p": np.bool_(True), "a": a})
    np.testing.assert_array_equal(taken["y"], [1, 2, 1, 2])
    other = run(g, {"p": np.bool_(False), "a": a})
    np.testing.assert_array_equal(other["y"], a)
    np.testing.assert_array_equal(other["z"], -a)


GROWING = """
graph @g(%a: f32[1]) {
  %0, %1 = while(%a) : f32[?]
    ^cond(%x: f32[?]) {
      %2 = shape(%x) : i32[1]
      %3 = const() {value = dense<i32[1] [8]>} : i32[1]
      %4 = less(%2, %3) : bool[1]
      %5 = reshape(%4) {shape = []} : bool[]
      return %5
    }
    ^body(%x: f32[?]) {
      %6 = concat(%x, %x) {axis = 0} : f32[?]
      return %6
    }
  return %0 as "y"
}
"""


def test_a_loop_value_whose_shape_varies_has_an_unknown_dim():
    g = parse(GROWING.replace("%0, %1 = while(%a) : f32[?]", "%0 = while(%a) : f32[?]"))
    verify(g)
    assert run(g, {"a": np.array([3.0], np.float32)})["y"].tolist() == [3.0] * 8
    fixed = GROWING.replace("%0, %1 = while(%a) : f32[?]", "%0 = while(%a) : f32[?]").replace(
        "^body(%x: f32[?]) {\n      %6 = concat(%x, %x) {axis = 0} : f32[?]",
        "^body(%x: f32[1]) {\n      %6 = concat(%x, %x) {axis = 0} : f32[2]")
    with pytest.raises(VerifyError, match=r"region 'body' changes loop value 0 from f32\[1\] to f32\[2\]"):
        verify(parse(fixed))


@pytest.mark.parametrize("edit, message", [
    (("%3 = neg(%x) : f32[2]\n      return %x, %3", "return %x"),
     "'if': the branches disagree: 'then' returns 2 value(s), 'else' returns 1"),
    (("if(%p, %a)", "if(%a, %a)"), "'if': the condition is f32[2], not a bool[] scalar"),
    (("^else(%x: f32[2])", "^else(%x: f32[3])"), "'if': region 'else' argument 0 is f32[3], but input 0 is f32[2]"),
    (("^else(%x: f32[2]) {", "^else(%x: f32[2], %y: f32[2]) {"),
     "'if': region 'else' takes 2 argument(s), the op passes 1 input"),
    (("%3 = neg(%x) : f32[2]", "%3 = neg(%x) : f32[3]"),
     "'neg': result 0 is declared f32[3] but the op gives f32[2], in region 'else' of 'if'"),
])
def test_verifier_names_what_a_region_gets_wrong(edit, message):
    text = IF_TEXT.replace(*edit)
    assert text != IF_TEXT
    problems = find_problems(parse(text))
    assert any(message in p for p in problems), problems


def test_a_cond_that_is_not_a_bool_scalar():
    text = print_graph(counting_loop()).replace("less(%i, %n) : bool[]", "add(%i, %n) : i32[]")
    with pytest.raises(VerifyError, match=r"'while' at w \(layer rnn\): region 'cond' must return one bool\[\]"):
        verify(parse(text))


def test_a_region_using_an_outer_value_built_through_the_api():
    g = Graph("g")
    x = g.add_input("x", F2)
    then, other = Graph("then"), Graph("else")
    then.add_input("x", F2)
    then.set_output("0", then.op("neg", x))  # x is the outer graph's
    other.set_output("0", other.add_input("x", F2))
    node = g.add("if", [g.const(np.bool_(True)), x], regions=[then, other], loc=Location.of("c", "gate"))
    g.set_output("y", node.result)
    problems = find_problems(g)
    assert problems == [("'neg': operand 0 is a value of an enclosing graph; a region uses only its own arguments "
                         "(pass the value in as one), in region 'then' of 'if' at c (layer gate)")]


def test_region_count_is_checked():
    g = Graph("g")
    x = g.add_input("x", F2)
    with pytest.raises(ValueError, match=r"while owns 2 region\(s\) \(cond, body\), got 1"):
        g.add("while", [x], regions=[Graph("cond")])
    with pytest.raises(ValueError, match="relu owns no regions, got 1"):
        g.add("relu", [x], regions=[Graph("r")])


def test_a_graph_output_needs_a_name_but_a_regions_result_does_not():
    with pytest.raises(ParseError, match=r"<string>:1:31: a graph output needs a name"):
        parse("graph @g(%x: f32[2]) { return %x }")
    g = parse(IF_TEXT)
    assert list(next(g.walk("if")).regions[0].outputs) == ["0", "1"]


def test_regions_nest_up_to_the_limit():
    inner = "return %x"
    for level in range(MAX_REGION_DEPTH):
        inner = (f"%r{level} = if(%p, %x, %p) : f32[2] ^then(%x: f32[2], %p: bool[]) {{ {inner} }} "
                 f"^else(%x: f32[2], %p: bool[]) {{ return %x }} return %r{level}")
    ok = f'graph @g(%x: f32[2], %p: bool[]) {{ {inner} as "y" }}'
    g = parse(ok)
    verify(g)
    assert run(g, {"x": np.ones(2, np.float32), "p": np.bool_(True)})["y"].tolist() == [1.0, 1.0]
    deeper = (f'graph @g(%x: f32[2], %p: bool[]) {{ %top = if(%p, %x, %p) : f32[2] ^then(%x: f32[2], %p: bool[]) '
              f'{{ {inner} }} ^else(%x: f32[2], %p: bool[]) {{ return %x }} return %top as "y" }}')
    with pytest.raises(ParseError, match=f"<string>:1:[0-9]+: regions nest more than {MAX_REGION_DEPTH} deep"):
        parse(deeper)


def test_regions_nested_a_hundred_thousand_deep_are_refused_quickly(tmp_path):
    depth = 100_000
    head = 'graph @g(%x: f32[2], %p: bool[]) { %0 = if(%p, %x, %p) : f32[2] '
    opening = "^then(%x: f32[2], %p: bool[]) { %0 = if(%p, %x, %p) : f32[2] "
    closing = "^else(%x: f32[2], %p: bool[]) { return %x } return %0 } "
    text = head + opening * depth + "^then(%x: f32[2], %p: bool[]) { return %x } " + closing * depth + (
        '^else(%x: f32[2], %p: bool[]) { return %x } return %0 as "y" }')
    (tmp_path / "deep.irc").write_text(text)
    outcome = run_irc(["verify", "deep.irc"], cwd=tmp_path)
    assert_refused(outcome, codes=(1,), fragment=f"regions nest more than {MAX_REGION_DEPTH} deep")
