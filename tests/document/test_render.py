"""The three renderers: plain text tables aligned, Markdown and HTML escaped, folded sections."""

from __future__ import annotations

from tunesmith.document import Code, Document, Facts, Section, Table, Text, render_html, render_markdown, render_text
from tunesmith.document.render import text_table

EVIL = "<script>alert('x')</script> | `tick`"


def test_text_table_aligns_numbers_right_and_text_left():
    table = Table(["split", "rows", "file"], [["train", "1,800", "a.jsonl"], ["test", "not available", "b"]],
                  caption="Splits")
    assert text_table(table) == [
        "Splits",
        "split |          rows | file",
        "------+---------------+--------",
        "train |         1,800 | a.jsonl",
        "test  | not available | b",
    ]


def test_user_text_is_escaped_in_markdown_and_html_but_literal_in_code():
    document = Document("T", "sub", [Section("S", [Text(EVIL), Table(["h"], [[EVIL]]), Facts([("k", EVIL)]),
                                                  Code(EVIL)])])
    markdown = render_markdown(document)
    outside_code = markdown.split("```")[0]
    assert "<script" not in outside_code and "\\|" in outside_code and "\\`tick\\`" in outside_code
    html = render_html(document)
    assert "<script" not in html and html.count("&lt;script&gt;") == 4
    assert render_text(document).count(EVIL) == 4  # a terminal shows the text as it is


def test_a_folded_section_is_a_details_element_in_html_only():
    document = Document("T", sections=[Section("Open", [Text("a")]), Section("Config", [Code("x: 1")], folded=True)])
    html = render_html(document)
    assert "<details>\n<summary><h2>Config</h2></summary>" in html and html.count("<details>") == 1
    assert "## Config" in render_markdown(document)


def test_figures_are_a_grid_of_images_each_under_its_title(tmp_path):
    from tunesmith.document import Figures, Image, write_document

    images = [Image("a.png", b"png-a", "Latency (whole log; seconds)"), Image("b.png", b"png-b", EVIL)]
    document = Document("T", sections=[Section("Figures", [Figures(images)])])
    html = render_html(document)
    first = '<div class="figures"><figure><figcaption>Latency (whole log; seconds)</figcaption><img alt='
    assert html.count(first) == 1
    assert html.count("<figcaption>") == 2 and "<script" not in html and ".figures { display: grid;" in html
    assert render_text(document).splitlines()[-2:] == ["[figure: Latency (whole log; seconds)]", f"[figure: {EVIL}]"]
    write_document(document, tmp_path / "r.md", tmp_path / "r.html")
    assert (tmp_path / "a.png").read_bytes() == b"png-a" and (tmp_path / "b.png").read_bytes() == b"png-b"
    markdown = (tmp_path / "r.md").read_text()
    assert "**Latency (whole log; seconds)**\n\n![Latency (whole log; seconds)](a.png)\n\n**" in markdown
