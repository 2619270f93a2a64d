"""Model prices: offline, deterministic lookups backed by the genai-prices data.

The data comes from the installed ``genai-prices`` package through a private snapshot that
never auto-updates, so a given tokenspy install prices the same call the same way every time.
``genai_prices`` is imported on the first lookup only: ``import tokenspy`` must stay cheap.

User overrides live in ``[tool.tokenspy.prices]`` of the nearest ``pyproject.toml``::

    [tool.tokenspy.prices."my-finetune"]
    input = 1.0          # $ per 1M input tokens (required)
    output = 4.0         # $ per 1M output tokens (required)
    cached_input = 0.1   # optional, defaults to input
    cache_write = 1.25   # optional, defaults to input
"""

from __future__ import annotations

import _thread
import os
import time
import warnings
from collections.abc import Iterator, Mapping

from tokenspy.errors import PricingMatrixOutdatedWarning
from tokenspy.pyproject import tool_table
from tokenspy.record import Usage

# Importing ``typing`` costs more than this module's whole import budget: type-only names are
# imported for type checkers alone.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import date
    from datetime import time as dtime

    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo, Provider

    # (input, cache read, cache write, 1h cache write, output, reasoning, request): see _PRICE_KEYS
    _Vec = tuple[float, float, float, float, float, float, float]
    # A price sheet: base vector, then (tier start, vector) pairs, highest start first.
    _Sheet = tuple[_Vec, tuple[tuple[int, _Vec], ...]]

__all__ = [
    "PRICING",
    "ModelPrice",
    "calculate",
    "get_cheaper_alternative",
    "get_price_per_million",
    "list_models",
    "lookup",
    "reload_overrides",
    "table_version",
]

# A rate vector, in $ per 1M tokens except the last slot ($ per request):
# (input, cache read, cache write, 1h cache write, output, reasoning, request).
# Unpriced kinds are folded into their parent's rate when the vector is built, which is exactly
# how genai-prices bills them (a cache read without a cache price is plain input, and so on).
_PRICE_KEYS = (
    "input_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_1h_mtok",
    "output_mtok",
    "output_reasoning_mtok",
    "requests_kcount",
)

# Kinds of price periods (genai-prices' ConditionalPrice constraints).
_ALWAYS, _FROM, _DAILY = 0, 1, 2

_NO_HINT = frozenset({"", "langchain", "unknown"})
# The providers whose SDKs tokenspy wraps: tried, in this order, for a name nobody claims
# (embedding ids such as text-embedding-3-small match no provider's model pattern).
_PREFERRED_PROVIDERS = ("openai", "anthropic", "google")
_CUSTOM_PROVIDER = "custom"


