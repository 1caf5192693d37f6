"""Which foundation model every adapter is trained on."""

import os

import dagster as dg
from pydantic import Field

from assets.settings.base_model import BaseModelSpec, parse_base_model_spec

DEFAULT_BASE_MODEL = "builtin:tiny-llama"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


class BaseModelSource(dg.ConfigurableResource):
    """`builtin:tiny-llama`, a local Hugging Face model directory, or a hub id with `@revision`."""

    spec: str = Field(
        "",
        description="Base model. Empty: $LORALINE_BASE_MODEL, else builtin:tiny-llama (built "
        "on the spot, no download). Pin hub models with @revision for reproducible runs.",
    )
    allow_pickled_weights: bool = Field(
        False,
        description="Accept a base whose only weights are pickled pytorch_model*.bin files. Off by "
        "default: unpickling can run code hidden in the file. On (or LORALINE_ALLOW_PICKLED_WEIGHTS=1): "
        "base_model loads them once and saves a safetensors copy (the whole model in memory, once), "
        "and every later step loads that copy.",
    )

    def parsed(self) -> BaseModelSpec:
        return parse_base_model_spec(self.spec or os.environ.get("LORALINE_BASE_MODEL") or DEFAULT_BASE_MODEL)

    def pickled_weights_allowed(self) -> bool:
        """The setting, or LORALINE_ALLOW_PICKLED_WEIGHTS (read now, never at import)."""
        raw = os.environ.get("LORALINE_ALLOW_PICKLED_WEIGHTS", "").strip().lower()
        if raw not in _TRUE + _FALSE:
            raise ValueError(f"LORALINE_ALLOW_PICKLED_WEIGHTS={raw!r} is not a yes/no value; use 1 or 0")
        return self.allow_pickled_weights or raw in _TRUE
