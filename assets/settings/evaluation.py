"""Typed settings of `adapter_evaluation` (domain.yaml section `evaluation`)."""

from pydantic import BaseModel, ConfigDict, Field


class EvaluationConfig(BaseModel):
    """How an adapter is judged before it may be merged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_improvement: float = Field(
        0.0,
        ge=0.0,
        description="The adapter's eval loss must be lower than the base's by more than this many "
        "nats per token for adapter_beats_base to pass (0: any improvement).",
    )
    batch_size: int = Field(8, ge=1, description="Eval examples per forward pass.")
    generations: int = Field(3, ge=0, le=20, description="Eval prompts shown with base and adapter completions side by side.")
    max_new_tokens: int = Field(64, ge=1, le=1024, description="Greedy tokens generated per sample completion.")
    compute_dtype: str = Field("auto", description="Same meaning as in training; 'auto' matches what training picked.")
