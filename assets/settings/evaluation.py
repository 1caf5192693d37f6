"""Typed settings of `adapter_evaluation` (domain.yaml section `evaluation`)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EvaluationConfig(BaseModel):
    """How an adapter is judged before it may be merged."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)  # NaN and inf refused by name

    min_improvement: float = Field(
        0.0,
        ge=0.0,
        le=100.0,
        description="The adapter's eval loss must be lower than the base's by more than this many "
        "nats per token for adapter_beats_base to pass (0: any improvement; at most 100, which no "
        "adapter passes: a way to hold a domain at the gate). Used when gate_metric is 'loss'.",
    )
    batch_size: int = Field(8, ge=1, le=1024, strict=True, description="Eval examples per forward pass (1 to 1024).")
    generations: int = Field(
        3, ge=0, le=20, strict=True, description="Eval prompts shown with base and adapter completions side by side."
    )
    max_new_tokens: int = Field(64, ge=1, le=1024, strict=True, description="Greedy tokens generated per sample completion.")
    compute_dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="Same meaning as in training; 'auto' matches what training picked."
    )
    task_examples: int = Field(
        32, ge=0, le=1024, strict=True,
        description="Held-out prompts (instruction and chat records) answered greedily by the base and by the adapter "
        "and scored with exact match and ROUGE-L against the reference answer (0: no task scores; 0 to 1024). "
        "Each costs two generations of up to its answer's length + task_length_margin tokens.",
    )
    task_length_margin: int = Field(
        16, ge=0, le=1024, strict=True,
        description="Tokens a task answer may run past its reference's length before it is cut (0 to 1024): "
        "room to overshoot without letting a model that never stops generate for long.",
    )
    task_batch_size: int = Field(
        32, ge=1, le=1024, strict=True,
        description="Task prompts generated together, left-padded (1 to 1024). With a small model on a CPU a "
        "generation step costs about the same for 1 or 32 rows, so larger is faster; memory (the KV cache) grows with it.",
    )
    gate_metric: Literal["loss", "rouge_l", "exact_match"] = Field(
        "loss",
        description="What adapter_beats_base decides on: 'loss' (eval loss, with min_improvement), or a task "
        "metric ('rouge_l', 'exact_match'): the adapter's score must be >= the base's + gate_margin.",
    )
    gate_margin: float = Field(
        0.0, ge=0.0, le=1.0,
        description="With a task gate_metric: how much the adapter's score (0 to 1) must exceed the base's "
        "(0: at least equal; 1: only a perfect adapter over a base scoring 0). Only with gate_metric 'rouge_l' or 'exact_match'.",
    )

    @model_validator(mode="after")
    def _gate_is_consistent(self) -> "EvaluationConfig":
        # Refused rather than ignored: a margin or improvement the chosen gate never reads would
        # make a domain.yaml look stricter than the gate it gets.
        if self.gate_metric == "loss" and self.gate_margin != 0.0:
            raise ValueError("gate_margin applies to a task gate_metric ('rouge_l', 'exact_match'), not to 'loss': "
                             "use min_improvement for the loss gate, or set gate_metric")
        if self.gate_metric != "loss" and self.min_improvement != 0.0:
            raise ValueError(f"min_improvement applies to the loss gate; with gate_metric {self.gate_metric!r} set gate_margin")
        if self.gate_metric != "loss" and self.task_examples == 0:
            raise ValueError(f"gate_metric {self.gate_metric!r} needs task scores: task_examples must be at least 1")
        return self
