"""The whole chain for one domain, in process, on the built-in tiny model and a real Dagster instance."""

import json
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.registration import register_domains
from pipelines.samples import seed_sample_domains

# Short training keeps the suite fast; the tiny model still beats its random-init base clearly.
RUN_CONFIG = {"ops": {"qlora_adapter": {"config": {"max_steps": 30, "logging_steps": 10}}}}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("chain")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LORALINE_LANDING_DIR", str(root / "landing"))
        env.setenv("LORALINE_ARTIFACTS_DIR", str(root / "artifacts"))
        env.delenv("LORALINE_BASE_MODEL", raising=False)
        seed_sample_domains(root / "landing", rows_per_domain=120)
        with dg.instance_for_test() as instance:
            register_domains(instance, ["support"])
            base = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("base_model")})
            assert base.execute_in_process(instance=instance).success
            result = defs.resolve_job_def("domain_finetune_job").execute_in_process(
                instance=instance, partition_key="support", run_config=RUN_CONFIG, raise_on_error=False
            )
            yield {"result": result, "instance": instance, "root": root}


def metadata(chain: dict, asset: str) -> dict:
    records = chain["instance"].fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=["support"]), limit=1
    ).records
    assert records, f"{asset} was not materialized"
    return {key: value.value for key, value in records[0].asset_materialization.metadata.items()}


def base_model_dir(chain: dict) -> Path:
    record = chain["instance"].fetch_materializations(dg.AssetKey("base_model"), limit=1).records[0]
    return Path(record.asset_materialization.metadata["path"].value)


def test_every_step_succeeds_and_every_check_passes(chain: dict) -> None:
    result = chain["result"]
    assert result.success
    materialized = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert materialized == {"raw_corpus", "clean_corpus", "quarantined_rows", "training_dataset", "qlora_adapter", "adapter_evaluation", "merged_model",
                            "gguf_export"}
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} >= {
        "adapter_beats_base", "merge_matches_adapter", "gguf_matches_merged", "no_duplicates_left", "examples_supervised", "counts_reconcile"}
    assert all(e.passed for e in evaluations), [(e.check_name, e.description) for e in evaluations if not e.passed]


def test_broken_lines_are_quarantined_with_reasons_and_the_rest_trained(chain: dict) -> None:
    raw = metadata(chain, "raw_corpus")
    assert raw["rows_in"] == raw["rows_kept"] + raw["rows_quarantined"]
    assert (raw["rows_kept"], raw["rows_quarantined"]) == (120, 3)
    import polars as pl

    quarantine = pl.read_parquet(Path(raw["path"]) / "quarantine.parquet")
    assert quarantine["line"].to_list() == [121, 122, 123]
    reasons = " ".join(quarantine["reason"].to_list())
    assert "invalid JSON" in reasons and "'bot'" in reasons and "empty" in reasons
    rejected = metadata(chain, "quarantined_rows")
    shown = pl.read_parquet(Path(rejected["path"]) / "rejections.parquet").filter(pl.col("stage") == "read")
    assert shown["line"].to_list() == [121, 122, 123] and all(shown["snippet"].str.len_chars() > 0)
    clean = metadata(chain, "clean_corpus")
    filtered = clean["rows_filtered"]
    assert filtered == clean["filtered_near_duplicate"] and clean["rows_clean"] == 120 - filtered  # templated samples
    assert rejected["reconciliation"].startswith(f"123 rows in = {120 - filtered} kept + 3 quarantined + {filtered} filtered")


def test_adapter_beats_base_and_loads_with_peft(chain: dict) -> None:
    evaluation = metadata(chain, "adapter_evaluation")
    for key in ("eval_loss_base", "eval_loss_adapter", "perplexity_base", "perplexity_adapter"):
        assert isinstance(evaluation[key], float)
    assert evaluation["eval_loss_adapter"] < evaluation["eval_loss_base"] - 0.1

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter_dir = Path(metadata(chain, "qlora_adapter")["path"])
    assert (adapter_dir / "adapter_config.json").is_file() and (adapter_dir / "adapter_model.safetensors").is_file()
    base_dir = base_model_dir(chain)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir)
    assert model.peft_config["default"].r == 8


def test_merged_model_loads_and_matches_the_adapter(chain: dict) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged_dir = Path(metadata(chain, "merged_model")["path"])
    adapter_dir = Path(metadata(chain, "qlora_adapter")["path"])
    base_dir = base_model_dir(chain)
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "My router keeps dropping Wi-Fi."}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir)
    with torch.no_grad():
        difference = (merged(ids).logits - adapted(ids).logits).abs().max().item()
    assert difference < 1e-3
    assert metadata(chain, "merged_model")["max_abs_logit_diff"] < 1e-3


