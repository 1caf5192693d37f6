"""Second and later runs: unchanged work is reused, new data makes exactly its chain stale,
domain.yaml settings apply to one domain, and a worse adapter never replaces a merged model."""

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from pipelines.definitions import defs
from pipelines.jobs import PER_DOMAIN_ASSETS
from pipelines.registration import register_domains
from pipelines.samples import seed_sample_domains

PER_DOMAIN = PER_DOMAIN_ASSETS
# Steps in order; clean_corpus and quarantined_rows come from one step.
STEPS = (("raw_corpus",), ("clean_corpus", "quarantined_rows"), ("training_dataset",), ("qlora_adapter",), ("adapter_evaluation",), ("merged_model",))
FAST = {"ops": {"qlora_adapter": {"config": {"max_steps": 10, "logging_steps": 5}}}}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("reruns")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LORALINE_LANDING_DIR", str(root / "landing"))
        env.setenv("LORALINE_ARTIFACTS_DIR", str(root / "artifacts"))
        seed_sample_domains(root / "landing", rows_per_domain=40)
        with dg.instance_for_test() as instance:
            register_domains(instance, ["support", "cooking"])
            assert defs.resolve_job_def("base_model_job").execute_in_process(instance=instance).success
            runs = {domain: run(instance, domain) for domain in ("support", "cooking")}
            assert all(r.success for r in runs.values())
            yield {"instance": instance, "landing": root / "landing", "first": runs}


def run(instance: dg.DagsterInstance, domain: str, selection: tuple[str, ...] = PER_DOMAIN) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("domain_finetune_job").get_subset(asset_selection={dg.AssetKey(a) for a in selection})
    return job.execute_in_process(instance=instance, partition_key=domain, run_config=FAST if "qlora_adapter" in selection else {}, raise_on_error=False)


def latest(instance: dg.DagsterInstance, asset: str, domain: str) -> dict:
    record = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[domain]), limit=1).records[0]
    return {"run_id": record.run_id, **{k: v.value for k, v in record.asset_materialization.metadata.items()}}


def staleness(instance: dg.DagsterInstance, domain: str) -> dict[str, StaleStatus]:
    resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
    return {asset: resolver.get_status(dg.AssetKey(asset), domain) for asset in PER_DOMAIN}


def test_a_run_over_unchanged_inputs_does_no_work(world) -> None:
    instance, first = world["instance"], world["first"]["support"]
    before = {asset: latest(instance, asset, "support") for asset in PER_DOMAIN}
    again = run(instance, "support")
    assert again.success
    for asset in PER_DOMAIN:
        now = latest(instance, asset, "support")
        assert now["run_id"] == again.run_id and now["reused_from_run"] == first.run_id, asset
        assert now["path"] == before[asset]["path"], asset
    assert all(e.passed for e in again.get_asset_check_evaluations())  # checks replayed, gate still open
    assert set(staleness(instance, "support").values()) == {StaleStatus.FRESH}


def test_domain_yaml_with_a_bad_key_fails_that_domain_naming_file_and_key(world) -> None:
    settings = world["landing"] / "support" / "domain.yaml"
    settings.write_text("training:\n  lora_rank: 8\n  lora_rnak: 4\n")
    try:
        result = run(world["instance"], "support")
        message = result.get_step_failure_events()[0].step_failure_data.error.message
        assert "domain 'support'" in message and str(settings) in message and "line 3" in message and "training.lora_rnak" in message
        assert run(world["instance"], "cooking", ("raw_corpus",)).success  # another domain is untouched
    finally:
        settings.unlink()


def test_worse_adapter_is_not_merged_and_the_previous_model_stays(world) -> None:
    instance = world["instance"]
    merged_before = latest(instance, "merged_model", "support")
    settings = world["landing"] / "support" / "domain.yaml"
    settings.write_text("evaluation:\n  min_improvement: 100.0\n")  # no adapter can pass this
    try:
        result = run(instance, "support")
    finally:
        settings.unlink()
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    gate = checks["adapter_beats_base"]
    assert not gate.passed and f"the previous merged model stays in place at {merged_before['path']}" in gate.description
    evaluation = latest(instance, "adapter_evaluation", "support")
    assert evaluation["run_id"] == result.run_id and evaluation["settings"]["min_improvement"] == 100.0
    assert evaluation["reused_from_run"] == "-"  # settings changed: evaluated again, adapter reused
    assert latest(instance, "qlora_adapter", "support")["run_id"] == result.run_id
    assert latest(instance, "merged_model", "support") == merged_before  # untouched

    direct = run(instance, "support", ("merged_model",))  # even asked directly, the gate holds
    message = direct.get_step_failure_events()[0].step_failure_data.error.message
    assert "did not beat its base" in message and merged_before["path"] in message


def test_new_data_makes_exactly_its_chain_stale_and_retrains_only_it(world) -> None:
    instance, landing = world["instance"], world["landing"]
    assert set(staleness(instance, "cooking").values()) == {StaleStatus.FRESH}
    extra = landing / "cooking" / "more.jsonl"
    answer = "Rest it for five minutes, loosely covered with foil, so the juices settle."
    extra.write_text(json.dumps({"instruction": "How long do I rest a steak?", "output": answer}) + "\n")
    os.utime(extra, (time.time() - 60,) * 2)
    adapter_before = latest(instance, "qlora_adapter", "cooking")
    # Dagster marks an asset stale when a direct input has a new data version; materializing the
    # stale steps passes new logical versions on, so staleness walks down exactly this chain.
    graph = defs.resolve_asset_graph()
    done: set[str] = set()
    for step in STEPS:
        assert run(instance, "cooking", step).success, step
        done.update(step)
        expected = {a for a in PER_DOMAIN if a not in done and {k.to_user_string() for k in graph.get(dg.AssetKey(a)).parent_keys} & done}
        status = staleness(instance, "cooking")
        assert {a for a, s in status.items() if s == StaleStatus.STALE} == expected, (step, str(status))
    assert run(instance, "cooking", ("gguf_export",)).success
    assert set(staleness(instance, "cooking").values()) == {StaleStatus.FRESH}
    support = staleness(instance, "support")
    assert all(support[a] == StaleStatus.FRESH for a in PER_DOMAIN[:4]), support  # cooking's file touched nothing there
    adapter_after = latest(instance, "qlora_adapter", "cooking")
    assert adapter_after["reused_from_run"] == "-" and adapter_after["path"] != adapter_before["path"]


def test_leaderboard_shows_every_domain_and_the_forgetting_matrix(world) -> None:
    instance = world["instance"]
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("domain_leaderboard")})
    assert job.execute_in_process(instance=instance).success
    board = instance.fetch_materializations(dg.AssetKey("domain_leaderboard"), limit=1).records[0].asset_materialization.metadata
    assert board["domains"].value == 2
    matrix = board["forgetting_matrix"].value
    assert "| cooking |" in matrix and "| support |" in matrix and "cooking | support" in matrix
    data = json.loads((Path(board["path"].value) / "leaderboard.json").read_text())
    assert set(data["delta"]) == {"cooking", "support"} and set(data["delta"]["cooking"]) == {"cooking", "support"}
    assert data["delta"]["cooking"]["cooking"] < 0  # each adapter beats the base on its own domain
