"""The `routiine` command. Each subcommand group lives in its own module of this package.

A module registers its subcommands through `register(subparsers)`; the
modules are listed in COMMAND_MODULES, in the order `routiine --help` shows them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

COMMAND_MODULES = (
    "routiine_pipeline.cli.demo",
    "routiine_pipeline.cli.tenants",
    "routiine_pipeline.cli.lineage",
    "routiine_pipeline.cli.mapping",
    "routiine_pipeline.cli.keys",
    "routiine_pipeline.cli.serve",
    "routiine_pipeline.cli.backfill",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routiine",
        description="Routiine: deal intelligence beside Salesforce, run by Dagster.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log at DEBUG level"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Dagster flags beta and preview APIs on every import; the CLI's users
    # cannot act on those warnings, so they stay out of the terminal.
    warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - the last line of defence prints the message, not a traceback
        if args.verbose:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