def test_model_card_carries_the_lineage(chain: dict) -> None:
    merged_dir = Path(metadata(chain, "merged_model")["path"])
    lineage = json.loads((merged_dir / "lineage.json").read_text())
    assert lineage["domain"] == "support"
    assert lineage["base_model"]["spec"] == "builtin:tiny-llama"
    first = chain["result"].get_asset_materialization_events()[0].step_materialization_data.materialization
    assert lineage["data_versions"]["raw_corpus"] == first.tags["dagster/data_version"]
    assert lineage["dagster_run_id"] == chain["result"].run_id
    assert lineage["training"]["max_steps"] == 30
    card = (merged_dir / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers") and "support" in card and lineage["base_model"]["fingerprint"] in card


def test_every_artifact_records_its_path(chain: dict) -> None:
    for asset in ("raw_corpus", "clean_corpus", "quarantined_rows", "training_dataset", "qlora_adapter", "adapter_evaluation", "merged_model"):
        path = Path(metadata(chain, asset)["path"])
        assert path.is_dir() and path.is_relative_to(chain["root"] / "artifacts" / asset / "support")
    leftovers = [p for p in (chain["root"] / "artifacts").rglob(".*staging*")]
    assert not leftovers


def test_adapter_trained_through_pipes_with_packing_and_a_plotted_loss_curve(chain: dict) -> None:
    adapter = metadata(chain, "qlora_adapter")
    assert adapter["launcher"] == "subprocess" and adapter["world_size"] == 1
    # The sample domain's examples are long and alike (550-890 tokens): one fills a block, so 'auto' batches by length.
    assert adapter["packing"] == "by_length" and 0.0 <= adapter["pad_share"] < 0.05
    for key in ("final_train_loss", "tokens_per_second", "pad_share", "peak_memory_mb", "duration_s"):
        assert isinstance(adapter[key], float), key
    assert adapter["loss_curve"].startswith("![loss curve](data:image/png;base64,iVBORw0KGgo")  # PNG magic
    assert [row.data["step"] for row in adapter["loss_table"].records] == [10, 20, 30]
    logs = [e.message for e in chain["instance"].all_logs(chain["result"].run_id) if e.step_key == "qlora_adapter"]
    assert any(line and line.startswith("step 30/30 loss") and "tok/s" in line for line in logs)


def test_the_gguf_export_holds_both_files_and_a_modelfile(chain: dict) -> None:
    meta = metadata(chain, "gguf_export")
    folder = Path(meta["path"])
    assert sorted(p.name for p in folder.iterdir()) == ["Modelfile", "export.json", "support-f16.gguf", "support-q8_0.gguf"]
    assert meta["quant_types"] == ["f16", "q8_0"] and meta["q8_0_size_bytes"] < meta["f16_size_bytes"]
    assert meta["relative_logit_diff"] < meta["parity_tolerance"] == 1e-2
    assert meta["modelfile"] == str(folder / "Modelfile") and meta["modelfile_template"].startswith("derived")
    assert set(meta["reloaded_by_transformers"]) == {"f16", "q8_0"}


def test_the_gguf_answers_like_the_merged_model(chain: dict) -> None:
    """Through transformers' GGUF loader: the same chat tokens, logits within 1% of the largest."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, merged_dir = Path(metadata(chain, "gguf_export")["path"]), Path(metadata(chain, "merged_model")["path"])
    messages = [{"role": "user", "content": "My router keeps dropping Wi-Fi."}]
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file="support-f16.gguf")
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    assert ids.tolist()[0] == AutoTokenizer.from_pretrained(merged_dir).apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file="support-f16.gguf")
    with torch.no_grad():
        reference = AutoModelForCausalLM.from_pretrained(merged_dir)(ids).logits
        difference = (gguf_model(ids).logits - reference).abs().max().item()
    assert difference < 1e-2 * reference.abs().max().item()


def test_an_unchanged_merged_model_is_not_exported_twice(chain: dict) -> None:
    export_only = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("gguf_export")})
    again = export_only.execute_in_process(instance=chain["instance"], partition_key="support")
    assert metadata(chain, "gguf_export")["reused_from_run"] == chain["result"].run_id
    [evaluation] = again.get_asset_check_evaluations()
    assert evaluation.passed


def test_a_merge_that_fails_parity_is_not_published(chain: dict) -> None:
    """merge_matches_adapter is a gate, not a note: an unfaithful merge never becomes the latest merged model."""
    instance, before = chain["instance"], metadata(chain, "merged_model")
    merge_only = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("merged_model")})
    strict = {"ops": {"merged_model": {"config": {"parity_tolerance": 1e-9}}}}  # fp32 merges differ by ~1e-6
    result = merge_only.execute_in_process(instance=instance, partition_key="support", run_config=strict, raise_on_error=False)
    assert not result.success
    assert metadata(chain, "merged_model")["path"] == before["path"]  # the previous model stays the latest
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.user_failure_data.description
    assert "merge_matches_adapter failed" in failure and "not published" in failure and before["path"] in failure
    check = dg.AssetCheckKey(dg.AssetKey("merged_model"), "merge_matches_adapter")
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check])[check]
    assert record.run_id == result.run_id and record.status.value == "FAILED"
    evaluation = record.event.dagster_event.event_specific_data
    assert evaluation.partition == "support"
    unpublished = Path(evaluation.metadata["unpublished_path"].value)
    assert unpublished.parent.name == "unpublished" and (unpublished / "lineage.json").is_file()
