"""Fetching a hub base model: only the files loading needs, at one resolved commit.

A model repo often carries much more than loading needs: the same weights in other formats
(pickled .bin, GGUF, ONNX, Flax, TF), Mistral's consolidated.safetensors beside the sharded
model-*.safetensors, original/ checkpoints. Downloading a whole snapshot can double or triple the
download, so the fetch goes in steps, each naming exact files:

1. config.json and model.safetensors.index.json (a few KB): the architecture is checked (no
   remote code) before any weight is downloaded, and the index says which shards to fetch.
2. The config, tokenizer and safetensors weight files, at the commit step 1 resolved, so a branch
   that moves in between cannot mix two revisions.
3. Only when there are no safetensors weights and the user opted in: the pickled weights, which
   `base_model` then converts into a content-addressed safetensors copy.

huggingface_hub is imported inside the function; it reads HF_HUB_CACHE / HF_HUB_OFFLINE when it is
first imported, so tests and callers with their own cache pass `cache_dir` explicitly.
"""

from pathlib import Path

from assets.foundation.model_facts import check_native_architecture, read_config
from assets.foundation.model_files import (
    CONFIG_FILES,
    OPT_IN,
    PICKLED_INDEX,
    SAFETENSORS_FILE,
    SAFETENSORS_INDEX,
    TOKENIZER_FILES,
    index_shards,
    weight_files,
)

PICKLED_PATTERNS = ("pytorch_model*.bin", PICKLED_INDEX)


def loading_files(index_dir: Path) -> list[str]:
    """The exact file names to fetch: config, tokenizer, and the safetensors weights (the shards the
    index in `index_dir` lists, else model.safetensors). Names that a repo lacks are simply not fetched."""
    index = index_dir / SAFETENSORS_INDEX
    weights = [SAFETENSORS_INDEX, *index_shards(index)] if index.is_file() else [SAFETENSORS_FILE]
    return [*CONFIG_FILES, *TOKENIZER_FILES, *weights]


def fetch_hub_model(repo_id: str, revision: str | None, allow_pickled: bool, cache_dir: Path | None = None) -> tuple[Path, str]:
    """Download (or find in the HF cache) what loading `repo_id` needs; return (snapshot folder, commit)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    def fetch(patterns: list[str], at: str | None) -> Path:
        try:
            return Path(snapshot_download(repo_id=repo_id, revision=at, allow_patterns=patterns, cache_dir=cache_dir))
        except LocalEntryNotFoundError as error:
            # huggingface_hub says the cache lacks something, not what: name the request.
            raise LocalEntryNotFoundError(
                f"hub repo {repo_id}@{at or 'main'}: could not download (or find in the HF cache) the files "
                f"matching {', '.join(patterns)}: {error}"
            ) from error

    first = fetch(["config.json", SAFETENSORS_INDEX], revision)
    commit = first.name  # snapshots are stored under their commit hash
    label = f"hub repo {repo_id}@{commit}"
    if not (first / "config.json").is_file():
        raise ValueError(f"{label} has no config.json (not a Hugging Face model repo)")
    check_native_architecture(read_config(first), f"{label} config.json")
    snapshot = fetch(loading_files(first), commit)
    if weight_files(snapshot, SAFETENSORS_FILE, SAFETENSORS_INDEX) is None:
        if not allow_pickled:
            raise ValueError(
                f"{label} has no safetensors weights ({SAFETENSORS_FILE} or {SAFETENSORS_INDEX}). loraline "
                "loads safetensors only by default, because unpickling a file can run code hidden in it. "
                f"If the repo has pickled pytorch_model*.bin weights only and you trust it, {OPT_IN}: "
                "base_model then converts them once into safetensors, and every later step loads those."
            )
        snapshot = fetch(list(PICKLED_PATTERNS), commit)
    return snapshot, commit
