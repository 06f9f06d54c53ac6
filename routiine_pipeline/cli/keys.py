"""`routiine keys rotate`."""

from __future__ import annotations

import argparse


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from routiine_pipeline import settings
    from routiine_pipeline.control.rotation import rotate_keys
    from routiine_pipeline.tenants import control_store

    report = rotate_keys(control_store(), settings.routiine_home())
    print(f"Current vault key: {report.current_key_id} (from the {report.key_source})")
    print(
        f"Re-encrypted: {report.tenants} tenants, {report.tokens} tokens, {report.states} pending OAuth states"
    )
    print(f"Deleted used or expired OAuth states: {report.states_deleted}")
    if report.skipped_tenants:
        print(
            "Skipped while a token refresh was in flight: "
            + ", ".join(report.skipped_tenants)
            + ". Run the rotation again."
        )
    if report.keys_removed:
        print(
            "Removed keys no ciphertext uses any more: "
            + ", ".join(report.keys_removed)
        )
    if report.keys_unused:
        print(
            "No ciphertext uses these keys any more; remove them from ROUTIINE_VAULT_KEYS: "
            + ", ".join(report.keys_unused)
        )
    print("Keys in use: " + (", ".join(report.keys_in_use) or "none"))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    keys = commands.add_parser(
        "keys", help="manage the vault keys that encrypt stored tokens"
    ).add_subparsers(dest="keys_command", required=True)
    rotate = keys.add_parser(
        "rotate",
        help="make a new key current (generated, or the first of ROUTIINE_VAULT_KEYS), re-encrypt every "
        "tenant's tokens with it and drop keys nothing uses; prints key ids, never keys",
    )
    rotate.set_defaults(handler=cmd_keys_rotate)
