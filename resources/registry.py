"""Where promoted adapters are published for serving (the adapter registry)."""

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

DEFAULT_REGISTRY_DIR = "data/registry"
REGISTRY_VARIABLE = "LORALINE_REGISTRY_DIR"


def registry_root(root: str = "") -> Path:
    """The registry folder: `root`, else $LORALINE_REGISTRY_DIR, else data/registry (read at call time)."""
    return Path(root or os.environ.get(REGISTRY_VARIABLE) or DEFAULT_REGISTRY_DIR).resolve()


class AdapterRegistry(dg.ConfigurableResource):
    """The folder `loraline serve` (and vLLM's filesystem resolver) reads: `<root>/<domain>/`."""

    root: str = Field(
        "",
        description="Registry root. Empty: $LORALINE_REGISTRY_DIR, else data/registry "
        "(relative paths resolve against the working directory).",
    )

    def root_path(self) -> Path:
        return registry_root(self.root)
