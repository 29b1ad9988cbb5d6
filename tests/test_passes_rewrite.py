"""The rewrite driver and the declarative rules, and how passes treat opaque ops, elided and quantized constants."""

from __future__ import annotations

import numpy as np
import pytest

from irc.errors import PassError
from irc.ir.parser import parse
from irc.ir.printer import print_graph
from irc.passes import run_pipeline
from irc.passes.base import Stats
from irc.passes.rewrite import RewritePattern, apply_patterns
from irc.passes.rules import Const, Op, Rule, Var
from irc.passes.util import channel_vector, compose_perms, inverse_perm, permute_type

x, y = Var("x"), Var("y")


def rewrite(text: str, *patterns) -> tuple[str, Stats]:
    graph = parse(text, "test.irc")
    stats = Stats()
    apply_patterns(graph, patterns, stats)
    return print_graph(graph), stats


def test_a_var_bound_twice_must_be_the_same_value_in_either_operand_order():
    rule = Rule(Op("mul", x, Op("sigmoid", x)), lambda m: m.op("silu", m.x), doc="silu")
    text, stats = rewrite("""graph @g(%a: f32[2], %b: f32[2]) {
      %0 = sigmoid(%a) : f32[2]
      %1 = mul(%0, %a) : f32[2]
      %2 = mul(%0, %b) : f32[2]
      return %1 as "same", %2 as "other"
    }""", rule)
    assert stats["silu"] == 1
    assert "silu(%a)" in text and "mul(%" in text


def test_attribute_patterns_bind_test_and_compare():
    seen = []
    rule = Rule(Op("transpose", x, perm=Var("p")), lambda m: seen.append(m.p), doc="never")
    by_function = Rule(Op("reshape", x, shape=lambda s: -1 in s), lambda m: m.x, doc="f")
    literal = Rule(Op("squeeze", x, axes=[0]), lambda m: m.x, doc="literal")
    rewrite("""graph @g(%a: f32[1,2]) {
      %0 = transpose(%a) {perm = [1, 0]} : f32[2,1]
      return %0 as "y"
    }""", rule)
    assert seen == [(1, 0)]  # the builder returned None: the rule declined, nothing changed
    _, stats = rewrite("""graph @g(%a: f32[1,2]) {
      %0 = reshape(%a) {shape = [2]} : f32[2]
      %1 = squeeze(%a) {axes = [0]} : f32[2]
      return %0 as "y", %1 as "z"
    }""", by_function, literal)
    assert stats == {}  # f32[2] is not the type of %a: both rules decline


def test_a_reduction_over_size_1_axes_with_keepdims_goes():
    from irc.passes.canonicalize import PATTERNS

    text, stats = rewrite("""graph @g(%a: f32[1,1,1,8], %b: f32[1,2,1,8]) {
      %0 = mean(%a) {axes = [1, 2], keepdims = true} : f32[1,1,1,8]
      %1 = max(%b) {axes = [2], keepdims = true} : f32[1,2,1,8]
      %2 = mean(%b) {axes = [1, 2], keepdims = true} : f32[1,1,1,8]
      %3 = sum(%a) {axes = [1, 2]} : f32[1,8]
      return %0 as "y", %1 as "z", %2 as "w", %3 as "v"
    }""", *PATTERNS)
    assert stats["mean over size-1 axes"] == 1 and stats["max over size-1 axes"] == 1
    assert stats["sum over size-1 axes"] == 0
    assert "%a as \"y\"" in text and "%b as \"z\"" in text  # what reduces (or drops a dim) stays
    assert "mean(%b)" in text and "sum(%a)" in text


def test_a_declined_rule_leaves_no_nodes_behind():
    grow = Rule(Op("relu", x), lambda m: m.op("exp", m.op("neg", m.x), type=m.x.type.with_shape((3,))), doc="x")
    text, stats = rewrite("""graph @g(%a: f32[2]) {
      %0 = relu(%a) : f32[2]
      return %0 as "y"
    }""", grow)
    assert stats == {} and "neg" not in text and "exp" not in text


