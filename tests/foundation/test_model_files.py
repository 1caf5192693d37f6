"""What loading needs, the content-addressed copy, and pickled weights (assets/foundation/model_files.py)."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from model_logits import reference_logits

from assets.common.hashing import directory_fingerprint, file_sha256
from assets.foundation.model_files import publish_model_copy, select_model_files

TINY_FILES = ["chat_template.jinja", "config.json", "generation_config.json", "model.safetensors",
              "tokenizer.json", "tokenizer_config.json"]
# Beside a safetensors model: none of these load, so none is copied.
JUNK = {
    "README.md": b"# my model\n",
    "pytorch_model.bin": b"pickled duplicate of the weights",
    "training_args.bin": b"pickled trainer arguments",
    "optimizer.pt": b"optimizer state",
    "model.gguf": b"GGUF",
    "model.onnx": b"onnx",
    "flax_model.msgpack": b"flax",
    "tf_model.h5": b"h5",
    "consolidated.safetensors": b"mistral-format duplicate of the weights",
    "adapter_model.safetensors": b"a LoRA adapter",
}


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def add_junk(directory: Path) -> None:
    for name, data in JUNK.items():
        (directory / name).write_bytes(data)
    (directory / ".git").mkdir()
    (directory / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (directory / "original").mkdir()
    (directory / "original" / "consolidated.00.pth").write_bytes(b"meta checkpoint")


# --- selecting ----------------------------------------------------------------------------------

def test_only_what_loading_needs_is_selected(model_copy):
    add_junk(model_copy)
    (model_copy / "special_tokens_map.json").write_text("{}")
    selection = select_model_files(model_copy, allow_pickled=False)
    assert sorted(selection.files) == sorted([*TINY_FILES, "special_tokens_map.json"])
    assert set(selection.skipped) == {*JUNK, ".git", "original"}
    assert not selection.pickled
    assert selection.bytes == sum((model_copy / name).stat().st_size for name in selection.files)


def test_copy_holds_only_the_selected_files_and_equal_bytes(model_copy, tmp_path):
    add_junk(model_copy)
    copy = publish_model_copy(select_model_files(model_copy, False), tmp_path / "root", "local")
    assert names(copy.path) == TINY_FILES == list(copy.files)
    for name in TINY_FILES:
        assert file_sha256(copy.path / name) == file_sha256(model_copy / name)
    assert copy.bytes == sum((copy.path / name).stat().st_size for name in TINY_FILES)
    # Junk does not enter the fingerprint: the same model without it has the same content address.
    assert copy.fingerprint == directory_fingerprint(copy.path)
    assert copy.path == tmp_path / "root" / f"local-{copy.fingerprint[:16]}"


def test_sharded_safetensors_copy_the_index_and_its_shards_only(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    sharded = tmp_path / "sharded"
    shutil.copytree(tiny_model, sharded, ignore=shutil.ignore_patterns("model.safetensors"))
    AutoModelForCausalLM.from_pretrained(tiny_model).save_pretrained(sharded, max_shard_size="600KB")
    shards = sorted(set(json.loads((sharded / "model.safetensors.index.json").read_text())["weight_map"].values()))
    assert len(shards) > 1
    (sharded / "stale-model-00009-of-00009.safetensors").write_bytes(b"not in the index")
    selection = select_model_files(sharded, False)
    assert sorted(n for n in selection.files if "safetensors" in n) == sorted(["model.safetensors.index.json", *shards])
    copy = publish_model_copy(selection, tmp_path / "root", "local")
    assert torch.equal(reference_logits(copy.path), reference_logits(tiny_model))


def test_missing_shard_is_named(tiny_model, tmp_path):
    broken = Path(shutil.copytree(tiny_model, tmp_path / "broken", ignore=shutil.ignore_patterns("model.safetensors")))
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (broken / "model.safetensors.index.json").write_text(json.dumps(index))
    (broken / "model-00001-of-00002.safetensors").write_bytes(b"x")
    with pytest.raises(ValueError, match="lists shard model-00002-of-00002.safetensors, which is missing"):
        select_model_files(broken, False)


@pytest.mark.parametrize("shard", ["../../etc/passwd", "sub/model.safetensors", ".."])
def test_index_cannot_point_outside_the_directory(tiny_model, tmp_path, shard):
    broken = Path(shutil.copytree(tiny_model, tmp_path / "escape", ignore=shutil.ignore_patterns("model.safetensors")))
    (broken / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": shard}}))
    with pytest.raises(ValueError, match="not a file name in that directory"):
        select_model_files(broken, False)


def test_symlinked_files_are_copied_as_their_targets_content(tiny_model, tmp_path):
    # The HF cache layout: snapshot entries are symlinks into content-named blobs.
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "abc123"
    blobs.mkdir()
    snapshot.mkdir(parents=True)
    for name in TINY_FILES:
        blob = blobs / file_sha256(tiny_model / name)
        shutil.copyfile(tiny_model / name, blob)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    copy = publish_model_copy(select_model_files(snapshot, False), tmp_path / "root", "local")
    assert not any((copy.path / name).is_symlink() for name in TINY_FILES)
    assert copy.fingerprint == directory_fingerprint(tiny_model)  # same bytes as the plain directory
    assert directory_fingerprint(copy.path) == directory_fingerprint(tiny_model)


def test_dangling_symlink_among_needed_files_is_an_error(model_copy):
    (model_copy / "tokenizer.json").unlink()
    (model_copy / "tokenizer.json").symlink_to(model_copy / "gone.json")
    with pytest.raises(ValueError, match="tokenizer.json is a symlink to .*gone.json, which does not exist"):
        select_model_files(model_copy, False)


@pytest.mark.parametrize(("extra", "hint"), [(None, ""), ("consolidated.safetensors", "consolidated.safetensors")])
def test_no_loadable_weights_is_refused(model_copy, extra, hint):
    (model_copy / "model.safetensors").unlink()
    (model_copy / "model.gguf").write_bytes(b"GGUF")
    if extra:
        (model_copy / extra).write_bytes(b"x")
    with pytest.raises(ValueError, match="has no weights that load") as raised:
        select_model_files(model_copy, allow_pickled=True)
    assert str(model_copy) in str(raised.value) and hint in str(raised.value)


# --- content addressing -------------------------------------------------------------------------

def test_same_content_twice_gives_one_copy(model_copy, tiny_model, tmp_path):
    root = tmp_path / "root"
    first = publish_model_copy(select_model_files(model_copy, False), root, "local")
    mtime = (first.path / "model.safetensors").stat().st_mtime_ns
    second = publish_model_copy(select_model_files(tiny_model, False), root, "local")  # another folder, same bytes
    assert second.path == first.path and second.fingerprint == first.fingerprint
    assert (first.path / "model.safetensors").stat().st_mtime_ns == mtime  # reused, not rewritten
    assert names(root) == [first.path.name]  # no staging left behind


def test_edited_source_gets_a_new_copy_and_the_old_one_stays(model_copy, other_weights, tmp_path):
    root = tmp_path / "root"
    first = publish_model_copy(select_model_files(model_copy, False), root, "local")
    before = directory_fingerprint(first.path)
    shutil.copyfile(other_weights, model_copy / "model.safetensors")  # new weights, in place
    second = publish_model_copy(select_model_files(model_copy, False), root, "local")
    assert second.fingerprint != first.fingerprint and second.path != first.path
    assert directory_fingerprint(first.path) == before  # the recorded copy is untouched
    assert file_sha256(second.path / "model.safetensors") == file_sha256(other_weights)
    assert names(root) == sorted([first.path.name, second.path.name])


# --- pickled weights ----------------------------------------------------------------------------

def test_pickled_only_is_refused_naming_the_directory_the_reason_and_the_opt_in(pickled_model, tmp_path):
    with pytest.raises(ValueError) as raised:
        select_model_files(pickled_model, allow_pickled=False)
    message = str(raised.value)
    assert str(pickled_model) in message and "pytorch_model.bin" in message
    assert "run code" in message
    assert "allow_pickled_weights" in message and "LORALINE_ALLOW_PICKLED_WEIGHTS=1" in message


def test_pickled_weights_are_converted_once_into_safetensors(pickled_model, tiny_model, tmp_path):
    root = tmp_path / "root"
    selection = select_model_files(pickled_model, allow_pickled=True)
    assert selection.pickled and "pytorch_model.bin" in selection.files
    copy = publish_model_copy(selection, root, "local")
    assert "model.safetensors" in copy.files and not any(name.endswith(".bin") for name in copy.files)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert file_sha256(copy.path / name) == file_sha256(tiny_model / name)
    # Loaded from safetensors alone, the converted copy computes what the original computed.
    assert torch.equal(reference_logits(copy.path), reference_logits(tiny_model))
    mtime = (copy.path / "model.safetensors").stat().st_mtime_ns
    again = publish_model_copy(select_model_files(pickled_model, allow_pickled=True), root, "local")
    assert again.path == copy.path and (copy.path / "model.safetensors").stat().st_mtime_ns == mtime
    assert names(root) == [copy.path.name]  # converted once; no staging left


def test_pickled_beside_safetensors_is_ignored_not_converted(model_copy, tmp_path):
    (model_copy / "pytorch_model.bin").write_bytes(b"never unpickled")
    selection = select_model_files(model_copy, allow_pickled=False)
    assert not selection.pickled and "pytorch_model.bin" in selection.skipped


def test_pickled_weights_that_miss_a_tensor_are_not_converted(pickled_model, tmp_path):
    # Loading would random-initialise the missing tensor; saving that as the base would hide it.
    tensors = torch.load(pickled_model / "pytorch_model.bin", weights_only=True)
    del tensors["lm_head.weight"]
    torch.save(tensors, pickled_model / "pytorch_model.bin")
    with pytest.raises(ValueError, match="lm_head.weight") as raised:
        publish_model_copy(select_model_files(pickled_model, allow_pickled=True), tmp_path / "root", "local")
    assert str(pickled_model) in str(raised.value)
    assert list((tmp_path / "root").iterdir()) == []  # nothing published, staging removed
