"""The `base_model` asset on a real Dagster instance: what later steps read, and what it refuses."""

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
import torch
from model_logits import reference_logits

from assets.common.hashing import directory_fingerprint, file_sha256
from assets.foundation.assets import base_model
from resources.base_model_source import BaseModelSource
from resources.storage import ArtifactStore


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch):
    monkeypatch.delenv("LORALINE_BASE_MODEL", raising=False)
    monkeypatch.delenv("LORALINE_ALLOW_PICKLED_WEIGHTS", raising=False)


def materialize(instance, model_dir: Path, artifacts: Path, **source) -> dg.ExecuteInProcessResult:
    resources = {"base_model_source": BaseModelSource(spec=str(model_dir), **source), "artifacts": ArtifactStore(root=str(artifacts))}
    return dg.materialize([base_model], resources=resources, instance=instance, raise_on_error=False)


def latest(instance) -> dict:
    record = instance.fetch_materializations(dg.AssetKey("base_model"), limit=1).records[0]
    event = record.asset_materialization
    return {"data_version": event.tags["dagster/data_version"], **{k: v.value for k, v in event.metadata.items()}}


def failure(result: dg.ExecuteInProcessResult) -> str:
    """The message the step failed with (Dagster wraps the asset's exception: its cause)."""
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    return error.cause.message if error.cause else error.message


def test_editing_the_source_after_materializing_does_not_reach_later_steps(instance, model_copy, other_weights, tiny_model, tmp_path):
    artifacts = tmp_path / "artifacts"
    assert materialize(instance, model_copy, artifacts).success
    first = latest(instance)
    first_path = Path(first["path"])
    assert first_path.is_relative_to(artifacts) and first_path.name == f"local-{first['fingerprint'][:16]}"
    assert first["data_version"] == first["fingerprint"]
    recorded = directory_fingerprint(first_path)

    # In place: new weights and a changed tokenizer, as a user re-exporting a model would.
    shutil.copyfile(other_weights, model_copy / "model.safetensors")
    tokenizer_config = json.loads((model_copy / "tokenizer_config.json").read_text())
    (model_copy / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "model_max_length": 64}))

    # What a later step reads (the recorded path) still is the base the fingerprint names.
    assert directory_fingerprint(first_path) == recorded
    assert torch.equal(reference_logits(first_path), reference_logits(tiny_model))

    assert materialize(instance, model_copy, artifacts).success
    second = latest(instance)
    assert second["fingerprint"] != first["fingerprint"] and second["data_version"] != first["data_version"]
    assert Path(second["path"]) != first_path
    assert file_sha256(Path(second["path"]) / "model.safetensors") == file_sha256(other_weights)
    assert directory_fingerprint(first_path) == recorded  # the old copy stays for runs that recorded it


def test_the_same_content_twice_gives_one_copy(instance, model_copy, tiny_model, tmp_path):
    artifacts = tmp_path / "artifacts"
    assert materialize(instance, model_copy, artifacts).success
    first = latest(instance)
    assert materialize(instance, tiny_model, artifacts).success  # another directory, same bytes
    second = latest(instance)
    assert second["path"] == first["path"] and second["data_version"] == first["data_version"]
    assert [p.name for p in Path(first["path"]).parent.iterdir()] == [Path(first["path"]).name]


def test_metadata_says_what_loads(instance, model_copy, tmp_path):
    (model_copy / "README.md").write_text("# notes\n")
    assert materialize(instance, model_copy, tmp_path / "artifacts").success
    meta = latest(instance)
    # Keys other steps and the model card rely on are kept.
    assert {"path", "spec", "source", "revision", "fingerprint", "architecture", "hidden_size", "num_hidden_layers", "vocab_size"} <= set(meta)
    assert (meta["source"], meta["spec"], meta["revision"]) == ("local", str(model_copy), "-")
    assert (meta["architecture"], meta["model_type"], meta["context_length"]) == ("LlamaForCausalLM", "llama", 2048)
    assert (meta["tie_word_embeddings"], meta["dtype"], meta["chat_template"]) == (False, "float32", True)
    assert (meta["bos_token"], meta["eos_token"], meta["pad_token"]) == ("<|begin_of_text|>", "<|end_of_text|>", "<|pad|>")
    assert meta["weights"] == "safetensors" and meta["auto_map"] == "-"
    assert meta["files"] == sorted(p.name for p in Path(meta["path"]).iterdir()) and "README.md" not in meta["files"]
    assert meta["bytes"] == sum(p.stat().st_size for p in Path(meta["path"]).iterdir())
    assert meta["ignored_files"] == ["README.md"]


def test_pickled_only_base_fails_then_converts_when_opted_in(instance, pickled_model, tiny_model, tmp_path, monkeypatch):
    artifacts = tmp_path / "artifacts"
    message = failure(materialize(instance, pickled_model, artifacts))
    assert str(pickled_model) in message and "run code" in message and "LORALINE_ALLOW_PICKLED_WEIGHTS=1" in message

    monkeypatch.setenv("LORALINE_ALLOW_PICKLED_WEIGHTS", "1")
    assert materialize(instance, pickled_model, artifacts).success
    meta = latest(instance)
    assert meta["weights"] == "safetensors, converted from pickled pytorch_model*.bin"
    assert "model.safetensors" in meta["files"] and not any(name.endswith(".bin") for name in meta["files"])
    assert torch.equal(reference_logits(Path(meta["path"])), reference_logits(tiny_model))


def test_unknown_model_type_fails_base_model_with_the_reason(instance, model_copy, tmp_path):
    config = json.loads((model_copy / "config.json").read_text())
    (model_copy / "config.json").write_text(json.dumps({**config, "model_type": "my-secret-llm"}))
    message = failure(materialize(instance, model_copy, tmp_path / "artifacts"))
    assert "'my-secret-llm'" in message and "trust_remote_code" in message


@pytest.mark.parametrize(("setting", "env", "allowed"), [
    (False, None, False), (True, None, True), (False, "1", True), (False, "true", True), (False, "0", False), (True, "0", True),
])
def test_pickled_weights_opt_in_from_setting_or_environment(monkeypatch, setting, env, allowed):
    if env is not None:
        monkeypatch.setenv("LORALINE_ALLOW_PICKLED_WEIGHTS", env)
    assert BaseModelSource(allow_pickled_weights=setting).pickled_weights_allowed() is allowed


def test_unreadable_opt_in_value_is_an_error(monkeypatch):
    monkeypatch.setenv("LORALINE_ALLOW_PICKLED_WEIGHTS", "maybe")
    with pytest.raises(ValueError, match="LORALINE_ALLOW_PICKLED_WEIGHTS='maybe'"):
        BaseModelSource().pickled_weights_allowed()