def test_quantized_constants_match_by_real_value():
    rule = Rule(Op("add", x, Const(0.0)), lambda m: m.x, doc="x + 0")
    text, stats = rewrite("""graph @g(%a: i8[2] q(0.5, 3)) {
      %0 = const() {value = dense<i8[] [0]>} : i8[] q(0.5, 3)
      %1 = add(%a, %0) : i8[2] q(0.5, 3)
      %2 = const() {value = dense<i8[] [3]>} : i8[] q(0.5, 3)
      %3 = add(%a, %2) : i8[2] q(0.5, 3)
      return %1 as "plus_1_5", %3 as "plus_0"
    }""", rule)
    assert stats["x + 0"] == 1
    assert 'return %1 as "plus_1_5", %a as "plus_0"' in text


def test_a_pattern_that_never_settles_is_stopped():
    class Flip(RewritePattern):
        ops = ("neg",)

        def rewrite(self, node, rw):
            rw.replace(node, rw.op("neg", node.operands[0], loc=node.loc))
            return True

    graph = parse('graph @g(%a: f32[2]) {\n  %0 = neg(%a) : f32[2]\n  return %0 as "y"\n}', "t")
    with pytest.raises(RuntimeError, match="did not converge"):
        apply_patterns(graph, [Flip()], Stats())


def test_opaque_ops_are_left_alone():
    text = """graph @g(%a: f32[2]) {
      %0 = const() {value = dense<f32[2] [1.0, 2.0]>} : f32[2]
      %1 = "tf.Foo"(%0) {node_def = b64""} : f32[2]
      %2 = relu(%1) : f32[2]
      %3 = "tf.Foo"(%0) {node_def = b64""} : f32[2]
      %4 = add(%2, %3) : f32[2]
      return %4 as "y"
    }"""
    graph = parse(text, "t")
    run_pipeline(graph, "O3")
    assert graph.op_histogram() == {"add": 1, "const": 1, "relu": 1, "tf.Foo": 2}


def test_a_pass_that_needs_an_elided_constant_fails_instead_of_skipping_it():
    graph = parse("""graph @g(%a: f32[1,2,2,8]) {
      %w = const() {value = dense<f32[1,1,8,8] sha256:0123456789abcdef>} : f32[1,1,8,8]
      %s = const() {value = dense<f32[8] sha256:0123456789abcdef>} : f32[8]
      %0 = conv2d(%a, %w) : f32[1,2,2,8]
      %1 = mul(%0, %s) : f32[1,2,2,8]
      %2 = relu(%1) : f32[1,2,2,8]
      return %2 as "y"
    }""", "t")
    # Folding the mul into the conv needs both constants: a silent skip would give a different graph.
    with pytest.raises(PassError, match="pass 'fold-batchnorm' failed: needs the data of constant sha256:01234"):
        run_pipeline(graph, "fold-batchnorm,fuse")
    run_pipeline(graph, "fuse,tfl-fuse,dce")  # passes that read no constant still transform the graph
    assert next(n for n in graph.nodes if n.op == "tfl.mul").attr("fused_activation") == "relu"


def test_layout_keeps_per_axis_quantization_on_its_axis():
    graph = parse("""graph @g(%a: f32[1,2,3,3]) {
      %0 = max_pool(%a) {data_format = "NCHW", ksize = [1, 1]} : f32[1,2,3,3]
      %1 = quantize(%0) {axis = 1, dtype = i8, scale = [0.5, 0.25], zero_point = [0, 0]} : i8[1,2,3,3] q(axis=1, [0.5, 0.25], [0, 0])
      return %1 as "y"
    }""", "t")
    run_pipeline(graph, "layout")
    pool = next(n for n in graph.nodes if n.op == "max_pool")
    assert pool.attr("data_format") == "NHWC" and pool.result.type.shape == (1, 3, 3, 2)


