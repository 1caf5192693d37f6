"""Which base model every adapter is trained on, as the user names it (`LORALINE_BASE_MODEL`):
`builtin:tiny-llama`, a local Hugging Face model directory, or a hub id `org/name[@revision]`.
Parsed and checked here, before anything is built, copied or downloaded (foundation/resolve.py)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

BUILTIN_MODELS = ("tiny-llama",)


@dataclass(frozen=True)
class BaseModelSpec:
    source: Literal["builtin", "local", "hub"]
    name: str  # builtin name, absolute directory, or hub repo id
    revision: str | None = None

    @property
    def display(self) -> str:
        prefix = {"builtin": "builtin:", "local": "", "hub": ""}[self.source]
        return f"{prefix}{self.name}" + (f"@{self.revision}" if self.revision else "")


def parse_base_model_spec(spec: str) -> BaseModelSpec:
    spec = spec.strip()
    if not spec:
        raise ValueError("the base model is empty; use builtin:tiny-llama, a local directory or a hub id")
    if spec.startswith("builtin:"):
        name = spec.removeprefix("builtin:")
        if name not in BUILTIN_MODELS:
            raise ValueError(f"unknown built-in model {name!r}; built-ins: {', '.join(BUILTIN_MODELS)}")
        return BaseModelSpec("builtin", name)
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith((".", "/", "~")):
        if not (path / "config.json").is_file():
            raise ValueError(f"base model directory {path} has no config.json (not a Hugging Face model directory)")
        return BaseModelSpec("local", str(path.resolve()))
    repo, _, revision = spec.partition("@")
    if repo.count("/") != 1:
        raise ValueError(f"base model {spec!r} is neither an existing directory nor a hub id like 'org/name[@revision]'")
    return BaseModelSpec("hub", repo, revision or None)
