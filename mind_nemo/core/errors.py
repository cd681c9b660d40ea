"""One kind of exception for mistakes a user can fix, and the wrapper that prints them.

Entry points catch :class:`UserError` and print a single line instead of a traceback, because a
missing file or a typo in an override deserves a sentence, not forty frames of stack.
"""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
RESUME_HINT = "finished work is committed; rerun the same command to resume"


class UserError(Exception):
    """A problem in the user's input or environment, explained in one line."""


class Terminated(BaseException):
    """SIGTERM (``scancel``, preemption, ``kill``) turned into an exception so ``finally`` blocks
    run: servers are stopped and files closed before the process exits."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def exit_on_user_error(func: F) -> F:
    """Run ``func``; turn a :class:`UserError` or Ctrl-C into one line on stderr and exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            return func(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print(f"interrupted: {RESUME_HINT}", file=sys.stderr)
            sys.exit(130)
        except Terminated:
            print(f"terminated: {RESUME_HINT}", file=sys.stderr)
            sys.exit(143)

    return wrapper  # type: ignore[return-value]
