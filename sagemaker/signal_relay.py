"""PID 1 of the albert-ner training image: runs SageMaker's `train` and passes stop signals on to the trainer.

SageMaker stops a job (spot interruption, StopTrainingJob, max run) with SIGTERM to the container's PID 1.
The sagemaker-training toolkit's `train` forwards no signal to the entry point it starts, and as PID 1 it
would not even act on one (the kernel drops signals PID 1 has no handler for), so the trainer would be
killed without writing its checkpoint. This relay starts the command in a process group of its own and
sends SIGTERM, SIGINT and SIGHUP to the whole group (the toolkit, the entry point, the trainer). After a
stop signal it stays until every process below it has ended, adopting orphans as a child subreaper, so
that the trainer finishes its checkpoint even though the toolkit is gone; without one it exits with the
command as soon as the command ends. Exit status: the command's, 128+N if signal N ended it.
Standard library only (it runs before anything else, with the image's python3).

    ENTRYPOINT ["python3", "/opt/albert-ner/signal_relay.py"]   CMD ["train"]
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from typing import List, Optional, Sequence

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def become_subreaper() -> bool:
    """Make orphaned descendants this process's children (Linux), as they are of PID 1; False elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def exit_status(wait_status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for a process ended by signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


class Relay:
    """The command's process group, the signals received, and what to wait for."""

    def __init__(self) -> None:
        self.group: Optional[int] = None
        self.received: List[int] = []

    def on_signal(self, signum: int, _frame) -> None:
        self.received.append(signum)
        if self.group is not None:
            self.send(signum)

    def send(self, signum: int) -> None:
        try:
            os.killpg(self.group, signum)
        except ProcessLookupError:  # everyone in the group has ended already
            pass

    def run(self, command: Sequence[str]) -> int:
        for signum in FORWARDED:
            signal.signal(signum, self.on_signal)
        child = subprocess.Popen(list(command), process_group=0)  # noqa: S603 - the image's own command
        self.group = child.pid
        for signum in list(self.received):  # arrived while the command was starting
            self.send(signum)
        status: Optional[int] = None
        while True:
            try:
                pid, raw = os.wait()  # the command, or an orphan handed to us (PEP 475: retried after a signal)
            except ChildProcessError:
                break
            if pid == child.pid:
                status = exit_status(raw)
                child.returncode = status  # reaped here: Popen must not wait for it again
            if status is not None and not self.received:
                break  # a plain exit: leave as the command did
        return 128 + self.received[0] if status is None else status


def main(argv: Sequence[str]) -> int:
    if not argv:
        print("usage: signal_relay.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    become_subreaper()
    try:
        return Relay().run(argv)
    except FileNotFoundError as exc:
        print(f"signal_relay: cannot run {argv[0]}: {exc}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
