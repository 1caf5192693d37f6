"""A domain full of hostile files goes through the real job: every bad row is quarantined with a
reason naming its file and line, the counts reconcile, and the domain trains on what is left."""

import codecs
import json
import random
from pathlib import Path

import dagster as dg
import polars as pl

from pipelines.definitions import defs
from pipelines.registration import register_domains

WORDS = "amber basalt cobalt dune ember fjord garnet harbor indigo jasper kelp lagoon mesa nectar onyx".split()


def good_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [json.dumps({"text": " ".join(rng.choice(WORDS) for _ in range(30))}) for _ in range(n)]


def hostile_domain(folder: Path, good: int) -> dict[str, int]:
    """Writes the hostile files and returns how many bad rows each should quarantine."""
    folder.mkdir(parents=True)
    lines = good_lines(good, 1)
    (folder / "main.jsonl").write_text("\n".join(lines[:good // 2] + ['{"text": "unterminated', '{"text": 42}',
                                                                       '{"messages": [{"content": "no role"}]}']) + "\n")
    (folder / "bom and spaces é.jsonl").write_bytes(codecs.BOM_UTF8 + "\r\n".join(lines[good // 2:good * 3 // 4]).encode() + b"\r\n")
    (folder / "utf16.jsonl").write_bytes(codecs.BOM_UTF16_LE + "\n".join(lines[good * 3 // 4:]).encode("utf-16-le"))
    (folder / "bad_bytes.jsonl").write_bytes(b'{"text": "caf\xe9 latin-1 byte in a utf-8 file"}\n')
    (folder / "nul.jsonl").write_bytes(b'{"text": "a NUL \x00 inside"}\n')
    (folder / "deep.json").write_text("[" * 5000 + "]" * 5000)
    (folder / "quoted.csv").write_text('text\n"a quoted\nnewline inside a csv cell that is long enough"\n')
    pl.DataFrame({"body": ["wrong column"]}).write_parquet(folder / "schema.parquet")
    (folder / "empty.jsonl").write_text("")
    (folder / "outside.jsonl").symlink_to("/etc/hostname")
    return {"main.jsonl": 3, "bad_bytes.jsonl": 1, "nul.jsonl": 1, "deep.json": 1, "schema.parquet": 1, "outside.jsonl": 1}


def run(domain: str) -> tuple[dg.ExecuteInProcessResult, list[str]]:
    """The domain's job after the base model; returns the result and the run's log messages."""
    with dg.instance_for_test() as instance:
        register_domains(instance, [domain])
        base = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("base_model")})
        assert base.execute_in_process(instance=instance).success
        result = defs.resolve_job_def("domain_finetune_job").execute_in_process(
            instance=instance, partition_key=domain, raise_on_error=False,
            run_config={"ops": {"qlora_adapter": {"config": {"max_steps": 2}}}},
        )
        return result, [entry.user_message for entry in instance.all_logs(result.run_id)]


def test_hostile_domain_quarantines_with_reasons_reconciles_and_trains(landing: Path) -> None:
    expected = hostile_domain(landing / "hostile", good=40)
    result, _ = run("hostile")
    materialized = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
    assert {"raw_corpus", "clean_corpus", "quarantined_rows", "training_dataset", "qlora_adapter"} <= set(materialized)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["counts_reconcile"].passed and checks["most_rows_readable"].passed
    rejections = pl.read_parquet(Path(materialized["quarantined_rows"].materialization.metadata["path"].value) / "rejections.parquet")
    read = rejections.filter(pl.col("stage") == "read")
    assert dict(read.group_by("source_file").len().iter_rows()) == expected, read.select("source_file", "line", "reason").rows()
    assert read["reason"].str.len_chars().min() > 10  # a reason, not a code
    clean_meta = materialized["clean_corpus"].materialization.metadata
    assert clean_meta["rows_clean"].value == 41  # the good rows (BOM, CRLF and UTF-16 ones too) and the quoted csv cell


def test_mostly_unreadable_domain_stops_at_the_readability_check_naming_the_domain(landing: Path) -> None:
    folder = landing / "garbled"
    folder.mkdir()
    (folder / "rows.jsonl").write_text("\n".join(good_lines(20, 2) + ["not json"] * 25) + "\n")
    result, logs = run("garbled")
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    readable = checks["most_rows_readable"]
    assert not readable.passed and "25 of 45 rows (55.6%)" in readable.description
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "training_dataset" not in materialized and "quarantined_rows" in materialized
    assert any("domain 'garbled'" in line and "most_rows_readable failed" in line for line in logs)


def test_a_domain_too_small_for_one_batch_stops_naming_the_domain_without_a_retry(landing: Path) -> None:
    folder = landing / "small"
    folder.mkdir()
    (folder / "rows.jsonl").write_text("\n".join(good_lines(40, 3)) + "\n")
    with dg.instance_for_test() as instance:
        register_domains(instance, ["small"])
        base = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("base_model")})
        assert base.execute_in_process(instance=instance).success
        result = defs.resolve_job_def("domain_finetune_job").execute_in_process(
            instance=instance, partition_key="small", raise_on_error=False,
            run_config={"ops": {"qlora_adapter": {"config": {"batch_size": 64}}}},
        )
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["qlora_adapter"]
    message = failures[0].step_failure_data.error.message
    assert "domain 'small': training stopped: DatasetTooSmall:" in message and "fewer than one batch of 64" in message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]  # deterministic: not retried
