"""The PR comment renders without horizontal scrolling in GitHub's 860 px column.

Each golden report is rendered by a GFM renderer (markdown-it-py: CommonMark + tables + inline
HTML, as GitHub allows ``<details>``), styled with the rules of GitHub's ``.markdown-body`` that
decide widths (tables are ``display: block; max-width: 100%; overflow: auto``, so a too wide
table scrolls inside itself), and laid out by headless Chromium in an 860 px column. No element
may be wider than its box. Mermaid blocks are left out: GitHub replaces them with a chart.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
COLUMN_PX = 860

# The layout-relevant rules of GitHub's markdown-body (primer/css markdown), verbatim in spirit.
GITHUB_CSS = """
body{margin:0}
.markdown-body{box-sizing:border-box;width:COLUMNpx;padding:16px;font-family:-apple-system,"Segoe UI",
 "Noto Sans",Helvetica,Arial,sans-serif;font-size:14px;line-height:1.5;word-wrap:break-word}
.markdown-body table{display:block;width:max-content;max-width:100%;overflow:auto;border-spacing:0;
 border-collapse:collapse}
.markdown-body td,.markdown-body th{padding:6px 13px;border:1px solid #d0d7de}
.markdown-body code{padding:.2em .4em;font-size:85%;white-space:break-spaces}
.markdown-body pre{overflow:auto;padding:16px}
.markdown-body blockquote{margin:0;padding:0 1em;border-left:.25em solid #d0d7de}
""".replace("COLUMN", str(COLUMN_PX))


def render_gfm(markdown: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape('comment')}</title>"
            f"<style>{GITHUB_CSS}</style></head><body><article class='markdown-body'>{body}</article>"
            "</body></html>")


OVERFLOW_JS = """
const out = [];
for (const el of document.querySelectorAll('.markdown-body, .markdown-body *')) {
  if (el.closest('pre > code.language-mermaid') || el.matches('pre:has(> code.language-mermaid)')) continue;
  if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0)
    out.push(el.tagName + ': ' + el.scrollWidth + ' > ' + el.clientWidth + ' ' + el.textContent.slice(0, 80));
}
const doc = document.documentElement;
if (doc.scrollWidth > doc.clientWidth) out.push('document: ' + doc.scrollWidth + ' > ' + doc.clientWidth);
return out;
"""


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.glob("ci_report_*.md")))
def test_golden_comment_has_no_horizontal_scroll_at_860px(browser, tmp_path, name):
    page = tmp_path / "comment.html"
    page.write_text(render_gfm((GOLDEN / name).read_text(encoding="utf-8")), encoding="utf-8")
    browser.set_window_size(COLUMN_PX + 40, 900)
    browser.get(page.as_uri())
    assert browser.execute_script("return document.querySelectorAll('table').length") >= 1
    assert browser.execute_script(OVERFLOW_JS) == [], name


def test_the_check_catches_a_wide_table(browser, tmp_path):
    # The old 11-column layout with a long name scrolled sideways: the check must see that.
    wide = "| " + " | ".join(["Function"] + [f"Column {i}" for i in range(10)]) + " |\n|" + "---|" * 11 + "\n"
    wide += "| " + " | ".join(["app." + "long_name_" * 12] + ["\\$0.000075 → \\$0.001300"] * 10) + " |\n"
    page = tmp_path / "wide.html"
    page.write_text(render_gfm(wide), encoding="utf-8")
    browser.get(page.as_uri())
    assert any(line.startswith("TABLE") for line in browser.execute_script(OVERFLOW_JS))
