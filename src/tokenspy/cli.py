"""The ``tokenspy`` command. Each group of subcommands lives in ``tokenspy.commands.*`` and
exposes ``register(subparsers)``; handlers import what they need when they run."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tokenspy.store import DBError

COMMAND_MODULES = (
    "tokenspy.commands.core",
    "tokenspy.commands.ci",
    "tokenspy.commands.budget",
    "tokenspy.commands.demo",
    "tokenspy.commands.export",
)


class CLIError(Exception):
    """Bad input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        self.exit(2, f"tokenspy: error: {one_line(message)}\n")


def one_line(message: str, limit: int = 500) -> str:
    """An error message as one printable line: control characters (a path may hold newlines or
    terminal escapes) shown escaped, and a huge value cut."""
    from tokenspy.ci.text import clean

    text = clean(message)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tokenspy", description="See, diff and gate what your LLM calls cost.")
    from tokenspy.version import __version__

    parser.add_argument("--version", action="version", version=f"tokenspy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except (CLIError, DBError) as exc:
        print(f"tokenspy: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