class ModelPrice:
    """The resolved price of one model, ready to cost a call without touching genai-prices.

    ``model`` is the canonical model id, ``provider`` the provider whose price list it is from
    (``"custom"`` for a model known only from ``[tool.tokenspy.prices]``).
    """

    __slots__ = ("_default", "_flat", "_schedule", "model", "provider")

    def __init__(
        self,
        model: str,
        provider: str,
        default: _Sheet,
        schedule: tuple[tuple[int, float, float, _Sheet], ...] = (),
    ) -> None:
        self.model = model
        self.provider = provider
        self._default = default
        self._schedule = schedule
        # Most models have one untiered price forever: cost() then needs neither clock nor tiers.
        self._flat: _Vec | None = default[0] if not schedule and not default[1] else None

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        timestamp: float | None = None,
    ) -> float:
        """Cost of one call in USD.

        ``input_tokens`` is the total input (cache reads and writes included), ``output_tokens``
        the total output (reasoning included); the other counts say how many of those were of
        that kind. ``timestamp`` (unix seconds, default now) selects the price in effect then.

        Raises:
            ValueError: a count is negative or a part exceeds its total.
        """
        if (
            input_tokens - cached_input_tokens - cache_write_tokens < 0
            or cached_input_tokens < 0
            or cache_write_1h_tokens < 0
            or cache_write_1h_tokens > cache_write_tokens
            or reasoning_tokens < 0
            or reasoning_tokens > output_tokens
        ):
            raise ValueError(
                f"inconsistent token counts for {self.model!r}: input={input_tokens} "
                f"(cached={cached_input_tokens}, cache_write={cache_write_tokens}, "
                f"cache_write_1h={cache_write_1h_tokens}), "
                f"output={output_tokens} (reasoning={reasoning_tokens})"
            )
        return self.charge(Usage(input_tokens, output_tokens, cached_input_tokens, cache_write_tokens,
                                 reasoning_tokens, cache_write_1h_tokens), timestamp)

    def charge(self, u: Usage, timestamp: float | None = None) -> float:
        """``cost()`` of counts known to be consistent (``record.clean_usage`` made them so):
        the recorder's path, which has nothing left to check."""
        vec = self._flat or self._vec_at(u.input_tokens, timestamp)
        tin, tout, cached, write, reasoning, write_1h = u
        return (
            (tin - cached - write) * vec[0]
            + cached * vec[1]
            + (write - write_1h) * vec[2]
            + write_1h * vec[3]
            + (tout - reasoning) * vec[4]
            + reasoning * vec[5]
        ) / 1e6 + vec[6]

    def _sheet_at(self, timestamp: float | None) -> _Sheet:
        # Same rule as genai-prices' ModelInfo.get_prices: the last period whose constraint holds
        # wins (the schedule is stored last-first), else the first period.
        if self._schedule:
            ts = time.time() if timestamp is None else timestamp
            for kind, lo, hi, sheet in self._schedule:
                if kind == _ALWAYS or (kind == _FROM and ts >= lo):
                    return sheet
                if kind == _DAILY:
                    t = ts % 86400.0
                    if (lo <= t < hi) if lo <= hi else (t >= lo or t < hi):
                        return sheet
        return self._default

    def _vec_at(self, input_tokens: int, timestamp: float | None) -> _Vec:
        base, tiers = self._sheet_at(timestamp)
        # genai-prices' "cliff" tiers: crossing a threshold reprices every token of the call.
        for start, vec in tiers:
            if input_tokens > start:
                return vec
        return base

    def _per_million(self, timestamp: float | None = None) -> tuple[float, float]:
        vec = self._sheet_at(timestamp)[0]
        return (vec[0], vec[4])

    def __repr__(self) -> str:
        inp, out = self._per_million()
        return f"ModelPrice(model={self.model!r}, provider={self.provider!r}, input={inp}, output={out})"


# --------------------------------------------------------------------------------------------
# State. Everything below is built lazily and guarded by one lock; reads of the memo dicts are
# lock-free (a dict lookup is atomic, and a racing duplicate resolution is harmless).

_lock = _thread.RLock()
_snapshot: DataSnapshot | None = None
_memo: dict[tuple[str, str | None], ModelPrice | None] = {}
MEMO_MAX = 4096  # distinct (model, provider) pairs memoized; beyond, the memo starts again
_warned: set[str] = set()


class _Overrides:
    __slots__ = ("digest", "names", "vecs")

    def __init__(self, vecs: dict[str, _Vec], names: dict[str, str], digest: str | None) -> None:
        self.vecs = vecs  # lower-cased name -> rate vector
        self.names = names  # lower-cased name -> name as written
        self.digest = digest


_overrides: _Overrides | None = None
_known_ids: frozenset[str] | None = None
_pricing_table: dict[str, tuple[float, float]] | None = None
_exact_index: dict[str, tuple[Provider, ModelInfo]] | None = None


def _data() -> DataSnapshot:
    global _snapshot
    snap = _snapshot
    if snap is None:
        with _lock:
            if _snapshot is None:
                from genai_prices import data
                from genai_prices.data_snapshot import DataSnapshot

                # Private and frozen: a global genai_prices.UpdatePrices elsewhere in the
                # process cannot change our prices, and nothing here reaches the network.
                _snapshot = DataSnapshot(providers=data.providers, from_auto_update=False)
            snap = _snapshot
    return snap


