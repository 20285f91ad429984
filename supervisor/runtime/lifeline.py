"""Child processes that end with their parent, however the parent ends.

A service killed with SIGKILL runs no clean-up: its children (verification workers,
the process pool, the embedded redis-server) would be reparented to init and go on,
holding memory and taking jobs. On Linux each child asks the kernel for a signal when
its parent dies (`prctl(PR_SET_PDEATHSIG)`); elsewhere a Python child watches its
parent's pid instead.

The kernel's "parent" is the *thread* that created the child: children must be
started from a thread that lives as long as they should (the service's event loop
thread), never from a short-lived worker thread.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# How often a child without PR_SET_PDEATHSIG looks for its parent.
PARENT_POLL_S = 1.0


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return fn


def die_with_parent(parent_pid: int, sig: signal.Signals = signal.SIGTERM) -> str:
    """Make this (Python) process receive `sig` when its parent `parent_pid` ends.

    If the parent is already gone, `sig` is raised at once. Returns how: "prctl" or
    "watch" (a daemon thread polling the parent pid every `PARENT_POLL_S`)."""
    prctl = _prctl()
    if prctl is not None and prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0:
        how = "prctl"
    else:
        how = "watch"
        threading.Thread(
            target=_watch_parent, args=(parent_pid, sig), name="parent-watch", daemon=True
        ).start()
    # The parent may have died before the request above took effect.
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)
    return how


def _watch_parent(parent_pid: int, sig: signal.Signals) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os.kill(os.getpid(), sig)


def pdeathsig_preexec(sig: signal.Signals = signal.SIGKILL) -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen` of a non-Python child (redis-server): the
    child gets `sig` when the calling thread's process ends. None off Linux.

    The function runs between fork and exec, so it only calls the already resolved
    `prctl` and `getppid` (no imports, no allocation-heavy work)."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()
    signum = int(sig)

    def _preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # the parent died while we forked
            os._exit(1)

    return _preexec
