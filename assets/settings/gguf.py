"""Typed settings of `gguf_export` (the launchpad; not a domain.yaml section)."""

from pydantic import BaseModel, ConfigDict, Field, field_validator

QUANT_TYPES = ("f16", "q8_0")  # what assets/release/gguf/writer.py writes


class GgufConfig(BaseModel):
    """Which GGUF files are written, and how closely the f16 file must match the merged model."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    # A list of strings, not a tuple of Literals: Dagster's launchpad config knows only lists.
    quant_types: list[str] = Field(
        ["f16", "q8_0"],
        max_length=8,
        description="GGUF files written, one per type. f16: 2 bytes per weight, logits within ~1e-3 of the merged "
        "model; q8_0: ~1.06 bytes per weight (blocks of 32 int8 + one f16 scale), logits within ~1e-2. "
        "Must include f16: the parity check runs on it.",
    )
    parity_tolerance: float = Field(
        1e-2,
        gt=0,
        le=0.5,
        description="Largest allowed max|logit diff| of the f16 GGUF (loaded by transformers) against the merged "
        "model, relative to the largest |logit| of the merged model. f16 rounding lands near 1e-3.",
    )
    parity_examples: int = Field(4, ge=1, le=64, strict=True, description="Eval examples whose tokens the parity check runs (1 to 64).")
    parity_tokens: int = Field(128, ge=8, le=4096, strict=True, description="Tokens of each example the parity check keeps (8 to 4096).")

    @field_validator("quant_types")
    @classmethod
    def _known_unique_with_f16(cls, value: list[str]) -> list[str]:
        unknown = [q for q in value if q not in QUANT_TYPES]
        if unknown:
            raise ValueError(f"quant_types: unknown {unknown}; known: {list(QUANT_TYPES)}")
        if "f16" not in value:
            raise ValueError("quant_types must include 'f16': the parity check against the merged model runs on it")
        if len(set(value)) != len(value):
            raise ValueError(f"quant_types lists a type twice: {list(value)}")
        return value
