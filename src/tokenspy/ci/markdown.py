"""Render a ``CostDiff`` as the one Markdown report (templates/report.md.j2).

What a reviewer reads first: one sentence (the cost change per test run, and per month at the
configured traffic) and one line of counts; then the rows over a level (key, base → head, change,
why), the trend, and the details collapsed. Tables stay within GitHub's 860 px column: at most 6
columns, columns zero on both sides left out, token breakdowns only when non-zero, long names
shortened in the middle (the full name in the cell's ``<details>``).

Names come from user code and are untrusted: ``md`` makes any string inert inside a GFM table
cell (no ``|`` to split the row, no newline to end it, no HTML, no code span, no emphasis or
link, no @-mention that would ping someone from a PR comment). A length cap (``max_chars`` /
``max_bytes``) drops whole table rows, never part of one, and says so in the report.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from tokenspy.ci import fmt
from tokenspy.ci.diff import EPS_USD, MIN_NOISE_RUNS
from tokenspy.ci.model import CostDiff, DiffRow, Usage
from tokenspy.ci.traffic import Traffic, monthly, total_monthly
from tokenspy.ci.trend import Trend, mermaid, one_line
from tokenspy.textsafe import BIDI

STEP_SUMMARY_MAX_BYTES = 1024 * 1024
COMMENT_MAX_CHARS = 65_000  # GitHub's comment body limit is 65,536

_MD = {
    ord("\\"): "\\\\",
    ord("|"): "&#124;",
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    ord("&"): "&amp;",
    ord("`"): "&#96;",
    ord("@"): "&#64;",
    ord("*"): "\\*",
    ord("_"): "\\_",
    ord("~"): "\\~",
    ord("["): "\\[",
    ord("]"): "\\]",
    ord("#"): "\\#",
    ord("!"): "\\!",
    ord("$"): "\\$",  # GitHub renders $…$ as math
}
_NAMED_CONTROLS = {"\n": "n", "\r": "r", "\t": "t"}
# Line terminators of GFM and of str.splitlines, every other control character and lone
# surrogates (unencodable): shown as a visible backslash escape, so that one name can never span
# two lines or break the UTF-8 output.
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *range(0xD800, 0xE000), *sorted(BIDI)]
for _c in _CONTROLS:
    _ch = chr(_c)
    _MD[_c] = "\\\\" + _NAMED_CONTROLS.get(_ch, f"x{_c:02x}" if _c < 0x100 else f"u{_c:04x}")


def md(text: object) -> str:
    """Escape any text for a Markdown table cell / paragraph (one line, inert, no autolink)."""
    # GFM links bare "scheme://…" and "www.…": a name holding one must stay text
    return str(text).translate(_MD).replace("://", "&#58;//").replace("www.", "www&#46;")


def _num_cell(text: str) -> str:
    # Our own number formats: only "$" needs escaping (it is much cheaper than `md`).
    return text.replace("$", "\\$")


def code_span(text: str) -> str:
    """Inline code for a command line; the fence is longer than any backtick run inside."""
    one_line = " ".join(str(text).splitlines())
    run = longest = 0
    for ch in one_line:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    return f"{fence}{pad}{one_line}{pad}{fence}"



@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    total: int = 0
    hidden: int = 0


@dataclass
class Section:
    title: str
    singular: str
    plural: str
    changed: Table
    unchanged: Table


@dataclass(frozen=True)
class Extras:
    """What the report shows beyond the diff: who it speaks of, traffic, trend, links."""

    subject: str = "This change"  # "This PR", "This push", …
    traffic: Traffic | None = None
    trend: Trend | None = None
    html_report: str = ""  # the HTML report's artifact name (escaped here)
    html_url: str = ""  # where to download it (the run's artifacts)


NAME_MAX = 48  # characters of a name shown in a table cell
TOP_ROWS = 10  # rows of the table under the headline
_ICON = {"new": "🆕", "removed": "➖", "increased": "🔺", "decreased": "🔻", "unchanged": "✅"}


def _icon(row: DiffRow) -> str:
    if row.regression:
        return "❌"
    if row.warning:
        return "⚠️"
    return _ICON[row.change]


def shorten_middle(text: str, width: int = NAME_MAX) -> str:
    if len(text) <= width:
        return text
    keep = width - 1
    return text[: keep // 2] + "…" + text[len(text) - (keep - keep // 2):]


def name_cell(key: str, icon: str = "") -> str:
    """A name for a table cell: shortened in the middle when long, the full name one click away."""
    prefix = f"{icon} " if icon else ""
    short = shorten_middle(key)
    if short == key:
        return prefix + md(key)
    return f"<details><summary>{prefix}{md(short)}</summary>{md(key)}</details>"


def _plural(n: int | float, word: str, plural: str | None = None) -> str:
    return f"{fmt.num(n)} {word if n == 1 else plural or word + 's'}"


def _delta_cell(row: DiffRow) -> str:
    if not row.changed or (row.delta_pct is None and not row.delta_usd):
        return fmt.signed_usd(row.delta_usd)
    return f"{fmt.signed_usd(row.delta_usd)} ({fmt.pct(row)})"


def _nonzero(u: Usage | None, name: str) -> bool:
    return u is not None and bool(getattr(u, name))


_TOKEN_PARTS = (("input_tokens", "in"), ("output_tokens", "out"), ("cached_input_tokens", "cached"),
                ("cache_write_tokens", "cache write"), ("reasoning_tokens", "reasoning"))


def tokens_cell(row: DiffRow) -> str:
    """``in 1,000 → 1,500 · out 300``: a breakdown only where it is non-zero on a side."""
    parts = [f"{label} {fmt.pair(row, name)}" for name, label in _TOKEN_PARTS
             if _nonzero(row.baseline, name) or _nonzero(row.current, name)]
    return " · ".join(parts) or "0"


def why(row: DiffRow) -> str:
    """More calls or dearer calls, and the level crossed, in words."""
    b, c = row.baseline, row.current
    out: list[str] = []
    if b is None:
        out.append(f"new: {_plural(c.calls if c else 0, 'call')} at {fmt.per_call(c)} each")
    elif c is None:
        out.append(f"removed: {_plural(b.calls, 'call')} at {fmt.per_call(b)} each")
    else:
        if fmt.num(b.calls) != fmt.num(c.calls):
            out.append(f"{'more' if c.calls > b.calls else 'fewer'} calls ({fmt.num(b.calls)} → {fmt.num(c.calls)})")
        pb, pc = b.cost_per_call, c.cost_per_call
        if fmt.usd(pb) != fmt.usd(pc):
            out.append(f"{'dearer' if pc > pb else 'cheaper'} calls ({fmt.usd(pb)} → {fmt.usd(pc)} per call)")
        elif not out and row.delta_tokens:
            out.append(f"tokens {fmt.signed_num(row.delta_tokens)}")
    if row.level and row.limits is not None:
        level = "limit" if row.level == "fail" else "warn level"
        out.append(f"over the {level} ({row.limits.describe() if row.level == 'fail' else _warn_text(row)})")
    return "; ".join(out) or "—"


def _warn_text(row: DiffRow) -> str:
    assert row.limits is not None
    pct, usd = row.limits.warn
    parts = [] if pct == float("inf") else [f"+{pct:g}%"]
    if usd > 0:
        parts.append(f"+${usd:g}")
    return " and ".join(parts) or "any increase"


def headline(d: CostDiff, extras: Extras | None = None) -> str:
    """The one sentence: the change per test run, and per month at the configured traffic."""
    x = extras or Extras()
    month = total_monthly(d, x.traffic)
    t = d.total
    if not d.has_baseline:
        if d.no_calls:
            return rf"{x.subject}: no LLM calls in this run, \$0 (no baseline to compare with)"
        cost = t.current.cost_usd if t.current else 0.0
        per_month = f" — {fmt.usd(month)}/month at configured traffic" if month is not None else ""
        return f"{x.subject} costs {fmt.usd(cost)} in LLM calls per test run{per_month} (no baseline to compare with)"
    per_month = f" — {fmt.signed_usd(month)}/month at configured traffic" if month is not None else ""
    if d.no_calls:
        per_month += " (no LLM calls in this run)"
    if t.delta_usd > EPS_USD:
        return f"{x.subject} raises LLM cost by {fmt.signed_usd(t.delta_usd)} per test run ({fmt.pct(t)}){per_month}"
    if t.delta_usd < -EPS_USD:
        return f"{x.subject} lowers LLM cost by {fmt.signed_usd(t.delta_usd)} per test run ({fmt.pct(t)}){per_month}"
    cost = t.current.cost_usd if t.current else 0.0
    return f"{x.subject} leaves LLM cost unchanged at {fmt.usd(cost)} per test run"


def _kinds(rows: Sequence[DiffRow]) -> str:
    by: dict[str, int] = {}
    for r in rows:
        by[r.kind] = by.get(r.kind, 0) + 1
    return ", ".join("the total" if k == "total" else _plural(n, k) for k, n in by.items())


def counts_text(d: CostDiff) -> str:
    """``❌ 1 function over the limit · ⚠️ 2 over the warn level · ✅ 14 unchanged · 🆕 1 new``."""
    if not d.has_baseline:
        return "📊 " + " · ".join(_plural(len(rows), word) for word, rows in
                                  (("function", d.functions), ("test", d.tests), ("model", d.models)))
    flagged = {(r.kind, r.key) for r in (*d.regressions, *d.warnings)}
    parts = []
    if d.regressions:
        failing = "" if d.verdict == "fail" or d.accepted_by else " (not failing)"
        parts.append(f"❌ {_kinds(d.regressions)} over the limit{failing}")
    if d.warnings:
        parts.append(f"⚠️ {fmt.num(len(d.warnings))} over the warn level")
    rest = [r for r in d.functions if ("function", r.key) not in flagged]
    for change, label in (("increased", "up"), ("decreased", "down"), ("new", "new"), ("removed", "removed")):
        n = sum(1 for r in rest if r.change == change)
        if n:
            parts.append(f"{_ICON[change]} {fmt.num(n)} {label}")
    unchanged = sum(1 for r in rest if r.change == "unchanged")
    parts.append(f"✅ {_plural(unchanged, 'function')} unchanged" if not parts or unchanged
                 else "✅ 0 unchanged")
    return " · ".join(parts)


def _regression_rows(d: CostDiff, x: Extras) -> tuple[str, Table]:
    """The rows over a level; with none, the biggest changes (a reviewer still sees what moved)."""
    rows = [*d.regressions, *d.warnings]
    title = "Over a level"
    if not rows and d.has_baseline:
        rows = [r for r in d.functions if r.changed][:5]
        title = "Biggest changes"
    months = [total for r in rows if (total := monthly(r, x.traffic)) is not None]
    header = ["Key", "Base → Head", "Change", "Why"] + (["Per month"] if months else [])
    out = []
    for r in rows:
        key = "**total**" if r.kind == "total" else name_cell(r.key, _icon(r))
        if r.kind == "test":
            key += " (test)"
        b = fmt.usd(r.baseline.cost_usd) if r.baseline else "—"
        c = fmt.usd(r.current.cost_usd) if r.current else "—"
        cells = [key, md(f"{b} → {c}"), md(_delta_cell(r)), md(why(r))]
        if months:
            m = monthly(r, x.traffic)
            cells.append(md(f"{fmt.signed_usd(m)}/month") if m is not None else "—")
        out.append(cells)
    # The top of the report stays short: the rest is in the details, and annotated.
    return title, Table([md(h) for h in header], out[:TOP_ROWS], len(out), max(0, len(out) - TOP_ROWS))


def _unpriced_rows(d: CostDiff) -> Table:
    header = ["Model", "Calls", "Tokens"] + (["Δ tokens"] if d.has_baseline else [])
    rows = []
    for r in d.unpriced_models:
        cells = [fmt.pair(r, "calls"), tokens_cell(r)]
        if d.has_baseline:
            cells.append(fmt.signed_num(r.delta_tokens))
        rows.append([name_cell(r.key), *(md(c) for c in cells)])
    return Table(header, rows, len(rows))


def _detail_columns(rows: Sequence[DiffRow]) -> tuple[bool, bool]:
    """(any tokens, any cost) over both sides of ``rows``: columns zero everywhere are left out."""
    sides = [u for r in rows for u in (r.baseline, r.current) if u is not None]
    return any(u.tokens or u.cached_input_tokens or u.reasoning_tokens for u in sides), \
        any(u.cost_usd for u in sides)


def _detail_table(rows: Sequence[DiffRow], first: str, has_b: bool, x: Extras, tokens: bool, cost: bool
                  ) -> Table:
    header = [first, "Calls"] + (["Tokens"] if tokens else []) + (["Cost", "$/call"] if cost else [])
    if cost and has_b:
        header.append("Δ")
    body = []
    for r in rows:
        cells = [name_cell(r.key, _icon(r) if has_b else ""), md(fmt.pair(r, "calls"))]
        if tokens:
            cells.append(md(tokens_cell(r)))
        if cost:
            pb, pc = (fmt.per_call(r.baseline), fmt.per_call(r.current))
            per = pc if r.baseline is None else pb if r.current is None or pb == pc else f"{pb} → {pc}"
            cells += [md(fmt.pair(r, "cost_usd", fmt.usd)), md(per)]
            m = monthly(r, x.traffic, absolute=not has_b)
            month = "" if m is None or (has_b and not r.changed) else \
                f" · {fmt.signed_usd(m) if has_b else fmt.usd(m)}/month"
            if has_b:
                cells.append(md(_delta_cell(r) + month))
            elif month:
                cells[-1] += md(month)
        body.append(cells)
    return Table([md(h) for h in header], body, len(body))


def _sections(d: CostDiff, x: Extras) -> list[Section]:
    has_b = d.has_baseline
    out = []
    for title, singular, plural, first, rows in (
        ("By function", "function", "functions", "Function", d.functions),
        ("By test", "test", "tests", "Test", d.tests),
        ("By model", "model", "models", "Model", d.models),
    ):
        tokens, cost = _detail_columns(rows)
        changed = [r for r in rows if r.changed or not has_b]
        unchanged = [r for r in rows if has_b and not r.changed]
        out.append(Section(title, singular, plural, _detail_table(changed, first, has_b, x, tokens, cost),
                           _detail_table(unchanged, first, has_b, x, tokens, cost)))
    return out


def mode_text(d: CostDiff) -> str:
    noise = d.mode == "noise"

    def side(name: str, info) -> str:
        if info is None:
            return ""
        of = f" of {info.state}" if info.state else ""
        if info.sharded:
            return f"{name}: {info.runs} shards summed as one run{of}"
        if noise:
            sd = "—" if info.cost_sd is None else fmt.usd(info.cost_sd)
            return f"{name}: n={info.samples}{of}, mean {fmt.usd(info.cost_usd)}, σ {sd}"
        if info.samples >= 2:
            return f"{name}: mean of {info.samples} runs{of}"
        return f"{name}: 1 run{of}"

    sides = "; ".join(s for s in (side("baseline", d.baseline), side("current", d.current)) if s)
    if noise:
        return (f"noise — per-run means compared, a change counts only beyond "
                f"{d.thresholds.noise_sigma:g}σ of the per-run cost ({sides}).")
    if d.baseline is None:
        return f"report ({sides})."
    repeats = max(d.current.samples, d.baseline.samples)
    why_not = (f"; noise mode needs {MIN_NOISE_RUNS} runs of identical code on each side"
               if repeats >= 2 else "")
    return f"plain thresholds ({sides}{why_not})."


def _limits_text(d: CostDiff) -> str:
    return md(d.thresholds.limits.describe()) + " per function and test (the total when none is over)"


def reproduce_text(d: CostDiff) -> str:
    return code_span(d.reproduce) if d.reproduce else "—"


def _icon_of(d: CostDiff) -> str:
    if not d.has_baseline:
        return "📊"
    if d.verdict == "fail":
        return "❌"
    if d.accepted_by:
        return "☑️"
    if d.regressions or d.warnings:
        return "⚠️"
    return "✅"


def accepted_text(d: CostDiff) -> str:
    if not d.accepted_by:
        return ""
    return (f"☑️ **Accepted by label** `{d.accepted_by.replace('`', '')}`: "
            f"{_plural(len(d.regressions), 'regression')} over the limit acknowledged, verdict **pass**.")


@lru_cache(maxsize=1)
def _env():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tokenspy.ci", "templates"),
        autoescape=False,  # Markdown, not HTML: escaping is done by `md` on every name
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["md"] = md
    return env


def _cut(table: Table, limit: int | None) -> Table:
    if limit is None or len(table.rows) <= limit:
        return table
    return Table(table.header, table.rows[:limit], table.total, table.total - limit)


@dataclass
class _Parts:
    sections: list[Section]
    top_title: str
    top: Table
    unpriced: Table


def _render(d: CostDiff, parts: _Parts, x: Extras, marker: str, limit: int | None, budget_note: str) -> str:
    secs = [Section(s.title, s.singular, s.plural, _cut(s.changed, limit), _cut(s.unchanged, limit))
            for s in parts.sections]
    trend = x.trend if x.trend is not None and len(x.trend.points) >= 2 else None
    return _env().get_template("report.md.j2").render(
        d=d, marker=marker, icon=_icon_of(d), headline=md(headline(d, x)), counts=md(counts_text(d)),
        accepted=accepted_text(d), usage_note=md(d.usage_note), sections=secs,
        top_title=parts.top_title, top=_cut(parts.top, limit) if parts.top.rows else None,
        unpriced=_cut(parts.unpriced, limit) if parts.unpriced.rows else None, mode_text=md(mode_text(d)),
        limits=_limits_text(d), notes=[md(n) for n in d.notes], reproduce=reproduce_text(d),
        truncated=budget_note if limit is not None else "",
        trend_line=md(one_line(trend)) if trend else "", trend_chart=mermaid(trend) if trend else "",
        trend_title=md(trend.title) if trend else "", html_report=_link(x.html_report, x.html_url),
        n_keys=f"{_plural(len(d.functions), 'function')}, {_plural(len(d.tests), 'test')}, "
               f"{_plural(len(d.models), 'model')}",
    )


def _link(text: str, url: str) -> str:
    if not text:
        return ""
    if url and url.startswith(("https://", "http://")) and not any(c in url for c in " ()<>[]\n\r\"'`"):
        return f"[{md(text)}]({url})"
    return md(text)


def marker_for(tag: str = "") -> str:
    """The hidden marker a sticky comment is found by (one per tag: one comment per job)."""
    clean = "".join(ch for ch in tag if ch.isalnum() or ch in "._-/ ")[:100].strip()
    return f"<!-- tokenspy{':' + clean if clean else ''} -->"


def render_markdown(d: CostDiff, max_chars: int | None = None, max_bytes: int | None = None,
                    extras: Extras | None = None, tag: str = "") -> str:
    """The Markdown report; with a cap, as many whole rows as fit (same number in every table)."""
    x = extras or Extras()
    title, top = _regression_rows(d, x)
    parts = _Parts(_sections(d, x), title, top, _unpriced_rows(d))
    marker = marker_for(tag)

    def fits(text: str) -> bool:
        return ((max_chars is None or len(text) <= max_chars)
                and (max_bytes is None or len(text.encode("utf-8")) <= max_bytes))

    full = _render(d, parts, x, marker, None, "")
    if fits(full):
        return full
    note = f"{max_chars:,} characters" if max_chars is not None else f"{max_bytes:,} bytes"
    most = max([len(s.changed.rows) for s in parts.sections] + [len(s.unchanged.rows) for s in parts.sections]
               + [len(top.rows), len(parts.unpriced.rows)])
    lo, hi = 0, most  # invariant: rendering with `hi` rows per table does not fit
    best = _render(d, parts, x, marker, 0, note)
    if not fits(best):
        # Not even the frame fits: cut at a line boundary as a last resort.
        cap = min(v for v in (max_chars, max_bytes) if v is not None)
        kept = []
        used = 0
        for line in best.splitlines(keepends=True):
            used += len(line.encode("utf-8")) if max_bytes is not None else len(line)
            if used > cap:
                break
            kept.append(line)
        return "".join(kept)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        text = _render(d, parts, x, marker, mid, note)
        if fits(text):
            lo, best = mid, text
        else:
            hi = mid
    return best


def shell_join(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
