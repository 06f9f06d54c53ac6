"""Run one token refresh for a tenant in its own process, starting at a given wall-clock time.

Usage: refresh_worker.py STORE_URL HOME TENANT REJECTED_TOKEN_FILE START_AT CLIENT_ID CLIENT_SECRET.
Prints the SHA-256 of the access token it ends up with, never the token.
"""

import hashlib
import sys
import time
from pathlib import Path

from routiine_pipeline.control.store import ControlStore
from routiine_pipeline.control.tokens import StoredTokens
from routiine_pipeline.control.vault import TokenVault, load_keys
from routiine_pipeline.salesforce.oauth import OAuthApp


def main() -> None:
    store_url, home, tenant, rejected_file, start_at, client_id, client_secret = (
        sys.argv[1:8]
    )
    store = ControlStore(store_url)
    vault = TokenVault(load_keys(Path(home)))
    app = OAuthApp(client_id, client_secret, "http://127.0.0.1:1/oauth/callback")
    tokens = StoredTokens(store, vault, app, tenant, allow_loopback=True)
    rejected = Path(rejected_file).read_text()
    time.sleep(max(0.0, float(start_at) - time.time()))
    token = tokens.refresh(rejected)
    print(hashlib.sha256(token.encode()).hexdigest(), tokens.refreshes, flush=True)


if __name__ == "__main__":
    main()
