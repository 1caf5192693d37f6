"""The landing sensor against a real Dagster instance: exactly the runs a data engineer expects,
retries after failures, a re-run after a revert, and landings that fight back."""

import json
import logging
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType
from hostile_paths import bury_unlistable_folder

from assets.corpora.landing_scan import landing_fingerprint
from pipelines.definitions import defs
from pipelines.sensors import landing_zone_sensor
from resources.base_model_source import BaseModelSource
from resources.landing import LandingZone

MiB = 1024 * 1024


def land(root: Path, domain: str, name: str, rows: int, age_s: float = 3600, word: str = "document") -> None:
    path = root / domain / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": f"{domain} {word} {i} long enough to keep"}) + "\n" for i in range(rows)))
    os.utime(path, (time.time() - age_s,) * 2)


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelname, record.getMessage()))


class Sensor:
    """Ticks the real sensor and does what the daemon does with its result: applies the partition
    requests and creates a run (not started yet) per run request whose run key is new (Dagster's dedup)."""

    def __init__(self, instance: dg.DagsterInstance, landing: Path, **settings) -> None:
        self.instance, self.cursor, self.log = instance, None, Lines()
        self.resources = {"landing": LandingZone(root=str(landing), **settings), "base_model_source": BaseModelSource()}

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.resources, definitions=defs)
        self.log.lines.clear()
        context.log.addHandler(self.log)
        result = landing_zone_sensor(context)
        for request in result.dynamic_partitions_requests:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        for request in result.run_requests:
            if not self.instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": request.run_key})):
                tags = {**request.tags, "dagster/run_key": request.run_key, "dagster/sensor_name": "landing_zone_sensor"}
                if request.partition_key:
                    tags["dagster/partition"] = request.partition_key
                self.instance.create_run_for_job(defs.resolve_job_def(request.job_name), tags=tags)  # NOT_STARTED: created, not yet picked up
        self.cursor = result.cursor
        return result

    def said(self, text: str, level: str | None = None) -> bool:
        return any(text in line and level in (None, lvl) for lvl, line in self.log.lines)


def finish(instance: dg.DagsterInstance, run_key: str, ok: bool) -> None:
    """End the queued run of this run key as a run worker would: success, or a failure (OOM...)."""
    [run] = instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": run_key}))
    if ok:
        instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name), run.run_id)
    else:
        instance.report_run_failed(run, "killed: out of memory")
    assert instance.get_run_by_id(run.run_id).status == (dg.DagsterRunStatus.SUCCESS if ok else dg.DagsterRunStatus.FAILURE)


def ingested(instance: dg.DagsterInstance, domain: str, fingerprint: str) -> None:
    """What a successful raw_corpus records (the chain itself is tested in test_chain.py)."""
    instance.report_runless_asset_event(dg.AssetMaterialization("raw_corpus", partition=domain, metadata={"landing_fingerprint": fingerprint}))


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LORALINE_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    (tmp_path / "landing").mkdir()
    with dg.instance_for_test() as instance:
        yield instance, tmp_path / "landing", Sensor(instance, tmp_path / "landing")


def with_base_model(instance: dg.DagsterInstance) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization("base_model"))


def domain_runs(result: dg.SensorResult) -> dict[str, str]:
    return {r.partition_key: r.run_key for r in result.run_requests if r.job_name == "domain_finetune_job"}


def test_idle_landing_launches_nothing(world) -> None:
    _, _, sensor = world
    for _ in range(3):
        assert sensor.tick().run_requests == []


def test_base_model_is_requested_first_then_the_new_domain(world) -> None:
    instance, landing, sensor = world
    land(landing, "news", "a.jsonl", 20)
    first = sensor.tick()
    assert [r.job_name for r in first.run_requests] == ["base_model_job"]
    assert instance.get_dynamic_partitions("domain") == ["news"]
    assert sensor.tick().run_requests == []  # the base model build is queued: nothing more
    [queued] = instance.get_runs(dg.RunsFilter(job_name="base_model_job"))
    instance.delete_run(queued.run_id)  # run it for real instead
    base = defs.resolve_job_def("base_model_job").execute_in_process(instance=instance)
    assert base.success
    second = sensor.tick()
    assert list(domain_runs(second)) == ["news"]
    assert sensor.tick().run_requests == []  # its run is queued: nothing new, however often it ticks
    finish(instance, domain_runs(second)["news"], ok=True)
    for _ in range(2):
        assert sensor.tick().run_requests == []


