"""Child processes die with the stage that started them, even when the stage is SIGKILLed.

A stage killed with ``kill -9`` (the OOM killer, ``scancel``, a test) runs no cleanup code, so
whatever it started (tokenizer pool workers, checkpoint writers, multiprocessing's manager) keeps
running with nobody to talk to: pool workers block forever on a pipe whose other ends they hold
themselves. Linux's ``PR_SET_PDEATHSIG`` has the kernel signal a process when its parent dies;
it must be set in the child (fork clears it, exec keeps it), so:

- :func:`die_with_parent` is the first thing a child runs: a ``Pool``/``Manager`` initializer, a
  ``Popen`` ``preexec_fn``;
- :func:`forked_children_die_with_this_process` installs an at-fork hook, so children that
  libraries fork (megatron's checkpoint writers) get it without their code changing.

The multiprocessing resource tracker needs nothing of its own: it exits (cleaning up leaked
semaphores) as soon as the last holder of its pipe is gone, i.e. the stage and these children.
Elsewhere than Linux these are no-ops.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None, use_errno=True).prctl
    return None


#: Looked up once here, not in a freshly forked child (where loading libraries is unsafe).
_prctl = _load_prctl()


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGKILL) -> None:
    """Have the kernel send ``sig`` to this process when its parent exits.

    The kernel ties the signal to the parent *thread* that created this process, so call it in
    children started from a long-lived thread (the main one). ``parent_pid`` closes the race
    where the parent died before this ran: then this process exits at once."""
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


_fork_parent = threading.local()
_hook_installed = False


def _before_fork() -> None:
    _fork_parent.pid = os.getpid()
    _fork_parent.main = threading.current_thread() is threading.main_thread()


def _after_fork_in_child() -> None:
    # A child forked from a short-lived thread would be killed when that thread ends: skip it.
    if getattr(_fork_parent, "main", False):
        die_with_parent(_fork_parent.pid)


def forked_children_die_with_this_process() -> None:
    """From now on every child ``fork()``ed from the main thread dies with its parent.

    Covers multiprocessing's ``fork`` context and ``os.fork`` in any library; ``subprocess``
    children need a ``preexec_fn`` (as :mod:`mind_nemo.servers.launch` does) and ``spawn``
    children an initializer calling :func:`die_with_parent`. Installed once per process."""
    global _hook_installed
    if _hook_installed or _prctl is None:
        return
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    _hook_installed = True
