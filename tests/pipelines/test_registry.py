"""adapter_registry on a real Dagster instance: three domains trained on the built-in tiny model, two
promoted, one held at its gate; a worse retrain keeps the promoted adapter; the checks block."""

import json
from pathlib import Path

import dagster as dg
import pytest

from assets.settings.evaluation import EvaluationConfig
from pipelines.definitions import defs
from pipelines.registration import register_domains
from pipelines.samples import seed_sample_domains

TRAINED = ("raw_corpus", "clean_corpus", "quarantined_rows", "training_dataset", "qlora_adapter", "adapter_evaluation")
DOMAINS = ("support", "cooking", "astronomy")


# The gate decides on eval loss; sample generations and task scores (where the settings have them) are skipped for speed.
QUICK_EVALUATION = {k: 0 for k in ("generations", "task_examples") if k in EvaluationConfig.model_fields}


def train(instance: dg.DagsterInstance, domain: str, steps: int, assets: tuple[str, ...] = TRAINED) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("domain_finetune_job").get_subset(asset_selection={dg.AssetKey(a) for a in assets})
    ops = {"adapter_evaluation": {"config": QUICK_EVALUATION}}
    if "qlora_adapter" in assets:
        ops["qlora_adapter"] = {"config": {"max_steps": steps, "logging_steps": steps}}
    return job.execute_in_process(instance=instance, partition_key=domain, run_config={"ops": ops}, raise_on_error=False)


def register(instance: dg.DagsterInstance, config: dict | None = None) -> dg.ExecuteInProcessResult:
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("adapter_registry")})
    return job.execute_in_process(instance=instance, run_config={"ops": {"adapter_registry": {"config": config}}} if config else {},
                                  raise_on_error=False)


def latest(instance: dg.DagsterInstance, asset: str, domain: str | None = None) -> dict:
    record = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[domain] if domain else None),
                                             limit=1).records[0]
    return {"run_id": record.run_id, "tags": record.asset_materialization.tags,
            **{k: v.value for k, v in record.asset_materialization.metadata.items()}}


def history(registry: Path, domain: str) -> list[dict]:
    return [line for line in map(json.loads, (registry / "history.jsonl").read_text().splitlines()) if line["domain"] == domain]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LORALINE_LANDING_DIR", str(root / "landing"))
        env.setenv("LORALINE_ARTIFACTS_DIR", str(root / "artifacts"))
        env.setenv("LORALINE_REGISTRY_DIR", str(root / "registry"))
        env.delenv("LORALINE_BASE_MODEL", raising=False)
        seed_sample_domains(root / "landing", rows_per_domain=40)
        # Held at the gate: no adapter beats its base by 100 nats per token.
        (root / "landing" / "astronomy" / "domain.yaml").write_text("evaluation:\n  min_improvement: 100.0\n")
        with dg.instance_for_test() as instance:
            register_domains(instance, list(DOMAINS))
            assert defs.resolve_job_def("base_model_job").execute_in_process(instance=instance).success
            for domain in DOMAINS:
                assert train(instance, domain, 10).success or domain == "astronomy"
            first = register(instance)
            yield {"instance": instance, "root": root, "registry": root / "registry", "first": first}


def test_two_domains_promoted_and_the_held_one_stays_out(world) -> None:
    instance, registry, first = world["instance"], world["registry"], world["first"]
    assert first.success
    meta = latest(instance, "adapter_registry")
    assert meta["domains"] == 2
    assert {p.name for p in registry.iterdir() if p.is_symlink()} == {"support", "cooking"}
    base = latest(instance, "base_model")
    for domain in ("support", "cooking"):
        folder = registry / domain
        assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors", "manifest.json"]
        assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == base["path"]
        manifest = json.loads((folder / "manifest.json").read_text())
        adapter, evaluation = latest(instance, "qlora_adapter", domain), latest(instance, "adapter_evaluation", domain)
        assert manifest["domain"] == domain and manifest["base_fingerprint"] == base["fingerprint"]
        assert manifest["adapter_version"] == adapter["tags"]["dagster/data_version"] == evaluation["adapter_data_version"]
        assert manifest["eval_loss"] == evaluation["eval_loss_adapter"] and manifest["evaluation"]["eval_loss_base"] == evaluation["eval_loss_base"]
        assert manifest["run_id"] == adapter["run_id"] and manifest["data_versions"]["base_model"] == base["fingerprint"]
        assert folder.resolve().parent == registry / ".versions" / domain  # the link points at an immutable version folder
        assert history(registry, domain)[0]["action"] == "promoted"
    assert history(registry, "astronomy")[0]["action"] == "absent" and "adapter_beats_base" in history(registry, "astronomy")[0]["reason"]
    assert "| astronomy | absent |" in meta["registry"] and "| support | promoted |" in meta["registry"]
    registry_file = json.loads((registry / "registry.json").read_text())
    assert registry_file["base"]["fingerprint"] == base["fingerprint"] and set(registry_file["domains"]) == {"support", "cooking"}
    checks = {e.check_name: e for e in first.get_asset_check_evaluations()}
    assert checks["vllm_compatible"].passed and checks["same_base"].passed


def test_a_worse_retrain_keeps_the_promoted_adapter(world) -> None:
    instance, registry = world["instance"], world["registry"]
    before = (registry / "support").resolve()
    promoted_loss = json.loads((before / "manifest.json").read_text())["eval_loss"]
    retrain = train(instance, "support", 3)  # fewer steps: a new adapter, still better than the base, worse than 10 steps
    assert retrain.success
    evaluation = latest(instance, "adapter_evaluation", "support")
    assert evaluation["adapter_beats_base"] and evaluation["eval_loss_adapter"] > promoted_loss
    result = register(instance)
    assert result.success
    assert (registry / "support").resolve() == before
    last = history(registry, "support")[-1]
    assert last["action"] == "kept" and "worse than the promoted" in last["reason"]
    assert "| support | kept |" in latest(instance, "adapter_registry")["registry"]


def test_a_domain_passing_its_gate_later_is_promoted(world) -> None:
    instance, registry = world["instance"], world["registry"]
    (world["root"] / "landing" / "astronomy" / "domain.yaml").unlink()
    assert train(instance, "astronomy", 10, ("adapter_evaluation",)).success  # re-evaluated, adapter reused
    assert register(instance).success
    assert (registry / "astronomy" / "manifest.json").is_file()
    assert history(registry, "astronomy")[-1]["action"] == "promoted"


def test_vllm_compatible_blocks_a_rank_above_the_limit(world) -> None:
    result = register(world["instance"], {"max_lora_rank": 4})  # the adapters have rank 8
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    check = checks["vllm_compatible"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "support: rank 8 is above max_lora_rank 4" in check.description
