"""irc viz: valid, deterministic SVG/HTML without Graphviz, DOT text, collapsing, the layered layout."""

from __future__ import annotations

import itertools
import shutil
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

import irc
from irc.cli import main
from irc.errors import UsageError
from irc.tools import layout as lay
from irc.tools.viz import build_view, render, to_dot
from tests.test_tools_graphs import mini_resnet

SVG = "{http://www.w3.org/2000/svg}"


def parse_svg(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    width, height = float(root.get("width")), float(root.get("height"))
    assert root.get("viewBox") == f"0 0 {width:.0f} {height:.0f}" and width > 0 and height > 0
    return root


def boxes(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "node"]


def test_svg_is_valid_and_has_a_box_per_node_and_an_edge_per_dependency():
    g = mini_resnet(blocks=2)
    root = parse_svg(render(g, "svg", collapse="none"))
    nodes = [n for n in g.nodes if n.op != "const"]
    assert len(boxes(root)) == len(nodes) + len(g.inputs) + len(g.outputs)
    edges = [p for p in root.iter(f"{SVG}path") if p.get("marker-end")]
    pairs = {(v.producer, n) for n in nodes for v in n.operands if v.producer is not None and not v.is_constant}
    assert len(edges) == len(pairs) + len(g.inputs) + len(g.outputs)
    titles = [b.find(f"{SVG}text").text for b in boxes(root)]
    assert titles.count("conv2d") == 5 and "image" in titles and "probs" in titles
    first = boxes(root)[1]
    assert "model/stem/Conv2D" in first.get("data-detail")


def test_boxes_do_not_overlap():
    root = parse_svg(render(mini_resnet(blocks=4), "svg", collapse="none"))
    rects = [tuple(float(r.get(k)) for k in ("x", "y", "width", "height"))
             for b in boxes(root) for r in [b.find(f"{SVG}rect")]]
    for i, (x, y, w, h) in enumerate(rects):
        for x2, y2, w2, h2 in rects[i + 1:]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y


def test_output_is_deterministic():
    g = mini_resnet(blocks=3)
    assert render(g, "svg") == render(mini_resnet(blocks=3), "svg")
    assert render(g, "html") == render(g, "html")


def test_collapse_by_layer_and_by_prefix_and_cut():
    g = mini_resnet(blocks=6)
    by_layer = build_view(g, collapse="layer")
    assert by_layer.collapsed == "layer"
    titles = {b.title for b in by_layer.boxes}
    assert {"stem", "block0_conv1", "block5_out", "dense"} <= titles
    dense = next(b for b in by_layer.boxes if b.title == "dense")
    assert dense.lines[0] == "matmul, softmax"
    small = build_view(g, collapse="auto", max_nodes=12)
    assert small.collapsed == "layer prefix" and len(small.boxes) <= 12
    assert {"block0", "block5"} <= {b.title for b in small.boxes}
    cut = build_view(g, collapse="none", max_nodes=10)
    assert len(cut.boxes) == 10 and cut.hidden > 0 and cut.boxes[-2].title.startswith("...")
    parse_svg(render(g, "svg", collapse="none", max_nodes=10))


def test_auto_does_not_collapse_small_graphs():
    assert build_view(mini_resnet(blocks=1)).collapsed == "none"


def test_html_is_self_contained():
    page = render(mini_resnet(), "html")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "</html>" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from the network
    assert 'id="search"' in page and "data-detail" in page


def test_dot_text():
    text = to_dot(build_view(mini_resnet(blocks=1), collapse="none"))
    assert text.startswith('digraph "mini_resnet" {') and text.rstrip().endswith("}")
    assert "in0 -> b0;" in text and 'label="conv2d\\n' in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed on this machine")
def test_dot_engine_and_png():
    g = mini_resnet(blocks=1)
    assert render(g, "png").startswith(b"\x89PNG")
    svg = render(g, "svg", engine="dot")
    ET.fromstring(svg[svg.index("<svg"):])  # Graphviz writes an XML prolog and a DOCTYPE first


def test_png_without_dot_says_how_to_get_it(monkeypatch):
    import graphviz

    def missing(*args, **kwargs):
        raise graphviz.ExecutableNotFound(("dot",))

    monkeypatch.setattr(graphviz.Source, "pipe", missing)
    with pytest.raises(UsageError, match="needs its 'dot' program"):
        render(mini_resnet(blocks=1), "png")


def test_command_picks_the_format_from_the_suffix(tmp_path):
    src = tmp_path / "m.irc"
    src.write_text(mini_resnet(blocks=1).dump(full=True))
    runner = CliRunner()
    for suffix in ("svg", "html", "dot"):
        out = tmp_path / f"g.{suffix}"
        result = runner.invoke(main, ["viz", str(src), "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 200
    parse_svg((tmp_path / "g.svg").read_text())
    bad = runner.invoke(main, ["viz", str(src), "-o", str(tmp_path / "g.txt")])
    assert bad.exit_code == 2 and "cannot tell the picture format" in bad.output
    piped = runner.invoke(main, ["viz", str(src), "-o", "-", "--format", "dot"])
    assert piped.output.startswith("digraph")


# ----- the layout on its own ---------------------------------------------------------------------------------------
def test_layout_ranks_follow_dependencies_and_long_edges_bend_around():
    boxes_ = [(name, 40.0, 20.0) for name in "abcde"]
    edges = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d"), ("d", "e")]
    placed = lay.layout(boxes_, edges)
    ys = [placed.y[n] for n in "abcde"]
    assert ys == sorted(ys) and len(set(ys)) == 5
    long_route = next(points for src, dst, points in placed.routes if (src, dst) == ("a", "d"))
    assert len(long_route) == 6  # down through the bands of the two ranks it skips
    assert all(placed.width >= placed.x[n] + 20 for n in "abcde")


def test_layout_keeps_order_and_spacing_in_a_rank():
    boxes_ = [("top", 30.0, 20.0)] + [(f"c{i}", 30.0 + 10 * i, 20.0) for i in range(5)]
    placed = lay.layout(boxes_, [("top", f"c{i}") for i in range(5)])
    xs = sorted((placed.x[f"c{i}"], 30.0 + 10 * i) for i in range(5))
    for (x1, w1), (x2, w2) in itertools.pairwise(xs):
        assert x2 - x1 >= (w1 + w2) / 2 + lay.H_GAP - 1e-6
    centre = sum(x for x, _ in xs) / len(xs)
    assert abs(placed.x["top"] - centre) < 40  # the parent sits over its children


def test_layout_survives_cycles_from_collapsing():
    placed = lay.layout([("a", 10.0, 10.0), ("b", 10.0, 10.0)], [("a", "b"), ("b", "a")])
    assert {(s, d) for s, d, _ in placed.routes} == {("a", "b"), ("b", "a")}


def test_isotonic_placement_is_least_squares():
    x = {}
    size = {v: (10.0, 0.0) for v in "abc"}
    lay._place(list("abc"), [50.0, 50.0, 50.0], size, x)
    assert x["b"] == pytest.approx(50.0) and x["c"] - x["b"] == pytest.approx(10 + lay.H_GAP)


@pytest.mark.slow
def test_resnet50_svg(zoo_models, tmp_path):
    model = zoo_models.saved_model("resnet50", size=96)
    out = tmp_path / "resnet50.svg"
    result = CliRunner().invoke(main, ["viz", str(model), "-o", str(out), "--max-nodes", "60"])
    assert result.exit_code == 0, result.output
    root = parse_svg(out.read_text())
    titles = [b.find(f"{SVG}text").text for b in boxes(root)]
    assert "conv2_block1" in titles and len(titles) <= 60
    full = parse_svg(render(irc.load(model), "svg", collapse="none", max_nodes=1000))
    assert len(boxes(full)) > 250


def test_collapsing_never_draws_a_cycle():
    """Two adds of one layer with another layer between them cannot be one box: the picture would loop."""
    g = irc.parse('''graph @g(%x: f32[4]) {
  %0 = add(%x, %x) : f32[4] loc("model/add" in "residual")
  %1 = relu(%0) : f32[4] loc("model/block/relu" in "block")
  %2 = add(%1, %0) : f32[4] loc("model/add_1" in "residual")
  return %2 as "y"
}''')
    view = build_view(g, collapse="layer")
    assert [b.title for b in view.boxes] == ["x", "add", "block", "add", "y"]
    placed = lay.layout([(b.id, 10.0, 10.0) for b in view.boxes], [(e.src, e.dst) for e in view.edges])
    ys = [placed.y[b.id] for b in view.boxes]
    assert ys == sorted(ys)
    # a layer is split only where it must be: without the direct edge, two connected pieces
    g2 = irc.parse('''graph @g(%x: f32[4]) {
  %0 = add(%x, %x) : f32[4] loc("model/add" in "residual")
  %1 = relu(%0) : f32[4] loc("model/block/relu" in "block")
  %2 = add(%1, %1) : f32[4] loc("model/add_1" in "residual")
  %3 = neg(%2) : f32[4] loc("model/neg" in "residual")
  return %3 as "y"
}''')
    view = build_view(g2, collapse="layer")
    assert [b.title for b in view.boxes] == ["x", "residual", "block", "residual", "y"]
    assert view.boxes[3].lines[0] == "add, neg"


# ----- big models: columns instead of one tall strip (issue 17) -----------------------------------------------------
def test_a_long_chain_wraps_into_columns_of_a_readable_page():
    chain = [(f"n{i}", 150.0, 40.0) for i in range(150)]
    edges = list(itertools.pairwise(b[0] for b in chain)) + [("n10", "n60")]  # a long skip across columns
    placed = lay.layout(chain, edges)
    assert placed.height < 3 * placed.width  # one column would be 150 * 74 = 11100 px tall and 182 px wide
    rects = [(placed.x[v] - 75, placed.y[v], 150.0, 40.0) for v, _, _ in chain]
    for i, (x, y, w, h) in enumerate(rects):
        assert 0 <= x and x + w <= placed.width and 0 <= y and y + h <= placed.height
        for x2, y2, w2, h2 in rects[i + 1:]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y
    columns = [[chain[0][0]]]  # read left to right: a new column starts where the chain goes back up
    for a, b in itertools.pairwise(v for v, _, _ in chain):
        columns.append([b]) if placed.y[b] < placed.y[a] else columns[-1].append(b)
    assert len(columns) > 1
    for left, right in itertools.pairwise(columns):
        assert max(placed.x[v] for v in left) + 150 < min(placed.x[v] for v in right)
    for src, dst, points in placed.routes:  # every edge, within or between columns, runs from box to box
        assert points[0] == (placed.x[src], placed.y[src] + 40.0) and points[-1] == (placed.x[dst], placed.y[dst])
        assert all(0 <= px <= placed.width and 0 <= py <= placed.height for px, py in points)


def test_mobilenet_v2_by_layer_is_a_page_not_a_strip(zoo_models):
    root = parse_svg(render(irc.load(zoo_models.saved_model("mobilenet_v2", size=96)), "svg"))
    width, height = float(root.get("width")), float(root.get("height"))
    assert height < 3 * width and height < 4000, (width, height)  # was 269 x 13786 px in one column
