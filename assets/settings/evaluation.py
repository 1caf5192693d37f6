"""Typed settings of `adapter_evaluation` (domain.yaml section `evaluation`)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EvaluationConfig(BaseModel):
    """How an adapter is judged before it may be merged."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)  # NaN and inf refused by name

    min_improvement: float = Field(
        0.0,
        ge=0.0,
        le=100.0,
        description="The adapter's eval loss must be lower than the base's by more than this many "
        "nats per token for adapter_beats_base to pass (0: any improvement; at most 100, which no "
        "adapter passes: a way to hold a domain at the gate).",
    )
    batch_size: int = Field(8, ge=1, le=1024, strict=True, description="Eval examples per forward pass (1 to 1024).")
    generations: int = Field(
        3, ge=0, le=20, strict=True, description="Eval prompts shown with base and adapter completions side by side."
    )
    max_new_tokens: int = Field(64, ge=1, le=1024, strict=True, description="Greedy tokens generated per sample completion.")
    compute_dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="Same meaning as in training; 'auto' matches what training picked."
    )
