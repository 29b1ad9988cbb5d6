"""Drawing a view (``irc.tools.viz``) as a standalone SVG, and wrapping it in a self-contained HTML page.

Text is monospace, so box sizes follow from character counts without measuring fonts. Every box carries its
full description in a ``<title>`` (the tooltip) and in ``data-detail``; the HTML page shows it on click, and adds
pan, zoom and search, in a few lines of inline script (no network access needed).
"""

from __future__ import annotations

import json
from xml.sax.saxutils import escape, quoteattr

from irc.tools.layout import layout
from irc.tools.viz import FILLS, View

CHAR_WIDTH = 6.6  # monospace at FONT_SIZE
FONT_SIZE = 11
LINE_HEIGHT = 14
PAD_X, PAD_Y = 8, 6


def box_size(title: str, lines: list[str]) -> tuple[float, float]:
    longest = max([len(title)] + [len(line) for line in lines])
    return round(longest * CHAR_WIDTH + 2 * PAD_X, 1), float(2 * PAD_Y + LINE_HEIGHT * (1 + len(lines)))


def _path(points: list[tuple[float, float]]) -> str:
    (x0, y0), rest = points[0], points[1:]
    parts = [f"M{x0:.1f},{y0:.1f}"]
    for x1, y1 in rest:
        if x1 == x0:
            parts.append(f"L{x1:.1f},{y1:.1f}")
        else:
            dy = (y1 - y0) / 2
            parts.append(f"C{x0:.1f},{y0 + dy:.1f} {x1:.1f},{y1 - dy:.1f} {x1:.1f},{y1:.1f}")
        x0, y0 = x1, y1
    return " ".join(parts)


def draw_svg(view: View) -> str:
    sizes = {b.id: box_size(b.title, b.lines) for b in view.boxes}
    ordered = sorted(view.boxes, key=lambda b: b.order)
    placed = layout([(b.id, *sizes[b.id]) for b in ordered], [(e.src, e.dst) for e in view.edges])
    width, height = placed.width, placed.height
    out = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
         f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" '
         f'font-size="{FONT_SIZE}">'),
        f"<title>{escape(view.name)}</title>",
        ('<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" '
         'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#888"/></marker></defs>'),
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        '<g class="edges" fill="none" stroke="#999" stroke-width="1.2">',
    ]
    for _, _, points in placed.routes:
        out.append(f'<path d="{_path(points)}" marker-end="url(#arrow)"/>')
    out.append("</g>")
    for box in ordered:
        w, h = sizes[box.id]
        x, y = placed.x[box.id] - w / 2, placed.y[box.id]
        radius = h / 2 if box.kind == "io" else 5
        stroke = "#333" if box.kind == "io" else "#777"
        dash = ' stroke-dasharray="4 3"' if box.kind in ("more", "opaque") else ""
        out.append(f'<g class="node" id="{box.id}" data-detail={quoteattr(box.detail)}>')
        out.append(f"<title>{escape(box.detail)}</title>")
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{radius:.1f}" '
                   f'fill="{FILLS[box.kind]}" stroke="{stroke}"{dash}/>')
        cx = placed.x[box.id]
        out.append(f'<text x="{cx:.1f}" y="{y + PAD_Y + FONT_SIZE:.1f}" text-anchor="middle" font-weight="bold">'
                   f"{escape(box.title)}</text>")
        for i, line in enumerate(box.lines):
            ty = y + PAD_Y + FONT_SIZE + LINE_HEIGHT * (i + 1)
            out.append(f'<text x="{cx:.1f}" y="{ty:.1f}" text-anchor="middle" fill="#444">{escape(line)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ margin: 0; font: 13px system-ui, sans-serif; display: flex; height: 100vh; }}
#view {{ flex: 1; overflow: hidden; cursor: grab; background: #fafafa; }}
#view svg {{ width: 100%; height: 100%; }}
#side {{ width: 320px; border-left: 1px solid #ddd; padding: 10px; overflow: auto; }}
#side pre {{ white-space: pre-wrap; font-size: 12px; }}
#search {{ width: 100%; box-sizing: border-box; padding: 4px; }}
.node {{ cursor: pointer; }}
.node.hit rect {{ stroke: #d00; stroke-width: 3; }}
.node.picked rect {{ stroke: #06c; stroke-width: 3; }}
</style>
</head>
<body>
<div id="view">
{svg}
</div>
<div id="side">
<input id="search" placeholder="search ops, layers, names" autocomplete="off">
<p>{summary}</p>
<p>Drag to pan, wheel to zoom, click a box for its details.</p>
<pre id="detail"></pre>
</div>
<script>
(function () {{
  const svg = document.querySelector("#view svg");
  const full = {viewbox};
  let box = full.slice();
  const show = () => svg.setAttribute("viewBox", box.join(" "));
  const rect = () => svg.getBoundingClientRect();
  svg.removeAttribute("width"); svg.removeAttribute("height");
  show();
  svg.addEventListener("wheel", (e) => {{
    e.preventDefault();
    const r = rect(), k = e.deltaY > 0 ? 1.2 : 1 / 1.2;
    const px = box[0] + (e.clientX - r.left) / r.width * box[2];
    const py = box[1] + (e.clientY - r.top) / r.height * box[3];
    box = [px - (px - box[0]) * k, py - (py - box[1]) * k, box[2] * k, box[3] * k];
    show();
  }}, {{ passive: false }});
  let drag = null;
  svg.addEventListener("mousedown", (e) => {{ drag = [e.clientX, e.clientY, box[0], box[1]]; }});
  window.addEventListener("mouseup", () => {{ drag = null; }});
  window.addEventListener("mousemove", (e) => {{
    if (!drag) return;
    const r = rect();
    box[0] = drag[2] - (e.clientX - drag[0]) / r.width * box[2];
    box[1] = drag[3] - (e.clientY - drag[1]) / r.height * box[3];
    show();
  }});
  const nodes = Array.from(svg.querySelectorAll(".node"));
  nodes.forEach((n) => n.addEventListener("click", () => {{
    nodes.forEach((m) => m.classList.remove("picked"));
    n.classList.add("picked");
    document.getElementById("detail").textContent = n.dataset.detail;
  }}));
  document.getElementById("search").addEventListener("input", (e) => {{
    const q = e.target.value.toLowerCase();
    let first = null;
    nodes.forEach((n) => {{
      const hit = q && n.dataset.detail.toLowerCase().includes(q);
      n.classList.toggle("hit", hit);
      if (hit && !first) first = n;
    }});
    if (first) {{
      const b = first.getBBox();
      box = [b.x + b.width / 2 - box[2] / 2, b.y + b.height / 2 - box[3] / 2, box[2], box[3]];
      show();
    }}
  }});
}})();
</script>
</body>
</html>
"""


def wrap_html(view: View, svg: str) -> str:
    """A self-contained page around ``svg``: pan, zoom, search, and each box's details on click."""
    import re

    match = re.search(r'viewBox="([0-9.\- ]+)"', svg)
    numbers = [float(v) for v in match.group(1).split()] if match else [0, 0, 1000, 1000]
    shown = len([b for b in view.boxes if b.kind not in ("io", "more")])
    summary = f"{escape(view.name)}: {shown} boxes"
    if view.collapsed != "none":
        summary += f", collapsed by {view.collapsed}"
    if view.hidden:
        summary += f", {view.hidden} nodes not drawn"
    svg_body = svg[svg.index("<svg"):] if "<svg" in svg else svg  # drop an XML prolog from Graphviz
    return _PAGE.format(title=escape(view.name), svg=svg_body, summary=summary, viewbox=json.dumps(numbers))
