"""The result types of a cost diff. Plain frozen dataclasses: no I/O, cheap to import."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from tokenspy.ci.thresholds import Limits, Thresholds

Kind = Literal["total", "function", "test", "model"]
Change = Literal["new", "removed", "increased", "decreased", "unchanged"]
Mode = Literal["exact", "noise"]
Verdict = Literal["pass", "fail"]
Level = Literal["", "warn", "fail"]  # the threshold level a row crossed ("" none)


@dataclass(frozen=True)
class Usage:
    """What one key used on one side: sums over the side (exact mode) or means per run (noise
    mode, hence floats)."""

    calls: float = 0.0
    input_tokens: float = 0.0
    cached_input_tokens: float = 0.0
    cache_write_tokens: float = 0.0
    output_tokens: float = 0.0
    reasoning_tokens: float = 0.0
    cost_usd: float = 0.0
    unpriced_calls: float = 0.0  # calls on a model without a known price (costed at $0)

    @property
    def tokens(self) -> float:
        return self.input_tokens + self.output_tokens

    @property
    def cost_per_call(self) -> float:
        return self.cost_usd / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class Location:
    """Source of a function or test; ``file`` as stored (relative to the git root when known)."""

    file: str
    line: int | None = None


@dataclass(frozen=True)
class DiffRow:
    """One key compared across the two sides.

    ``delta_usd`` is current minus baseline cost; ``delta_pct`` is relative to the baseline
    cost, ``None`` when the baseline cost is zero (a new key: an increase "from zero", which
    exceeds any percentage). ``sigma`` is the noise standard deviation the change was measured
    against (noise mode only) and ``beyond_noise`` whether |delta| > noise_sigma * sigma.
    """

    kind: Kind
    key: str
    baseline: Usage | None
    current: Usage | None
    change: Change
    delta_usd: float
    delta_pct: float | None
    delta_tokens: float
    limits: Limits | None = None
    sigma: float | None = None
    beyond_noise: bool | None = None
    regression: bool = False  # over the fail level, and counted (tokenspy.ci.diff: one change, one regression)
    reasons: tuple[str, ...] = ()
    location: Location | None = None
    level: Level = ""  # the level crossed, counted or not (a total or model row is context)
    warning: bool = False  # over the warn level only, and counted

    @property
    def priced(self) -> bool:
        """False when every call of this key is on a model without a price."""
        sides = [u for u in (self.baseline, self.current) if u is not None and u.calls]
        return not sides or any(u.unpriced_calls < u.calls for u in sides)

    @property
    def changed(self) -> bool:
        return self.change != "unchanged"


@dataclass(frozen=True)
class SideInfo:
    """What one side was read from and how many runs it holds."""

    label: str
    runs: int  # distinct run ids
    samples: int  # runs the per-run means are taken over (1 when the side is summed)
    sharded: bool  # several run ids whose tests do not overlap: shards of one run, summed
    calls: int  # rows read
    commit: str | None = None
    state: str = ""  # the code state the runs are of (tokenspy.ci.runsel.describe)
    empty: bool = False  # the DB holds no run at all
    cost_sd: float | None = None  # sample standard deviation of the per-run total cost (repeats)
    cost_usd: float = 0.0  # the side's total cost (per-run mean with repeats)


@dataclass(frozen=True)
class CostDiff:
    """The outcome of ``annotate_cost_diff`` / ``compare_commits``."""

    current: SideInfo
    baseline: SideInfo | None
    total: DiffRow
    functions: list[DiffRow]
    tests: list[DiffRow]
    models: list[DiffRow]
    regressions: list[DiffRow]
    verdict: Verdict
    mode: Mode
    thresholds: Thresholds
    table_version: str
    reproduce: str = ""
    notes: tuple[str, ...] = field(default=())
    warnings: list[DiffRow] = field(default_factory=list)  # counted rows over the warn level only
    usage_note: str = ""  # one line when the sides' usage sources differ (tokenspy.ci.sources)
    compared_sources: tuple[str, ...] = ()  # the usage sources the verdict rests on
    accepted_by: str = ""  # the PR label that turned a failing verdict into a pass

    @property
    def has_baseline(self) -> bool:
        return self.baseline is not None

    @property
    def no_calls(self) -> bool:
        """The current run made no LLM call (a valid run: its cost is $0)."""
        return self.current.calls == 0

    @property
    def unpriced_models(self) -> list[DiffRow]:
        """Model rows with calls the current price table cannot price (listed with their tokens)."""
        return [r for r in self.models
                if any(u is not None and u.unpriced_calls for u in (r.baseline, r.current))]

    def rows(self, kind: Kind) -> list[DiffRow]:
        return {"function": self.functions, "test": self.tests, "model": self.models,
                "total": [self.total]}[kind]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite numbers become ``None``)."""
        return _jsonable({
            "verdict": self.verdict,
            "mode": self.mode,
            "table_version": self.table_version,
            "noise_sigma": self.thresholds.noise_sigma,
            "thresholds": {
                "max_increase_pct": self.thresholds.max_increase_pct,
                "max_increase_usd": self.thresholds.max_increase_usd,
                "warn_pct": self.thresholds.limits.warn[0],
                "warn_usd": self.thresholds.limits.warn[1],
                "fail_on_regression": self.thresholds.fail_on_regression,
                "overrides": [vars(o) for o in self.thresholds.overrides],
                "source": self.thresholds.source,
            },
            "current": vars(self.current),
            "baseline": None if self.baseline is None else vars(self.baseline),
            "total": _row_dict(self.total),
            "functions": [_row_dict(r) for r in self.functions],
            "tests": [_row_dict(r) for r in self.tests],
            "models": [_row_dict(r) for r in self.models],
            "regressions": [{"kind": r.kind, "key": r.key} for r in self.regressions],
            "warnings": [{"kind": r.kind, "key": r.key} for r in self.warnings],
            "reproduce": self.reproduce,
            "notes": list(self.notes),
            "usage_note": self.usage_note or None,
            "compared_sources": list(self.compared_sources),
            "accepted_by": self.accepted_by or None,
        })


def _row_dict(r: DiffRow) -> dict[str, Any]:
    return {
        "kind": r.kind, "key": r.key, "change": r.change,
        "baseline": None if r.baseline is None else vars(r.baseline),
        "current": None if r.current is None else vars(r.current),
        "delta_usd": r.delta_usd, "delta_pct": r.delta_pct, "delta_tokens": r.delta_tokens,
        "limits": None if r.limits is None else vars(r.limits),
        "sigma": r.sigma, "beyond_noise": r.beyond_noise,
        "regression": r.regression, "warning": r.warning, "level": r.level or None,
        "reasons": list(r.reasons), "priced": r.priced,
        "location": None if r.location is None else vars(r.location),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
