"""render_html: one self-contained page, escaped, with a flame graph of cost by call stack."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tokenspy.record import CallRecord
from tokenspy.reporting.data import ReportData
from tokenspy.reporting.html import render_html

VOID = {"meta", "br", "img", "input", "link", "hr", "col", "wbr"}
EVIL = "<script>alert(1)</script>"


def rec(function: str, cost: float, stack: list[str] | None = None, **kw) -> CallRecord:
    return CallRecord(
        function_name=function, model=kw.pop("model", "gpt-4o"), provider=kw.pop("provider", "openai"),
        input_tokens=kw.pop("inp", 100), output_tokens=kw.pop("out", 10), cost_usd=cost,
        duration_ms=250.0, timestamp=kw.pop("ts", 1_700_000_000.0),
        call_stack=[function] if stack is None else stack, **kw,
    )


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[Node] = []
        self.text = ""

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def find_all(self, cls: str) -> list[Node]:
        found = [self] if cls in self.classes else []
        for c in self.children:
            found += c.find_all(cls)
        return found


class TreeBuilder(HTMLParser):
    """Builds an element tree and fails on any unbalanced tag."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].text += data


def parse(page: str) -> Node:
    builder = TreeBuilder()
    builder.feed(page)
    builder.close()
    assert builder.stack == [builder.root], "unclosed tags"
    return builder.root


def frame_name(frame: Node) -> str:
    return frame.children[0].text


def frame_width(frame: Node) -> float:
    return float(re.fullmatch(r"--w:([\d.]+)%", frame.attrs["style"] or "").group(1))


def sub_frames(frame: Node) -> list[Node]:
    return frame.children[1].children


def test_self_contained_and_well_formed() -> None:
    page = render_html([rec("a", 0.01), rec("b", 0.02, session_id="s1", git_commit="abc")])
    tree = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<script") == 1 and page.count("<style") == 1
    for external in ("http://", "https://", "src=", "href=", "<link", "@import", "url(", "fetch("):
        assert external not in page
    head = next(n for n in tree.children if n.tag == "html").children[0]
    csp = [m.attrs["content"] for m in head.children if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert csp and (csp[0] or "").startswith("default-src 'none'")


def test_user_strings_are_escaped() -> None:
    page = render_html([
        rec(EVIL, 0.01, stack=["outer&<b>", EVIL], model=f"m{EVIL}", provider=f'p"{EVIL}',
            session_id=f"s{EVIL}", git_commit=f"c{EVIL}"),
        rec("x", 0.0, model=f"unpriced{EVIL}", priced=False),
    ])
    assert page.count("<script") == 1  # ours only
    assert "alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "outer&amp;&lt;b&gt;" in page and "outer&<b>" not in page
    assert 'p"' not in page  # quotes too: safe inside attributes
    parse(page)


def test_flame_graph_nesting_and_widths() -> None:
    records = [
        rec("C", 0.04, ["A", "B", "C"]),
        rec("C", 0.04, ["A", "B", "C"]),
        rec("B", 0.02, ["A", "B"]),
        rec("D", 0.10, ["D"]),
    ]
    root_frame = parse(render_html(records)).find_all("flame")[0].children[0]
    assert frame_width(root_frame) == 100.0
    assert "all calls: $0.2000" in frame_name(root_frame)
    top = {frame_name(f): f for f in sub_frames(root_frame)}
    assert set(top) == {"A", "D"}
    assert frame_width(top["A"]) == pytest.approx(50.0) and frame_width(top["D"]) == pytest.approx(50.0)
    (b,) = sub_frames(top["A"])
    assert frame_name(b) == "B" and frame_width(b) == pytest.approx(100.0)  # all of A's cost is in B
    (c,) = sub_frames(b)
    assert frame_name(c) == "C" and frame_width(c) == pytest.approx(80.0)  # of B: 0.08 / 0.10
    assert sub_frames(c) == []
    title = c.children[0].attrs["title"] or ""
    assert "C\n$0.0800 (40.0% of total), 2 calls" in title and "self: $0.0800 in 2 calls" in title


def test_tables_totals_and_unpriced() -> None:
    page = render_html([
        rec("plan", 0.03, model="claude-x", provider="anthropic"),
        rec("plan", 0.0, model="my-finetune", provider="acme", priced=False, inp=5000),
    ])
    assert "By function" in page and "By provider and model" in page
    assert "anthropic" in page and "claude-x" in page
    assert "$0.0300" in page and "total cost" in page
    assert "Unpriced models" in page and "[tool.tokenspy.prices]" in page
    assert '[tool.tokenspy.prices."my-finetune"]' in page
    assert "5,000" in page


def test_all_unpriced_draws_no_flame() -> None:
    page = render_html([rec("a", 0.0, priced=False)])
    assert "No priced calls" in page and 'id="flame"' not in page
    parse(page)


def test_empty() -> None:
    page = render_html([])
    assert "no LLM calls recorded" in page
    parse(page)


def test_accepts_report_data() -> None:
    records = [rec("a", 0.01)]
    assert render_html(records) == render_html(ReportData.from_records(records))


def test_size_does_not_grow_with_calls() -> None:
    stacks = [["main", "plan"], ["main", "plan", "search"], ["main", "write"], ["job", "embed"], ["solo"]]

    def records(n: int) -> list[CallRecord]:
        return [
            rec(stacks[i % 5][-1], 0.002 * (i % 5 + 1), stacks[i % 5], model=["gpt-4o", "claude-x"][i % 2],
                session_id="s", git_commit="abc", ts=1_700_000_000.0 + (i % 5))
            for i in range(n)
        ]

    small, large = render_html(records(10)), render_html(records(10_000))
    # Only the figures' digits may differ (2 calls vs 2,000 calls...).
    assert abs(len(large) - len(small)) < 0.02 * len(small)
    assert len(large) - len(small) < 400
    assert len(small) < 20_000