def _get_overrides() -> _Overrides:
    ov = _overrides
    if ov is None:
        with _lock:
            if _overrides is None:
                _install_overrides(_read_overrides(None))
            ov = _overrides
    return ov


# --------------------------------------------------------------------------------------------
# Public API


def lookup(model: str, provider: str | None = None) -> ModelPrice | None:
    """Resolve ``model`` to its price, or ``None`` when no price is known.

    The hot path of the recorder: results are memoized per ``(model, provider)``.
    ``provider`` is a hint ("openai", "anthropic", "google", ...); "langchain", "unknown" and
    ``None`` mean no hint.
    """
    try:
        return _memo[(model, provider)]
    except KeyError:
        pass
    with _lock:
        price = _resolve(model, provider)
        if len(_memo) >= MEMO_MAX:
            _memo.clear()
        _memo[(model, provider)] = price
    return price


def calculate(
    model: str,
    input_tokens: int,
    output_tokens: int,
    *,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    provider: str | None = None,
    timestamp: float | None = None,
    cache_write_1h_tokens: int = 0,
) -> float:
    """Cost of one call in USD.

    ``input_tokens`` is the total input, cached reads and cache writes included;
    ``cached_input_tokens`` and ``cache_write_tokens`` are the parts of it billed at the cache
    read / write rates, ``cache_write_1h_tokens`` the part of the cache writes made with a 1-hour
    TTL. ``output_tokens`` is the total output, reasoning included; ``reasoning_tokens`` is the
    reasoning part (billed at the output rate unless the model prices it apart). ``timestamp``
    (unix seconds, default now) selects the price in effect at that time.

    An unknown model returns 0.0 and issues :class:`~tokenspy.errors.PricingMatrixOutdatedWarning`
    once per model per process.
    """
    price = lookup(model, provider)
    if price is None:
        if model not in _warned and len(_warned) < MEMO_MAX:  # bounded: one entry per model name
            _warned.add(model)
            warnings.warn(
                f"no price known for model {model!r}; its tokens are recorded with cost $0. "
                'Add it under [tool.tokenspy.prices."<model>"] in pyproject.toml.',
                PricingMatrixOutdatedWarning,
                stacklevel=2,
            )
        return 0.0
    return price.cost(
        input_tokens,
        output_tokens,
        cached_input_tokens,
        cache_write_tokens,
        reasoning_tokens,
        cache_write_1h_tokens,
        timestamp,
    )


def get_price_per_million(model: str, provider: str | None = None) -> tuple[float, float] | None:
    """``(input $/1M tokens, output $/1M tokens)`` of the base tier now; ``None`` if unknown."""
    price = lookup(model, provider)
    return None if price is None else price._per_million()


def list_models() -> list[str]:
    """Sorted unique model ids: the genai-prices ids plus the names of user overrides."""
    return sorted(_all_ids() | set(_get_overrides().names.values()))


def get_cheaper_alternative(model: str) -> str | None:
    """A cheaper model of the same provider, or ``None`` when there is none or ``model`` is unknown.

    Among the provider's current, non-deprecated models of the same kind (chat, embedding,
    audio, ...) that cost less (input + output per 1M), prefer in turn: a smaller tier of the
    same line (gpt-4o -> gpt-4o-mini, gemini-2.5-pro -> gemini-2.5-flash), another named tier
    of the same family (claude-opus-* -> a sonnet), the same family, anything; within a group,
    the closest lower price. Deterministic.
    """
    price = lookup(model)
    if price is None:
        return None
    inp, out = price._per_million()
    source_total = inp + out
    source_id = price.model
    with _lock:
        candidates = _provider_catalog(price.provider)
    src = _name_shape(source_id)
    ranked: list[tuple[int, float, int, str]] = []
    for cid, total, deprecated in candidates:
        if deprecated or total <= 0 or total >= source_total or cid.lower() == source_id.lower():
            continue
        shape = _name_shape(cid)
        if shape[0] != src[0]:  # different kind: never offer a TTS model for a chat model
            continue
        if shape[1] == src[1]:
            group = 0
        elif shape[3] == src[3] and shape[2] and shape[2] != src[2]:
            group = 1
        elif shape[3] == src[3]:
            group = 2
        else:
            group = 3
        shared = next(
            (i for i, (x, y) in enumerate(zip(cid, source_id, strict=False)) if x != y),
            min(len(cid), len(source_id)),
        )
        ranked.append((group, -total, -shared, cid))
    if not ranked:
        return None
    # Ties after price and shared prefix go to the greater id, which is usually the newer version.
    ranked.sort(key=lambda r: r[3], reverse=True)
    ranked.sort(key=lambda r: r[:3])
    return ranked[0][3]


