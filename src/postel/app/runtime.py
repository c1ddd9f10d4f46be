"""Interpreter settings of a postel process (the main one and each port-25 worker of
``[smtp] processes``, docs/adr/0005).

The event loop's thread shares the GIL with the store's writer and reader threads. A
thread that wants the GIL while another runs Python code waits until that one blocks in
a system call or has run for the switch interval (5 ms by default): a delivery commit
whose fsync is done then waits behind the event loop before it can answer, and the
event loop behind the writer's batch work. A shorter interval hands the GIL over sooner;
the cost is more frequent switches between threads that both compute.

Measured (smtp-source at concurrency 10, two port-25 processes, fresh database, four
alternated runs): 1 ms against the default 5 ms, 995-1,040 against 935-950 messages/s,
median commit 1.27-1.48 against 1.44-1.58 ms.
Spec: Python docs, sys.setswitchinterval.
"""

from __future__ import annotations

import sys

__all__ = ["SWITCH_INTERVAL_S", "set_switch_interval"]

SWITCH_INTERVAL_S = 0.001
"""Seconds a thread may hold the GIL while another waits for it (CPython's default is
0.005). Postel policy, measured as above."""


def set_switch_interval(seconds: float = SWITCH_INTERVAL_S) -> None:
    """Set the interpreter's thread switch interval to ``seconds`` (> 0)."""
    sys.setswitchinterval(seconds)
