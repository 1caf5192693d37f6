"""Resolving `LORALINE_BASE_MODEL` to a local Hugging Face directory and its fingerprint.

Three sources: `builtin:tiny-llama` (built here, deterministically), a local model directory, or a
hub id with an optional `@revision`. The fingerprint is the base model's data version: when it
changes, every adapter trained on the old base becomes stale.
"""

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from assets.common.atomic import atomic_directory
from assets.common.hashing import directory_fingerprint

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


@dataclass(frozen=True)
class ResolvedBaseModel:
    spec: BaseModelSpec
    path: Path  # a directory with config.json, weights and tokenizer
    fingerprint: str  # content hash (builtin, local) or hub commit
    revision: str | None


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


def resolve_base_model(spec: BaseModelSpec, builtin_root: Path) -> ResolvedBaseModel:
    """Make the base available locally. Built-ins are stored content-addressed under `builtin_root`."""
    if spec.source == "builtin":
        return _build_builtin(spec, builtin_root)
    if spec.source == "local":
        path = Path(spec.name)
        return ResolvedBaseModel(spec, path, directory_fingerprint(path), None)
    from huggingface_hub import snapshot_download

    path = Path(snapshot_download(repo_id=spec.name, revision=spec.revision))
    commit = path.name  # snapshots are stored under their commit hash
    return ResolvedBaseModel(spec, path, f"hub:{spec.name}@{commit}", commit)


def _build_builtin(spec: BaseModelSpec, root: Path) -> ResolvedBaseModel:
    from assets.foundation.tiny_llama import save_tiny_llama

    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".build-{spec.name}-", dir=root))  # unique: builds may overlap
    save_tiny_llama(staging)
    fingerprint = directory_fingerprint(staging)
    final = root / f"{spec.name}-{fingerprint[:16]}"
    if final.exists():
        # Same bytes already published (the build is deterministic): reuse, never overwrite.
        shutil.rmtree(staging)
    else:
        with atomic_directory(final) as target:
            for item in staging.iterdir():
                item.rename(target / item.name)
        shutil.rmtree(staging)
    return ResolvedBaseModel(spec, final, fingerprint, None)