def table_version() -> str:
    """Version of the price table, e.g. ``"genai-prices 0.2.3+overrides:1a2b3c4d"``."""
    from importlib.metadata import version

    text = f"genai-prices {version('genai-prices')}"
    digest = _get_overrides().digest
    return f"{text}+overrides:{digest}" if digest else text


def reload_overrides(path: str | os.PathLike[str] | None = None) -> None:
    """Re-read ``[tool.tokenspy.prices]`` and drop every memoized price.

    ``path`` is a ``pyproject.toml`` file, or a directory to search upwards from (default: the
    current working directory). On error the previous overrides stay in force.

    Raises:
        ValueError: an override is invalid (the message names the model and field), or the
            TOML does not parse.
    """
    new = _read_overrides(path)
    with _lock:
        _install_overrides(new)


class _PricingView(Mapping[str, "tuple[float, float]"]):
    """Read-only mapping of model id -> (input $/1M, output $/1M), base tier, now."""

    __slots__ = ()

    def __getitem__(self, key: str) -> tuple[float, float]:
        if not isinstance(key, str) or (key not in _all_ids() and key not in _get_overrides().names.values()):
            raise KeyError(key)
        price = get_price_per_million(key)
        if price is None:
            raise KeyError(key)
        return price

    def __iter__(self) -> Iterator[str]:
        return iter(_full_table())

    def __len__(self) -> int:
        return len(_full_table())

    def __repr__(self) -> str:
        return f"<tokenspy.pricing.PRICING: {len(self)} models>"


PRICING: Mapping[str, tuple[float, float]] = _PricingView()
"""Model id -> ``(input $/1M, output $/1M)``; read-only, built on first use."""


# --------------------------------------------------------------------------------------------
# Resolution


def _resolve(model: str, provider: str | None) -> ModelPrice | None:
    snap = _data()
    ov = _get_overrides()
    name = model.strip().lower()
    if not name:
        return None
    hint = _provider_id(snap, provider)
    candidates = _candidate_names(snap, name, hint)

    for cand, _ in candidates:  # an override of the name as written beats the data
        if cand in ov.vecs:
            found = _find(snap, candidates)
            prov = found[0].id if found else (hint or _CUSTOM_PROVIDER)
            return _flat_price(ov.names[cand], prov, ov.vecs[cand])

    found = _find(snap, candidates)
    if found is None:
        return None
    prov, info = found
    vec = ov.vecs.get(info.id.lower())
    if vec is not None:  # an override of a known model applies to its aliases too
        return _flat_price(info.id, prov.id, vec)
    return _price_of(prov, info)


def _provider_id(snap: DataSnapshot, provider: str | None) -> str | None:
    if provider is None or provider.strip().lower() in _NO_HINT:
        return None
    from genai_prices.data_snapshot import find_provider_by_id

    found = find_provider_by_id(snap.providers, provider)
    return found.id if found else None


def _candidate_names(snap: DataSnapshot, name: str, hint: str | None) -> list[tuple[str, str | None]]:
    """The names to try, best first, each with its provider hint."""
    from genai_prices.data_snapshot import find_provider_by_id

    name = name.removeprefix("models/")  # google-genai's resource names
    out: list[tuple[str, str | None]] = []
    head, sep, rest = name.partition("/")
    if sep and rest:
        prefixed = find_provider_by_id(snap.providers, head)
        if prefixed is not None:  # "openai/gpt-4o": LiteLLM / OpenRouter style
            out.append((rest.removeprefix("models/"), hint or prefixed.id))
    out.append((name, hint))
    return out


