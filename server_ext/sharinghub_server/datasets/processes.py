"""Child processes of jobs (git, the DVC worker): each runs in its own process group, so a
cancel stops it with everything it started (git's ``git-remote-http`` helper holds git's
output pipes and an HTTP request: killing git alone leaves both)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def stop_group(proc: subprocess.Popen, grace: float = 5) -> None:
    """TERM the process's group, KILL what is left after ``grace`` seconds, and reap it.

    ``proc`` must have been started with ``start_new_session=True`` (its pid is its group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    # the leader may be gone while a helper it started ignores TERM or is still dying
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
