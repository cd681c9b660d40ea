"""One kind of exception for mistakes a user can fix, and the wrapper that prints them.

Entry points catch :class:`UserError` and print a single line instead of a traceback, because a
missing file or a typo in an override deserves a sentence, not forty frames of stack.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """A problem in the user's input or environment, explained in one line."""


def exit_on_user_error(func: F) -> F:
    """Run ``func``; turn a :class:`UserError` or Ctrl-C into one line on stderr and exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print(
                "interrupted: finished work is committed; rerun the same command to resume",
                file=sys.stderr,
            )
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
