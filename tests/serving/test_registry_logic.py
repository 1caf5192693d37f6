"""The registry's promotion rules, its vLLM checks and its atomic layout, on real files (no Dagster)."""

import json
import os
from pathlib import Path

import pytest

from assets.serving.registry import (
    KEEP_VERSIONS,
    VERSIONS,
    Candidate,
    decide,
    point,
    publish,
    read_manifest,
    record_history,
    served,
    vllm_problems,
)

BASE = {"name": "org/base-1b", "path": "/models/base", "fingerprint": "f" * 64, "spec": "org/base-1b"}
LORA = {"peft_type": "LORA", "r": 8, "target_modules": ["q_proj", "v_proj"], "use_dora": False, "modules_to_save": None}


def candidate(version: str = "a" * 32, loss: float = 4.0, passed: bool = True, base: str = "f" * 64, path: str = "-") -> Candidate:
    return Candidate("support", path, version, base, passed, loss, {"eval_loss_adapter": loss}, {"qlora_adapter": version}, "run1")


def promoted(version: str = "b" * 32, loss: float = 3.0, base: str = "f" * 64) -> dict:
    return {"adapter_version": version, "eval_loss": loss, "base_fingerprint": base}


def adapter(folder: Path, **config) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({**LORA, "base_model_name_or_path": "/tmp/training/base", **config}))
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    return folder


def test_a_passing_adapter_is_promoted_when_nothing_is_served() -> None:
    assert decide(candidate(), None, "f" * 64, []).action == "promoted"


def test_a_worse_retrain_is_kept_out_and_a_better_one_replaces() -> None:
    worse = decide(candidate(loss=3.5), promoted(loss=3.0), "f" * 64, [])
    assert (worse.action, worse.version) == ("kept", "b" * 32) and "3.5000 is worse than the promoted 3.0000" in worse.reason
    better = decide(candidate(loss=2.5), promoted(loss=3.0), "f" * 64, [])
    assert (better.action, better.version) == ("promoted", "a" * 32)


def test_a_failed_gate_never_promotes_and_keeps_what_is_served() -> None:
    assert decide(candidate(passed=False), None, "f" * 64, []).action == "absent"
    kept = decide(candidate(passed=False, loss=0.1), promoted(), "f" * 64, [])
    assert kept.action == "kept" and "adapter_beats_base" in kept.reason


def test_another_base_or_an_incompatible_config_is_refused() -> None:
    other = decide(candidate(base="0" * 64), None, "f" * 64, [])
    assert other.action == "refused" and "another" not in other.reason and "trained on base 0000" in other.reason
    assert decide(candidate(), None, "f" * 64, ["use_dora is true"]).action == "refused"


def test_after_a_base_change_a_passing_adapter_replaces_one_on_the_old_base_whatever_its_loss() -> None:
    # Losses on different bases are not comparable; the old adapter cannot be served on the new base.
    assert decide(candidate(loss=9.0), promoted(loss=1.0, base="0" * 64), "f" * 64, []).action == "promoted"


def test_the_same_adapter_again_is_unchanged() -> None:
    assert decide(candidate(version="b" * 32), promoted(), "f" * 64, []).action == "unchanged"


def test_vllm_problems_names_each_reason() -> None:
    assert vllm_problems(LORA, 64) == []
    found = vllm_problems({**LORA, "r": 128, "use_dora": True, "modules_to_save": ["lm_head"],
                           "target_modules": ["q_proj", "embed_tokens", "lm_head"]}, 64)
    text = "; ".join(found)
    assert "rank 128 is above max_lora_rank 64" in text and "use_dora" in text and "modules_to_save ['lm_head']" in text
    assert "['embed_tokens', 'lm_head']" in text
    assert "regular expression" in vllm_problems({**LORA, "target_modules": ".*proj"}, 64)[0]
    assert "peft_type 'IA3'" in vllm_problems({**LORA, "peft_type": "IA3"}, 64)[0]


def test_publish_lays_out_the_vllm_folder_and_swaps_the_link_atomically(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    first = publish(registry, candidate(version="1" * 32, path=str(adapter(tmp_path / "a1"))), BASE)
    folder = registry / "support"
    assert folder.is_symlink() and not os.path.isabs(os.readlink(folder))  # relative: the registry can move
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors", "manifest.json"]
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "org/base-1b"
    assert read_manifest(folder)["adapter_version"] == "1" * 32 and first["eval_loss"] == 4.0
    held = served(registry)["support"]  # a reader's snapshot
    publish(registry, candidate(version="2" * 32, path=str(adapter(tmp_path / "a2"))), BASE)
    assert read_manifest(registry / "support")["adapter_version"] == "2" * 32
    assert read_manifest(held)["adapter_version"] == "1" * 32  # the old version stays whole for readers holding it
    assert not [p for p in registry.rglob(".*") if ".staging-" in p.name or ".link-" in p.name]


def test_old_versions_are_pruned_to_the_newest_few(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    for i in range(KEEP_VERSIONS + 2):
        publish(registry, candidate(version=f"{i:032d}", path=str(adapter(tmp_path / f"a{i}"))), BASE)
    versions = sorted((registry / VERSIONS / "support").iterdir())
    assert len(versions) == KEEP_VERSIONS and (registry / "support").resolve() in versions


def test_a_failed_copy_leaves_no_half_written_version(tmp_path: Path) -> None:
    registry, source = tmp_path / "registry", adapter(tmp_path / "a")
    (source / "adapter_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="domain 'support'.*adapter_model.safetensors"):
        publish(registry, candidate(path=str(source)), BASE)
    assert served(registry) == {} and list((registry / VERSIONS / "support").iterdir()) == []


def test_a_real_folder_in_the_way_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "support").mkdir()
    with pytest.raises(FileExistsError, match="real folder"):
        point(tmp_path, "support", tmp_path / "elsewhere")


def test_history_appends_one_line_per_decision(tmp_path: Path) -> None:
    record_history(tmp_path, decide(candidate(), None, "f" * 64, []), "run1")
    record_history(tmp_path, decide(candidate(loss=9.0), promoted(), "f" * 64, []), "run2")
    lines = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [(line["action"], line["run_id"]) for line in lines] == [("promoted", "run1"), ("kept", "run2")]


def test_a_domain_key_that_is_not_a_slug_never_becomes_a_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        publish(tmp_path, Candidate("../x", "-", "a" * 32, "f" * 64, True, 1.0), BASE)
