"""Typed settings of `merged_model` (domain.yaml section `merge`)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MergeConfig(BaseModel):
    """How the merged model is built and checked."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)  # NaN and inf refused by name

    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="dtype of the saved merged weights. float32 is exact; bf16 halves the size."
    )
    parity_tolerance: float = Field(
        1e-3,
        gt=0,
        le=10.0,
        description="Largest allowed |logit difference| between merged and adapter-on-base. float32 "
        "merges land near 1e-5; loosen to ~0.1 for bf16/fp16. At most 10: beyond that the check "
        "would pass a broken merge.",
    )
    parity_examples: int = Field(
        8, ge=1, le=1024, strict=True, description="Eval examples used for the parity check (1 to 1024)."
    )
