"""The Dagster instance on PostgreSQL (deploy/dagster.yaml) against a real server on 127.0.0.1:
the landing sensor registers domains and requests their runs, one chain runs in this process and
two more domains are ingested by two `dagster asset materialize` processes at the same time, and
everything lands in the database; a re-run reuses every step, and the `accelerator` pool's single
slot lives in the database. Tests run in file order on one module-scoped world."""

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.jobs import PER_DOMAIN_ASSETS
from pipelines.samples import SAMPLE_DOMAINS, seed_sample_domains
from pipelines.sensors import landing_zone_sensor
from resources.base_model_source import BaseModelSource
from resources.landing import LandingZone

REPO = Path(__file__).resolve().parents[2]
DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"
# The smallest chain the pipeline tests run: a few steps of training, no sample generations and no
# task evaluation. As domain.yaml (data, not run config) so the sensor's runs and the CLI's use it too.
FAST_SETTINGS = "training: {max_steps: 4, logging_steps: 2}\nevaluation: {generations: 0, task_examples: 0}\n"
IN_PROCESS, IN_PARALLEL = "support", ("cooking", "astronomy")
# What the two parallel processes materialize: every step before training (the CPU-heavy part).
SUBPROCESS_ASSETS = ("raw_corpus", "clean_corpus", "quarantined_rows", "training_dataset")
PARALLEL_TIMEOUT_S = 180
DRIVER_PIN = ("dagster-postgres builds a plain `postgresql://` URL and leaves the driver to SQLAlchemy: 2.0 picks psycopg2; "
              "2.1 picks psycopg 3, whose event writes fail at `NOTIFY run_events, $1`. Keep the `postgres` extra's pins "
              "(psycopg2-binary, sqlalchemy<2.1) until a psycopg 3 instance passes this file.")


def instance_env(server, db: str, root: Path) -> dict[str, str]:
    """What a machine of the team sets: deploy/dagster.yaml's variables and loraline's folders."""
    return {**server.env_for(db), "DAGSTER_HOME": str(root / "home"), "LORALINE_LANDING_DIR": str(root / "landing"),
            "LORALINE_ARTIFACTS_DIR": str(root / "artifacts"), "LORALINE_COMPUTE_LOGS_DIR": str(root / "compute_logs")}


class Sensor:
    """Ticks the real landing sensor and applies its partition requests, as the daemon would."""

    def __init__(self, instance: dg.DagsterInstance, landing: Path) -> None:
        self.instance, self.cursor = instance, None
        # Seeded files are seconds old: no settling time, or the sensor would (rightly) wait 30 s.
        self.resources = {"landing": LandingZone(root=str(landing), settle_seconds=0), "base_model_source": BaseModelSource()}

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.resources, definitions=defs)
        result = landing_zone_sensor(context)
        for request in result.dynamic_partitions_requests:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        self.cursor = result.cursor
        return result


def run_tags(request: dg.RunRequest) -> dict[str, str]:
    """The tags the daemon gives a sensor's run (run key, sensor, partition)."""
    tags = {**request.tags, "dagster/run_key": request.run_key, "dagster/sensor_name": landing_zone_sensor.name}
    return {**tags, "dagster/partition": request.partition_key} if request.partition_key else tags


def execute(instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(request.job_name)
    return job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=run_tags(request), raise_on_error=False)


def rows(server, db: str, query: str, *args) -> list[tuple]:
    """Ask the database itself, not Dagster: the events are really in PostgreSQL."""
    with contextlib.closing(server.connect(db)) as connection, connection.cursor() as cursor:
        cursor.execute(query, args)
        return cursor.fetchall()


def materialized(server, db: str, run_id: str) -> set[str]:
    found = rows(server, db, "SELECT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'", run_id)
    return {dg.AssetKey.from_db_string(key).to_user_string() for (key,) in found}


