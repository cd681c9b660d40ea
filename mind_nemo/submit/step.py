"""``python -m mind_nemo.submit.step [--wait-for URL --timeout S] -- COMMAND...``: the client
step of a synthesize array task.

NeMo-Run's Slurm template runs each step under ``srun`` and requeues a job whose steps fail
(``retries``); what it cannot know is how a long generation should stop. This wrapper:

- waits for the task's server (``/health``, giving up after ``--timeout`` with one line), when the
  server is a step of its own;
- on SIGTERM (scancel, ``scontrol requeue``, preemption) stops COMMAND with SIGTERM (synthesize
  flushes and exits 143) and exits 143: committed work is kept;
- on SIGUSR1 (``--signal=USR1@lead``: the time limit is near) stops COMMAND the same way and
  exits 75, so the job's batch shell requeues the task (NeMo-Run's retry) and the next run
  resumes from what is committed.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from types import FrameType

from mind_nemo.core.errors import UserError, exit_on_user_error

#: Exit status after the time-limit warning (EX_TEMPFAIL): not done, run me again.
TIME_LIMIT_STATUS = 75


def _log(message: str) -> None:
    print(f"[mind_nemo] {message}", file=sys.stderr, flush=True)


def run(command: list[str]) -> int:
    """COMMAND as a child whose stop on SIGTERM / SIGUSR1 we control; its exit status."""
    child = subprocess.Popen(command)
    stopped: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGUSR1:
            _log("time limit near: stopping synthesize; the task is requeued and resumes")
            stopped.append(TIME_LIMIT_STATUS)
        else:
            _log("SIGTERM: stopping synthesize (committed work is kept)")
            stopped.append(143)
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, stop)
    status = child.wait()
    return stopped[0] if stopped else status


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mind_nemo.submit.step")
    parser.add_argument("--wait-for", default=None, help="server URL to wait for (/v1)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UserError("nothing to run: python -m mind_nemo.submit.step [...] -- COMMAND")
    if args.wait_for:
        from mind_nemo.submit import health

        health.main([args.wait_for, f"--timeout={args.timeout}"])
    return run(command)


if __name__ == "__main__":
    sys.exit(main())
