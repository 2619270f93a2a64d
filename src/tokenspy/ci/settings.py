"""The GitHub Action's settings: read from the environment into ONE dataclass, validated up front.

action.yml passes every input explicitly as a ``TOKENSPY_*`` variable (composite actions get no
implicit ``INPUT_*`` variables); the runner's own variables (``GITHUB_*``, ``RUNNER_TEMP``) are
read under their usual names. A bad value raises ``UsageError`` naming the input, which the entry
reports as one ``::error::`` line and exit code 2.

The token is kept out of ``repr`` and every message: ``Settings.scrub`` removes it from any text
(exceptions included) before it is printed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

BaselineMode = Literal["auto", "artifact", "path", "none"]
CommentMode = Literal["update", "new", "on-change", "off"]

BASELINE_MODES: tuple[BaselineMode, ...] = ("auto", "artifact", "path", "none")
COMMENT_MODES: tuple[CommentMode, ...] = ("update", "new", "on-change", "off")
# The earlier names of two modes, still accepted.
COMMENT_ALIASES = {"always": "update", "never": "off"}
USAGE_CHOICES = ("request", "response")
DEFAULT_ACCEPT_LABEL = "tokenspy:accept"
DEFAULT_HTML_ARTIFACT = "tokenspy-report"
DEFAULT_CURRENT_DB = ".tokenspy/usage.db"
DEFAULT_ARTIFACT_NAME = "tokenspy-usage"
DEFAULT_API_URL = "https://api.github.com"

# input name (as in action.yml) -> environment variable action.yml sets for it
INPUT_ENV = {
    "current-db": "TOKENSPY_CURRENT_DB",
    "baseline-db": "TOKENSPY_BASELINE_DB",
    "baseline": "TOKENSPY_BASELINE",
    "base-ref": "TOKENSPY_BASE_REF",
    "max-increase-pct": "TOKENSPY_MAX_INCREASE_PCT",
    "max-increase-usd": "TOKENSPY_MAX_INCREASE_USD",
    "fail-pct": "TOKENSPY_FAIL_PCT",
    "fail-usd": "TOKENSPY_FAIL_USD",
    "warn-pct": "TOKENSPY_WARN_PCT",
    "warn-usd": "TOKENSPY_WARN_USD",
    "fail-on-regression": "TOKENSPY_FAIL_ON_REGRESSION",
    "comment": "TOKENSPY_COMMENT",
    "github-token": "TOKENSPY_GITHUB_TOKEN",
    "artifact-name": "TOKENSPY_ARTIFACT_NAME",
    "comment-tag": "TOKENSPY_COMMENT_TAG",
    "accept-label": "TOKENSPY_ACCEPT_LABEL",
    "usage": "TOKENSPY_USAGE",
    "report-artifact-name": "TOKENSPY_REPORT_ARTIFACT_NAME",
}

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


class UsageError(Exception):
    """A setting the action cannot run with; the message is one line naming it."""


def _text(env: Mapping[str, str], name: str) -> str:
    return (env.get(name) or "").strip()


def _input(env: Mapping[str, str], name: str) -> str:
    return _text(env, INPUT_ENV[name])


def _number(raw: str, name: str, *, strip: str, allow_inf: bool) -> float | None:
    if not raw:
        return None
    text = raw.strip().removeprefix(strip).removesuffix(strip).strip() if strip else raw
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"input {name}: {raw!r} is not a number") from None
    if math.isnan(value) or value < 0 or (math.isinf(value) and not allow_inf):
        raise UsageError(f"input {name}: {raw!r} must be a non-negative{'' if allow_inf else ' finite'} number")
    return value


def _level(env: Mapping[str, str], name: str, alias: str, *, strip: str, allow_inf: bool) -> float | None:
    """A fail-level input, given under its name or its older alias (not both)."""
    raw, old = _input(env, name), _input(env, alias)
    if raw and old:
        raise UsageError(f"inputs {name} and {alias} are the same setting: give one")
    return _number(raw or old, name if raw else alias, strip=strip, allow_inf=allow_inf)


def _bool(raw: str, name: str, default: bool) -> bool:
    if not raw:
        return default
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise UsageError(f"input {name}: {raw!r} is not a boolean (use true or false)")


def _choice(raw: str, name: str, choices: tuple[str, ...], default: str) -> str:
    value = (raw or default).lower()
    if value not in choices:
        raise UsageError(f"input {name}: {raw!r} is not one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the action reads from its environment (see ``from_environ``)."""

    # inputs
    current_db: str = DEFAULT_CURRENT_DB
    baseline_db: str | None = None
    baseline: BaselineMode = "auto"
    base_ref: str | None = None
    max_increase_pct: float | None = None
    max_increase_usd: float | None = None  # the fail level (inputs fail-* or their aliases max-increase-*)
    warn_pct: float | None = None
    warn_usd: float | None = None
    fail_on_regression: bool = True
    comment: CommentMode = "update"
    comment_tag: str = ""  # one sticky comment per tag (default: the job's name)
    accept_label: str = DEFAULT_ACCEPT_LABEL  # a PR label that turns a failing verdict into a pass ("" off)
    usage: str | None = None  # the usage source to compare (None: the current run's)
    github_token: str = field(default="", repr=False)
    artifact_name: str = DEFAULT_ARTIFACT_NAME
    report_artifact_name: str = DEFAULT_HTML_ARTIFACT  # the HTML report's artifact ("" none)
    # the runner's
    github_actions: bool = False
    api_url: str = DEFAULT_API_URL
    server_url: str = "https://github.com"
    repository: str | None = None
    event_name: str | None = None
    event_path: str | None = None
    ref: str | None = None
    sha: str | None = None
    run_id: str | None = None
    job: str | None = None
    workspace: str | None = None
    step_summary: str | None = None
    output: str | None = None
    runner_temp: str | None = None
    verdict_file: str | None = None  # where entrypoint.sh reads the verdict from

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        baseline_db = _input(env, "baseline-db") or None
        baseline = _choice(_input(env, "baseline"), "baseline", BASELINE_MODES, "auto")
        base_ref = _input(env, "base-ref") or None
        if baseline == "path" and baseline_db is None:
            raise UsageError("input baseline: 'path' needs the baseline-db input (a DB file)")
        if baseline_db is not None and baseline not in ("auto", "path"):
            raise UsageError(f"input baseline-db is set but baseline is {baseline!r} (use auto or path)")
        if base_ref is not None and baseline != "auto":
            raise UsageError(f"input base-ref is set but baseline is {baseline!r} (base-ref needs baseline: auto)")
        if base_ref is not None and baseline_db is not None:
            raise UsageError("inputs base-ref and baseline-db are exclusive: give one baseline")
        repository = _text(env, "GITHUB_REPOSITORY") or None
        if repository is not None and repository.count("/") != 1:
            raise UsageError(f"GITHUB_REPOSITORY {repository!r} is not owner/name")
        return cls(
            current_db=_input(env, "current-db") or DEFAULT_CURRENT_DB,
            baseline_db=baseline_db,
            baseline=baseline,  # type: ignore[arg-type]
            base_ref=base_ref,
            max_increase_pct=_level(env, "fail-pct", "max-increase-pct", strip="%", allow_inf=True),
            max_increase_usd=_level(env, "fail-usd", "max-increase-usd", strip="$", allow_inf=False),
            warn_pct=_number(_input(env, "warn-pct"), "warn-pct", strip="%", allow_inf=True),
            warn_usd=_number(_input(env, "warn-usd"), "warn-usd", strip="$", allow_inf=False),
            fail_on_regression=_bool(_input(env, "fail-on-regression"), "fail-on-regression", True),
            comment=_choice(COMMENT_ALIASES.get(_input(env, "comment").lower(), _input(env, "comment")),
                            "comment", COMMENT_MODES, "update"),  # type: ignore[arg-type]
            comment_tag=_input(env, "comment-tag") or _text(env, "GITHUB_JOB"),
            accept_label=(_input(env, "accept-label") if INPUT_ENV["accept-label"] in env
                          else DEFAULT_ACCEPT_LABEL),
            usage=_choice(_input(env, "usage"), "usage", USAGE_CHOICES, "") if _input(env, "usage") else None,
            report_artifact_name=(_input(env, "report-artifact-name") if INPUT_ENV["report-artifact-name"] in env
                                  else DEFAULT_HTML_ARTIFACT),
            github_token=_input(env, "github-token"),
            # present but empty (artifact-name: '') turns the artifact off; absent is the default
            artifact_name=_input(env, "artifact-name") if INPUT_ENV["artifact-name"] in env else DEFAULT_ARTIFACT_NAME,
            github_actions=_text(env, "GITHUB_ACTIONS") == "true",
            api_url=(_text(env, "GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"),
            server_url=(_text(env, "GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
            repository=repository,
            event_name=_text(env, "GITHUB_EVENT_NAME") or None,
            event_path=_text(env, "GITHUB_EVENT_PATH") or None,
            ref=_text(env, "GITHUB_REF") or None,
            sha=_text(env, "GITHUB_SHA") or None,
            run_id=_text(env, "GITHUB_RUN_ID") or None,
            job=_text(env, "GITHUB_JOB") or None,
            workspace=_text(env, "GITHUB_WORKSPACE") or None,
            step_summary=_text(env, "GITHUB_STEP_SUMMARY") or None,
            output=_text(env, "GITHUB_OUTPUT") or None,
            runner_temp=_text(env, "RUNNER_TEMP") or None,
            verdict_file=_text(env, "TOKENSPY_VERDICT_FILE") or None,
        )

    def scrub(self, text: object) -> str:
        """``text`` with the token replaced by ``***``."""
        out = str(text)
        if self.github_token:
            out = out.replace(self.github_token, "***")
        return out

    def path(self, value: str) -> Path:
        """A path input: relative ones are relative to the cwd (the workspace in a run step)."""
        return Path(value).expanduser()

    def temp_dir(self) -> Path:
        import tempfile

        return Path(self.runner_temp or tempfile.gettempdir())