@pytest.fixture(scope="module")
def world(postgres, tmp_path_factory: pytest.TempPathFactory):
    """Three sample domains landed; the sensor registers them and asks for base_model first, then
    for a run per domain; base_model and support's chain run here (as the daemon would run them,
    with the requests' run keys), cooking and astronomy are left to test_two_processes_at_once."""
    root = tmp_path_factory.mktemp("pg_instance")
    db = postgres.create_database("loraline_chain")
    env = instance_env(postgres, db, root)
    (root / "home").mkdir()
    shutil.copyfile(DEPLOY_YAML, root / "home" / "dagster.yaml")
    seed_sample_domains(root / "landing", rows_per_domain=40)
    for domain in SAMPLE_DOMAINS:
        (root / "landing" / domain / "domain.yaml").write_text(FAST_SETTINGS)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv("LORALINE_BASE_MODEL", raising=False)
        with dg.DagsterInstance.from_config(str(root / "home")) as instance:
            sensor = Sensor(instance, root / "landing")
            first = sensor.tick()
            base = execute(instance, first.run_requests[0])
            second = sensor.tick()
            requests = {r.partition_key: r for r in second.run_requests}
            chain = execute(instance, requests[IN_PROCESS])
            yield {"instance": instance, "server": postgres, "db": db, "env": env, "root": root, "sensor": sensor,
                   "first": first, "second": second, "requests": requests, "base": base, "chain": chain}


def test_the_deploy_config_loads_on_postgres_with_its_queue_pool_and_logs(world) -> None:
    instance = world["instance"]
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    concurrency = instance.get_concurrency_config()
    assert concurrency.run_queue_config.max_concurrent_runs == 4
    assert concurrency.pool_config.default_pool_limit == 1 and concurrency.pool_config.pool_granularity.value == "op"
    assert Path(instance.compute_log_manager._base_dir) == world["root"] / "compute_logs"
    assert not instance.telemetry_enabled and instance.run_monitoring_enabled and not instance.run_retries_enabled


def test_an_unset_variable_fails_the_instance_naming_it(world, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_PG_HOST")
    with pytest.raises(dg.DagsterInvalidConfigError, match="DAGSTER_PG_HOST"):
        dg.DagsterInstance.from_config(str(world["root"] / "home"))


def test_the_instance_talks_to_postgres_through_psycopg2(world) -> None:
    instance = world["instance"]
    for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
        engine = getattr(storage, "_engine", None)
        assert engine is not None, f"{type(storage).__name__} no longer exposes its SQLAlchemy engine as _engine: find the driver anew. {DRIVER_PIN}"
        assert engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg2", (
            f"{type(storage).__name__} uses {engine.dialect.name}+{engine.dialect.driver}. {DRIVER_PIN}")


def test_the_sensor_registers_every_domain_and_asks_for_the_base_model_first(world) -> None:
    first, second = world["first"], world["second"]
    assert [r.job_name for r in first.run_requests] == ["base_model_job"] and world["base"].success
    assert sorted(first.dynamic_partitions_requests[0].partition_keys) == sorted(SAMPLE_DOMAINS)
    stored = rows(world["server"], world["db"], "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'domain'")
    assert sorted(key for (key,) in stored) == sorted(SAMPLE_DOMAINS)
    assert {r.job_name for r in second.run_requests} == {"domain_finetune_job"} and set(world["requests"]) == set(SAMPLE_DOMAINS)


def test_the_chain_run_and_its_materializations_are_in_postgres(world) -> None:
    chain, server, db = world["chain"], world["server"], world["db"]
    assert chain.success
    assert materialized(server, db, chain.run_id) == set(PER_DOMAIN_ASSETS)
    [(status, tags)] = rows(server, db, "SELECT status, run_body::json->'tags' FROM runs WHERE run_id = %s", chain.run_id)
    assert status == "SUCCESS" and tags["dagster/partition"] == IN_PROCESS
    assert tags["dagster/run_key"] == world["requests"][IN_PROCESS].run_key
    partitions = rows(server, db, "SELECT DISTINCT partition FROM event_logs WHERE run_id = %s AND partition IS NOT NULL", chain.run_id)
    assert partitions == [(IN_PROCESS,)]
    checks = chain.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [(c.check_name, c.description) for c in checks if not c.passed]
    # What the UI shows comes from the same place: the instance reads it back from the database.
    record = world["instance"].fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("merged_model"), asset_partitions=[IN_PROCESS]),
                                                      limit=1).records[0]
    assert record.run_id == chain.run_id and Path(record.asset_materialization.metadata["path"].value).is_dir()
    # Step logs went to the compute log folder deploy/dagster.yaml names, not under DAGSTER_HOME.
    assert any((world["root"] / "compute_logs").rglob("*")), "no compute logs written"


