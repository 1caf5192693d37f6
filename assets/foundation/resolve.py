"""Resolving `LORALINE_BASE_MODEL` to a local Hugging Face directory and its fingerprint.

Three sources: `builtin:tiny-llama` (built here, deterministically), a local model directory, or a
hub id with an optional `@revision`. The fingerprint is the base model's data version: when it
changes, every adapter trained on the old base becomes stale.

Every source ends as a directory later steps read, holding only what loading needs, safetensors
weights only, a native transformers architecture (see model_files.py, model_facts.py, hub.py):
- builtin: built under the artifacts, content-addressed.
- local: copied under the artifacts, content-addressed (`local-<fingerprint16>`), so editing the
  user's directory later cannot change what a recorded fingerprint stands for.
- hub: the HF cache snapshot of one commit, read in place (a commit's files never change); only
  pickled-only repos are converted into a content-addressed copy (`hub-<fingerprint16>`).
"""

from dataclasses import dataclass
from pathlib import Path

from assets.common.atomic import atomic_directory, locked_temp_directory
from assets.common.hashing import directory_fingerprint
from assets.foundation.model_facts import check_native_architecture, read_config
from assets.foundation.model_files import publish_model_copy, select_model_files
from assets.settings.base_model import BaseModelSpec


@dataclass(frozen=True)
class ResolvedBaseModel:
    spec: BaseModelSpec
    path: Path  # a directory with config.json, weights and tokenizer
    fingerprint: str  # content hash (builtin, local) or hub commit
    revision: str | None
    files: tuple[str, ...] = ()  # what `path` holds that loading reads
    bytes: int = 0  # their total size
    converted_from_pickle: bool = False  # weights were pytorch_model*.bin, now safetensors in `path`
    skipped: tuple[str, ...] = ()  # top-level names of the source that were not copied


def resolve_base_model(
    spec: BaseModelSpec, root: Path, allow_pickled_weights: bool = False, hub_cache_dir: Path | None = None
) -> ResolvedBaseModel:
    """Make the base available locally, under `root` (the base_model artifacts) where it is copied.

    `allow_pickled_weights` lets a base with only pytorch_model*.bin weights through, converted
    once into safetensors; `hub_cache_dir` overrides the HF cache (default: HF_HUB_CACHE).
    """
    if spec.source == "builtin":
        return _build_builtin(spec, root)
    if spec.source == "local":
        source = Path(spec.name)
        check_native_architecture(read_config(source), str(source / "config.json"))
        selection = select_model_files(source, allow_pickled_weights)
        copy = publish_model_copy(selection, root, "local")
        return ResolvedBaseModel(spec, copy.path, copy.fingerprint, None, copy.files, copy.bytes, selection.pickled, selection.skipped)
    from assets.foundation.hub import fetch_hub_model

    snapshot, commit = fetch_hub_model(spec.name, spec.revision, allow_pickled_weights, hub_cache_dir)
    selection = select_model_files(snapshot, allow_pickled_weights, label=f"hub repo {spec.name}@{commit}")
    fingerprint = f"hub:{spec.name}@{commit}"
    if not selection.pickled:
        return ResolvedBaseModel(spec, snapshot, fingerprint, commit, tuple(sorted(selection.files)), selection.bytes, False, selection.skipped)
    copy = publish_model_copy(selection, root, "hub")
    return ResolvedBaseModel(spec, copy.path, fingerprint, commit, copy.files, copy.bytes, True, selection.skipped)


def _build_builtin(spec: BaseModelSpec, root: Path) -> ResolvedBaseModel:
    from assets.foundation.tiny_llama import save_tiny_llama

    # Unique (builds may overlap) and locked while building, so the artifact store's sweep removes
    # it only once its builder died (resources/storage.py, assets/common/atomic.py).
    with locked_temp_directory(root, prefix=f".build-{spec.name}-") as staging:
        save_tiny_llama(staging)
        fingerprint = directory_fingerprint(staging)
        final = root / f"{spec.name}-{fingerprint[:16]}"
        if not final.exists():  # same bytes already published (the build is deterministic): reuse, never overwrite
            with atomic_directory(final) as target:
                for item in staging.iterdir():
                    item.rename(target / item.name)
    files = tuple(sorted(p.name for p in final.iterdir()))
    return ResolvedBaseModel(spec, final, fingerprint, None, files, sum((final / name).stat().st_size for name in files))
