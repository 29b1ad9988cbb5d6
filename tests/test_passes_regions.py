"""Passes inside regions: the manager's walk, each pass run inside a loop body and an if's branches (checked with
the reference interpreter before and after on random inputs), hoisting and unrolling (also on the zoo's LSTM and
GRU classifiers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from irc.errors import InputError
from irc.ir.interpreter import run
from irc.ir.parser import parse
from irc.limits import override
from irc.passes import register_pass, run_pipeline
from irc.passes.manager import regions_innermost_first

LOOP_IF = Path(__file__).parent / "regions" / "loop_if.irc"
CONV_LOOP = Path(__file__).parent / "regions" / "conv_loop.irc"


def loop_if():
    return parse(LOOP_IF.read_text(), str(LOOP_IF))


def samples(graph, count=4, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        out.append({"x": rng.normal(size=2).astype(np.float32), "w": rng.normal(size=2).astype(np.float32),
                    "p": np.bool_(k % 2)})
    return out


def assert_same_outputs(before, after, inputs):
    for ins in inputs:
        want, got = run(before, ins), run(after, ins)
        assert want.keys() == got.keys()
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-6, err_msg=name)


def total_nodes(graph):
    return sum(len(g) for g in graph.all_graphs())


def ops_inside(graph):
    return [n.op for g in regions_innermost_first(graph) for n in g.nodes]


@pytest.mark.parametrize("pipeline, stat", [
    ("canonicalize", "x + 0 -> x"), ("cse", "nodes merged"), ("dce", "nodes removed"),
    ("hoist-invariants", "values hoisted"), ("unroll-loops", "loops unrolled"), ("O2", "nodes merged"),
    ("O3", "nodes merged"), ("tflite", "nodes merged"), ("hoist-invariants{constants min-elements=2}",
                                                          "values hoisted"),
])
def test_each_pass_works_inside_regions_and_keeps_the_outputs(pipeline, stat):
    graph = loop_if()
    after = graph.copy()
    report = run_pipeline(after, pipeline)
    assert report.stats.get(stat, 0) >= 1, report.stats
    assert_same_outputs(graph, after, samples(graph))


def _matmul_has_bias(body):
    return any(n.core_op == "matmul" and len(n.operands) == 3 for n in body)


@pytest.mark.parametrize("pipeline, stat, check", [
    ("fold-batchnorm", "batch norms folded", lambda body: "batch_norm" not in [n.op for n in body]),
    ("fuse", "bias adds folded", _matmul_has_bias),
    ("fuse,tfl-fuse", "activations fused", lambda body: "tfl.matmul" in [n.op for n in body]),
    ("layout{target=nchw}", "ops converted",
     lambda body: next(n for n in body if n.op == "conv2d").attrs["data_format"] == "NCHW"),
    ("tflite", "activations fused", lambda body: {"tfl.conv2d", "tfl.matmul"} <= {n.op for n in body}),
    ("quantize{mode=float16}", None, lambda body: any(n.op == "cast" for n in body)),
])
def test_fusion_batchnorm_folding_layout_and_tfl_fuse_work_inside_a_loop_body(pipeline, stat, check):
    graph = parse(CONV_LOOP.read_text(), str(CONV_LOOP))
    after = graph.copy()
    report = run_pipeline(after, pipeline)
    if stat:
        assert report.stats[stat] >= 1, report.stats
    body = next(after.walk("while")).regions[1].nodes
    assert check(body), [n.op for n in body]
    rng = np.random.default_rng(7)
    inputs = [{"x": rng.normal(size=(1, 3, 3, 2)).astype(np.float32),
               "v": rng.normal(size=(2, 2)).astype(np.float32)} for _ in range(3)]
    for ins in inputs:
        want, got = run(graph, ins), run(after, ins)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-3 if "quantize" in pipeline else 1e-5,
                                       atol=1e-2 if "quantize" in pipeline else 1e-5)


def test_canonicalize_cse_and_dce_rewrite_the_loop_body_and_the_branches():
    graph = loop_if()
    run_pipeline(graph, "canonicalize,cse,dce")
    inside = ops_inside(graph)
    assert inside.count("tanh") == 1  # cse in the body
    assert "neg" not in inside  # dce in the body
    assert "mul" in inside and inside.count("mul") == 2  # x * 1 went from 'else'; the body's two muls stay
    loop = next(graph.walk("while"))
    assert len(loop.results) == 3  # dce keeps every carried value and the loop itself


def test_the_manager_walks_innermost_first_and_counts_nested_edits():
    graph = loop_if()
    seen = []

    @register_pass(name="test-regions-order", walks_regions="each")
    def record(graph):
        seen.append(graph.name)

    run_pipeline(graph, "test-regions-order")
    assert seen == ["cond", "body", "then", "else", "g"]
    report = run_pipeline(graph, "cse")
    assert report.records[0].changed  # the only merge is inside the body


def test_a_user_pass_sees_the_top_graph_unless_it_asks_for_regions():
    graph = loop_if()
    calls = []

    @register_pass(name="test-regions-plain")
    def drop_exp(graph):
        """A pass written before regions: replaces exp by its operand where it finds one."""
        calls.append(graph.name)
        for node in graph.walk("exp"):
            graph.replace_node(node, [node.operands[0]])

    run_pipeline(graph, "test-regions-plain")
    assert calls == ["g"] and "exp" in ops_inside(graph)


def test_a_user_pass_that_breaks_a_region_is_caught_by_the_verifier():
    from irc.errors import PassError

    @register_pass(name="test-regions-break", walks_regions="each")
    def add_output(graph):
        graph.set_output("extra", graph.inputs[0])

    with pytest.raises(PassError, match="broke the verifier"):
        run_pipeline(loop_if(), "test-regions-break", crash_reproducer=False)


def test_fold_constants_inlines_the_branch_an_if_takes():
    for pred, want in ((True, "add"), (False, "mul")):
        text = LOOP_IF.read_text().replace("%p: bool[]", "%q: bool[]").replace(
            "%zero = const()", f"%p = const() {{value = dense<bool[] [{str(pred).lower()}]>}} : bool[]\n  %zero = const()")
        graph = parse(text)
        after = graph.copy()
        report = run_pipeline(after, "fold-constants,dce")
        assert report.stats["branches inlined"] == 1
        assert "if" not in after.op_histogram()
        ins = [{k: v for k, v in s.items() if k != "p"} | {"q": np.bool_(True)} for s in samples(graph)]
        assert_same_outputs(graph, after, ins)


def test_fold_constants_drops_a_loop_that_never_runs():
    graph = parse(LOOP_IF.read_text().replace("dense<i32[] [4]>", "dense<i32[] [0]>"))
    after = graph.copy()
    report = run_pipeline(after, "fold-constants")
    assert report.stats["loops removed"] == 1 and "while" not in after.op_histogram()
    assert_same_outputs(graph, after, samples(graph))


def test_hoisting_moves_invariant_work_out_of_the_body():
    graph = loop_if()
    after = graph.copy()
    run_pipeline(after, "hoist-invariants")
    body = next(after.walk("while")).regions[1]
    assert "exp" not in [n.op for n in body.nodes]  # exp(w * k): w is passed through unchanged
    assert "exp" in after.op_histogram()
    assert_same_outputs(graph, after, samples(graph))


def test_unrolling_respects_max_trip_and_the_node_limit():
    graph = loop_if()
    report = run_pipeline(graph.copy(), "unroll-loops{max-trip=3}")
    assert report.stats.get("loops unrolled", 0) == 0  # 4 iterations > 3
    after = graph.copy()
    run_pipeline(after, "unroll-loops{max-trip=4}")
    assert "while" not in after.op_histogram()
    assert_same_outputs(graph, after, samples(graph))
    with override(max_nodes=30), pytest.raises(Exception, match="would make more than 30 nodes"):
        run_pipeline(graph.copy(), "unroll-loops", crash_reproducer=False)


def test_unrolling_leaves_a_data_dependent_loop():
    from tests.test_ir_regions import counting_loop

    graph = counting_loop()
    report = run_pipeline(graph, "unroll-loops")
    assert report.stats.get("loops unrolled", 0) == 0 and "while" in graph.op_histogram()


def _zoo_graph(zoo_models, name):
    import irc

    return irc.load(zoo_models.saved_model(name))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm_classifier", "gru_classifier"])
def test_hoisting_and_unrolling_the_zoo_rnn_classifiers_keep_their_outputs(zoo_models, name):
    graph = _zoo_graph(zoo_models, name)
    rng = np.random.default_rng(3)
    inputs = [{graph.inputs[0].name: rng.integers(0, 500, size=(2, 16)).astype(np.int32)}]
    hoisted = graph.copy()
    run_pipeline(hoisted, "O2,hoist-invariants{constants}")
    body = next(hoisted.walk("while")).regions[1]
    assert not any(n.op == "const" and n.result.type.num_elements >= 1024 for n in body.nodes)
    assert_same_outputs(graph, hoisted, inputs)
    unrolled = graph.copy()
    report = run_pipeline(unrolled, "unroll-loops,O2")
    assert report.stats["iterations unrolled"] == 16 and "while" not in unrolled.op_histogram()
    assert_same_outputs(graph, unrolled, inputs)


def test_unrolling_refuses_past_the_node_limit_with_an_input_error():
    graph = loop_if()
    with override(max_nodes=30), pytest.raises(Exception) as caught:
        run_pipeline(graph, "unroll-loops", crash_reproducer=False)
    assert isinstance(caught.value.__cause__, InputError) or "30 nodes" in str(caught.value)


def test_int8_quantization_calibrates_and_quantizes_inside_regions():
    from irc.passes.quantize import quantize_graph
    from irc.passes.quantize.calibration import calibrate

    graph = loop_if()
    cal = samples(graph, count=16, seed=5)
    ranges = calibrate(graph, cal)
    body = next(graph.walk("while")).regions[1]
    tanh = next(body.walk("tanh")).result
    assert tanh in ranges and -1 <= ranges[tanh][0] <= ranges[tanh][1] <= 1  # observed over every iteration
    assert all(arg in ranges for arg in body.inputs if arg.type.dtype.is_float)
    quantized = quantize_graph(graph.copy(), "int8", cal)
    inside = [n for g in regions_innermost_first(quantized) for n in g.nodes]
    assert any(n.result.type.quant is not None for n in inside if n.op == "tanh")
    for ins in cal[:4]:
        want, got = run(graph, ins), run(quantized, ins)
        np.testing.assert_allclose(got["y"], want["y"], atol=0.1)
        assert got["n"] == want["n"]


@pytest.mark.slow
def test_int8_quantization_of_the_zoo_gru_classifier_runs_in_the_interpreter(zoo_models):
    from irc.passes.quantize import quantize_graph

    graph = _zoo_graph(zoo_models, "gru_classifier")
    rng = np.random.default_rng(4)
    name = graph.inputs[0].name
    cal = [{name: rng.integers(0, 500, size=(1, 16)).astype(np.int32)} for _ in range(8)]
    quantized = quantize_graph(graph.copy(), "int8", cal)
    body = next(quantized.walk("while")).regions[1]
    assert any(n.op == "matmul" and n.result.type.quant is not None for n in body.nodes)
    for ins in cal[:3]:
        want, got = run(graph, ins), run(quantized, ins)
        for k in want:
            scale = float(np.max(np.abs(want[k]))) or 1.0
            assert float(np.max(np.abs(got[k] - want[k]))) <= 0.1 * scale


def test_dce_drops_carried_values_only_when_the_loop_does_not_need_them():
    text = LOOP_IF.read_text()
    only_count = parse(text.replace('return %y as "y", %b as "n"', 'return %b as "n"'))
    after = only_count.copy()
    report = run_pipeline(after, "dce")
    loop = next(after.walk("while"))
    assert len(loop.results) == 1 and "if" not in after.op_histogram()  # x and w go, and the if with them
    assert report.stats["region values dropped"] == 3  # two carried values and the if
    assert_same_outputs(only_count, after, samples(only_count))
    only_x = parse(text.replace('return %y as "y", %b as "n"', 'return %a as "y"'))
    after = only_x.copy()
    run_pipeline(after, "dce")
    loop = next(after.walk("while"))
    assert len(loop.results) == 3  # the counter is tested by cond, w feeds x: nothing can go
    assert_same_outputs(only_x, after, samples(only_x))


def test_dce_drops_an_ifs_unused_results_and_the_inputs_no_branch_needs():
    text = LOOP_IF.read_text().replace("%y = if(%p, %a, %c) : f32[2]", "%y, %y2 = if(%p, %a, %c) : f32[2], f32[2]")
    text = text.replace("      return %r\n", "      return %r, %c\n").replace("      return %m\n", "      return %m, %c\n")
    graph = parse(text)
    after = graph.copy()
    report = run_pipeline(after, "dce")
    node = next(after.walk("if"))
    assert len(node.results) == 1 and len(node.operands) == 3  # y2 went; c is still needed by 'then'
    assert report.stats["region values dropped"] == 1
    assert_same_outputs(graph, after, samples(graph))


def test_a_recipe_and_keep_float_reach_inside_regions():
    from irc.passes.quantize import quantize_graph
    from irc.passes.quantize.recipe import parse_recipe

    graph = loop_if()
    cal = samples(graph, count=16, seed=6)
    kept = quantize_graph(graph.copy(), "int8", cal, keep_float=("op:tanh",))
    body = next(kept.walk("while")).regions[1]
    assert all(n.result.type.quant is None for n in body.walk("tanh"))
    assert any(n.result.type.quant is not None for n in body.walk("mul"))
    recipe = parse_recipe({"default": "int8", "layers": [{"select": "op:tanh", "scheme": "int16x8"}]})
    mixed = quantize_graph(graph.copy(), calibration=cal, recipe=recipe)
    body = next(mixed.walk("while")).regions[1]
    assert {n.result.type.dtype.value for n in body.walk("tanh")} == {"i16"}
    assert {n.result.type.dtype.value for n in body.walk("mul")} == {"i8"}
    for q in (kept, mixed):  # 4 iterations of int8 mul -> tanh: a few int8 steps of the mul's range at worst
        errors = [np.abs(run(q, ins)["y"] - run(graph, ins)["y"]) for ins in cal]
        assert max(e.max() for e in errors) < 0.5 and np.mean(errors) < 0.05


def test_automatic_mixed_precision_searches_layers_inside_regions():
    from irc.passes.quantize.calibration import load_calibration
    from irc.passes.quantize.mixed import auto_quantize, constant_bytes

    graph = loop_if()
    assert constant_bytes(graph) == 28  # every constant, the regions' included
    cal = load_calibration(samples(graph, count=8, seed=9), graph)
    quantized = graph.copy()
    choice = auto_quantize(quantized, cal, "int8", max_error=0.1)  # all int8: 10.9%, "cell" moved: 8.9%
    assert [e.select for e in choice.recipe.entries] == [("cell",)]  # the layer inside the loop body moved
    body = next(quantized.walk("while")).regions[1]
    scheme = choice.recipe.entries[0].scheme
    cell = [n for n in body.nodes if n.loc.layers == ("cell",)]
    assert all((n.result.type.quant is None) == (scheme == "float") for n in cell)
    assert not any("quant.id" in n.meta for n in quantized.walk(recursive=True))
    for ins in cal[:3]:
        assert run(quantized, ins).keys() == run(graph, ins).keys()


@pytest.mark.parametrize("scheme", ["int8-weight-only", "dynamic-int8"])
def test_weight_schemes_quantize_the_weights_inside_a_loop_body(scheme):
    from irc.passes.quantize import quantize_graph
    from irc.passes.quantize.recipe import parse_recipe

    graph = parse(CONV_LOOP.read_text(), str(CONV_LOOP))
    run_pipeline(graph, "fold-batchnorm,fuse")
    entry = {"select": "op:matmul", "scheme": scheme}  # named: quantized however small its weights
    if scheme.endswith("weight-only"):
        entry["granularity"] = "per-tensor"
    recipe = parse_recipe({"default": "float", "layers": [entry]})
    quantized = quantize_graph(graph.copy(), recipe=recipe)
    body = next(quantized.walk("while")).regions[1]
    assert any(n.op == "const" and n.result.type.dtype.value == "i8" for n in body.nodes)
    assert not any(n.graph is quantized for n in body.walk())
    rng = np.random.default_rng(8)
    for _ in range(3):
        ins = {"x": rng.normal(size=(1, 3, 3, 2)).astype(np.float32), "v": rng.normal(size=(2, 2)).astype(np.float32)}
        want, got = run(graph, ins), run(quantized, ins)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], atol=0.05 * (1 + float(np.abs(want[k]).max())))