def test_a_rerun_over_unchanged_inputs_reuses_every_step(world) -> None:
    instance, first = world["instance"], world["chain"]
    again = defs.resolve_job_def("domain_finetune_job").execute_in_process(instance=instance, partition_key=IN_PROCESS, raise_on_error=False)
    assert again.success
    for asset in PER_DOMAIN_ASSETS:
        record = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[IN_PROCESS]), limit=1).records[0]
        reused = record.asset_materialization.metadata["reused_from_run"].value
        assert (record.run_id, reused) == (again.run_id, first.run_id), asset


def test_the_accelerator_pool_holds_one_step_at_a_time_in_postgres(world) -> None:
    """The chain's training created the pool with deploy/dagster.yaml's default limit; its slots are
    rows every run worker claims in the shared database, so a second claimant waits."""
    storage = world["instance"].event_log_storage
    info = storage.get_concurrency_info("accelerator")
    assert (info.slot_count, info.active_slot_count) == (1, 0)  # one slot, freed after the chain
    [(limit,)] = rows(world["server"], world["db"], "SELECT \"limit\" FROM concurrency_limits WHERE concurrency_key = 'accelerator'")
    assert limit == 1  # from default_limit: nobody set it by hand
    training = storage.claim_concurrency_slot("accelerator", "worker-a", "qlora_adapter")
    try:
        assert training.is_claimed
        assert not storage.claim_concurrency_slot("accelerator", "worker-b", "qlora_adapter").is_claimed  # waits its turn
    finally:
        storage.free_concurrency_slot_for_step("worker-a", "qlora_adapter")
    assert storage.claim_concurrency_slot("accelerator", "worker-b", "qlora_adapter").is_claimed
    storage.free_concurrency_slots_for_run("worker-b")
    assert storage.get_concurrency_info("accelerator").active_slot_count == 0


def test_the_next_tick_asks_nothing_new(world) -> None:
    """support's run succeeded: nothing for it. cooking and astronomy never ran (the test below runs
    their first steps by hand): asked again under the same run keys, which the daemon drops as seen."""
    result = world["sensor"].tick()
    again = {r.partition_key: r.run_key for r in result.run_requests}
    assert IN_PROCESS not in again
    assert all(again[d] == world["requests"][d].run_key for d in again), again


def test_two_processes_at_once_both_land_their_events(world) -> None:
    """cooking and astronomy in two `dagster asset materialize` processes started together, sharing
    one DAGSTER_HOME (deploy/dagster.yaml): both runs succeed, overlap in time, and each domain's
    materializations are in the database. Ingest to tokenized dataset: the database sees the same
    writes as from a whole chain, at a fraction of the CPU."""
    server, db = world["server"], world["db"]
    env = {**os.environ, **world["env"]}
    processes = {}
    for domain in IN_PARALLEL:
        command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "pipelines.definitions",
                   "--select", ",".join(SUBPROCESS_ASSETS), "--partition", domain]
        log = open(world["root"] / f"{domain}.log", "w")
        processes[domain] = (subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT), log)
    deadline = time.monotonic() + PARALLEL_TIMEOUT_S
    try:
        for process, _ in processes.values():
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for process, log in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    for domain, (process, _) in processes.items():
        assert process.returncode == 0, f"{domain}: exit {process.returncode}\n{(world['root'] / f'{domain}.log').read_text()[-3000:]}"

    spans = {}
    for domain in IN_PARALLEL:
        found = rows(server, db, "SELECT r.run_id, r.status FROM runs r JOIN run_tags t ON t.run_id = r.run_id "
                     "WHERE t.key = 'dagster/partition' AND t.value = %s", domain)
        assert len(found) == 1 and found[0][1] == "SUCCESS", (domain, found)
        run_id = found[0][0]
        assert materialized(server, db, run_id) == set(SUBPROCESS_ASSETS), domain
        [(started, ended)] = rows(server, db, "SELECT start_time, end_time FROM runs WHERE run_id = %s", run_id)
        spans[domain] = (started, ended)
    (a_start, a_end), (b_start, b_end) = spans.values()
    assert a_start < b_end and b_start < a_end, f"the two runs did not overlap in time: {spans}"
