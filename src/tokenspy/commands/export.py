"""``tokenspy export --otlp [ENDPOINT]``: send a DB's calls to an OpenTelemetry collector.

Reads the DB without writing or creating anything. Each call becomes one span with its original
start and end times and ids derived from the row, so exporting again is harmless where the
backend deduplicates. Bad input, an unreachable collector or a missing extra: one line, exit 2.
"""

from __future__ import annotations

import argparse
import sys

from tokenspy.commands.core import DB_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="send a DB's calls to an OpenTelemetry collector (OTLP/HTTP spans)")
    p.add_argument("--otlp", nargs="?", const=True, default=None, metavar="ENDPOINT",
                   help="the collector's OTLP/HTTP base URL, e.g. http://localhost:4318 (default: "
                        "OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, else http://localhost:4318); headers from "
                        "OTEL_EXPORTER_OTLP_HEADERS")
    p.add_argument("--db", help=DB_HELP)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--run", metavar="RUN_ID", help="only the calls of this run")
    which.add_argument("--commit", metavar="REV", help="only the calls of this commit (SHA, branch, tag, HEAD~1…)")
    p.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from tokenspy import dbpath
    from tokenspy.cli import CLIError
    from tokenspy.export import MissingExtra, require_otel
    from tokenspy.store import check_db_path

    if args.otlp is None:
        raise CLIError("tokenspy export needs a destination: --otlp [ENDPOINT]")
    db = str(check_db_path(dbpath.find(args.db)))  # a bad path: one line, before anything else
    try:
        require_otel("tokenspy export --otlp")
        from tokenspy.export import db as db_export
        from tokenspy.export import otlp
    except MissingExtra as exc:
        raise CLIError(str(exc)) from None
    try:
        target = otlp.Target.resolve(args.otlp)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    commit = None
    if args.commit is not None:
        from tokenspy.ci.gitrev import RevisionError, resolve

        try:
            commit = resolve(args.commit, db_path=db)
        except RevisionError as exc:
            raise CLIError(str(exc)) from None
    progress = _Progress() if sys.stderr.isatty() else None
    try:
        sent = db_export.export_db(db, target, run=args.run, commit=commit, progress=progress)
    except db_export.ExportError as exc:
        if progress is not None:
            progress.end()
        raise CLIError(str(exc)) from None
    if progress is not None:
        progress.end()
    which = f" of run {args.run}" if args.run else f" of commit {commit[:12]}" if commit else ""
    if sent == 0:
        print(f"tokenspy: no calls{which} in {db}: nothing exported")
    else:
        print(f"tokenspy: exported {sent:,} call(s){which} from {db} to {target.traces}")
    return 0


class _Progress:
    """``sent / total`` on one line of the terminal, rewritten at most ten times a second."""

    def __init__(self) -> None:
        self.last = 0.0
        self.shown = False

    def __call__(self, sent: int, total: int) -> None:
        import time

        now = time.monotonic()
        if now - self.last < 0.1 and sent < total:
            return
        self.last = now
        self.shown = True
        sys.stderr.write(f"\r  {sent:,} / {total:,} calls ({100 * sent // max(total, 1)}%)")
        sys.stderr.flush()

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
