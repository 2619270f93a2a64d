"""``tokenspy history`` and ``tokenspy report``: read a DB, never write it."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

DB_HELP = ("database (default: $TOKENSPY_DB, else .tokenspy/usage.db of the git work tree if it exists, "
           "else ~/.tokenspy/usage.db)")


def _db(args: argparse.Namespace) -> str:
    from tokenspy import dbpath

    return str(dbpath.find(getattr(args, "db", None)))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("history", help="the most recent calls stored in a DB")
    p.add_argument("--limit", type=positive_int, default=20, help="how many calls (default 20)")
    p.add_argument("--db", help=DB_HELP)
    p.set_defaults(handler=cmd_history)

    p = sub.add_parser("report", help="cost report of a DB (text or self-contained HTML)")
    p.add_argument("--format", choices=("text", "html"), default="text")
    p.add_argument("--db", help=DB_HELP)
    p.add_argument("--output", help="write the report to this file (HTML default: tokenspy_report.html)")
    p.set_defaults(handler=cmd_report)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def cmd_history(args: argparse.Namespace) -> int:
    from tokenspy.store import open_readonly, select_expr

    args.db = _db(args)
    with closing(open_readonly(args.db)) as conn:
        # newest first straight from the primary key: no scan, whatever the DB's size
        sql = (
            "SELECT timestamp, function_name, model, provider, input_tokens, output_tokens, cost_usd, "
            f"duration_ms, {select_expr(conn, 'priced', '1')} "
            f"FROM llm_calls ORDER BY id DESC LIMIT {int(args.limit)}"
        )
        try:
            rows = conn.execute(sql).fetchall()
        except sqlite3.DatabaseError as exc:
            from tokenspy.store import DBError

            raise DBError(f"{args.db}: unreadable ({exc})") from None
    from tokenspy.ci.github import guarded
    from tokenspy.reporting.text import format_history

    with guarded(sys.stdout):
        sys.stdout.write(format_history(rows))
    return 0


def _refuse_input_as_output(out: Path, db: Path) -> None:
    """A report written over the DB it reads (or one of its WAL files) would destroy it."""
    from tokenspy.cli import CLIError

    for victim in (db, Path(str(db) + "-wal"), Path(str(db) + "-shm")):
        try:
            same = out.exists() and victim.exists() and os.path.samefile(out, victim)
        except OSError:
            same = False
        if same or out.resolve() == victim.resolve():
            raise CLIError(f"{out}: is the database the report reads ({db}); choose another --output")


def cmd_report(args: argparse.Namespace) -> int:
    # Aggregated in SQL: the DB's rows never come into Python, whatever its size.
    from tokenspy.reporting.data import ReportData

    db = _db(args)
    if args.output:
        _refuse_input_as_output(Path(args.output), Path(db))
    data = ReportData.from_db(db)
    if args.format == "html":
        from tokenspy.reporting.html import render_html

        content, out = render_html(data), Path(args.output or "tokenspy_report.html")
    else:
        from tokenspy.reporting.text import render_text

        content = render_text(data)
        if not args.output:
            from tokenspy.ci.github import guarded

            with guarded(sys.stdout):
                print(content)
            return 0
        # --output with text writes the text there rather than being silently ignored
        content, out = content + "\n", Path(args.output)
    try:
        out.write_text(content, encoding="utf-8")
    except OSError as exc:
        from tokenspy.cli import CLIError

        raise CLIError(f"{out}: cannot write ({exc.strerror or exc})") from None
    print(f"wrote {out}")
    return 0