def _find(snap: DataSnapshot, candidates: list[tuple[str, str | None]]) -> tuple[Provider, ModelInfo] | None:
    if len(candidates) == 1:
        return _find_one(snap, *candidates[0])
    # A provider prefix gives two readings of the name; one that is exactly a model id beats a
    # pattern match, so "anthropic/claude-haiku-4.5:batch" (an OpenRouter id) is not priced as
    # plain claude-haiku-4-5, while "openai/gpt-4o" still means OpenAI's gpt-4o.
    results = [(name, _find_one(snap, name, hint)) for name, hint in candidates]
    for name, found in results:
        if found is not None and found[1].id.lower() == name:
            return found
    for name, _ in results:
        exact = _exact_ids(snap).get(name)
        if exact is not None:
            return exact
    return next((found for _, found in results if found is not None), None)


def _find_one(snap: DataSnapshot, name: str, hint: str | None) -> tuple[Provider, ModelInfo] | None:
    """Where genai-prices' own match rules put ``name``; no prefix guessing of ours.

    In turn: the hinted provider, the provider whose model pattern claims the name, a model
    whose id is exactly the name, the SDK providers tokenspy wraps, then every provider.
    """
    providers = snap.providers
    by_id = {p.id: p for p in providers}
    tried: list[Provider] = []

    def attempt(prov: Provider, fallbacks: bool) -> ModelInfo | None:
        if any(prov is seen for seen in tried):  # identity: Provider's == compares all models
            return None
        tried.append(prov)
        return prov.find_model(name, all_providers=providers if fallbacks else None)

    claimed: list[Provider] = []
    if hint is not None:
        claimed.append(by_id[hint])
    try:
        claimed.append(snap.find_provider(name, None, None))
    except LookupError:
        pass
    for prov in claimed:
        info = attempt(prov, True)
        if info is not None:
            return prov, info
    exact = _exact_ids(snap).get(name)
    if exact is not None:
        return exact
    for pid in _PREFERRED_PROVIDERS:
        info = attempt(by_id[pid], True)
        if info is not None:
            return by_id[pid], info
    # Last resort, in the data's fixed order, without cross-provider fallbacks so that a model
    # is attributed to the provider that lists it.
    for prov in providers:
        info = attempt(prov, False)
        if info is not None:
            return prov, info
    return None


def _exact_ids(snap: DataSnapshot) -> dict[str, tuple[Provider, ModelInfo]]:
    """Lower-cased model id -> its model; an id listed by several providers goes to the SDK
    providers tokenspy wraps first (text-embedding-3-small is OpenAI's, not Azure's)."""
    global _exact_index
    if _exact_index is None:
        rank = {pid: i for i, pid in enumerate(_PREFERRED_PROVIDERS)}
        ordered = sorted(snap.providers, key=lambda p: rank.get(p.id, len(rank)))  # stable
        index: dict[str, tuple[Provider, ModelInfo]] = {}
        for prov in ordered:
            for info in prov.models:
                index.setdefault(info.id.lower(), (prov, info))
        _exact_index = index
    return _exact_index


# --------------------------------------------------------------------------------------------
# Building rate vectors from the genai-prices data


def _price_of(provider: Provider, info: ModelInfo) -> ModelPrice:
    # Duck-typed, not isinstance: the snapshot is memoized here, and a re-imported genai_prices
    # (module reloads, in-process pytester runs) would bring new classes its objects are not of.
    if not isinstance(info.prices, (list, tuple)):
        return ModelPrice(info.id, provider.id, _sheet(info.prices))
    periods = info.prices
    schedule = []
    for period in reversed(periods):
        c = period.constraint
        sheet = _sheet(period.prices)
        if c is None:
            schedule.append((_ALWAYS, 0.0, 0.0, sheet))
        elif type(c).__name__ == "StartDateConstraint":
            schedule.append((_FROM, _day_start(c.start_date), 0.0, sheet))
        elif type(c).__name__ == "TimeOfDateConstraint":
            schedule.append((_DAILY, _utc_seconds(c.start_time), _utc_seconds(c.end_time), sheet))
        else:  # a constraint this version does not know: never active, as an unmet condition
            continue
    return ModelPrice(info.id, provider.id, _sheet(periods[0].prices), tuple(schedule))


