"""domain_leaderboard on a real Dagster instance: three domains trained on the built-in tiny model;
the first board computes only the off-diagonal cells (the diagonal and the base row are
adapter_evaluation's numbers); after one domain's data changes and its chain runs again, the next
board computes only that domain's row and column, and every other number is the same."""

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.registration import register_domains
from pipelines.samples import seed_sample_domains

DOMAINS = ("astronomy", "cooking", "support")
CHAIN = ("raw_corpus", "clean_corpus", "quarantined_rows", "training_dataset", "qlora_adapter", "adapter_evaluation")
FAST = {"ops": {"qlora_adapter": {"config": {"max_steps": 5, "logging_steps": 5}},
                "adapter_evaluation": {"config": {"generations": 0, "task_examples": 0}}}}


def train(instance: dg.DagsterInstance, domain: str) -> None:
    job = defs.resolve_job_def("domain_finetune_job").get_subset(asset_selection={dg.AssetKey(a) for a in CHAIN})
    assert job.execute_in_process(instance=instance, partition_key=domain, run_config=FAST).success


def board(instance: dg.DagsterInstance) -> tuple[dict, dict]:
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("domain_leaderboard")})
    assert job.execute_in_process(instance=instance).success
    record = instance.fetch_materializations(dg.AssetKey("domain_leaderboard"), limit=1).records[0]
    meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    return meta, json.loads((Path(meta["path"]) / "leaderboard.json").read_text())


def evaluation(instance: dg.DagsterInstance, domain: str) -> dict:
    record = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("adapter_evaluation"), asset_partitions=[domain]), limit=1).records[0]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("board")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LORALINE_LANDING_DIR", str(root / "landing"))
        env.setenv("LORALINE_ARTIFACTS_DIR", str(root / "artifacts"))
        seed_sample_domains(root / "landing", rows_per_domain=40)
        with dg.instance_for_test() as instance:
            register_domains(instance, list(DOMAINS))
            assert defs.resolve_job_def("base_model_job").execute_in_process(instance=instance).success
            for domain in DOMAINS:
                train(instance, domain)
            yield {"instance": instance, "landing": root / "landing"}


def test_only_the_changed_domains_row_and_column_are_computed_again(world) -> None:
    instance, n = world["instance"], len(DOMAINS)
    first, first_numbers = board(instance)
    assert first["domains"] == n
    # The diagonal and the base row are adapter_evaluation's own numbers; N(N-1) cells are computed.
    assert (first["cells_computed"], first["cells_reused"], first["cells_from_evaluation"]) == (n * (n - 1), 0, 2 * n)
    for domain in DOMAINS:
        assert first_numbers["loss"][domain][domain] == evaluation(instance, domain)["eval_loss_adapter"]
        assert first_numbers["base_loss"][domain] == evaluation(instance, domain)["eval_loss_base"]

    again, _ = board(instance)  # nothing changed: nothing computed
    assert (again["cells_computed"], again["cells_reused"], again["cells_from_evaluation"]) == (0, n * (n - 1), 2 * n)

    extra = world["landing"] / "cooking" / "more.jsonl"
    extra.write_text(json.dumps({"instruction": "How long do I rest a steak?", "output": "Five minutes, loosely covered with foil."}) + "\n")
    os.utime(extra, (time.time() - 60,) * 2)
    train(instance, "cooking")  # new data: a new eval split and a new adapter for cooking
    second, second_numbers = board(instance)
    # Cooking's row and column off the diagonal: 2(N-1) forward passes; with its diagonal cell and its
    # base cell (both from its new evaluation) that is the 2N-1 cells of the row and column, plus one.
    assert second["cells_computed"] == 2 * (n - 1)
    assert sorted(second["computed_cells"]) == sorted([f"cooking on {d}" for d in DOMAINS if d != "cooking"]
                                                      + [f"{d} on cooking" for d in DOMAINS if d != "cooking"])
    assert (second["cells_reused"], second["cells_from_evaluation"]) == ((n - 1) * (n - 2), 2 * n)
    others = [d for d in DOMAINS if d != "cooking"]
    for adapter in others:
        assert second_numbers["base_loss"][adapter] == first_numbers["base_loss"][adapter]
        for evaluated in others:
            assert second_numbers["loss"][adapter][evaluated] == first_numbers["loss"][adapter][evaluated]
    assert second_numbers["loss"]["cooking"]["cooking"] == evaluation(instance, "cooking")["eval_loss_adapter"]
    assert second_numbers["loss"]["cooking"]["astronomy"] != first_numbers["loss"]["cooking"]["astronomy"]  # a new adapter
