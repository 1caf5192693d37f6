"""Typed settings of `training_dataset` (domain.yaml section `tokenization`)."""

from pydantic import BaseModel, ConfigDict, Field


class TokenizationConfig(BaseModel):
    """How records become training examples."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)  # NaN and inf refused by name

    max_seq_len: int = Field(
        1024,
        ge=16,
        le=131_072,
        strict=True,
        description="Longest example in tokens, 16 to 131,072 (128k). Plain text longer than this is cut into windows; "
        "longer conversations are split at turn boundaries (each part keeps the system prompt). "
        "Clamped to the base model's context length. Memory and time grow with it (attention is quadratic).",
    )
    eval_fraction: float = Field(
        0.1,
        gt=0.0,
        lt=1.0,
        description="Share of records held out for evaluation, assigned by content hash.",
    )
    max_truncated_share: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Share of chat examples that may be cut at max_seq_len (a single exchange "
        "longer than it) before the truncation check warns; a high share means max_seq_len is too small.",
    )
    max_unsupervised_share: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Share of records that may yield nothing to learn (an answer starting beyond "
        "max_seq_len, a conversation the chat template refuses) before the domain stops. Those rows "
        "are quarantined with their reason either way; a high share means the data or the template is wrong.",
    )
    split_salt: str = Field(
        "loraline-split-v1",
        min_length=1,
        max_length=200,
        description="Salt of the split hash (1 to 200 characters). Changing it reshuffles every domain's split.",
    )
