"""The HTML report of a cost diff: base and head side by side, by function, by test and by
model, and the flame graph of each side. One self-contained page (the same CSS, JS and CSP as
``tokenspy.reporting.html``), written by the GitHub Action and uploaded as an artifact.

Every figure comes from the ``CostDiff`` (the numbers the verdict rests on), carried in
``data-*`` attributes too, so a test can compare the page with the diff's JSON. The flame graphs
come from each side's DB (stored costs: a picture of where the money goes, not the verdict).
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenspy.ci import fmt
from tokenspy.ci.model import CostDiff, DiffRow, Usage
from tokenspy.reporting.data import ReportData
from tokenspy.reporting.html import CSP, _asset, _flame, esc

MAX_ROWS = 500  # per table: beyond it, the changed and the dearest rows are what a reader needs


def _usage_cells(u: Usage | None, side: str) -> str:
    if u is None:
        return f'<td class="n" data-{side}-usd="">—</td><td class="n">—</td><td class="n">—</td>'
    return (f'<td class="n" data-{side}-usd="{u.cost_usd!r}">{esc(fmt.usd(u.cost_usd))}</td>'
            f'<td class="n" data-{side}-calls="{u.calls!r}">{esc(fmt.num(u.calls))}</td>'
            f'<td class="n">{esc(fmt.num(u.tokens))}</td>')


def _status(r: DiffRow) -> str:
    if r.regression:
        return "❌ over the limit"
    if r.warning:
        return "⚠️ over the warn level"
    return fmt.CHANGE_LABEL[r.change]


def _table(kind: str, rows: Sequence[DiffRow], has_b: bool) -> str:
    shown = list(rows[:MAX_ROWS])
    head = ("<tr><th rowspan=2>Name</th><th rowspan=2>Change</th>"
            + ('<th colspan=3>Base</th>' if has_b else "") + '<th colspan=3>Head</th>'
            + ('<th rowspan=2 class="n">Δ $</th><th rowspan=2 class="n">Δ %</th>' if has_b else "") + "</tr><tr>"
            + ('<th class="n">cost</th><th class="n">calls</th><th class="n">tokens</th>' * (2 if has_b else 1))
            + "</tr>")
    body = []
    for r in shown:
        cls = "up" if r.delta_usd > 0 else "down" if r.delta_usd < 0 else ""
        cells = [f'<td class="name"><span title="{esc(r.key)}">{esc(r.key)}</span></td>',
                 f"<td>{esc(_status(r) if has_b else '')}</td>"]
        if has_b:
            cells.append(_usage_cells(r.baseline, "base"))
        cells.append(_usage_cells(r.current, "head"))
        if has_b:
            cells.append(f'<td class="n {cls}" data-delta-usd="{r.delta_usd!r}">{esc(fmt.signed_usd(r.delta_usd))}</td>'
                         f'<td class="n {cls}">{esc(fmt.pct(r))}</td>')
        body.append(f'<tr data-kind="{esc(kind)}" data-key="{esc(r.key)}">{"".join(cells)}</tr>')
    more = (f'<p class="hint">{len(rows) - len(shown):,} more rows not shown.</p>'
            if len(rows) > len(shown) else "")
    return (f'<table class="sortable diff" data-kind="{esc(kind)}"><thead>{head}</thead>'
            f'<tbody>{"".join(body)}</tbody></table>{more}')


def _section(title: str, body: str, dom_id: str) -> str:
    return f'<section id="{esc(dom_id)}"><h2>{esc(title)}</h2>{body}</section>'


def render_diff_html(d: CostDiff, *, headline: str = "", base_data: ReportData | None = None,
                     head_data: ReportData | None = None) -> str:
    """The page. ``headline``: the report's sentence (plain text); ``*_data``: each side's calls
    for its flame graph (None: no graph for that side)."""
    from tokenspy.version import __version__

    has_b = d.has_baseline
    t = d.total
    cur = t.current.cost_usd if t.current else 0.0
    summary = (f'<p class="verdict" data-verdict="{esc(d.verdict)}">Verdict <b>{esc(d.verdict)}</b>'
               + (f" (accepted by label {esc(d.accepted_by)})" if d.accepted_by else "")
               + f' · head <b data-total-head="{cur!r}">{esc(fmt.usd(cur))}</b>')
    if has_b and t.baseline is not None:
        summary += (f' · base <b data-total-base="{t.baseline.cost_usd!r}">{esc(fmt.usd(t.baseline.cost_usd))}</b>'
                    f' · Δ <b data-total-delta="{t.delta_usd!r}">{esc(fmt.signed_usd(t.delta_usd))}</b>'
                    f" ({esc(fmt.pct(t))})")
    summary += "</p>"
    notes = "".join(f'<p class="hint">{esc(n)}</p>' for n in (d.usage_note, *d.notes) if n)
    sections = [
        _section("By function", _table("function", d.functions, has_b), "by-function"),
        _section("By test", _table("test", d.tests, has_b) if d.tests else '<p class="muted">No tests.</p>',
                 "by-test"),
        _section("By model", _table("model", d.models, has_b), "by-model"),
    ]
    flames = []
    for label, data, dom_id in (("Base", base_data, "flame-base"), ("Head", head_data, "flame-head")):
        if data is not None:
            flames.append(f"<div><h3>{esc(label)}</h3>{_flame(data, dom_id)}</div>")
    if flames:
        sections.append(_section("Cost by call stack", f'<div class="sides">{"".join(flames)}</div>', "flames"))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>tokenspy cost diff</title><style>{_asset('report.css')}</style></head>\n"
        f'<body><header><h1>{esc(headline or "tokenspy cost diff")}</h1>{summary}{notes}</header>'
        f"<main>{''.join(sections)}</main>"
        f"<footer>Generated by tokenspy {esc(__version__)} · prices: {esc(d.table_version)}. Figures are "
        "aggregates: this file holds no prompts, no responses and no individual calls.</footer>"
        f"<script>{_asset('report.js')}</script></body></html>\n"
    )