def _tiered(value: object) -> bool:
    return hasattr(value, "tiers") and hasattr(value, "base")


def _sheet(prices: object) -> _Sheet:
    """Base rate vector plus one vector per input-size tier, highest threshold first."""
    raw = [getattr(prices, key, None) for key in _PRICE_KEYS]
    starts = sorted({t.start for v in raw if _tiered(v) for t in v.tiers})

    def vec(above: int | None) -> _Vec:
        rates: list[float | None] = []
        for v in raw:
            if _tiered(v):
                # A call with more input tokens than a tier's start pays that tier's rate.
                chosen = v.base
                if above is not None:
                    for tier in v.tiers:
                        if tier.start <= above:
                            chosen = tier.price
                v = chosen
            rates.append(None if v is None else float(v))
        inp, cread, cwrite, cw1h, out, reasoning, request = rates
        inp = inp or 0.0
        out = out or 0.0
        cwrite = inp if cwrite is None else cwrite
        return (
            inp,
            inp if cread is None else cread,
            cwrite,
            cwrite if cw1h is None else cw1h,
            out,
            out if reasoning is None else reasoning,
            (request or 0.0) / 1000,
        )

    return vec(None), tuple((s, vec(s)) for s in reversed(starts))


def _flat_price(model: str, provider: str, vec: _Vec) -> ModelPrice:
    return ModelPrice(model, provider, (vec, ()))


def _day_start(day: date) -> float:
    # genai-prices compares the UTC calendar date of the request with start_date.
    return float(day.toordinal() - 719163) * 86400.0  # 719163 == date(1970, 1, 1).toordinal()


def _utc_seconds(value: dtime) -> float:
    from datetime import date, datetime, timezone

    moment = datetime.combine(date(1970, 1, 1), value)
    if moment.tzinfo is None:  # naive times are UTC, as in genai-prices
        moment = moment.replace(tzinfo=timezone.utc)
    t = moment.astimezone(timezone.utc).timetz()
    return t.hour * 3600.0 + t.minute * 60.0 + t.second + t.microsecond / 1e6


# --------------------------------------------------------------------------------------------
# Catalogues (list_models, PRICING, cheaper alternatives)


def _all_ids() -> frozenset[str]:
    global _known_ids
    ids = _known_ids
    if ids is None:
        snap = _data()
        with _lock:
            ids = _known_ids = frozenset(m.id for p in snap.providers for m in p.models)
    return ids


def _full_table() -> dict[str, tuple[float, float]]:
    global _pricing_table
    table = _pricing_table
    if table is None:
        table = {}
        for model_id in list_models():
            price = get_price_per_million(model_id)
            if price is not None:
                table[model_id] = price
        _pricing_table = table
    return table


def _provider_catalog(provider: str) -> list[tuple[str, float, bool]]:
    """``(id, input + output $/1M now, deprecated)`` for every model of ``provider``."""
    ov = _get_overrides()
    snap = _data()
    out: list[tuple[str, float, bool]] = []
    prov = next((p for p in snap.providers if p.id == provider), None)
    if prov is not None:
        for info in prov.models:
            vec = ov.vecs.get(info.id.lower())
            price = _flat_price(info.id, prov.id, vec) if vec is not None else _price_of(prov, info)
            inp, outp = price._per_million()
            out.append((info.id, inp + outp, bool(info.deprecated)))
    if provider == _CUSTOM_PROVIDER:  # models known only from overrides
        for name in ov.names.values():
            price = lookup(name)
            if price is not None and price.provider == _CUSTOM_PROVIDER:
                inp, outp = price._per_million()
                out.append((price.model, inp + outp, False))
    return out


