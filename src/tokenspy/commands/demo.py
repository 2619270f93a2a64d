"""``tokenspy demo``: the offline end-to-end tour of the CI chain."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="offline tour: record two commits of a tiny LLM app, diff them, annotate, gate",
        description="Builds a throwaway git repo with a tiny LLM app and its tests (local transport: "
                    "no network, no API key), records two commits with the pytest plugin, and runs the "
                    "CI diff, annotations, job summary and gate on them.",
    )
    p.add_argument("--dir", help="where to create the demo repo (default: a new temporary directory)")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from tokenspy.cli import CLIError
    from tokenspy.demo import run_demo

    try:
        return run_demo(args.dir)
    except (FileExistsError, NotADirectoryError) as exc:
        raise CLIError(str(exc)) from None
    except OSError as exc:  # a directory we may not create or write
        raise CLIError(f"{exc.filename or args.dir}: {exc.strerror or exc}") from None
