"""``python -m mind_nemo.submit.health URL --timeout S [--pid PID]``: wait for a server to answer.

Used by job scripts that start a server spanning several nodes themselves (synthesize launches and
health-checks single-node servers on its own). It polls ``/health`` and ``/v1/models`` until one
answers 200, and gives up with one line and status 2 when the timeout passes or the server's
launcher process (``--pid``) has exited, so a job never waits forever on a server that is gone.
"""

from __future__ import annotations

import argparse
import os
import sys

from mind_nemo.core.errors import UserError, exit_on_user_error
from mind_nemo.servers.launch import ServerHandle, wait_healthy


class _Watched(ServerHandle):
    """A handle whose liveness is that of a process we did not start (the job's ``srun``)."""

    pid: int | None = None

    def is_alive(self) -> bool:
        if self.pid is None:
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mind_nemo.submit.health")
    parser.add_argument("url", help="base URL of the OpenAI-compatible API, e.g. http://h:8000/v1")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait")
    parser.add_argument("--pid", type=int, default=None, help="give up when this process exits")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        raise UserError(f"--timeout must be positive, not {args.timeout}")
    handle = _Watched(args.url.rstrip("/"), "")
    handle.pid = args.pid
    wait_healthy(handle, args.timeout, f"server {args.url}")
    print(f"[mind_nemo] server {args.url} is healthy", file=sys.stderr)


if __name__ == "__main__":
    main()
