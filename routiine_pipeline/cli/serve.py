"""`routiine serve`: the connect page on loopback."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

DEFAULT_PORT = 8717


def cmd_serve(args: argparse.Namespace) -> int:
    from routiine_pipeline.web.server import (
        build_context,
        check_listen_address,
        uvicorn_server,
    )

    context = build_context()
    port = (
        args.port
        if args.port is not None
        else (urlsplit(context.connector.app.redirect_uri).port or DEFAULT_PORT)
    )
    check_listen_address(args.host, port, context.connector.app.redirect_uri)
    print(f"Connect page on http://{args.host}:{port}/ (Ctrl+C stops it)", flush=True)
    uvicorn_server(context, args.host, port).run()
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the connect page: tenants, OAuth connect and mapping editor",
        description=(
            "Serve the connect page on a loopback address until Ctrl-C: tenants with "
            "status, last sync, interval and API usage; the OAuth connect form; the "
            "mapping editor."
        ),
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address to listen on (default 127.0.0.1)",
    )
    serve.add_argument(
        "--port",
        type=int,
        help="TCP port (default: the port of ROUTIINE_SF_REDIRECT_URI, else 8717)",
    )
    serve.set_defaults(handler=cmd_serve)
