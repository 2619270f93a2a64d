"""The diff itself: pure functions from priced GROUP BY sums to a ``CostDiff``. No I/O.

Definitions (what the report, the annotations and the exit code all follow):

Runs and modes
    A side's rows belong to runs (distinct ``run_id``; NULL is one run). Runs whose test ids do
    not overlap at all are shards of ONE run (a CI matrix) and are summed. Otherwise each run is
    a repeat of the same code, and the side is summarised by its per-run MEAN (a key absent from
    a run counts 0 there) with the sample standard deviation of the per-run cost.
    Which runs a side is made of (one code state) is decided before (``tokenspy.ci.runsel``).
    Mode ``exact``: the plain thresholds on the sums (one run) or per-run means (repeats).
    Mode ``noise``: BOTH sides have >= 3 repeated runs (fewer cannot estimate a spread); a
    change is significant only if ``|delta| > noise_sigma * sigma``, sigma being the per-run
    standard deviation of the key's cost pooled over the sides
    (``sqrt(sum(df_i * var_i) / sum(df_i))``, ``df_i = runs_i - 1``). It is the spread of single
    runs, not the standard error of the mean, so piling up baseline runs does not make the gate
    stricter. sigma == 0 (replayed, deterministic responses) makes any change significant.

Change kinds (by cost; when the cost is equal, e.g. on an unpriced model, by tokens)
    new (only in current), removed (only in baseline), increased, decreased, unchanged.

Levels (per key with its ``Limits`` from ``Thresholds.for_key``, and for the total with the
global ones): a row is over a level when ``delta_usd > 0`` AND the relative increase
``100 * delta / baseline_cost`` is strictly above the level's percent (a zero baseline - a new
key - is an infinite increase) AND, when the level's USD amount is > 0, ``delta_usd`` is strictly
above it AND, in noise mode, the change is significant. Over the fail level: ``fail``; else over
the warn level: ``warn``.

What counts (one change, one regression): functions over a level; a test over a level higher
than every function it called is over (its calls, not a function, changed); the total only when
no function or test counts. Model rows, and rows explained by a function, are context: shown
with their level, not counted. A counted ``fail`` row is a regression, a counted ``warn`` row a
warning. Verdict ``fail`` iff there is a regression and ``fail_on_regression``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from operator import add
from typing import TYPE_CHECKING

from tokenspy.ci.model import Change, CostDiff, DiffRow, Kind, Level, Location, Mode, SideInfo, Usage
from tokenspy.ci.query import Group
from tokenspy.ci.rates import Rates
from tokenspy.ci.thresholds import Limits, Thresholds

if TYPE_CHECKING:
    from tokenspy.ci.runsel import Selection

EPS_USD = 1e-12
UNKNOWN_FUNCTION = "<unknown>"
UNKNOWN_MODEL = "unknown"
_N = 8  # calls, input, cached, cache write, output, reasoning, cost, unpriced calls


@dataclass
class KeyStats:
    """One key on one side: the usage (sum or per-run mean) and the per-run cost sd."""

    usage: Usage
    sd: float | None  # None with a single run
    location: Location | None = None


@dataclass
class Side:
    info: SideInfo
    total: KeyStats
    keys: dict[str, dict[str, KeyStats]]  # kind -> key -> stats
    functions_of_test: dict[str, set[str]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def _run_layout(groups: Sequence[Group], zero_call_runs: Sequence[str | None] = ()
                ) -> tuple[dict[str | None, int], int, bool, int]:
    """Map run ids to sample slots: (slot of each run, number of slots, sharded, run ids).
    ``zero_call_runs``: runs of the side without any row (a sample of $0 each)."""
    runs = sorted({g.run for g in groups} | set(zero_call_runs), key=lambda r: (r is None, r or ""))
    if len(runs) <= 1:
        return {r: 0 for r in runs}, 1, False, len(runs)
    runs_of_test: dict[str, set[str | None]] = {}
    for g in groups:
        if g.test is not None:
            runs_of_test.setdefault(g.test, set()).add(g.run)
    # Shards: every run ran tests, and no test ran in two runs.
    runs_with_tests = set().union(*runs_of_test.values()) if runs_of_test else set()
    sharded = len(runs_with_tests) == len(runs) and all(len(s) == 1 for s in runs_of_test.values())
    sharded = sharded and not zero_call_runs
    if sharded:
        return {r: 0 for r in runs}, 1, True, len(runs)
    return {r: i for i, r in enumerate(runs)}, len(runs), False, len(runs)


def _stats(per_run: dict[int, list[float]], samples: int) -> tuple[Usage, float | None]:
    sums = [0.0] * _N
    for vec in per_run.values():
        for i in range(_N):
            sums[i] += vec[i]
    if samples == 1:
        return Usage(*sums), None
    usage = Usage(*(s / samples for s in sums))
    mean = usage.cost_usd
    costs = [vec[6] for vec in per_run.values()] + [0.0] * (samples - len(per_run))
    var = sum((c - mean) ** 2 for c in costs) / (samples - 1)
    return usage, math.sqrt(var)


def _test_location(test_id: str) -> Location | None:
    # A pytest node id starts with the test file's path relative to the rootdir.
    path = test_id.split("::", 1)[0]
    return Location(path) if "::" in test_id and path.endswith(".py") else None


def build_side(priced: Iterable[tuple[Group, Rates | None]], label: str, commit: str | None = None, *,
               zero_call_runs: Sequence[str | None] = (), selection: Selection | None = None) -> Side:
    """Roll the priced groups of one side up by function, test, model and run. ``selection``:
    which runs of the DB these are (``tokenspy.ci.runsel``), for the report."""
    items = list(priced)
    slot_of, samples, sharded, n_runs = _run_layout([g for g, _ in items], zero_call_runs)
    functions_of_test: dict[str, set[str]] = {}
    # (key, slot) -> summed vector, one dict per kind. This loop is the Python share of a diff
    # (tens of thousands of groups on a 1M-row side), hence the plain locals.
    fns: dict[tuple[str, int], list[float]] = {}
    tests: dict[tuple[str, int], list[float]] = {}
    models: dict[tuple[str, int], list[float]] = {}
    fn_loc: dict[str, tuple[str, int]] = {}
    test_loc: dict[str, tuple[str, int]] = {}
    for g, rates in items:
        if rates is not None:
            cost = rates.cost(g.calls, g.input_tokens, g.cached_input_tokens, g.cache_write_tokens,
                              g.output_tokens, g.reasoning_tokens)
            unpriced = 0
        else:
            cost, unpriced = 0.0, g.calls
        vec = (g.calls, g.input_tokens, g.cached_input_tokens, g.cache_write_tokens, g.output_tokens,
               g.reasoning_tokens, cost, unpriced)
        slot = slot_of[g.run]
        fn = g.function if g.function is not None else UNKNOWN_FUNCTION
        k = (fn, slot)
        a = fns.get(k)
        fns[k] = list(vec) if a is None else list(map(add, a, vec))
        k = (g.model if g.model is not None else UNKNOWN_MODEL, slot)
        a = models.get(k)
        models[k] = list(vec) if a is None else list(map(add, a, vec))
        if g.test is not None:
            functions_of_test.setdefault(g.test, set()).add(fn)
            k = (g.test, slot)
            a = tests.get(k)
            tests[k] = list(vec) if a is None else list(map(add, a, vec))
        if g.source_file is not None:
            # Deterministic pick among several stored locations: the smallest (file, line).
            loc = (g.source_file, g.source_line if g.source_line is not None else -1)
            old = fn_loc.get(fn)
            if old is None or loc < old:
                fn_loc[fn] = loc
            if g.function == g.test and g.test is not None:
                # The test called the model itself: the row's source is the test function.
                old = test_loc.get(g.test)
                if old is None or loc < old:
                    test_loc[g.test] = loc
    total_runs: dict[int, list[float]] = {}
    for (_, slot), vec in fns.items():
        a = total_runs.get(slot)
        total_runs[slot] = list(vec) if a is None else list(map(add, a, vec))

    def location(loc: tuple[str, int] | None) -> Location | None:
        return None if loc is None else Location(loc[0], loc[1] if loc[1] >= 0 else None)

    keys_out: dict[str, dict[str, KeyStats]] = {}
    for kind, table in (("function", fns), ("test", tests), ("model", models)):
        per_key: dict[str, dict[int, list[float]]] = {}
        for (key, slot), vec in table.items():
            per_key.setdefault(key, {})[slot] = vec
        out: dict[str, KeyStats] = {}
        for key, per_run in per_key.items():
            usage, sd = _stats(per_run, samples)
            if kind == "function":
                loc = location(fn_loc.get(key))
            elif kind == "test":
                loc = location(test_loc.get(key)) or _test_location(key)
            else:
                loc = None
            out[key] = KeyStats(usage, sd, loc)
        keys_out[kind] = out
    t_usage, t_sd = _stats(total_runs, samples)
    calls = round(t_usage.calls * samples)
    empty = selection.empty if selection is not None else not items
    info = SideInfo(label, n_runs, samples, sharded, calls, commit, state=selection.state if selection else "",
                    empty=empty, cost_sd=t_sd, cost_usd=t_usage.cost_usd)
    return Side(info, KeyStats(t_usage, t_sd), keys_out, functions_of_test,
                selection.notes if selection is not None else ())


def _pooled(base: KeyStats | None, base_n: int, cur: KeyStats | None, cur_n: int) -> float | None:
    num = den = 0.0
    for stats, n in ((base, base_n), (cur, cur_n)):
        if n >= 2:
            sd = stats.sd if stats is not None and stats.sd is not None else 0.0
            num += (n - 1) * sd * sd
            den += n - 1
    return math.sqrt(num / den) if den else None


def _change(base: Usage | None, cur: Usage | None) -> Change:
    if base is None:
        return "new"
    if cur is None:
        return "removed"
    d = cur.cost_usd - base.cost_usd
    if abs(d) <= EPS_USD:
        d = cur.tokens - base.tokens
        if abs(d) < 1e-9:
            return "unchanged"
    return "increased" if d > 0 else "decreased"


def fmt_pct(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:g}"


def _over(delta: float, pct: float | None, level_pct: float, level_usd: float, beyond: bool | None) -> bool:
    if delta <= EPS_USD:
        return False
    over_pct = pct is None or pct > level_pct
    over_usd = level_usd <= 0 or delta > level_usd
    return over_pct and over_usd and beyond is not False


def _reasons(delta: float, pct: float | None, level_pct: float, level_usd: float) -> list[str]:
    out = []
    if not math.isinf(level_pct):
        out.append(f"new, +${delta:.6f} from $0" if pct is None else f"+{pct:.1f}% > {fmt_pct(level_pct)}%")
    if level_usd > 0:
        out.append(f"+${delta:.6f} > ${level_usd:g}")
    return out


def compare(kind: Kind, key: str, base: KeyStats | None, base_n: int, cur: KeyStats | None, cur_n: int,
            limits: Limits, noise_sigma: float, mode: Mode) -> DiffRow:
    """One key across the sides; see the module docstring for the rules. The row's ``level`` is
    the one it crossed; whether it counts is decided by ``compute``."""
    b = base.usage if base is not None else None
    c = cur.usage if cur is not None else None
    b_cost = b.cost_usd if b is not None else 0.0
    c_cost = c.cost_usd if c is not None else 0.0
    delta = c_cost - b_cost
    pct = 100.0 * delta / b_cost if b_cost > EPS_USD else None
    sigma = _pooled(base, base_n, cur, cur_n) if mode == "noise" else None
    beyond = None if sigma is None else abs(delta) > noise_sigma * sigma and abs(delta) > EPS_USD
    level: Level = ""
    reasons: list[str] = []
    warn_pct, warn_usd = limits.warn
    if _over(delta, pct, limits.max_increase_pct, limits.max_increase_usd, beyond):
        level = "fail"
        reasons = _reasons(delta, pct, limits.max_increase_pct, limits.max_increase_usd)
    elif _over(delta, pct, warn_pct, warn_usd, beyond):
        level = "warn"
        reasons = [f"warn level: {r}" for r in _reasons(delta, pct, warn_pct, warn_usd)]
    if level and beyond is not None and sigma is not None:
        z = abs(delta) / sigma if sigma > 0 else math.inf
        reasons.append(f"beyond noise ({fmt_pct(round(z, 1))}σ vs {noise_sigma:g}σ)")
    loc = (cur.location if cur is not None else None) or (base.location if base is not None else None)
    return DiffRow(
        kind=kind, key=key, baseline=b, current=c, change=_change(b, c), delta_usd=delta, delta_pct=pct,
        delta_tokens=(c.tokens if c else 0.0) - (b.tokens if b else 0.0), limits=limits, sigma=sigma,
        beyond_noise=beyond, regression=False, reasons=tuple(reasons), location=loc, level=level,
    )


def sort_rows(rows: Iterable[DiffRow]) -> list[DiffRow]:
    """Changed rows first, by |$ impact|, then |token change|, then name; unchanged by cost."""
    def key(r: DiffRow) -> tuple:
        cost = (r.current or r.baseline or Usage()).cost_usd
        if r.changed:
            return (0, -abs(r.delta_usd), -abs(r.delta_tokens), r.key)
        return (1, -cost, 0.0, r.key)
    return sorted(rows, key=key)


MIN_NOISE_RUNS = 3  # repeats of identical code on EACH side before noise mode replaces the thresholds
_RANK = {"": 0, "warn": 1, "fail": 2}


def _count(total: DiffRow, tables: dict[str, list[DiffRow]], functions_of_test: dict[str, set[str]]
           ) -> tuple[DiffRow, dict[str, list[DiffRow]]]:
    """Mark the rows that count (see the module docstring): one change, one regression."""
    fn_level = {r.key: _RANK[r.level] for r in tables["function"]}

    def counts(r: DiffRow) -> bool:
        if r.kind == "function":
            return bool(r.level)
        if r.kind == "test":
            called = functions_of_test.get(r.key, set())
            return bool(r.level) and _RANK[r.level] > max((fn_level.get(f, 0) for f in called), default=0)
        return False

    def mark(r: DiffRow, counted: bool) -> DiffRow:
        if not counted:
            return r
        return replace(r, regression=r.level == "fail", warning=r.level == "warn")

    out = {k: [mark(r, counts(r)) for r in rows] for k, rows in tables.items()}
    any_key = any(r.regression or r.warning for k in ("function", "test") for r in out[k])
    return mark(total, bool(total.level) and not any_key), out


def compute(current: Side, baseline: Side | None, thresholds: Thresholds, table_version: str,
            reproduce: str = "", notes: Sequence[str] = ()) -> CostDiff:
    """Compare two rolled-up sides (``baseline=None``: a report of the current side only; so is
    a baseline DB that holds no run at all)."""
    side_notes = [*current.notes]
    if baseline is not None:
        if baseline.info.empty:
            side_notes.append(f"The baseline {baseline.info.label} holds no run: report of the current run only.")
            baseline = None
        else:
            side_notes.extend(baseline.notes)
    cur_n = current.info.samples
    base_n = baseline.info.samples if baseline is not None else 1
    mode: Mode = "noise" if baseline is not None and min(cur_n, base_n) >= MIN_NOISE_RUNS else "exact"
    ns = thresholds.noise_sigma
    tables: dict[str, list[DiffRow]] = {}
    for kind in ("function", "test", "model"):
        cur_keys = current.keys[kind]
        base_keys = baseline.keys[kind] if baseline is not None else {}
        names = set(cur_keys) | set(base_keys)
        tables[kind] = sort_rows(
            compare(kind, k, base_keys.get(k) if baseline is not None else None, base_n,  # type: ignore[arg-type]
                    cur_keys.get(k), cur_n, thresholds.for_key(k), ns, mode)
            for k in names
        )
    total = compare("total", "total", baseline.total if baseline is not None else None, base_n,
                    current.total, cur_n, thresholds.limits, ns, mode)
    if baseline is None:
        # Nothing to compare with: a report of the current run, which passes by definition.
        strip = _no_baseline
        total = strip(total)
        tables = {k: [strip(r) for r in rows] for k, rows in tables.items()}
    else:
        tests_fns: dict[str, set[str]] = {}
        for side in (current, baseline):
            for t, fns in side.functions_of_test.items():
                tests_fns.setdefault(t, set()).update(fns)
        total, tables = _count(total, tables, tests_fns)
    counted = [r for r in (total, *tables["function"], *tables["test"]) if r.regression or r.warning]

    def order(r: DiffRow) -> tuple:
        return (r.kind != "total", -r.delta_usd, r.kind, r.key)

    regressions = sorted((r for r in counted if r.regression), key=order)
    warnings = sorted((r for r in counted if r.warning), key=order)
    verdict = "fail" if regressions and thresholds.fail_on_regression else "pass"
    return CostDiff(
        current=current.info, baseline=baseline.info if baseline is not None else None, total=total,
        functions=tables["function"], tests=tables["test"], models=tables["model"], regressions=regressions,
        verdict=verdict, mode=mode, thresholds=thresholds, table_version=table_version,
        reproduce=reproduce, notes=(*side_notes, *notes), warnings=warnings,
    )


def _no_baseline(row: DiffRow) -> DiffRow:
    return replace(row, regression=False, warning=False, level="", reasons=(), beyond_noise=None, sigma=None)
