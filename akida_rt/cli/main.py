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

from akida_rt.errors import AkidaError

SUBCOMMAND_MODULES = ("akida_rt.cli.model_cmds",)
OPTIONAL_SUBCOMMAND_MODULES = (
    "akida_rt.cli.device_cmds",
    "akida_rt.cli.doctor_cmds",
    "akida_rt.cli.daemon_cmds",
    "akida_rt.cli.tool_cmds",
    "akida_rt.cli.metatf_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="akida", description="Akida runtime command line")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES + OPTIONAL_SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
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
    except AkidaError as exc:
        print(f"akida {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
