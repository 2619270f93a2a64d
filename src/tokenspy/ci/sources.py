"""Usage sources across the two sides of a diff: never compare unlike sources silently.

A record's ``usage_source`` (``tokenspy.usage_source``) says where its tokens come from: the
response (``response``) or the request (``request``, ``request_approx``). A baseline recorded in
response mode and a run in request mode measure different things (a canned mock's usage against
the counted prompt), so their difference is no regression. When the two sides' sources differ,
both are cut to the sources compared (the ``usage`` asked for, else whatever the current run
used) and one line says so; a baseline with no row of those sources is no baseline at all.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tokenspy.ci.query import Group
from tokenspy.usage_source import REQUEST, REQUEST_APPROX, RESPONSE

# What a usage setting compares: request mode writes exact and approximate counts alike.
FAMILY = {RESPONSE: frozenset({RESPONSE}), REQUEST: frozenset({REQUEST, REQUEST_APPROX})}


@dataclass(frozen=True)
class Matched:
    current: list[Group]
    baseline: list[Group] | None  # None: nothing of the baseline is comparable
    note: str  # one line for the top of the report ("" when the sources agree)
    compared: tuple[str, ...]  # the sources the verdict rests on (sorted; () = all)


def calls_by_source(groups: Sequence[Group]) -> dict[str, int]:
    out: dict[str, int] = {}
    for g in groups:
        out[g.usage_source] = out.get(g.usage_source, 0) + g.calls
    return out


def _describe(calls: dict[str, int]) -> str:
    if not calls:
        return "none"
    return ", ".join(f"{s} ({n:,} call{'s' if n != 1 else ''})" for s, n in sorted(calls.items()))


def match(current: list[Group], baseline: list[Group], usage: str | None = None) -> Matched:
    """Cut both sides to the sources compared (see the module docstring). ``usage``: "request",
    "response" or None (the current run's sources)."""
    cur_calls, base_calls = calls_by_source(current), calls_by_source(baseline)
    cur_s, base_s = set(cur_calls), set(base_calls)
    if usage:
        wanted = FAMILY[usage]
        differ = bool((cur_s | base_s) - wanted)
    else:
        # the rows whose sources match; none in common: the current run's, and no baseline
        differ = bool(base_s) and bool(cur_s) and cur_s != base_s  # no call at all: nothing to match
        wanted = frozenset(cur_s & base_s or cur_s) if differ else frozenset(cur_s)
    compared = tuple(sorted(wanted))
    if not differ:
        return Matched(current, baseline, "", compared)
    cur = [g for g in current if g.usage_source in wanted]
    base = [g for g in baseline if g.usage_source in wanted]
    head = f"Usage sources differ: baseline {_describe(base_calls)}, this run {_describe(cur_calls)}"
    names = " and ".join(compared) or "none"
    if not base and baseline:
        return Matched(cur, None, f"{head}; no baseline row is {names}: not compared (verdict pass).", compared)
    kept_b, kept_c = sum(g.calls for g in base), sum(g.calls for g in cur)
    return Matched(cur, base, f"{head}; the verdict compares the {names} rows only ({kept_b:,} baseline "
                              f"call{'s' if kept_b != 1 else ''}, {kept_c:,} current).", compared)
