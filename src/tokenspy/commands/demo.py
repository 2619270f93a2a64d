"""``tokenspy demo``: the offline end-to-end tour (placeholder until the CI chain lands)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="offline tour: record two commits, diff them, gate")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    print("tokenspy demo: not yet — the offline CI tour lands with the GitHub Action.")
    return 0
