"""``tokenspy diff`` (alias ``annotate``), ``tokenspy compare`` and ``tokenspy combine``.

Exit codes: 0 done (regressions, if any, reported but not failing), 1 a regression with
``--fail-on-regression`` (or ``fail_on_regression = true`` in pyproject), 2 bad input.
"""

from __future__ import annotations

import argparse
import math

from tokenspy.commands.core import positive_int


def _threshold_number(what: str, allow_inf: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if math.isnan(value) or value < 0 or (math.isinf(value) and not allow_inf):
            raise argparse.ArgumentTypeError(f"{what} must be a non-negative number: {text!r}")
        return value

    return parse


def _gate_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("gate")
    g.add_argument("--fail-pct", "--max-increase-pct", dest="max_increase_pct",
                   type=_threshold_number("percent", allow_inf=True), metavar="PCT",
                   help="fail level: relative increase per key and on the total (default 10, or pyproject)")
    g.add_argument("--fail-usd", "--max-increase-usd", dest="max_increase_usd", type=_threshold_number("amount"),
                   metavar="USD", help="fail level: absolute increase in USD; 0 = none (default 0, or pyproject)")
    g.add_argument("--warn-pct", type=_threshold_number("percent", allow_inf=True), metavar="PCT",
                   help="warn level: annotated, never failing (default: the fail level, or pyproject)")
    g.add_argument("--warn-usd", type=_threshold_number("amount"), metavar="USD",
                   help="warn level in USD (default: the fail level, or pyproject)")
    g.add_argument("--noise-sigma", type=_threshold_number("sigma"), metavar="K",
                   help="with several runs per side, flag only changes beyond K standard deviations (default 3)")
    g.add_argument("--override", action="append", default=[], metavar="GLOB=PCT[,USD]",
                   help="thresholds for the functions/tests/models matching GLOB (repeatable)")
    g.add_argument("--fail-on-regression", action="store_true", default=None,
                   help="exit 1 when a regression is found")
    g.add_argument("--usage", choices=("request", "response"), default=None,
                   help="compare the rows of this usage source only (default: the current run's)")
    g.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    g.add_argument("--github", action=argparse.BooleanOptionalAction, default=None,
                   help="force GitHub Actions annotations/summary/outputs on or off (default: auto)")
    return p


def register(sub: argparse._SubParsersAction) -> None:
    gate = _gate_options()
    p = sub.add_parser("diff", aliases=["annotate"], parents=[gate],
                       help="diff LLM cost of a DB against a baseline DB and gate on regressions")
    p.add_argument("current_db", metavar="CURRENT_DB")
    p.add_argument("baseline_db", metavar="BASELINE_DB", nargs="?",
                   help="omit for a report of the current DB alone")
    p.add_argument("--run", metavar="RUN_ID",
                   help="this run of CURRENT_DB (default: its latest run, with the repeats of identical code)")
    p.set_defaults(handler=cmd_diff)

    p = sub.add_parser("compare", parents=[gate], help="diff LLM cost between two commits stored in one DB")
    p.add_argument("rev1", metavar="REV1", help="baseline revision (SHA, branch, tag, HEAD~1, …)")
    p.add_argument("rev2", metavar="REV2", help="current revision")
    p.add_argument("--db", help="database (default: $TOKENSPY_DB, else .tokenspy/usage.db of the git work tree "
                                "if it exists, else ~/.tokenspy/usage.db)")
    p.add_argument("--repo", help="git repository to resolve revisions in (default: around the cwd)")
    p.set_defaults(handler=cmd_compare)

    p = sub.add_parser("trend", help="LLM cost per commit of a DB: a sparkline and a table")
    p.add_argument("--db", help="database (default: $TOKENSPY_DB, else .tokenspy/usage.db of the git work tree "
                                "if it exists, else ~/.tokenspy/usage.db)")
    p.add_argument("--key", metavar="PATTERN", help="only the functions (else tests) matching this glob")
    p.add_argument("--last", type=positive_int, default=30, metavar="N", help="commits shown (default 30)")
    p.add_argument("--usage", choices=("request", "response"), default=None,
                   help="the rows of this usage source only")
    p.set_defaults(handler=cmd_trend)

    p = sub.add_parser("combine", help="merge shard DBs into one (idempotent)")
    p.add_argument("out_db", metavar="OUT_DB")
    p.add_argument("in_dbs", metavar="IN_DB", nargs="+")
    p.set_defaults(handler=cmd_combine)


def _overrides(items: list[str]) -> dict[str, dict[str, float]]:
    from tokenspy.ci.thresholds import parse_override_flag

    out: dict[str, dict[str, float]] = {}
    for item in items:
        pattern, entry = parse_override_flag(item)
        out.pop(pattern, None)  # a repeated glob: the later flag wins, and comes last
        out[pattern] = entry
    return out


def _gate_kwargs(args: argparse.Namespace) -> dict[str, object]:
    return dict(
        max_increase_pct=args.max_increase_pct, max_increase_usd=args.max_increase_usd,
        noise_sigma=args.noise_sigma, overrides=_overrides(args.override) or None,
        fail_on_regression=args.fail_on_regression, github=args.github, format=args.format,
        warn_pct=args.warn_pct, warn_usd=args.warn_usd, usage=args.usage,
    )


def _run(fn, *args: object, **kwargs: object) -> int:
    from tokenspy.cli import CLIError

    try:
        d = fn(*args, **kwargs)
    except ValueError as exc:  # bad thresholds / pyproject values, unknown revisions
        raise CLIError(str(exc)) from None
    return 1 if d.verdict == "fail" else 0


def cmd_diff(args: argparse.Namespace) -> int:
    from tokenspy.ci.api import annotate_cost_diff

    try:
        kwargs = _gate_kwargs(args)
    except ValueError as exc:
        from tokenspy.cli import CLIError

        raise CLIError(str(exc)) from None
    return _run(annotate_cost_diff, args.current_db, args.baseline_db, run=args.run, **kwargs)


def default_db() -> str:
    from tokenspy import dbpath

    return str(dbpath.find())


def cmd_compare(args: argparse.Namespace) -> int:
    from tokenspy.ci.api import compare_commits

    try:
        kwargs = _gate_kwargs(args)
    except ValueError as exc:
        from tokenspy.cli import CLIError

        raise CLIError(str(exc)) from None
    return _run(compare_commits, args.db or default_db(), args.rev1, args.rev2, repo=args.repo, **kwargs)


def cmd_trend(args: argparse.Namespace) -> int:
    from tokenspy.ci import fmt
    from tokenspy.ci.text import clean
    from tokenspy.ci.trend import history, one_line

    t = history(args.db or default_db(), key=args.key, limit=args.last, usage=args.usage)
    if not t.points:
        what = f" with calls of {args.key!r}" if args.key else ""
        print(f"no commit{what} in this DB (run pytest --tokenspy on a git checkout)")
        return 0
    print(f"{clean(t.title)}, last {len(t.points)} commit{'s' if len(t.points) != 1 else ''}: {one_line(t)}")
    width = max(len(fmt.usd(p.cost_usd)) for p in t.points)
    prev = None
    for p in t.points:
        change = "" if prev is None else f"  {fmt.signed_usd(p.cost_usd - prev)}"
        print(f"  {clean(p.label)}  {fmt.usd(p.cost_usd).rjust(width)}{change}")
        prev = p.cost_usd
    return 0


def cmd_combine(args: argparse.Namespace) -> int:
    from tokenspy.ci.combine import combine

    result = combine(args.out_db, args.in_dbs)
    print(f"combined {result.files} file{'s' if result.files != 1 else ''} into {args.out_db}: "
          f"{result.added:,} rows added, {result.skipped:,} already present")
    return 0
