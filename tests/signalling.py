"""A spot interruption for tests: SIGTERM to this process during the N-th train step of a Runner, once.

Used by the resume tests in-process and by the distribute drivers in their worker processes, so every test
interrupts a run the same way: the signal arrives while a step runs, as SageMaker's would.
"""
import os
import signal
from typing import Any, Callable


def sigterm_during(step: Callable[[Any], Any], at: int) -> Callable[[Any], Any]:
    """`step` wrapped to send SIGTERM to this process during its `at`-th call (counted from 1), once."""
    calls = [0]

    def signalled(batch):
        calls[0] += 1
        if calls[0] == at:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(batch)

    return signalled


class SigtermAtStep:
    """Mixin for a Runner (or Trainer): SIGTERM during train step `sigterm_at` (counted in this process), once."""

    sigterm_at = 0

    def _setup(self):
        super()._setup()
        self.train_step = sigterm_during(self.train_step, self.sigterm_at)
