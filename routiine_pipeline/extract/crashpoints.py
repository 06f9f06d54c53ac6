"""Crash points: places in the extract where a test may kill the process with SIGKILL.

`crash_point(name)` does nothing unless ROUTIINE_CRASH_POINT is set. When it
names this point, the N-th call (N from ROUTIINE_CRASH_AFTER, default 1)
sends SIGKILL to the own process. No exception handler, `finally` block or
atexit hook runs, which is what an OOM kill or a lost machine does.
With ROUTIINE_CRASH_TRACE set to a file path, every call appends the point's
name to that file instead, so a test can list the points a pass reaches.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

CRASH_POINT_ENV = "ROUTIINE_CRASH_POINT"
CRASH_AFTER_ENV = "ROUTIINE_CRASH_AFTER"
CRASH_TRACE_ENV = "ROUTIINE_CRASH_TRACE"

_calls: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """Kill the process here when the environment names this point. Otherwise return at once."""
    trace = os.environ.get(CRASH_TRACE_ENV)
    if trace:
        with open(trace, "a", encoding="utf-8") as handle:
            handle.write(name + "\n")
        return
    if os.environ.get(CRASH_POINT_ENV) != name:
        return
    _calls[name] += 1
    if _calls[name] >= int(os.environ.get(CRASH_AFTER_ENV, "1")):
        os.kill(os.getpid(), signal.SIGKILL)