# Tokens that make a model a different product rather than a cheaper variant of the same one.
_KIND_TOKENS = frozenset(
    "audio realtime tts transcribe image search embedding moderation whisper live research "  # noqa: SIM905
    "computer diarize robotics vision instruct codex ft guard safeguard".split()
)
_TIER_TOKENS = frozenset("opus sonnet haiku pro flash lite mini nano large medium small turbo".split())  # noqa: SIM905
_NOISE_TOKENS = frozenset("latest preview exp experimental chat".split())  # noqa: SIM905
_DATE_SUFFIX = r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4}|-\d{2}-\d{4})$"
_TOKEN_SPLIT = r"[-_/:@]"


def _name_shape(model_id: str) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...], str]:
    """``(kind tokens, line, tier tokens, family)`` of a model id.

    ``claude-sonnet-4-5`` -> line ``(claude, 4, 5)``, tier ``(sonnet,)``, family ``claude``;
    ``gpt-4o-mini`` -> line ``(gpt, 4o)``, tier ``(mini,)``.
    """
    import re  # here, not at module level: it is not free and import tokenspy must be cheap

    tokens = [t for t in re.split(_TOKEN_SPLIT, re.sub(_DATE_SUFFIX, "", model_id.lower())) if t]
    kind = frozenset(t for t in tokens if t in _KIND_TOKENS)
    tier = tuple(t for t in tokens if t in _TIER_TOKENS)
    line = tuple(t for t in tokens if t not in _TIER_TOKENS and t not in _NOISE_TOKENS)
    return kind, line, tier, tokens[0] if tokens else ""


# --------------------------------------------------------------------------------------------
# User overrides

_OVERRIDE_FIELDS = ("input", "output", "cached_input", "cache_write")


def _read_overrides(path: str | os.PathLike[str] | None) -> _Overrides:
    file, tool = tool_table(path)
    if file is None:
        return _Overrides({}, {}, None)
    table = tool.get("prices", {})
    if not isinstance(table, dict):
        raise ValueError(f"{file}: [tool.tokenspy.prices] must be a table of models")
    return _parse_overrides(table, str(file))


def _parse_overrides(table: dict[str, object], source: str) -> _Overrides:
    vecs: dict[str, _Vec] = {}
    names: dict[str, str] = {}
    canonical: dict[str, dict[str, float]] = {}
    for model, entry in table.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{source}: price override for model {model!r} must be a table")
        unknown = sorted(set(entry) - set(_OVERRIDE_FIELDS))
        if unknown:
            raise ValueError(
                f"{source}: price override for model {model!r} has unknown field {unknown[0]!r} "
                f"(expected {', '.join(_OVERRIDE_FIELDS)})"
            )
        values: dict[str, float] = {}
        for field in _OVERRIDE_FIELDS:
            if field not in entry:
                if field in ("input", "output"):
                    raise ValueError(
                        f"{source}: price override for model {model!r} is missing field {field!r}"
                    )
                continue
            value = entry[field]
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not value >= 0
                or value == float("inf")
            ):
                raise ValueError(
                    f"{source}: price override for model {model!r} field {field!r} must be a "
                    f"non-negative number of $ per 1M tokens, got {value!r}"
                )
            values[field] = float(value)
        inp, out = values["input"], values["output"]
        cached = values.get("cached_input", inp)
        write = values.get("cache_write", inp)
        key = model.strip().lower()
        if key in vecs:
            raise ValueError(f"{source}: price override for model {model!r} is given twice")
        vecs[key] = (inp, cached, write, write, out, out, 0.0)
        names[key] = model.strip()
        canonical[model.strip()] = {"input": inp, "output": out, "cached_input": cached, "cache_write": write}
    if not vecs:
        return _Overrides({}, {}, None)
    import hashlib
    import json

    # Hash the effective prices, not the file text: comments or layout do not change the version.
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return _Overrides(vecs, names, hashlib.sha256(blob).hexdigest()[:8])


def _install_overrides(new: _Overrides) -> None:
    global _overrides, _pricing_table
    _overrides = new
    _memo.clear()
    _pricing_table = None
