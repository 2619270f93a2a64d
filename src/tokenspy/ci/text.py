"""Plain-text report for a terminal: the same content as the Markdown one, as aligned tables."""

from __future__ import annotations

from collections.abc import Sequence

from tokenspy.ci import fmt
from tokenspy.ci.markdown import Extras, accepted_text, counts_text, headline, mode_text, shorten_middle
from tokenspy.ci.model import CostDiff, DiffRow
from tokenspy.textsafe import BIDI

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTROLS = {c: _NAMED.get(chr(c), f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}")
             for c in (*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *range(0xD800, 0xE000), *BIDI)}


def clean(text: object) -> str:
    """One printable line: control characters and line separators shown as escapes."""
    return str(text).translate(_CONTROLS)


NAME_WIDTH = 80  # a name longer than this is elided in the middle: one huge name must not pad every row


def short_name(text: object) -> str:
    return shorten_middle(clean(text), NAME_WIDTH)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = []
    for cells in (header, *rows):
        parts = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        lines.append((indent + "  ".join(parts)).rstrip())
    return lines


def _row(r: DiffRow, has_b: bool) -> list[str]:
    status = ("REGRESSION" if r.regression else "WARN" if r.warning else r.change) if has_b else ""
    cells = [status, short_name(r.key), fmt.pair(r, "calls"), fmt.pair(r, "input_tokens"),
             fmt.pair(r, "cached_input_tokens"), fmt.pair(r, "output_tokens"),
             fmt.pair(r, "reasoning_tokens"), fmt.pair(r, "cost_usd", fmt.usd)]
    if has_b:
        cells += [fmt.signed_usd(r.delta_usd), fmt.pct(r)]
    return cells


def _plural(n: int, word: str) -> str:
    return f"{n} {word if n == 1 else word + 's'}"


def verdict_sentence(d: CostDiff) -> str:
    """What the verdict rests on, in words. Without fail_on_regression nothing is a regression
    (nothing can fail): the increases are counted against the warn level, and said not to fail."""
    n_r, n_w = len(d.regressions), len(d.warnings)
    if not d.thresholds.fail_on_regression:
        n = n_r + n_w
        if n:
            return f"{_plural(n, 'cost increase')} over the warn threshold (not failing)"
        return "no cost increase over the warn threshold, verdict pass"
    if d.accepted_by:
        return f"{_plural(n_r, 'cost regression')} accepted by label {d.accepted_by}, verdict pass"
    if n_r:
        more = f"; {n_w} more over the warn threshold" if n_w else ""
        return f"{_plural(n_r, 'cost regression')}, verdict {d.verdict}{more}"
    if n_w:
        return f"no cost regression; {_plural(n_w, 'cost increase')} over the warn threshold, verdict pass"
    return "no cost regression, verdict pass"


def render_text(d: CostDiff, extras: Extras | None = None) -> str:
    has_b = d.has_baseline
    t = d.total
    out: list[str] = []
    if not has_b:
        what = ("no LLM calls in this run ($0; " if d.no_calls
                else f"LLM cost {fmt.usd(t.current.cost_usd if t.current else 0.0)} (")
        out.append(f"tokenspy: {what}no baseline: report of the current run; verdict {d.verdict})")
    else:
        calls = "no LLM calls in this run; " if d.no_calls else ""
        out.append(f"tokenspy: {calls}{verdict_sentence(d)} — "
                   f"{fmt.usd(t.baseline.cost_usd if t.baseline else 0.0)} → "
                   f"{fmt.usd(t.current.cost_usd if t.current else 0.0)} "
                   f"({fmt.signed_usd(t.delta_usd)}, {fmt.pct(t)})")
    out.append(f"{clean(headline(d, extras))}. {clean(counts_text(d))}")
    if d.usage_note:
        out.append(f"note: {clean(d.usage_note)}")
    if d.accepted_by:
        out.append(clean(accepted_text(d).replace("**", "").replace("`", "")))
    out.append(f"mode: {mode_text(d)}")
    out.append(f"prices: {clean(d.table_version)} · thresholds: {d.thresholds.limits.describe()}"
               + (f" ({len(d.thresholds.overrides)} overrides)" if d.thresholds.overrides else ""))
    out.extend(f"note: {clean(n)}" for n in d.notes)
    if d.regressions or d.warnings:
        out += ["", "Over threshold:"]
        out += _table(["LEVEL", "KIND", "NAME", "Δ $", "Δ %", "WHY"], [
            ["fail" if r.regression else "warn", r.kind, short_name(r.key), fmt.signed_usd(r.delta_usd), fmt.pct(r),
             clean("; ".join(r.reasons))]
            for r in (*d.regressions, *d.warnings)
        ])
    header = ["CHANGE" if has_b else "", "", "CALLS", "INPUT", "CACHED", "OUTPUT", "REASONING", "COST"]
    if has_b:
        header += ["Δ $", "Δ %"]
    for title, name, rows in (("By function", "FUNCTION", d.functions), ("By test", "TEST", d.tests),
                              ("By model", "MODEL", d.models)):
        out += ["", f"{title}:"]
        if not rows:
            out.append("  (none)")
            continue
        h = list(header)
        h[1] = name
        body = [_row(r, has_b) for r in rows]
        if not has_b:
            h = h[1:]
            body = [c[1:] for c in body]
        out += _table(h, body)
    if d.unpriced_models:
        out += ["", "Unpriced models (costed $0; token change shown):"]
        out += _table(["MODEL", "", "CALLS", "Δ TOKENS"], [
            [short_name(r.key), "", fmt.pair(r, "calls"), fmt.signed_num(r.delta_tokens)] for r in d.unpriced_models
        ])
    trend = extras.trend if extras is not None else None
    if trend is not None and len(trend.points) >= 2:
        from tokenspy.ci.trend import one_line

        out += ["", f"trend ({clean(trend.title)}): {one_line(trend)}"]
    if d.reproduce:
        out += ["", f"reproduce: {clean(d.reproduce)}"]
    return "\n".join(out) + "\n"
