"""``tokenspy budget``: track_costs spend per project and window; ``tokenspy budget reset``.

Showing reads the DB without ever writing or creating it; ``reset`` writes one row to
``budget_windows`` of an existing DB (spend history is kept: earlier windows keep their totals,
and ``llm_calls`` is untouched).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from contextlib import closing
from datetime import datetime, timezone

DB_HELP = ("database (default: $TOKENSPY_DB, else .tokenspy/usage.db of the git work tree if it exists, "
           "else ~/.tokenspy/usage.db)")


def _db(args: argparse.Namespace) -> str:
    from tokenspy import dbpath

    return str(dbpath.find(getattr(args, "db", None)))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "budget",
        help="track_costs spend per project and budget window",
        description="Show what each project spent under track_costs in its current windows "
        "(since the last reset, this month, this week, today; calendar UTC).",
    )
    p.add_argument("--project", help="only this project")
    p.add_argument("--db", help=DB_HELP)
    p.set_defaults(handler=cmd_budget)
    actions = p.add_subparsers(dest="budget_action", metavar="[reset]", parser_class=type(p))
    r = actions.add_parser(
        "reset",
        help="start a new budget window for a project now (history kept)",
        description="Start a new budget window for PROJECT now: its budgets count only spend "
        "made from now on. Earlier spend stays in the DB.",
    )
    r.add_argument("--project", required=True, help="the project whose window restarts")
    # SUPPRESS: `tokenspy budget --db X reset` keeps the --db given before the action
    r.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    r.set_defaults(handler=cmd_reset)


def _project_arg(value: str | None) -> str | None:
    from tokenspy.cli import CLIError

    if value is not None and not value.strip():
        raise CLIError("--project must not be empty")
    return value


def _when(ts: float) -> str:
    if ts <= 0:
        return "the beginning"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def cmd_budget(args: argparse.Namespace) -> int:
    from tokenspy.store import DBError, open_readonly
    from tokenspy.toll.windows import PERIODS, window_start

    project = _project_arg(args.project)
    now = time.time()
    args.db = _db(args)
    with closing(open_readonly(args.db)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "budget_spend" not in tables:
            print(f"no track_costs spend recorded in {args.db}")
            return 0
        try:
            if project is None:
                projects = [r[0] for r in conn.execute(
                    "SELECT DISTINCT project FROM budget_spend UNION "
                    "SELECT DISTINCT project FROM budget_windows ORDER BY 1"
                )]
            elif conn.execute(
                "SELECT 1 FROM budget_spend WHERE project = ? UNION ALL "
                "SELECT 1 FROM budget_windows WHERE project = ? LIMIT 1", (project, project)
            ).fetchone() is None:
                print(f"no track_costs spend recorded for project {project!r} in {args.db}")
                return 0
            else:
                projects = [project]
            rows = []
            for name in projects:
                reset_at = conn.execute(
                    "SELECT MAX(started_at) FROM budget_windows WHERE project = ? AND started_at <= ?",
                    (name, now),
                ).fetchone()[0]
                for period in PERIODS:
                    start = window_start(period, now, reset_at)
                    got = conn.execute(
                        "SELECT spent_usd, calls, tokens FROM budget_spend "
                        "WHERE project = ? AND period = ? AND window_start = ?",
                        (name, period, start),
                    ).fetchone()
                    rows.append((name, period, start, *(got or (0.0, 0, 0))))
        except sqlite3.DatabaseError as exc:
            raise DBError(f"{args.db}: unreadable ({exc})") from None
    if not rows:
        print(f"no track_costs spend recorded in {args.db}")
        return 0
    sys.stdout.write(format_budget(rows))
    return 0


_LABEL = {"all": "since reset", "monthly": "this month", "weekly": "this week", "daily": "today"}


def format_budget(rows: list[tuple[str, str, float, float, int, int]]) -> str:
    """One block per project: its current window of each period, with spend, calls, tokens."""
    head = ("project", "window", "from", "spent", "calls", "tokens")
    table = [head]
    last = None
    for project, period, start, spent, calls, tokens in rows:
        label = _LABEL[period] if period != "all" or start > 0 else "all time"
        table.append((
            project if project != last else "", label, _when(start), f"${spent:,.6f}", f"{calls:,}",
            f"{tokens:,}",
        ))
        last = project
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    right = {3, 4, 5}
    lines = []
    for r in table:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def cmd_reset(args: argparse.Namespace) -> int:
    from tokenspy.store import check_db_path
    from tokenspy.toll.sqlite import SQLiteStore

    project = _project_arg(args.project)
    db = _db(args)
    path = check_db_path(db)  # a typo must not create a new, empty DB
    store = SQLiteStore(path)
    try:
        at = store.reset_window(project)
    except sqlite3.Error as exc:
        from tokenspy.store import DBError

        raise DBError(f"{db}: cannot write ({exc})") from None
    finally:
        store.close()
    print(f"project {project}: new budget window from {_when(at)} (earlier spend kept)")
    return 0
