"""A separate worker process for the lease tests: a stand-in for a second run pod.

    python lease_holder.py CONTROL_URL TENANT HOLDER READY_FILE

It takes the tenant's writer lease, writes READY_FILE, then sleeps until it
is killed, so the test can observe a lease held by another process and what
happens when that process dies.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from routiine_pipeline.storage.lease import hold_tenant_lease


def main() -> None:
    control_url, tenant, holder, ready_file = sys.argv[1:5]
    with hold_tenant_lease(control_url, tenant, holder=holder, wait_seconds=30):
        Path(ready_file).write_text("held")
        while True:
            time.sleep(1)


if __name__ == "__main__":
    main()
