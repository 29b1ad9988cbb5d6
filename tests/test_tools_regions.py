"""irc stats, check, viz, diff and quant-report on a graph with a while loop and an if (tests/regions/loop_if.irc):
each shows what is inside the regions."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from irc.cli import main
from irc.ir.parser import parse
from irc.passes import run_pipeline
from irc.tools.diff import diff_graphs
from irc.tools.stats import graph_stats
from irc.tools.viz import build_view
from tests.test_passes_regions import LOOP_IF, loop_if, samples


def test_stats_count_region_ops_and_loop_iterations():
    s = graph_stats(loop_if())
    assert s.histogram["tanh"] == 2 and s.histogram["while"] == 1 and s.histogram["if"] == 1
    assert s.parameters == 7  # every constant, in the regions too
    once = graph_stats(parse(LOOP_IF.read_text().replace("dense<i32[] [4]>", "dense<i32[] [1]>")))
    # the body's FLOPs count once per iteration: 4 iterations instead of 1
    body_flops = (s.flops - once.flops) // 3
    assert body_flops > 0 and s.flops == once.flops + 3 * body_flops and not s.dynamic
    from tests.test_ir_regions import counting_loop

    assert graph_stats(counting_loop()).dynamic  # a trip count from an input: counted once, and said so


def test_check_lists_the_ops_inside_regions_after_their_op():
    result = CliRunner().invoke(main, ["check", str(LOOP_IF), "--json"])
    assert result.exit_code in (0, 1), result.output
    import json

    rows = [row for layer in json.loads(result.output)["layers"] for row in layer["ops"]]
    ops = [row["op"] for row in rows]
    assert "while" in ops and "if" in ops
    assert ops.index("while") < ops.index("less") < ops.index("if")  # a region's nodes follow its op
    inside = {row["op"]: row["reason"] for row in rows if row["reason"].startswith("in ")}
    assert inside["less"] == "in while region 'cond'" and inside["exp"].startswith("in while region 'body'")
    assert sorted(ops).count("tanh") == 2  # both, one of them in layer "cell"


def test_viz_lists_each_regions_ops_in_its_box():
    view = build_view(loop_if())
    (loop,) = [b for b in view.boxes if b.title == "while"]
    assert any(line.startswith("body: ") and "tanh x2" in line for line in loop.lines)
    assert any(line.startswith("cond: less") for line in loop.lines)
    assert "region body(" in loop.detail and "tanh(" in loop.detail
    (branch,) = [b for b in view.boxes if b.title == "if"]
    assert any(line.startswith("then: add") for line in branch.lines)


def test_viz_writes_a_picture_of_a_graph_with_regions(tmp_path):
    out = tmp_path / "g.svg"
    result = CliRunner().invoke(main, ["viz", str(LOOP_IF), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "body: " in out.read_text()


def test_diff_reports_changes_inside_regions():
    a = loop_if()
    assert diff_graphs(a, a.copy()).equal
    b = a.copy()
    run_pipeline(b, "cse")  # merges the body's two tanh: the top graph is the same
    d = diff_graphs(a, b)
    assert not d.equal
    names = [c.name for _, _, changes in d.changed for c in changes]
    assert any(n.startswith("region body: ") for n in names), names
    c = a.copy()
    body = next(c.walk("while")).regions[1]
    c_node = next(n for n in body.nodes if n.op == "exp")
    body.replace_node(c_node, [body.op("sigmoid", c_node.operands[0])])
    names = [ch.name for _, _, changes in diff_graphs(a, c).changed for ch in changes]
    assert any("region body" in n for n in names)


def test_quant_report_rows_come_from_inside_regions_too():
    from irc.passes.quantize.report import quant_report

    graph = loop_if()
    report = quant_report(graph, samples(graph, count=8, seed=2))
    ops = [t.op for t in report.tensors]
    assert "tanh" in ops  # in the loop body, compared over every iteration
    assert all(t.sqnr_db is None or t.sqnr_db > 10 for t in report.tensors)
    assert "exp" in report.kept_float  # int8 has no exp kernel: it stays float inside the body


def test_quant_report_command_on_a_graph_with_regions(tmp_path):
    graph = loop_if()
    data = tmp_path / "cal.npz"
    stacked = samples(graph, count=4, seed=1)
    np.savez(data, **{k: np.stack([s[k] for s in stacked]) for k in ("x", "w")},
             p=np.array([bool(s["p"]) for s in stacked]))
    result = CliRunner().invoke(main, ["quant-report", str(LOOP_IF), "--calibration", str(data)])
    assert result.exit_code == 0, result.output
    assert "tanh" in result.output


def test_dot_draws_each_region_as_a_cluster_beside_its_op():
    from irc.tools.viz import render

    dot = render(loop_if(), "dot")
    for name in ("cond", "body", "then", "else"):
        assert f'label="{name}"; style=dashed' in dot
    assert dot.count("subgraph cluster_") == 4
    assert "r1_b4" in dot and "tanh" in dot  # the body's nodes are boxes of their own
    import shutil

    if shutil.which("dot"):
        import graphviz

        assert b"<svg" in graphviz.Source(dot).pipe(format="svg")
