"""`routiine demo` and `routiine emulator`."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_demo(args: argparse.Namespace) -> int:
    from routiine_pipeline.demo import run_demo

    run_demo(summary_json=args.summary_json)
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from routiine_pipeline.emulator.__main__ import main as emulator_main

    argv = ["--port", str(args.port)]
    argv += ["--demo"] if args.demo else []
    argv += ["--auto-approve"] if args.auto_approve else []
    return emulator_main(argv) or 0


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the whole pipeline on the bundled demo org",
        description=(
            "Start the Salesforce emulator with the demo org, connect tenant 'demo' through "
            "OAuth, backfill its history through Dagster, build models and scores, write "
            "scores back, then run an incremental and a quiet cycle and print a summary. "
            "Runs land in the instance under DAGSTER_HOME."
        ),
    )
    demo.add_argument(
        "--summary-json", type=Path, help="also write the summary as JSON to this file"
    )
    demo.set_defaults(handler=cmd_demo)

    emulator = commands.add_parser(
        "emulator",
        help="serve the Salesforce emulator on loopback",
        description=(
            "Serve the loopback Salesforce emulator until Ctrl-C. It prints its URL and the "
            "connected-app credentials and commands that connect a tenant to it."
        ),
    )
    emulator.add_argument(
        "--port",
        type=int,
        default=8765,
        help="TCP port on 127.0.0.1 (0 picks a free one)",
    )
    emulator.add_argument("--demo", action="store_true", help="load the demo org")
    emulator.add_argument(
        "--auto-approve",
        action="store_true",
        help="approve OAuth requests without the approval page",
    )
    emulator.set_defaults(handler=cmd_emulator)
