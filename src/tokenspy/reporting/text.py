"""Terminal reports: ``render_text`` (the cost report) and ``format_history`` (recent calls)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from tokenspy.record import CallRecord, as_number
from tokenspy.reporting.data import GroupRow, ReportData, report_data

EMPTY = "no LLM calls recorded"
UNPRICED_NOTE = 'no known price; add to [tool.tokenspy.prices."<model>"] in pyproject.toml'
BAR_WIDTH = 20
_EIGHTHS = " ▏▎▍▌▋▊▉"
MAX_NAME = 48  # long qualified names are cut in the middle, where they are least telling
MAX_GROUP_ROWS = 10


# --------------------------------------------------------------------------- formatting


def format_usd(amount: float) -> str:
    """Dollars with at least three significant digits for sub-cent amounts ($0.000123)."""
    if amount == 0:
        return "$0.00"
    sign = "-" if amount < 0 else ""
    value = abs(amount)
    if value >= 1:
        return f"{sign}${value:,.2f}"
    # e.g. 0.5 -> 4 decimals, 0.000123 -> 6, 3.75e-8 -> 10
    decimals = min(12, max(4, 2 - math.floor(math.log10(value))))
    return f"{sign}${value:.{decimals}f}"


def format_tokens(n: int) -> str:
    return f"{n:,}"


def compact_tokens(n: int) -> str:
    """1234 -> 1.2k, 5_600_000 -> 5.6M."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= limit:
            return f"{n / limit:.1f}{suffix}"
    return str(n)


def format_duration_ms(ms: float) -> str:
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_time(ts: float | None) -> str:
    """Local time, ISO 8601 to the second."""
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return "-"


def format_share(share: float) -> str:
    return f"{share * 100:.1f}%"


def bar(share: float, width: int = BAR_WIDTH) -> str:
    """A bar of ``share`` (0..1) of ``width`` cells, to the eighth of a cell."""
    eighths = round(max(0.0, min(1.0, share)) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[part] if part else "")


def printable(text: str) -> str:
    """``text`` with control characters replaced: a name must not move the cursor or recolour."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def shorten(text: str, width: int = MAX_NAME) -> str:
    """A user-controlled name made safe and short for a terminal table."""
    text = printable(text)
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def short_commit(sha: str) -> str:
    return printable(sha[:12])


def model_label(provider: str, model: str) -> str:
    return f"{provider}/{model}" if provider else model


# --------------------------------------------------------------------------- tables


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """Aligned columns; indexes in ``right`` are right-aligned. Trailing blanks are dropped."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return ("  " + "  ".join(out)).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _header(data: ReportData) -> list[str]:
    t = data.totals
    lines = [
        f"tokenspy cost report: {format_usd(t.cost_usd)} over {t.calls:,} call{'s' * (t.calls != 1)}",
        f"  tokens    {format_tokens(t.total_tokens)} (input {format_tokens(t.input_tokens)}, "
        f"output {format_tokens(t.output_tokens)})",
    ]
    details = [
        f"{label} {format_tokens(n)}"
        for label, n in (("cached input", t.cached_input_tokens), ("cache writes", t.cache_write_tokens),
                         ("reasoning", t.reasoning_tokens))
        if n
    ]
    if details:
        lines.append(f"  of which {', '.join(details)}")
    avg = t.duration_ms / t.calls if t.calls else 0.0
    lines.append(f"  latency   {format_duration_ms(t.duration_ms)} in total, {avg:,.0f} ms per call")
    lines.append(f"  period    {format_time(t.first_timestamp)} to {format_time(t.last_timestamp)}")
    counts = []
    if data.sessions:
        counts.append(f"{len(data.sessions):,} session{'s' * (len(data.sessions) != 1)}")
    if data.commits:
        counts.append(f"{len(data.commits):,} git commit{'s' * (len(data.commits) != 1)}")
    if counts:
        lines.append(f"  seen      {', '.join(counts)}")
    if t.unpriced_calls:
        lines.append(f"  unpriced  {t.unpriced_calls:,} call{'s' * (t.unpriced_calls != 1)} counted as $0")
    if data.ceiling is not None:
        n = data.ceiling.calls
        lines.append(f"  worst case {format_usd(data.ceiling.worst_case_usd)} had the {n:,} answer{'s' * (n != 1)} "
                     "with an output ceiling (max_tokens) used all of it")
    return lines


