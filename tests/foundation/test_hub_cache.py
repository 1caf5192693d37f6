"""Hub bases resolved offline from a Hugging Face cache built here (assets/foundation/hub.py).

No network: huggingface_hub runs in offline mode (its HF_HUB_OFFLINE constant is read when it is
imported, so the test sets the constant, and passes the cache folder explicitly). Each cache holds
the commit's tree listing (`trees/<commit>.json`, as a real download leaves it) naming files the
snapshot lacks. Offline, huggingface_hub returns a snapshot only when every file the
allow_patterns select is present, so a resolution that succeeds proves the patterns left those
files out, i.e. that an online download would not have fetched them.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from model_logits import reference_logits

from assets.common.hashing import file_sha256
from assets.foundation.hub import loading_files
from assets.foundation.resolve import resolve_base_model
from assets.settings.base_model import parse_base_model_spec

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "acme/tiny"
# In the repo, not needed to load: an online download must not fetch them.
NOT_FETCHED = {
    "README.md": b"# tiny\n",
    ".gitattributes": b"*.safetensors filter=lfs\n",
    "pytorch_model.bin": b"pickled duplicate",
    "training_args.bin": b"pickled trainer arguments",
    "model.onnx": b"onnx",
    "tf_model.h5": b"h5",
    "flax_model.msgpack": b"flax",
    "model.gguf": b"gguf",
    "consolidated.safetensors": b"mistral-format duplicate",
    "original/consolidated.00.pth": b"meta checkpoint",
    "onnx/model.safetensors": b"another export",
}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def build_cache(cache: Path, model_dir: Path, listed_only: dict[str, bytes]) -> Path:
    """An HF cache holding `model_dir`'s files for REPO@COMMIT (symlinks into blobs), `refs/main`, and a
    tree listing that also names `listed_only` (in the repo, absent from the snapshot)."""
    storage = cache / ("models--" + REPO.replace("/", "--"))
    snapshot = storage / "snapshots" / COMMIT
    (storage / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(COMMIT)  # no newline, as huggingface_hub writes it
    listing = {}
    for path in sorted(model_dir.iterdir()):
        blob = storage / "blobs" / file_sha256(path)
        shutil.copyfile(path, blob)
        (snapshot / path.name).symlink_to(os.path.relpath(blob, snapshot))
        listing[path.name] = {"size": path.stat().st_size, "blob_id": blob.name[:40]}
    for name, data in listed_only.items():
        listing[name] = {"size": len(data), "blob_id": "f" * 40}
    (storage / "trees").mkdir()
    (storage / "trees" / f"{COMMIT}.json").write_text(json.dumps({"format_version": 1, "files": listing}))
    return snapshot


@pytest.mark.parametrize("spec", [REPO, f"{REPO}@main", f"{REPO}@{COMMIT}"])
def test_hub_base_resolves_from_the_cache_at_the_pinned_commit(tiny_model, tmp_path, spec):
    snapshot = build_cache(tmp_path / "hf", tiny_model, NOT_FETCHED)
    resolved = resolve_base_model(parse_base_model_spec(spec), tmp_path / "root", hub_cache_dir=tmp_path / "hf")
    assert resolved.path == snapshot  # a commit's files never change: read in place, not copied
    assert resolved.revision == COMMIT and resolved.fingerprint == f"hub:{REPO}@{COMMIT}"
    assert list(resolved.files) == sorted(p.name for p in tiny_model.iterdir())
    assert resolved.bytes == sum(p.stat().st_size for p in tiny_model.iterdir())
    assert not resolved.converted_from_pickle
    assert not (tmp_path / "root").exists()


def test_the_listing_has_teeth_without_allow_patterns(tiny_model, tmp_path):
    # The same cache without allow_patterns is incomplete: the listed extras would be downloaded.
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError

    build_cache(tmp_path / "hf", tiny_model, NOT_FETCHED)
    with pytest.raises(IncompleteSnapshotError, match="missing"):
        snapshot_download(REPO, cache_dir=tmp_path / "hf")


def test_a_needed_file_missing_from_the_cache_is_not_silently_skipped(tiny_model, tmp_path):
    from huggingface_hub.errors import LocalEntryNotFoundError

    build_cache(tmp_path / "hf", tiny_model, {"tokenizer.model": b"sentencepiece"})  # needed, not cached
    with pytest.raises(LocalEntryNotFoundError, match=f"hub repo {REPO}@{COMMIT}: could not download .*tokenizer.model"):
        resolve_base_model(parse_base_model_spec(REPO), tmp_path / "root", hub_cache_dir=tmp_path / "hf")


def test_sharded_repos_fetch_the_index_and_its_shards_by_name(tmp_path):
    from huggingface_hub.utils import filter_repo_objects

    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    patterns = loading_files(tmp_path)
    repo = ["config.json", "tokenizer.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors", "consolidated.safetensors", "onnx/model.safetensors", *NOT_FETCHED]
    assert sorted(filter_repo_objects(repo, allow_patterns=patterns)) == sorted(repo[:5])
    assert "model.safetensors" in loading_files(tmp_path / "no-index")  # unsharded: the single file


def test_hub_base_with_custom_code_is_refused_before_the_weights_are_fetched(model_copy, tmp_path):
    config = json.loads((model_copy / "config.json").read_text())
    config.update(model_type="acme-llm", auto_map={"AutoModelForCausalLM": "modeling_acme.AcmeForCausalLM"})
    (model_copy / "config.json").write_text(json.dumps(config))
    (model_copy / "model.safetensors").unlink()  # listed but not cached: fetching it would fail offline
    build_cache(tmp_path / "hf", model_copy, {"model.safetensors": b"weights"})
    with pytest.raises(ValueError, match=f"hub repo {REPO}@{COMMIT} config.json has model_type 'acme-llm'") as raised:
        resolve_base_model(parse_base_model_spec(REPO), tmp_path / "root", hub_cache_dir=tmp_path / "hf")
    assert "modeling_acme.AcmeForCausalLM" in str(raised.value) and "trust_remote_code" in str(raised.value)


def test_hub_base_with_only_pickled_weights_is_refused_then_converted(pickled_model, tiny_model, tmp_path):
    build_cache(tmp_path / "hf", pickled_model, {"README.md": b"# old repo\n"})
    spec = parse_base_model_spec(REPO)
    with pytest.raises(ValueError, match=f"hub repo {REPO}@{COMMIT} has no safetensors weights") as raised:
        resolve_base_model(spec, tmp_path / "root", hub_cache_dir=tmp_path / "hf")
    assert "run code" in str(raised.value) and "LORALINE_ALLOW_PICKLED_WEIGHTS=1" in str(raised.value)

    resolved = resolve_base_model(spec, tmp_path / "root", allow_pickled_weights=True, hub_cache_dir=tmp_path / "hf")
    assert resolved.converted_from_pickle and resolved.fingerprint == f"hub:{REPO}@{COMMIT}"
    assert resolved.path.parent == tmp_path / "root" and resolved.path.name.startswith("hub-")
    assert "model.safetensors" in resolved.files and not any(n.endswith(".bin") for n in resolved.files)
    assert torch.equal(reference_logits(resolved.path), reference_logits(tiny_model))
