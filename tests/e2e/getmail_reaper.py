"""Run Debian's getmail with its delivery children reaped by ``os.waitpid``.

getmail (6.18) forks a child for each Maildir delivery and only then installs the
SIGCHLD handler that records the child's exit; if the child exits before the parent
installs the handler (a loaded machine deschedules the parent right after ``fork``),
the exit is never seen and getmail waits its whole socket timeout (180 s by default),
then fails the delivery. This wrapper replaces that hand-off with a blocking
``os.waitpid`` on the child, which cannot miss an exit, and runs getmail unchanged
otherwise. Run it with Debian's ``/usr/bin/python3`` (getmail's interpreter) and
getmail's own arguments.
"""

import os
import runpy
import sys

from getmailcore import baseclasses
from getmailcore.exceptions import getmailOperationError


def _prepare_child(self: object) -> None:
    """Nothing to install: the child is reaped by ``_wait_for_child``."""


def _wait_for_child(self: object, childpid: int) -> int:
    """The child's exit code, as getmail's own ``_wait_for_child`` returns it."""
    _, status = os.waitpid(childpid, 0)
    if os.WIFSIGNALED(status):
        raise getmailOperationError(f"child pid {childpid} killed by signal {os.WTERMSIG(status)}")
    return os.WEXITSTATUS(status)


baseclasses.ForkingBase._prepare_child = _prepare_child  # type: ignore[attr-defined]
baseclasses.ForkingBase._wait_for_child = _wait_for_child  # type: ignore[attr-defined]
sys.argv[0] = "getmail"
runpy.run_path("/usr/bin/getmail", run_name="__main__")