def _functions(data: ReportData) -> list[str]:
    rows = [
        (shorten(f.name), f"{f.calls:,}", format_tokens(f.input_tokens), format_tokens(f.output_tokens),
         format_usd(f.cost_usd), format_share(f.share), bar(f.share))
        for f in data.functions
    ]
    headers = ("function", "calls", "input", "output", "cost", "share", "")
    return ["By function", *_table(headers, rows, right={1, 2, 3, 4, 5})]


def model_cost(cost: float, calls: int, unpriced_calls: int) -> str:
    """The cost of a model's calls, flagged when some (``*``) or all of them had no price."""
    if unpriced_calls and unpriced_calls == calls:
        return "unpriced"
    return format_usd(cost) + ("*" if unpriced_calls else "")


def _models(data: ReportData) -> list[str]:
    t = data.totals
    # Columns that would be all zeros only widen the table.
    extra = [(label, attr) for label, attr, total in (
        ("cached", "cached_input_tokens", t.cached_input_tokens),
        ("reasoning", "reasoning_tokens", t.reasoning_tokens),
    ) if total]
    rows = [
        (shorten(m.provider), shorten(m.model), f"{m.calls:,}", format_tokens(m.input_tokens),
         format_tokens(m.output_tokens), *(format_tokens(getattr(m, attr)) for _, attr in extra),
         model_cost(m.cost_usd, m.calls, m.unpriced_calls), format_share(m.share))
        for m in data.models
    ]
    headers = ("provider", "model", "calls", "input", "output", *(lbl for lbl, _ in extra), "cost", "share")
    lines = ["By provider and model", *_table(headers, rows, right=set(range(2, len(headers))))]
    if any(0 < m.unpriced_calls < m.calls for m in data.models):
        lines.append("  * some calls of this model had no known price and count as $0")
    return lines


def _unpriced(data: ReportData) -> list[str]:
    rows = [
        (shorten(model_label(u.provider, u.model)), f"{u.calls:,}", format_tokens(u.input_tokens),
         format_tokens(u.output_tokens))
        for u in data.unpriced
    ]
    return [f"Unpriced models ({UNPRICED_NOTE})",
            *_table(("model", "calls", "input", "output"), rows, right={1, 2, 3})]


def _groups(title: str, label: str, rows_in: Sequence[GroupRow], show_key: Callable[[str], str]) -> list[str]:
    shown = rows_in[:MAX_GROUP_ROWS]
    rows = [
        (show_key(g.key), f"{g.calls:,}", format_usd(g.cost_usd), format_time(g.last_timestamp))
        for g in shown
    ]
    more = len(rows_in) - len(shown)
    heading = f"{title} (latest {len(shown)} of {len(rows_in):,})" if more else title
    return [heading, *_table((label, "calls", "cost", "last call"), rows, right={1, 2})]


# --------------------------------------------------------------------------- public


def render_text(data_or_records: ReportData | Iterable[CallRecord]) -> str:
    """The terminal cost report (no trailing newline: callers print it)."""
    data = report_data(data_or_records)
    if data.is_empty:
        return EMPTY
    sections = [_header(data), _functions(data), _models(data)]
    if data.unpriced:
        sections.append(_unpriced(data))
    if data.sessions:
        sections.append(_groups("Sessions", "session", data.sessions, shorten))
    if data.commits:
        sections.append(_groups("Git commits", "commit", data.commits, short_commit))
    return "\n\n".join("\n".join(s) for s in sections)


HistoryRow = tuple  # (timestamp, function, model, provider, in, out, cost, duration_ms, priced)


def format_history(rows: Iterable[HistoryRow]) -> str:
    """One line per call, as given (newest first): time, function, model, tokens, cost, latency."""
    table = []
    for ts, function, model, provider, inp, out, cost, duration, priced in rows:
        # a value that is not what the schema says (a hand-edited DB) is shown as "?", not a crash
        t, i, o, c, d = (as_number(ts), as_number(inp, int), as_number(out, int), as_number(cost),
                         as_number(duration))
        table.append((
            format_time(t) if t is not None or ts is None else "?",
            shorten(printable(_text(function) or "<unknown>")),
            shorten(printable(model_label(_text(provider), _text(model)))),
            format_tokens(int(i)) if i is not None else "?",
            format_tokens(int(o)) if o is not None else "?",
            ("?" if c is None else format_usd(c)) if _is_priced(priced) else "unpriced",
            f"{d:,.0f}" if d is not None else "?",
        ))
    if not table:
        return EMPTY + "\n"
    headers = ("time", "function", "provider/model", "in", "out", "cost", "latency ms")
    lines = _table(headers, table, right={3, 4, 5, 6})
    return "\n".join(line[2:] for line in lines) + "\n"


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _is_priced(value: object) -> bool:
    return value is None or bool(value)
