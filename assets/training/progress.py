"""A Trainer callback that writes steady progress lines and stops on a non-finite loss.

Imported only inside the training recipe, so importing transformers at the top is fine here.
"""

import math
import time
from collections.abc import Callable

from transformers import TrainerCallback


class ProgressLog(TrainerCallback):
    """One line per logging step: step/total, loss, learning rate, tokens/s, time left."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.history: list[dict[str, float]] = []
        self.started = time.perf_counter()
        self.last = (self.started, 0)

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.last = (self.started, int(state.num_input_tokens_seen))
        self.first_step = state.global_step  # > 0 when resuming from a checkpoint
        self.log(f"training: {state.max_steps} steps, starting at step {state.global_step}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        loss = float(logs["loss"])
        lr = float(logs.get("learning_rate", 0.0))
        self.history.append({"step": state.global_step, "loss": loss, "learning_rate": lr})
        now, tokens = time.perf_counter(), int(state.num_input_tokens_seen)
        rate = (tokens - self.last[1]) / max(now - self.last[0], 1e-9)
        self.last = (now, tokens)
        done = max(state.global_step - self.first_step, 1)
        eta = (now - self.started) / done * (state.max_steps - state.global_step)
        self.log(
            f"step {state.global_step}/{state.max_steps} loss {loss:.4f} lr {lr:.2e} "
            f"{rate:,.0f} tok/s, about {eta:.0f}s left"
        )
        if not math.isfinite(loss):
            control.should_training_stop = True
