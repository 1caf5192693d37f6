"""The landing sensor against a real Dagster instance: exactly the runs a data engineer expects."""

import json
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.sensors import landing_zone_sensor
from resources.base_model_source import BaseModelSource
from resources.landing import LandingZone


def land(root: Path, domain: str, name: str, rows: int, age_s: float = 3600) -> None:
    path = root / domain / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": f"{domain} document {i} long enough to keep"}) + "\n" for i in range(rows)))
    os.utime(path, (time.time() - age_s,) * 2)


class Sensor:
    """Ticks the real sensor and applies its partition requests, as the daemon would."""

    def __init__(self, instance: dg.DagsterInstance, landing: Path) -> None:
        self.instance, self.cursor = instance, None
        self.resources = {"landing": LandingZone(root=str(landing)), "base_model_source": BaseModelSource()}

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.resources, definitions=defs)
        result = landing_zone_sensor(context)
        for request in result.dynamic_partitions_requests:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        self.cursor = result.cursor
        return result


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LORALINE_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    (tmp_path / "landing").mkdir()
    with dg.instance_for_test() as instance:
        yield instance, tmp_path / "landing", Sensor(instance, tmp_path / "landing")


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
    base = defs.resolve_job_def("base_model_job").execute_in_process(instance=instance)
    assert base.success
    second = sensor.tick()
    assert list(domain_runs(second)) == ["news"]
    assert sensor.tick().run_requests == []  # nothing new, however often it ticks


def test_new_file_retrains_only_its_domain_and_bad_or_deleted_folders_do_nothing(world) -> None:
    instance, landing, sensor = world
    assert defs.resolve_job_def("base_model_job").execute_in_process(instance=instance).success
    land(landing, "news", "a.jsonl", 20)
    land(landing, "legal", "a.jsonl", 20)
    assert set(domain_runs(sensor.tick())) == {"news", "legal"}

    land(landing, "news", "b.jsonl", 5)
    changed = domain_runs(sensor.tick())
    assert list(changed) == ["news"] and changed["news"].startswith("news:")

    land(landing, "Bad Folder", "a.jsonl", 20)
    land(landing, "news", "c.jsonl", 5, age_s=0)  # still being written
    assert sensor.tick().run_requests == []
    assert sorted(instance.get_dynamic_partitions("domain")) == ["legal", "news"]

    shutil.rmtree(landing / "legal")
    assert sensor.tick().run_requests == []
    assert "legal" in instance.get_dynamic_partitions("domain")  # nothing already trained is deleted


def test_run_keys_come_from_content(world) -> None:
    instance, landing, sensor = world
    assert defs.resolve_job_def("base_model_job").execute_in_process(instance=instance).success
    land(landing, "news", "a.jsonl", 20)
    key = domain_runs(sensor.tick())["news"]
    with dg.instance_for_test() as fresh:  # a fresh cursor derives the same key from the same bytes
        assert defs.resolve_job_def("base_model_job").execute_in_process(instance=fresh).success
        assert domain_runs(Sensor(fresh, landing).tick())["news"] == key
