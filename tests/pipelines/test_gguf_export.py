"""`gguf_export` after a short chain, on the built-in tiny model and a real Dagster instance: the merged
model as f16 and q8_0 GGUF files with a Modelfile, its blocking check passed, and the f16 file, loaded
through transformers' GGUF loader, answering with the merged model's logits."""

from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.registration import register_domains
from pipelines.samples import seed_sample_domains

RUN_CONFIG = {"ops": {"qlora_adapter": {"config": {"max_steps": 20, "logging_steps": 10}}}}


def _export(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("gguf_export")})
    return job.execute_in_process(instance=instance, partition_key="support", raise_on_error=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("gguf_chain")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LORALINE_LANDING_DIR", str(root / "landing"))
        env.setenv("LORALINE_ARTIFACTS_DIR", str(root / "artifacts"))
        env.delenv("LORALINE_BASE_MODEL", raising=False)
        seed_sample_domains(root / "landing", rows_per_domain=60)
        with dg.instance_for_test() as instance:
            register_domains(instance, ["support"])
            base = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("base_model")})
            assert base.execute_in_process(instance=instance).success
            chain = defs.resolve_job_def("domain_finetune_job").execute_in_process(
                instance=instance, partition_key="support", run_config=RUN_CONFIG)
            assert chain.success
            yield {"instance": instance, "first": _export(instance), "again": _export(instance)}


def _metadata(instance: dg.DagsterInstance, asset: str) -> dict:
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=["support"]), limit=1).records[0]
    return {key: value.value for key, value in record.asset_materialization.metadata.items()}


def test_export_materializes_files_and_passes_its_blocking_check(exported: dict) -> None:
    result = exported["first"]
    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "gguf_matches_merged" and evaluation.passed, evaluation.description
    meta = _metadata(exported["instance"], "gguf_export")
    folder = Path(meta["path"])
    assert sorted(p.name for p in folder.iterdir()) == ["Modelfile", "export.json", "support-f16.gguf", "support-q8_0.gguf"]
    assert meta["quant_types"] == ["f16", "q8_0"] and meta["q8_0_size_bytes"] < meta["f16_size_bytes"]
    assert meta["relative_logit_diff"] < meta["parity_tolerance"] == 1e-2
    assert meta["modelfile"] == str(folder / "Modelfile") and meta["modelfile_template"].startswith("derived")
    assert set(meta["reloaded_by_transformers"]) == {"f16", "q8_0"}


def test_the_gguf_answers_like_the_merged_model(exported: dict) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(_metadata(exported["instance"], "gguf_export")["path"])
    merged_dir = Path(_metadata(exported["instance"], "merged_model")["path"])
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file="support-f16.gguf")
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "My router keeps dropping Wi-Fi."}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]
    assert ids.tolist()[0] == AutoTokenizer.from_pretrained(merged_dir).apply_chat_template(
        [{"role": "user", "content": "My router keeps dropping Wi-Fi."}], add_generation_prompt=True, return_dict=True)["input_ids"]
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file="support-f16.gguf")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    with torch.no_grad():
        reference = merged(ids).logits
        difference = (gguf_model(ids).logits - reference).abs().max().item()
    assert difference < 1e-2 * reference.abs().max().item()


def test_an_unchanged_merged_model_is_not_exported_twice(exported: dict) -> None:
    assert exported["again"].success
    meta = _metadata(exported["instance"], "gguf_export")
    assert meta["reused_from_run"] == exported["first"].run_id
    [evaluation] = exported["again"].get_asset_check_evaluations()
    assert evaluation.passed