def test_permutation_helpers():
    perm = (0, 2, 3, 1)
    assert compose_perms(perm, inverse_perm(perm)) == (0, 1, 2, 3)
    assert compose_perms((1, 0, 2), (0, 2, 1)) == (1, 2, 0)
    t = parse("graph @g(%a: i8[2,3,4,5] q(axis=3, [1.0, 1.0, 1.0, 1.0, 1.0], [0, 0, 0, 0, 0])) {\n  return %a as "
              "\"y\"\n}", "t").inputs[0].type
    moved = permute_type(t, (0, 3, 1, 2))
    assert moved.shape == (2, 5, 3, 4) and moved.quant.axis == 1


@pytest.mark.parametrize("shape, axis, ok", [
    ((4,), -1, True), ((1, 1, 1, 4), -1, True), ((), -1, True), ((1,), -1, True),
    ((4, 1, 1), 1, True), ((4,), 1, False), ((2, 4), -1, False), ((1, 1, 1, 1, 4), -1, False),
])
def test_channel_vector(shape, axis, ok):
    from irc.ir.types import DType, TensorType

    out = TensorType(DType.f32, (1, 4, 5, 5) if axis == 1 else (1, 5, 5, 4))
    array = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) + 1
    vector = channel_vector(array, out, axis)
    assert (vector is not None) == ok
    if ok:
        assert vector.shape == (4,)


# ----- the pattern API: checked when built, optional operands, default attributes, benefit, tracing ---------------
def test_a_misspelled_op_or_attribute_is_an_error_naming_the_rule():
    with pytest.raises(ValueError, match=r"^rule 'silu': unknown op 'sigmod'$"):
        Rule(Op("mul", x, Op("sigmod", x)), lambda m: m.x, doc="silu")
    with pytest.raises(ValueError, match=r"^rule 'a': op 'transpose' has no attribute 'prem' \(attributes: perm"):
        Rule(Op("transpose", x, prem=(1, 0)), lambda m: m.x, doc="a")
    with pytest.raises(ValueError, match=r"^rule Op\('relu', Var\('x'\), Var\('y'\)\): relu takes \(x\), got 2"):
        Rule(Op("relu", x, y), lambda m: m.x)
    from irc.passes.rewrite import PatternPass

    class Misspelled(RewritePattern):
        ops = ("sqaure",)

    with pytest.raises(ValueError, match=r"pattern Misspelled: unknown op 'sqaure'"):
        type("Typo", (PatternPass,), {"name": "typo", "patterns": [Misspelled()]})


def test_a_pattern_pass_without_patterns_is_refused_when_defined():
    from irc.passes.rewrite import PatternPass

    rules = [Rule(Op("neg", Op("neg", x)), lambda m: m.x, doc="-(-x)")]
    with pytest.raises(TypeError, match="PatternPass Wrong: put its rules in 'patterns', not 'rules'"):
        type("Wrong", (PatternPass,), {"name": "wrong", "rules": rules})
    with pytest.raises(TypeError, match="PatternPass Empty has no patterns"):
        type("Empty", (PatternPass,), {"name": "empty"})
    assert type("Right", (PatternPass,), {"name": "right", "patterns": rules}).patterns == rules


SOFTMAX_WITH_BETA = """graph @g(%a: f32[2]) {
  %0 = softmax(%a) {beta = 2.0} : f32[2]
  return %0 as "y"
}"""


def test_unmentioned_attributes_must_be_at_their_defaults_unless_any_attrs():
    strict = Rule(Op("softmax", x), lambda m: m.op("log_softmax", m.x), doc="log")
    text, stats = rewrite(SOFTMAX_WITH_BETA, strict)
    assert stats == {} and "log_softmax" not in text  # the rule would have dropped beta
    loose = Rule(Op("softmax", x, any_attrs=True), lambda m: m.op("log_softmax", m.x), doc="log")
    _, stats = rewrite(SOFTMAX_WITH_BETA, loose)
    assert stats == {"log": 1, "nodes removed": 1}


