"""irc viz's HTML page in a real browser (headless Chromium via Playwright): search finds and centers a node,
the wheel zooms, a click shows details, and the page draws something. Skips, saying why, without Chromium."""

from __future__ import annotations

import base64
import json
import shutil

import pytest

from irc.tools.viz import render
from tests.test_tools_graphs import mini_resnet

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Counts the screenshot's pixels that are not the page background, and its distinct colors, in the browser itself.
COUNT_PIXELS = """async (url) => {
  const image = new Image();
  image.src = url;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.width; canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const data = context.getImageData(0, 0, image.width, image.height).data;
  let drawn = 0; const colors = new Set();
  for (let i = 0; i < data.length; i += 4) {
    const rgb = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    if (rgb !== 0xfafafa) drawn++;
    if (colors.size < 64) colors.add(rgb);
  }
  return [drawn / (image.width * image.height), colors.size];
}"""


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra has it)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def view_box(page) -> list[float]:
    return [float(v) for v in page.get_attribute("#view svg", "viewBox").split()]


def test_html_view_searches_zooms_and_draws(browser, tmp_path):
    page_path = tmp_path / "model.html"
    page_path.write_text(render(mini_resnet(blocks=12), "html", collapse="none"))
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_path.as_uri())

    start = view_box(page)
    page.fill("#search", "block7_conv2")
    hits = page.locator(".node.hit")
    assert hits.count() >= 1
    centered = view_box(page)
    box = hits.first.evaluate("n => { const b = n.getBBox(); return [b.x + b.width / 2, b.y + b.height / 2]; }")
    assert centered[2:] == start[2:] and centered[:2] != start[:2]  # panned, not zoomed, to the hit
    assert [centered[0] + centered[2] / 2, centered[1] + centered[3] / 2] == pytest.approx(box)

    view = page.locator("#view").bounding_box()
    page.mouse.move(view["x"] + view["width"] / 2, view["y"] + view["height"] / 2)
    before = json.dumps(page.get_attribute("#view svg", "viewBox"))
    page.mouse.wheel(0, -300)  # wheel up: zoom in around the pointer
    page.wait_for_function(f"document.querySelector('#view svg').getAttribute('viewBox') !== {before}")
    zoomed = view_box(page)
    assert zoomed[2] < centered[2] and zoomed[3] < centered[3]

    page.mouse.down()  # drag to the left: the view pans right
    page.mouse.move(view["x"] + view["width"] / 2 - 200, view["y"] + view["height"] / 2, steps=4)
    page.mouse.up()
    panned = view_box(page)
    assert panned[0] > zoomed[0] and panned[2:] == zoomed[2:]

    hits.first.click()
    assert "block7_conv2" in page.text_content("#detail")

    shot = page.locator("#view").screenshot()
    blank = browser.new_page()
    drawn, colors = blank.evaluate(COUNT_PIXELS, "data:image/png;base64," + base64.b64encode(shot).decode())
    assert drawn > 0.02 and colors >= 4, (drawn, colors)  # boxes, text and edges, not an empty background
    assert not errors, errors
