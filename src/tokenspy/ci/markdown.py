"""Render a ``CostDiff`` as the one Markdown report (templates/report.md.j2).

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
from tokenspy.ci.diff import MIN_NOISE_RUNS
from tokenspy.ci.model import CostDiff, DiffRow

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
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *range(0xD800, 0xE000)]
for _c in _CONTROLS:
    _ch = chr(_c)
    _MD[_c] = "\\\\" + _NAMED_CONTROLS.get(_ch, f"x{_c:02x}" if _c < 0x100 else f"u{_c:04x}")


def md(text: object) -> str:
    """Escape any text for a Markdown table cell / paragraph (one line, inert)."""
    return str(text).translate(_MD)


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


_CHANGE_ICON = {"new": "🆕 new", "removed": "➖ removed", "increased": "🔺 up", "decreased": "🔻 down",
                "unchanged": "= same"}


def _status(row: DiffRow) -> str:
    if row.regression:
        return "❌ regression"
    if row.warning:
        return "⚠️ warn"
    return _CHANGE_ICON[row.change]


def _name(row: DiffRow) -> str:
    return md(row.key)


def _cells(row: DiffRow, has_baseline: bool) -> list[str]:
    # Numbers go through `md` too: two "$" in one cell would otherwise render as TeX on GitHub.
    cells = [fmt.pair(row, "calls"), fmt.pair(row, "input_tokens"), fmt.pair(row, "cached_input_tokens"),
             fmt.pair(row, "output_tokens"), fmt.pair(row, "reasoning_tokens"),
             fmt.pair(row, "cost_usd", fmt.usd)]
    if has_baseline:
        cells += [fmt.signed_usd(row.delta_usd), fmt.pct(row)]
    cells.append(fmt.per_call(row.current if row.current is not None else row.baseline))
    head = [_status(row), _name(row)] if has_baseline else [_name(row)]
    return head + [_num_cell(c) for c in cells]


def _header(first: str, has_baseline: bool) -> list[str]:
    head = ["Change", first, "Calls", "Input tok", "Cached tok", "Output tok", "Reasoning tok", "Cost"]
    if has_baseline:
        head += ["Δ $", "Δ %"]
    head.append("$/call")
    return [md(h) for h in (head if has_baseline else head[1:])]


def _level_cell(d: CostDiff, r: DiffRow) -> str:
    if not r.regression:
        return "⚠️ warn level"
    return "❌ fail" if d.verdict == "fail" else "⚠️ fail level (not failing)"


def counts_text(d: CostDiff) -> str:
    """The counts next to the verdict; "regression" only where one can fail the verdict."""
    n_r, n_w = len(d.regressions), len(d.warnings)
    if not d.thresholds.fail_on_regression:
        return f"{_plural(n_r + n_w, 'increase')} over the warn threshold (not failing)"
    return _plural(n_r, "regression") + (f" · {_plural(n_w, 'warning')}" if n_w else "")


def _regression_rows(d: CostDiff) -> Table:
    header = [md(h) for h in ("Level", "Kind", "Name", "Baseline", "Current", "Δ $", "Δ %", "Threshold", "Why")]
    rows = [
        [_level_cell(d, r), r.kind, _name(r) if r.kind != "total" else "**total**",
         md(fmt.usd(r.baseline.cost_usd) if r.baseline else "—"),
         md(fmt.usd(r.current.cost_usd) if r.current else "—"),
         md(fmt.signed_usd(r.delta_usd)), md(fmt.pct(r)), md(r.limits.describe() if r.limits else ""),
         md("; ".join(r.reasons))]
        for r in (*d.regressions, *d.warnings)
    ]
    return Table(header, rows, len(rows))


def _unpriced_rows(d: CostDiff) -> Table:
    header = ["Model", "Calls", "Input tok", "Output tok"] + (["Δ tokens"] if d.has_baseline else [])
    rows = []
    for r in d.unpriced_models:
        cells = [fmt.pair(r, "calls"), fmt.pair(r, "input_tokens"), fmt.pair(r, "output_tokens")]
        if d.has_baseline:
            cells.append(fmt.signed_num(r.delta_tokens))
        rows.append([_name(r), *(md(c) for c in cells)])
    return Table(header, rows, len(rows))


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def headline(d: CostDiff) -> str:
    """What the verdict rests on, in words. Without fail_on_regression nothing is a regression
    (nothing can fail): the increases are counted against the warn level, and said not to fail."""
    n_r, n_w = len(d.regressions), len(d.warnings)
    if not d.thresholds.fail_on_regression:
        n = n_r + n_w
        if n:
            return f"{_plural(n, 'cost increase')} over the warn threshold (not failing)"
        return "no cost increase over the warn threshold, verdict pass"
    if n_r:
        more = f"; {n_w} more over the warn threshold" if n_w else ""
        return f"{_plural(n_r, 'cost regression')}, verdict {d.verdict}{more}"
    if n_w:
        return f"no cost regression; {_plural(n_w, 'cost increase')} over the warn threshold, verdict pass"
    return "no cost regression, verdict pass"


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
    why = (f"; noise mode needs {MIN_NOISE_RUNS} runs of identical code on each side"
           if repeats >= 2 else "")
    return f"plain thresholds ({sides}{why})."


def _limits_text(d: CostDiff) -> str:
    return md(d.thresholds.limits.describe()) + " per function and test (the total when none is over)"


def reproduce_text(d: CostDiff) -> str:
    return code_span(d.reproduce) if d.reproduce else "—"


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
    env.globals.update(usd=lambda x: md(fmt.usd(x)), signed_usd=lambda x: md(fmt.signed_usd(x)),
                       pct=lambda r: md(fmt.pct(r)))
    return env


def _sections(d: CostDiff) -> list[Section]:
    has_b = d.has_baseline
    out = []
    for title, singular, plural, first, rows in (
        ("By function", "function", "functions", "Function", d.functions),
        ("By test", "test", "tests", "Test", d.tests),
        ("By model", "model", "models", "Model", d.models),
    ):
        changed = [_cells(r, has_b) for r in rows if r.changed or not has_b]
        unchanged = [_cells(r, has_b) for r in rows if has_b and not r.changed]
        out.append(Section(title, singular, plural, Table(_header(first, has_b), changed, len(changed)),
                           Table(_header(first, has_b), unchanged, len(unchanged))))
    return out


def _cut(table: Table, limit: int | None) -> Table:
    if limit is None or len(table.rows) <= limit:
        return table
    return Table(table.header, table.rows[:limit], table.total, table.total - limit)


def _render(d: CostDiff, sections: Sequence[Section], regressions: Table, unpriced: Table,
            limit: int | None, budget_note: str) -> str:
    secs = [Section(s.title, s.singular, s.plural, _cut(s.changed, limit), _cut(s.unchanged, limit))
            for s in sections]
    return _env().get_template("report.md.j2").render(
        d=d, sections=secs, regressions=_cut(regressions, limit) if regressions.rows else None,
        unpriced=_cut(unpriced, limit) if unpriced.rows else None, mode_text=md(mode_text(d)),
        headline=md(headline(d)), counts=md(counts_text(d)),
        limits=_limits_text(d), notes=[md(n) for n in d.notes], reproduce=reproduce_text(d),
        truncated=budget_note if limit is not None else "",
    )


_last_sections: tuple[CostDiff, list[Section]] | None = None


def _sections_cached(d: CostDiff) -> list[Section]:
    # The step summary, the report file and --format markdown render the same diff in a row.
    global _last_sections
    if _last_sections is None or _last_sections[0] is not d:
        _last_sections = (d, _sections(d))
    return _last_sections[1]


def render_markdown(d: CostDiff, max_chars: int | None = None, max_bytes: int | None = None) -> str:
    """The Markdown report; with a cap, as many whole rows as fit (same number in every table)."""
    sections = _sections_cached(d)
    regressions = _regression_rows(d)
    unpriced = _unpriced_rows(d)

    def size(text: str) -> tuple[int, int]:
        return len(text), len(text.encode("utf-8"))

    def fits(text: str) -> bool:
        n_chars, n_bytes = size(text)
        return (max_chars is None or n_chars <= max_chars) and (max_bytes is None or n_bytes <= max_bytes)

    full = _render(d, sections, regressions, unpriced, None, "")
    if fits(full):
        return full
    note = f"{max_chars:,} characters" if max_chars is not None else f"{max_bytes:,} bytes"
    most = max([len(s.changed.rows) for s in sections] + [len(s.unchanged.rows) for s in sections]
               + [len(regressions.rows), len(unpriced.rows)])
    lo, hi = 0, most  # invariant: rendering with `hi` rows per table does not fit
    best = _render(d, sections, regressions, unpriced, 0, note)
    if not fits(best):
        # Not even the frame fits: cut at a line boundary as a last resort.
        cap = min(x for x in (max_chars, max_bytes) if x is not None)
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
        text = _render(d, sections, regressions, unpriced, mid, note)
        if fits(text):
            lo, best = mid, text
        else:
            hi = mid
    return best


def shell_join(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
