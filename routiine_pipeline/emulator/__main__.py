"""Run the Salesforce emulator until Ctrl-C: python -m routiine_pipeline.emulator --port 8765 --demo."""

from __future__ import annotations

import argparse
import logging
import threading

from routiine_pipeline.emulator import Clock, EmulatorServer, Org

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Serve an emulated Salesforce org on a loopback port."
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address to bind (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8765,
        help="TCP port to listen on; 0 picks a free port (default: 8765)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="load the seeded demo org (seed 2017) anchored at the current time",
    )
    parser.add_argument(
        "--auto-approve",
        action="store_true",
        help="approve OAuth authorization requests without showing the consent page",
    )
    parser.add_argument(
        "--page-size",
        type=int,
        default=2000,
        help="maximum records per query page (default: 2000)",
    )
    parser.add_argument(
        "--daily-api-limit",
        type=int,
        default=15000,
        help="daily API request allocation (default: 15000)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log every request at DEBUG level"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )

    clock = Clock()
    org = Org(clock=clock, daily_api_limit=args.daily_api_limit)
    if args.demo:
        # Imported here because the demo data is optional and built separately from the emulator.
        from routiine_pipeline.emulator.demo_org import build_demo_records

        org.load(build_demo_records(anchor=clock.now(), seed=2017))
    server = EmulatorServer(
        org,
        host=args.host,
        port=args.port,
        auto_approve=args.auto_approve,
        page_size=args.page_size,
    )
    server.start()
    # The emulator's client secret is a fixed local test credential, not a
    # customer secret, so printing it is how a user connects a tenant to it.
    print(
        f"Salesforce emulator running at {server.url}; press Ctrl-C to stop.\n"
        "Connect a tenant to it from another shell:\n"
        f"  export ROUTIINE_ALLOW_LOOPBACK=1 ROUTIINE_SF_CLIENT_ID={server.client.client_id} "
        f"ROUTIINE_SF_CLIENT_SECRET={server.client.client_secret}\n"
        f"  routiine tenants add TENANT --login-url {server.url}\n"
        "  routiine tenants connect TENANT",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
