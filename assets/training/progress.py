"""Steady progress lines for the run log: step/total, loss, learning rate, tokens/s, time left."""

import time
from collections.abc import Callable


class ProgressLog:
    """Logs every `interval` optimiser steps (and the last); keeps the loss curve."""

    def __init__(self, log: Callable[[str], None], total_steps: int, first_step: int, interval: int) -> None:
        self.log, self.total, self.first, self.interval = log, total_steps, first_step, interval
        self.history: list[dict[str, float]] = []
        self.started = self.last_time = time.perf_counter()
        self.last_tokens = 0
        self.log(f"training: {total_steps} steps, starting at step {first_step}")

    def step(self, step: int, loss: float, learning_rate: float, tokens: int) -> None:
        """`step` is the number of optimiser steps done; `tokens` the real tokens seen in this run."""
        if step % self.interval and step != self.total:
            return
        self.history.append({"step": step, "loss": loss, "learning_rate": learning_rate})
        now = time.perf_counter()
        rate = (tokens - self.last_tokens) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_tokens = now, tokens
        eta = (now - self.started) / max(step - self.first, 1) * (self.total - step)
        self.log(f"step {step}/{self.total} loss {loss:.4f} lr {learning_rate:.2e} {rate:,.0f} tok/s, about {eta:.0f}s left")
