"""Which foundation model every adapter is trained on."""

import os

import dagster as dg
from pydantic import Field

from assets.foundation.resolve import BaseModelSpec, parse_base_model_spec

DEFAULT_BASE_MODEL = "builtin:tiny-llama"


class BaseModelSource(dg.ConfigurableResource):
    """`builtin:tiny-llama`, a local Hugging Face model directory, or a hub id with `@revision`."""

    spec: str = Field(
        "",
        description="Base model. Empty: $LORALINE_BASE_MODEL, else builtin:tiny-llama (built "
        "on the spot, no download). Pin hub models with @revision for reproducible runs.",
    )

    def parsed(self) -> BaseModelSpec:
        return parse_base_model_spec(self.spec or os.environ.get("LORALINE_BASE_MODEL") or DEFAULT_BASE_MODEL)