def test_new_file_retrains_only_its_domain_and_bad_or_deleted_folders_do_nothing(world) -> None:
    instance, landing, sensor = world
    with_base_model(instance)
    land(landing, "news", "a.jsonl", 20)
    land(landing, "legal", "a.jsonl", 20)
    first = domain_runs(sensor.tick())
    assert set(first) == {"news", "legal"}
    for key in first.values():
        finish(instance, key, ok=True)

    land(landing, "news", "b.jsonl", 5)
    changed = domain_runs(sensor.tick())
    assert list(changed) == ["news"] and changed["news"].startswith("news:")
    finish(instance, changed["news"], ok=True)

    land(landing, "Bad Folder", "a.jsonl", 20)
    land(landing, "news", "c.jsonl", 5, age_s=0)  # still being written
    assert sensor.tick().run_requests == []
    assert sorted(instance.get_dynamic_partitions("domain")) == ["legal", "news"]

    shutil.rmtree(landing / "legal")
    assert sensor.tick().run_requests == []
    assert "legal" in instance.get_dynamic_partitions("domain")  # nothing already trained is deleted


def test_run_keys_come_from_content(world) -> None:
    instance, landing, sensor = world
    with_base_model(instance)
    land(landing, "news", "a.jsonl", 20)
    key = domain_runs(sensor.tick())["news"]
    assert key == f"news:{landing_fingerprint(landing / 'news')}:0"
    with dg.instance_for_test() as fresh:  # a fresh cursor derives the same key from the same bytes
        with_base_model(fresh)
        assert domain_runs(Sensor(fresh, landing).tick())["news"] == key


# --- self-healing: retries, reverts, runs in flight -------------------------------------------------

def test_a_failed_run_is_retried_then_given_up_loudly_until_the_data_changes(world) -> None:
    instance, landing, sensor = world
    with_base_model(instance)
    land(landing, "news", "a.jsonl", 20)
    fingerprint = landing_fingerprint(landing / "news")
    for attempt in range(4):  # the first run and 3 retries, each after a failure
        key = domain_runs(sensor.tick())["news"]
        assert key == f"news:{fingerprint}:{attempt}"
        assert sensor.tick().run_requests == []  # queued: never the same data twice at once
        finish(instance, key, ok=False)
    for _ in range(2):
        assert sensor.tick().run_requests == []
        assert sensor.said("gave up on landed data", "WARNING") and sensor.said("4 run(s) failed")
    land(landing, "news", "b.jsonl", 5)  # the producer fixed the data
    assert domain_runs(sensor.tick())["news"] == f"news:{landing_fingerprint(landing / 'news')}:0"


def test_a_revert_retrains_on_the_older_data(world) -> None:
    instance, landing, sensor = world
    with_base_model(instance)
    land(landing, "news", "a.jsonl", 20)
    data_a = landing_fingerprint(landing / "news")
    key_a = domain_runs(sensor.tick())["news"]
    finish(instance, key_a, ok=True)
    ingested(instance, "news", data_a)

    land(landing, "news", "a.jsonl", 20, word="revised")  # B
    key_b = domain_runs(sensor.tick())["news"]
    finish(instance, key_b, ok=True)
    ingested(instance, "news", landing_fingerprint(landing / "news"))

    land(landing, "news", "a.jsonl", 20)  # back to A
    assert landing_fingerprint(landing / "news") == data_a
    assert domain_runs(sensor.tick())["news"] == f"news:{data_a}:1"  # a key Dagster has not seen


def test_changed_data_waits_for_the_run_in_flight_then_runs(world) -> None:
    instance, landing, sensor = world
    with_base_model(instance)
    land(landing, "news", "a.jsonl", 20)
    first = domain_runs(sensor.tick())["news"]
    land(landing, "news", "b.jsonl", 5)
    assert sensor.tick().run_requests == [] and sensor.said("queued or running")
    finish(instance, first, ok=True)
    assert domain_runs(sensor.tick())["news"] == f"news:{landing_fingerprint(landing / 'news')}:0"


