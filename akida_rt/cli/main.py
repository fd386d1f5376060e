"""Entry point of the `akida` command: builds the parser from the subcommand modules.

Each module in SUBCOMMAND_MODULES has `register(subparsers)`; modules import their heavy
dependencies inside the command functions so `akida --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from akida_rt.errors import AkidaError

SUBCOMMAND_MODULES = ("akida_rt.cli.model_cmds", "akida_rt.cli.version_cmds")
OPTIONAL_SUBCOMMAND_MODULES = (
    "akida_rt.cli.device_cmds",
    "akida_rt.cli.run_cmd",
    "akida_rt.cli.benchmark_cmd",
    "akida_rt.cli.doctor_cmds",
    "akida_rt.cli.daemon_cmds",
    "akida_rt.cli.tool_cmds",
    "akida_rt.cli.metatf_cmds",
    "akida_rt.cli.learn_cmds",
    "akida_rt.cli.cdi_cmds",
    "akida_rt.cli.stream_cmds",
)


class Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the option, the problem and where help is; exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def _verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """`-v` after any subcommand too (`akida devices -v`), adding to one before it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                if "-v" not in child._option_string_actions:
                    child.add_argument("-v", "--verbose", action="count",
                                       default=argparse.SUPPRESS, help="more logging")  # fmt: skip
                _verbose_everywhere(child)


def build_parser() -> argparse.ArgumentParser:
    from akida_rt import __version__

    parser = Parser(prog="akida", description="Akida runtime command line")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("--version", action="version", version=f"akida_rt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES + OPTIONAL_SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    _verbose_everywhere(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        return 0
    except (AkidaError, OSError) as exc:
        print(f"akida {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
