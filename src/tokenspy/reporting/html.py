"""The HTML report: one self-contained file (inline CSS and JS, nothing fetched).

Its size depends on the number of distinct stacks, functions, models, sessions and commits,
never on the number of calls: every figure is an aggregate. Every user-controlled string (function,
model, provider, session and commit names) goes through ``html.escape``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from html import escape
from importlib.resources import files

from tokenspy.record import CallRecord
from tokenspy.reporting.data import GroupRow, ReportData, StackNode, report_data
from tokenspy.reporting.text import (
    EMPTY,
    compact_tokens,
    format_duration_ms,
    format_share,
    format_time,
    format_tokens,
    format_usd,
    model_cost,
    short_commit,
)
from tokenspy.textsafe import BIDI, visible

MAX_GROUP_ROWS = 50
# Frames thinner than this share of the whole are left out: they would be under a pixel wide,
# and a DB with very many distinct stacks would otherwise make a huge page.
MIN_FRAME_SHARE = 1e-4
# Content-Security-Policy of the page itself: even a crafted name could not make it load anything.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


@cache
def _asset(name: str) -> str:
    return (files("tokenspy.reporting") / "templates" / name).read_text(encoding="utf-8")


_VISIBLE = {c: visible(c) for c in BIDI}


def esc(value: object) -> str:
    """HTML-escaped, bidi controls shown as escapes (a character reference would still act)."""
    return escape(str(value).translate(_VISIBLE), quote=True)


# --------------------------------------------------------------------------- pieces


def _cards(data: ReportData) -> str:
    t = data.totals
    avg = t.duration_ms / t.calls if t.calls else 0.0
    cards = [
        (format_usd(t.cost_usd), "total cost"),
        (f"{t.calls:,}", "calls"),
        (compact_tokens(t.total_tokens), f"tokens ({compact_tokens(t.input_tokens)} in, "
                                         f"{compact_tokens(t.output_tokens)} out)"),
        (compact_tokens(t.cached_input_tokens), "cached input tokens"),
        (compact_tokens(t.reasoning_tokens), "reasoning tokens"),
        (f"{avg:,.0f} ms", f"latency per call ({format_duration_ms(t.duration_ms)} in total)"),
    ]
    if t.unpriced_calls:
        cards.append((f"{t.unpriced_calls:,}", "unpriced calls (counted as $0)"))
    body = "".join(f'<div class="card"><b>{esc(v)}</b><span>{esc(label)}</span></div>' for v, label in cards)
    return f'<div class="cards">{body}</div>'


def _hue(name: str) -> int:
    # Stable warm colours: the same function keeps its colour from report to report.
    return 8 + zlib.crc32(name.encode("utf-8", "surrogatepass")) % 44


def _frame_title(node: StackNode, root_cost: float) -> str:
    lines = [
        node.name,
        f"{format_usd(node.total_cost_usd)} ({format_share(node.total_cost_usd / root_cost)} of total), "
        f"{node.calls:,} call{'s' * (node.calls != 1)}, {format_tokens(node.tokens)} tokens",
    ]
    if node.self_calls:
        lines.append(f"self: {format_usd(node.self_cost_usd)} in {node.self_calls:,} "
                     f"call{'s' * (node.self_calls != 1)}")
    return "\n".join(lines)


def _frame(node: StackNode, width: float, root_cost: float, is_root: bool = False) -> str:
    name = f"all calls: {format_usd(node.total_cost_usd)}" if is_root else node.name
    colour = "hsl(220 14% 88%)" if is_root else f"hsl({_hue(node.name)} 85% 68%)"
    children = "".join(
        _frame(child, child.total_cost_usd / node.total_cost_usd * 100, root_cost)
        for child in node.children
        if child.total_cost_usd / root_cost >= MIN_FRAME_SHARE and node.total_cost_usd > 0
    )
    return (
        f'<div class="f" style="--w:{width:.3f}%">'
        f'<div class="l" style="background:{colour}" title="{esc(_frame_title(node, root_cost))}">'
        f"{esc(name)}</div>"
        f'<div class="c">{children}</div></div>'
    )


def _flame(data: ReportData, dom_id: str = "flame") -> str:
    root = data.stacks
    if root.total_cost_usd <= 0:
        return '<p class="muted">No priced calls: there is no cost to draw.</p>'
    return (
        '<p class="hint">Width is cost. Hover a frame for its figures; click it to zoom in, '
        "click the top frame to zoom out.</p>"
        f'<div class="flame" id="{esc(dom_id)}">{_frame(root, 100.0, root.total_cost_usd, is_root=True)}</div>'
    )


Cell = tuple[str, str]  # (css class, already-escaped html)


def _table(headers: Sequence[tuple[str, str]], rows: Iterable[Sequence[Cell]]) -> str:
    head = "".join(f'<th class="{cls}">{esc(h)}</th>' for h, cls in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="{cls}">{html}</td>' for cls, html in row) + "</tr>" for row in rows
    )
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _num(text: str) -> Cell:
    return ("n", esc(text))


def _name(text: str) -> Cell:
    return ("name", f'<span title="{esc(text)}">{esc(text)}</span>')


def _bar(share: float) -> Cell:
    return ("bar", f'<span style="width:{max(0.0, min(1.0, share)) * 100:.1f}%"></span>')


def _functions(data: ReportData) -> str:
    headers = [("function", ""), ("calls", "n"), ("input", "n"), ("output", "n"), ("cost", "n"),
               ("per call", "n"), ("share", "n"), ("", "")]
    rows = (
        (_name(f.name), _num(f"{f.calls:,}"), _num(format_tokens(f.input_tokens)),
         _num(format_tokens(f.output_tokens)), _num(format_usd(f.cost_usd)),
         _num(format_usd(f.cost_usd / f.calls if f.calls else 0.0)), _num(format_share(f.share)),
         _bar(f.share))
        for f in data.functions
    )
    return _table(headers, rows)


def _models(data: ReportData) -> str:
    headers = [("provider", ""), ("model", ""), ("calls", "n"), ("input", "n"), ("output", "n"),
               ("cached", "n"), ("reasoning", "n"), ("cost", "n"), ("share", "n"), ("", "")]
    rows = (
        (_name(m.provider), _name(m.model), _num(f"{m.calls:,}"), _num(format_tokens(m.input_tokens)),
         _num(format_tokens(m.output_tokens)), _num(format_tokens(m.cached_input_tokens)),
         _num(format_tokens(m.reasoning_tokens)),
         _num(model_cost(m.cost_usd, m.calls, m.unpriced_calls)), _num(format_share(m.share)),
         _bar(m.share))
        for m in data.models
    )
    note = (
        '<p class="hint">* some calls of this model had no known price and count as $0.</p>'
        if any(0 < m.unpriced_calls < m.calls for m in data.models) else ""
    )
    return _table(headers, rows) + note


def _unpriced(data: ReportData) -> str:
    headers = [("provider", ""), ("model", ""), ("calls", "n"), ("input", "n"), ("output", "n")]
    rows = (
        (_name(u.provider), _name(u.model), _num(f"{u.calls:,}"), _num(format_tokens(u.input_tokens)),
         _num(format_tokens(u.output_tokens)))
        for u in data.unpriced
    )
    example = data.unpriced[0].model.replace("\\", "\\\\").replace('"', '\\"')
    return (
        '<p>These models have no known price, so their calls count as $0. Add them to '
        "<code>[tool.tokenspy.prices]</code> in <code>pyproject.toml</code> ($ per 1M tokens):</p>"
        f'<pre>[tool.tokenspy.prices."{esc(example)}"]\ninput = 1.0\noutput = 4.0</pre>'
        + _table(headers, rows)
    )


def _groups(rows_in: Sequence[GroupRow], label: str, show_key: Callable[[str], str]) -> str:
    shown = rows_in[:MAX_GROUP_ROWS]
    headers = [(label, ""), ("calls", "n"), ("cost", "n"), ("first call", ""), ("last call", "")]
    rows = (
        (("name", f'<span title="{esc(g.key)}">{esc(show_key(g.key))}</span>'), _num(f"{g.calls:,}"),
         _num(format_usd(g.cost_usd)), ("", esc(format_time(g.first_timestamp))),
         ("", esc(format_time(g.last_timestamp))))
        for g in shown
    )
    more = len(rows_in) - len(shown)
    note = f'<p class="hint">The latest {len(shown)} of {len(rows_in):,}.</p>' if more else ""
    return note + _table(headers, rows)


def _section(title: str, body: str) -> str:
    return f"<section><h2>{esc(title)}</h2>{body}</section>"


# --------------------------------------------------------------------------- public


def render_html(data_or_records: ReportData | Iterable[CallRecord]) -> str:
    """The whole report as one self-contained HTML page."""
    from tokenspy.version import __version__

    data = report_data(data_or_records)
    t = data.totals
    if data.is_empty:
        body = f'<p class="muted">{esc(EMPTY)}.</p>'
    else:
        sections = [
            _cards(data),
            _section("Cost by call stack", _flame(data)),
            _section("By function", _functions(data)),
            _section("By provider and model", _models(data)),
        ]
        if data.unpriced:
            sections.append(_section("Unpriced models", _unpriced(data)))
        if data.tests:
            sections.append(_section("By test", _groups(data.tests, "test", str)))
        if data.sessions:
            sections.append(_section("Sessions", _groups(data.sessions, "session", str)))
        if data.commits:
            sections.append(_section("Git commits", _groups(data.commits, "commit", short_commit)))
        body = "".join(sections)
    period = (
        f"{format_time(t.first_timestamp)} to {format_time(t.last_timestamp)} (local time)"
        if not data.is_empty else ""
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>tokenspy cost report</title><style>{_asset('report.css')}</style></head>\n"
        f'<body><header><h1>tokenspy cost report</h1><div class="muted">{esc(period)}</div></header>'
        f"<main>{body}</main>"
        f"<footer>Generated by tokenspy {esc(__version__)}. Figures are aggregates: this file holds "
        "no prompts, no responses and no individual calls.</footer>"
        f"<script>{_asset('report.js')}</script></body></html>\n"
    )