def test_a_failed_base_model_build_is_retried(world) -> None:
    instance, landing, sensor = world
    land(landing, "news", "a.jsonl", 20)
    for attempt in range(4):
        [request] = sensor.tick().run_requests
        assert request.job_name == "base_model_job" and request.run_key.endswith(f":{attempt}")
        assert sensor.tick().run_requests == []  # the build is queued
        finish(instance, request.run_key, ok=False)
    assert sensor.tick().run_requests == [] and sensor.said("base_model", "WARNING") and sensor.said("gave up")
    assert defs.resolve_job_def("base_model_job").execute_in_process(instance=instance).success  # fixed by hand
    assert list(domain_runs(sensor.tick())) == ["news"]


# --- hostile or faulty landings -----------------------------------------------------------------------

def test_a_symlinked_domain_folder_is_never_registered_and_is_logged(world, tmp_path: Path) -> None:
    instance, landing, sensor = world
    with_base_model(instance)
    land(tmp_path, "outside", "secret.jsonl", 20)
    (landing / "evil").symlink_to(tmp_path / "outside", target_is_directory=True)
    land(landing, "news", "a.jsonl", 20)
    assert list(domain_runs(sensor.tick())) == ["news"]
    assert instance.get_dynamic_partitions("domain") == ["news"]
    assert sensor.said("skipping folder 'evil': domain 'evil'", "WARNING") and sensor.said("is a symlink")


def test_a_registered_domain_whose_folder_became_a_symlink_is_not_read(world, tmp_path: Path) -> None:
    instance, landing, sensor = world
    with_base_model(instance)
    land(landing, "news", "a.jsonl", 20)
    finish(instance, domain_runs(sensor.tick())["news"], ok=True)
    cursor = json.loads(sensor.cursor)
    shutil.move(landing / "news", tmp_path / "news-elsewhere")
    land(tmp_path, "news-elsewhere", "b.jsonl", 20)
    (landing / "news").symlink_to(tmp_path / "news-elsewhere", target_is_directory=True)
    assert sensor.tick().run_requests == [] and json.loads(sensor.cursor) == cursor
    assert sensor.said("skipping folder 'news'")
    with pytest.raises(dg.Failure, match="domain 'news'.*symlink"):  # what raw_corpus would meet
        sensor.resources["landing"].domain_dir("news")


def test_a_domain_that_cannot_be_scanned_does_not_stop_the_others(world) -> None:
    instance, landing, sensor = world
    with_base_model(instance)
    land(landing, "news", "a.jsonl", 20)
    finish(instance, domain_runs(sensor.tick())["news"], ok=True)
    before = json.loads(sensor.cursor)["news"]
    bury_unlistable_folder(landing / "news")  # a folder too deep to list by path
    land(landing, "legal", "a.jsonl", 20)
    assert list(domain_runs(sensor.tick())) == ["legal"]
    assert json.loads(sensor.cursor)["news"] == before
    assert sensor.said("news: not scanned this tick", "WARNING") and sensor.said("cannot list folder")


def test_a_big_domain_is_hashed_over_ticks_and_runs_on_what_raw_corpus_would_record(world, tmp_path: Path) -> None:
    instance, landing, _ = world
    with_base_model(instance)
    line = json.dumps({"text": "x" * 200}) + "\n"
    for part in range(3):
        path = landing / "big" / f"part-{part}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{part}".join([line] * (3 * MiB // 2 // len(line))))
        os.utime(path, (time.time() - 3600,) * 2)
    sensor = Sensor(instance, landing, max_hash_bytes_per_tick=MiB)
    for _ in range(4):
        assert sensor.tick().run_requests == [] and sensor.said("big: hashing, ")
    assert domain_runs(sensor.tick())["big"] == f"big:{landing_fingerprint(landing / 'big')}:0"
    assert len(sensor.cursor) < 200  # the digests live in the instance's folder, not in every tick


def test_hashing_cap_has_bounds() -> None:
    with pytest.raises(ValueError):
        LandingZone(max_hash_bytes_per_tick=1000)
    with pytest.raises(ValueError):
        LandingZone(max_run_retries=-1)