def test_an_optional_operand_matches_with_or_without_it():
    from irc.passes.rules import Optional

    seen = []
    rule = Rule(Op("matmul", x, y, Optional(Var("bias"))), lambda m: seen.append(m.bias), doc="matmul")
    rewrite("""graph @g(%a: f32[1,2], %b: f32[2,3], %c: f32[3]) {
      %0 = matmul(%a, %b) : f32[1,3]
      %1 = matmul(%a, %b, %c) : f32[1,3]
      return %0 as "y", %1 as "z"
    }""", rule)
    assert len(seen) == 2 and seen[0] is None and seen[1].name == "c"


def test_the_rule_with_the_highest_benefit_wins():
    low = Rule(Op("neg", Op("neg", x)), lambda m: m.x, doc="low")
    high = Rule(Op("neg", Op("neg", x)), lambda m: m.op("relu", m.x), doc="high", benefit=2)
    model = 'graph @g(%a: f32[2]) {\n  %0 = neg(%a) : f32[2]\n  %1 = neg(%0) : f32[2]\n  return %1 as "y"\n}'
    text, stats = rewrite(model, low, high)
    assert stats["high"] == 1 and "low" not in stats and "relu(%a)" in text
    _, stats = rewrite(model, low, Rule(Op("neg", Op("neg", x)), lambda m: m.op("relu", m.x), doc="same"))
    assert stats["low"] == 1  # equal benefits: the order given


def test_the_trace_reports_rules_that_fired_and_declined():
    from irc.passes.rewrite import trace_rewrites

    events = []
    fires = Rule(Op("neg", Op("neg", x)), lambda m: m.x, doc="-(-x)")
    declines = Rule(Op("relu", x), lambda m: m.x, where=lambda m: False, doc="never")
    with trace_rewrites(lambda event, pattern, node, detail: events.append((event, pattern.stat, node.op, detail))):
        rewrite("""graph @g(%a: f32[2]) {
          %0 = neg(%a) : f32[2]
          %1 = neg(%0) : f32[2]
          %2 = relu(%1) : f32[2]
          return %2 as "y"
        }""", fires, declines)
    assert ("fired", "-(-x)", "neg", "'neg'") in events
    assert ("declined", "never", "relu", "its where() is false") in events


def test_debug_rewrites_on_the_command_line():
    from click.testing import CliRunner

    from irc.cli import main

    model = 'graph @g(%a: f32[2]) {\n  %0 = neg(%a) : f32[2]\n  %1 = neg(%0) : f32[2]\n  return %1 as "y"\n}\n'
    result = CliRunner().invoke(main, ["opt", "-", "--passes", "canonicalize", "--debug-rewrites"], input=model)
    assert result.exit_code == 0, result.output
    assert result.stderr == "rewrite: Rule(-(-x) -> x) fired on 'neg'\n"


def test_a_core_rule_cannot_drop_a_fused_activation():
    """rules.py's own example, x * 1 -> x, on mul(x, 1) + relu: as core ops it fires and keeps the relu; after the
    TFLite fusion (tfl.mul {fused_activation = "relu"}) it does not match. Either way the outputs stay [0, 2, 0, 4]."""
    from irc.ir.interpreter import run

    text = """graph @g(%x: f32[4]) {
      %one = const() {value = dense<f32[] [1.0]>} : f32[]
      %0 = mul(%x, %one) : f32[4]
      %1 = relu(%0) : f32[4]
      return %1 as "y"
    }"""
    rule = Rule(Op("mul", x, Const(1.0)), lambda m: m.x, doc="x * 1 -> x")
    feed = {"x": np.array([-1.0, 2.0, -3.0, 4.0], np.float32)}
    want = np.array([0.0, 2.0, 0.0, 4.0], np.float32)
    core, fused = parse(text, "t"), parse(text, "t")
    run_pipeline(fused, "tfl-fuse")
    assert fused.op_histogram() == {"const": 1, "tfl.mul": 1}
    for graph, fires in ((core, 1), (fused, 0)):
        stats = Stats()
        apply_patterns(graph, [rule], stats)
        assert stats["x * 1 -> x"] == fires
        np.testing.assert_array_equal(run(graph, feed)["y"], want)
    assert "relu" in core.op_histogram() and "mul" not in core.op_histogram()
