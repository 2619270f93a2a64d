"""Gate settings: thresholds, noise sigma and per-key overrides, and where they come from.

Precedence, highest first: keyword arguments of the API (the CLI passes its flags as those),
``[tool.tokenspy.ci]`` of the nearest ``pyproject.toml`` (searched from the cwd upwards; the first
file found is the one used, whether or not it has the table), then the defaults::

    [tool.tokenspy.ci]
    fail_pct = 25                # fail level, percent (default 10; alias: max_increase_pct)
    fail_usd = 0.0               # fail level, USD; 0 means "no absolute threshold" (alias: max_increase_usd)
    warn_pct = 5                 # warn level, percent: annotated, never failing (default: the fail level)
    warn_usd = 0.0               # warn level, USD (default: the fail level)
    noise_sigma = 3              # k of the noise test (see tokenspy.ci.diff)
    fail_on_regression = false   # verdict "fail" (and ::error annotations) on a regression

    [tool.tokenspy.ci.overrides]
    "tests/test_slow.py::*" = { max_increase_pct = 50 }
    "app.summarize*" = { max_increase_usd = 0.05 }

An override is a glob (``fnmatch``, case-sensitive; ``*`` also crosses ``/`` and ``::``) matched
against a function name, a test id or a model name. When several match, the LAST one wins (file
order, then overrides given as arguments, which come after the file's): as in ``.gitignore`` and
CODEOWNERS, later and more specific entries refine earlier ones. A field an override leaves out
keeps the global value. The total always uses the global thresholds.

Two levels: an increase over the fail level is a regression (the verdict fails with
``fail_on_regression``); one over the warn level only is a warning (annotated, never failing).
A key's warn level is the global one, never above the key's own fail level.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path

from tokenspy.pyproject import find as find_pyproject

DEFAULT_MAX_INCREASE_PCT = 10.0
DEFAULT_MAX_INCREASE_USD = 0.0
DEFAULT_NOISE_SIGMA = 3.0

_FIELDS = ("max_increase_pct", "max_increase_usd", "fail_pct", "fail_usd", "warn_pct", "warn_usd", "noise_sigma",
           "fail_on_regression", "overrides")
_ALIASES = {"fail_pct": "max_increase_pct", "fail_usd": "max_increase_usd"}
_OVERRIDE_FIELDS = ("max_increase_pct", "max_increase_usd")


@dataclass(frozen=True)
class Limits:
    """The thresholds one key is held to.

    ``max_increase_pct`` is always in force (``inf`` turns it off, which also means the key can
    never regress); ``max_increase_usd`` is in force when > 0.
    """

    max_increase_pct: float = DEFAULT_MAX_INCREASE_PCT
    max_increase_usd: float = DEFAULT_MAX_INCREASE_USD
    warn_pct: float | None = None  # None: the fail level
    warn_usd: float | None = None

    @property
    def warn(self) -> tuple[float, float]:
        """The warn level (percent, USD), never above the fail level."""
        pct = self.max_increase_pct if self.warn_pct is None else min(self.warn_pct, self.max_increase_pct)
        usd = self.max_increase_usd if self.warn_usd is None else self.warn_usd
        if self.max_increase_usd > 0:
            usd = min(usd, self.max_increase_usd) if usd > 0 else usd
        return pct, usd

    @property
    def has_warn(self) -> bool:
        return self.warn != (self.max_increase_pct, self.max_increase_usd)

    def describe(self) -> str:
        fail = _level(self.max_increase_pct, self.max_increase_usd)
        return f"warn {_level(*self.warn)}, fail {fail}" if self.has_warn else fail


def _level(pct: float, usd: float) -> str:
    parts = [] if math.isinf(pct) else [f"+{pct:g}%"]
    if usd > 0:
        parts.append(f"+${usd:g}")
    return " and ".join(parts) if parts else "none"


@dataclass(frozen=True)
class Override:
    pattern: str
    max_increase_pct: float | None = None
    max_increase_usd: float | None = None


@dataclass(frozen=True)
class Thresholds:
    """Resolved gate settings (see the module docstring for precedence and overrides)."""

    max_increase_pct: float = DEFAULT_MAX_INCREASE_PCT  # the fail level
    max_increase_usd: float = DEFAULT_MAX_INCREASE_USD
    noise_sigma: float = DEFAULT_NOISE_SIGMA
    fail_on_regression: bool = False
    overrides: tuple[Override, ...] = ()
    source: str | None = field(default=None, compare=False)  # the pyproject.toml read, if any
    warn_pct: float | None = None  # the warn level; None: the fail level
    warn_usd: float | None = None

    @property
    def limits(self) -> Limits:
        return Limits(self.max_increase_pct, self.max_increase_usd, self.warn_pct, self.warn_usd)

    def for_key(self, key: str) -> Limits:
        """The limits of a function / test / model named ``key`` (the last matching override)."""
        pct, usd = self.max_increase_pct, self.max_increase_usd
        for ov in reversed(self.overrides):
            if fnmatchcase(key, ov.pattern):
                if ov.max_increase_pct is not None:
                    pct = ov.max_increase_pct
                if ov.max_increase_usd is not None:
                    usd = ov.max_increase_usd
                break
        return Limits(pct, usd, self.warn_pct, self.warn_usd)


def _number(value: object, what: str, *, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if math.isnan(number) or number < 0 or (math.isinf(number) and not allow_inf):
        raise ValueError(f"{what} must be a non-negative{'' if allow_inf else ' finite'} number, got {value!r}")
    return number


def _parse_overrides(table: object, where: str) -> tuple[Override, ...]:
    if isinstance(table, Override):
        return (table,)
    if not isinstance(table, Mapping):
        raise ValueError(f"{where}: overrides must be a table of glob = {{ max_increase_pct = …, … }}")
    out = []
    for pattern, entry in table.items():
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"{where}: override patterns must be non-empty strings, got {pattern!r}")
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: override {pattern!r} must be a table, got {entry!r}")
        unknown = sorted(set(entry) - set(_OVERRIDE_FIELDS))
        if unknown:
            raise ValueError(
                f"{where}: override {pattern!r} has unknown field {unknown[0]!r} "
                f"(expected {' or '.join(_OVERRIDE_FIELDS)})"
            )
        pct = entry.get("max_increase_pct")
        usd = entry.get("max_increase_usd")
        out.append(Override(
            pattern,
            None if pct is None else _number(pct, f"{where}: override {pattern!r} max_increase_pct", allow_inf=True),
            None if usd is None else _number(usd, f"{where}: override {pattern!r} max_increase_usd"),
        ))
    return tuple(out)


def read_pyproject(path: str | os.PathLike[str]) -> dict[str, object]:
    """``[tool.tokenspy.ci]`` of one pyproject.toml, validated (ValueError names file and key)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML ({exc})") from None
    table = doc.get("tool", {}).get("tokenspy", {}).get("ci", {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [tool.tokenspy.ci] must be a table")
    unknown = sorted(set(table) - set(_FIELDS))
    if unknown:
        raise ValueError(f"{path}: [tool.tokenspy.ci] has unknown key {unknown[0]!r} (expected {', '.join(_FIELDS)})")
    where = f"{path}: [tool.tokenspy.ci]"
    for alias, name in _ALIASES.items():
        if alias in table and name in table:
            raise ValueError(f"{where} sets both {alias} and {name} (the same setting): keep one")
    table = {_ALIASES.get(k, k): v for k, v in table.items()}
    out: dict[str, object] = {}
    for name in ("max_increase_pct", "warn_pct"):
        if name in table:
            out[name] = _number(table[name], f"{where} {name}", allow_inf=True)
    for name in ("max_increase_usd", "warn_usd"):
        if name in table:
            out[name] = _number(table[name], f"{where} {name}")
    if "noise_sigma" in table:
        out["noise_sigma"] = _number(table["noise_sigma"], f"{where} noise_sigma")
    if "fail_on_regression" in table:
        if not isinstance(table["fail_on_regression"], bool):
            raise ValueError(f"{where} fail_on_regression must be true or false")
        out["fail_on_regression"] = table["fail_on_regression"]
    if "overrides" in table:
        out["overrides"] = _parse_overrides(table["overrides"], f"{where}.overrides")
    return out


def resolve(
    *,
    max_increase_pct: float | None = None,
    max_increase_usd: float | None = None,
    noise_sigma: float | None = None,
    fail_on_regression: bool | None = None,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
    pyproject: str | os.PathLike[str] | bool | None = None,
    warn_pct: float | None = None,
    warn_usd: float | None = None,
) -> Thresholds:
    """Merge arguments (``None`` = not given) over pyproject over defaults.

    ``pyproject``: ``None``/``True`` searches from the cwd, a path names the file, ``False`` skips
    the file entirely. Raises ValueError for an invalid value, naming it.
    """
    base = Thresholds()
    file: Path | None = None
    if pyproject is None or pyproject is True:
        file = find_pyproject()
    elif pyproject is not False:
        file = Path(pyproject)
    if file is not None:
        conf = read_pyproject(file)
        base = replace(base, source=str(file), **conf)  # type: ignore[arg-type]
    given: dict[str, object] = {}
    if max_increase_pct is not None:
        given["max_increase_pct"] = _number(max_increase_pct, "max_increase_pct", allow_inf=True)
    if max_increase_usd is not None:
        given["max_increase_usd"] = _number(max_increase_usd, "max_increase_usd")
    if warn_pct is not None:
        given["warn_pct"] = _number(warn_pct, "warn_pct", allow_inf=True)
    if warn_usd is not None:
        given["warn_usd"] = _number(warn_usd, "warn_usd")
    if noise_sigma is not None:
        given["noise_sigma"] = _number(noise_sigma, "noise_sigma")
    if fail_on_regression is not None:
        given["fail_on_regression"] = bool(fail_on_regression)
    if overrides:
        given["overrides"] = base.overrides + _parse_overrides(overrides, "overrides")
    return replace(base, **given)  # type: ignore[arg-type]


def parse_override_flag(text: str) -> tuple[str, dict[str, float]]:
    """``GLOB=PCT``, ``GLOB=PCT,USD`` or ``GLOB=,USD`` (the CLI's ``--override``); split at the
    last ``=`` so that a glob may contain ``=``."""
    pattern, sep, values = text.rpartition("=")
    if not sep or not pattern:
        raise ValueError(f"--override {text!r}: expected GLOB=PCT or GLOB=PCT,USD")
    pct_text, _, usd_text = values.partition(",")
    entry: dict[str, float] = {}
    if pct_text.strip():
        entry["max_increase_pct"] = _number(pct_text.strip().rstrip("%"), f"--override {text!r} percent",
                                            allow_inf=True)
    if usd_text.strip():
        entry["max_increase_usd"] = _number(usd_text.strip().lstrip("$"), f"--override {text!r} USD")
    if not entry:
        raise ValueError(f"--override {text!r}: give a percent, a USD amount or both")
    return pattern, entry
