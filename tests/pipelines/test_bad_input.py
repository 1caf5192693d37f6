"""Bad input through the real job: clear errors that name the domain, and nothing runs past a failed gate."""

import json
from pathlib import Path

import dagster as dg
import pytest

from assets.common.domains import InvalidDomainKey
from pipelines.definitions import defs
from pipelines.registration import register_domains
from resources.landing import LandingZone


def run_domain(domain: str) -> tuple[dg.ExecuteInProcessResult, dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        register_domains(instance, [domain])
        result = defs.resolve_job_def("domain_finetune_job").execute_in_process(
            instance=instance, partition_key=domain, raise_on_error=False
        )
        return result, instance


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    failures = result.get_step_failure_events()
    assert failures, "expected a failed step"
    return failures[0].step_failure_data.error.message


def test_domain_with_nothing_usable_stops_with_its_name(landing: Path) -> None:
    (landing / "legal").mkdir()
    (landing / "legal" / "broken.jsonl").write_text('{"text": ""}\n{"nope": 1}\nnot json\n')
    result, _ = run_domain("legal")
    assert not result.success
    message = failure_message(result)
    assert "domain 'legal'" in message and "all 3 rows were quarantined" in message
    assert "quarantine.parquet" in message


def test_missing_domain_folder_says_so(landing: Path) -> None:
    result, _ = run_domain("ghost")
    message = failure_message(result)
    assert "domain 'ghost'" in message and "ghost" in message


def test_empty_domain_folder_says_so(landing: Path) -> None:
    (landing / "empty").mkdir()
    message = failure_message(run_domain("empty")[0])
    assert "domain 'empty'" in message and "no data files" in message


def test_too_few_rows_fail_the_data_check_and_nothing_trains(landing: Path) -> None:
    (landing / "tiny").mkdir()
    topics = ("tides and the moon", "baking sourdough bread", "tuning a violin", "pruning apple trees", "knots for sailing")
    rows = [{"text": f"A short but valid document about {topic}."} for topic in topics]
    (landing / "tiny" / "docs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result, _ = run_domain("tiny")
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["enough_rows_to_train"].passed
    assert "expect_table_row_count_to_be_between" in checks["enough_rows_to_train"].description
    assert "(table, min_value=16): observed 5" in checks["enough_rows_to_train"].description
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"raw_corpus", "clean_corpus", "quarantined_rows"}  # the gate skipped tokenization and training
    rejected = {e.check_name: e for e in result.get_asset_check_evaluations()}["counts_reconcile"]
    assert rejected.passed and rejected.description == (
        "5 rows in = 5 kept + 0 quarantined + 0 filtered; rows in: records counted in the landed files, independently of the readers")


@pytest.mark.parametrize("key", ["Legal", "../etc", "a b", "", "-lead", "x" * 64, "café"])
def test_invalid_domain_keys_are_refused_before_touching_disk(landing: Path, key: str) -> None:
    with dg.instance_for_test() as instance:
        with pytest.raises(InvalidDomainKey, match="invalid domain key"):
            register_domains(instance, ["good", key])
        assert instance.get_dynamic_partitions("domain") == []  # nothing registered, not even "good"
    with pytest.raises(InvalidDomainKey):
        LandingZone().domain_dir(key)
    assert list(landing.iterdir()) == []


def test_invalid_folder_names_are_reported_not_registered(landing: Path) -> None:
    for name in ("news", "Bad Name", ".hidden"):
        (landing / name).mkdir()
    assert LandingZone().domain_folders() == (["news"], ["Bad Name"])


def test_a_later_run_cannot_build_on_data_that_failed_its_checks(landing: Path) -> None:
    (landing / "tiny").mkdir()
    (landing / "tiny" / "docs.jsonl").write_text("".join(json.dumps({"text": f"valid document {i} with words"}) + "\n" for i in range(5)))
    job = defs.resolve_job_def("domain_finetune_job")
    with dg.instance_for_test() as instance:
        register_domains(instance, ["tiny"])
        job.execute_in_process(instance=instance, partition_key="tiny", raise_on_error=False)  # stopped at the checks
        alone = job.get_subset(asset_selection={dg.AssetKey("training_dataset")})
        result = alone.execute_in_process(instance=instance, partition_key="tiny", raise_on_error=False)
        message = failure_message(result)
        assert "domain 'tiny': clean_corpus failed its blocking checks" in message and "enough_rows_to_train" in message
