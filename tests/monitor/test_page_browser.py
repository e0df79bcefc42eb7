"""The monitor's HTML page in headless Chromium at 1366x900: every heading runs the page's width (none wraps into
a narrow column), and the figures lie in a grid below them, each under a visible title.

The page is a file (`tunesmith monitor --html`), not one of the web UI's: it is opened from disk, so the UI's
fixtures (a server, its Content-Security-Policy) do not apply; the browser is started here the same way."""

from __future__ import annotations

import pytest

from tunesmith.monitor.analysis import monitor_log
from tunesmith.monitor.page import render_monitor

WIDTH, HEIGHT = 1366, 900


@pytest.fixture(scope="module")
def browser(launch_chromium):
    """A headless Chromium at 1366x900 (`launch_chromium`)."""
    driver = launch_chromium(WIDTH, HEIGHT)
    yield driver
    driver.quit()


LAYOUT = """
const box = element => element.getBoundingClientRect();
const figures = [...document.querySelectorAll(".figures figure")];
const grid = document.querySelector(".figures");
const headings = [...document.querySelectorAll("h2")];
return {
  page: document.documentElement.clientWidth,
  headings: headings.map(h => [h.textContent, box(h).width, box(h).height]),
  captions: [...document.querySelectorAll("caption")].map(c => [c.textContent, box(c).width, box(c).height,
                                                                parseFloat(getComputedStyle(c).lineHeight)]),
  figures: figures.map(f => {
    const title = f.querySelector("figcaption"), image = f.querySelector("img");
    return {title: title ? title.innerText : "", titleHeight: title ? box(title).height : 0,
            titleAbove: title && image ? box(title).bottom <= box(image).top : false,
            loaded: image ? image.complete && image.naturalWidth > 0 : false,
            top: Math.round(box(f).top), left: Math.round(box(f).left), width: box(f).width};
  }),
  gridTop: grid ? Math.floor(box(grid).top) : null,
  lastHeadingAboveGrid: headings.filter(h => grid && box(h).top < box(grid).top).length,
};
"""


def test_headings_run_the_page_width_and_titled_figures_lie_in_a_grid_below(tmp_path, browser, spam_run,
                                                                             live_stream, request_record, write_log):
    records = live_stream(0, 50) + live_stream(1, 50, "novel", first=50) + [request_record(200, status=500)]
    result = monitor_log(write_log(tmp_path / "logs", records), spam_run.root, window="50")
    page = tmp_path / "monitor.html"
    render_monitor(result, html=page)
    browser.set_window_size(WIDTH, HEIGHT)
    browser.get(page.as_uri())
    layout = browser.execute_script(LAYOUT)
    page_width = layout["page"]
    assert page_width == WIDTH

    # every heading is wider than half the page, on one line; no caption wraps into a column of a few words
    titles = [title for title, _, _ in layout["headings"]]
    assert {"Breaches", "Traffic (whole log)", "Windows", "Figures", "Window #2 (2026-11-30 08:00:50 UTC)",
            "Predicted labels vs the reference's, window #2"} <= set(titles), titles
    for title, width, height in layout["headings"]:
        assert width > page_width / 2 and height < 50, (title, width, height)
    for caption, width, height, line in layout["captions"]:
        assert height < 1.6 * line, f"the caption {caption!r} wraps: {width:.0f} px wide, {height:.0f} px tall"

    # all 8 figures, below every heading but their own, each with a visible title above its drawn image
    figures = layout["figures"]
    assert len(figures) == 8 and layout["lastHeadingAboveGrid"] == len(titles)
    for figure in figures:
        assert figure["title"] and figure["titleHeight"] > 0 and figure["titleAbove"] and figure["loaded"], figure
        assert figure["top"] >= layout["gridTop"]
    assert figures[0]["title"].startswith("Novelty: share of requests above the reference's tail (per window, "
                                          "every 50 answered requests; share, 0 to 1)")
    # a grid of two columns at 1366 px: pairs share a row, each figure under half the page wide
    assert len({figure["left"] for figure in figures}) == 2 and figures[0]["top"] == figures[1]["top"]
    assert all(figure["width"] < page_width / 2 for figure in figures)
    browser.set_window_size(WIDTH, browser.execute_script("return document.body.scrollHeight") + 100)
    browser.save_screenshot(str(tmp_path / "monitor.png"))
