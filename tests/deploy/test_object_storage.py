"""The chain on object storage: a real S3 server on loopback (moto's server mode, tests/deploy/s3_server.py),
reached through s3fs configured only by the standard AWS variables. A domain lands in the bucket, the
sensor sees it, the chain trains, and the merged model is published in the bucket (files, then the
manifest); a re-run over unchanged data reuses from the bucket, also with the local cache gone; and a
publish killed half-way leaves nothing any reader sees, until the sweep removes its objects."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from s3_server import running_s3

from assets.common.object_store import MANIFEST, filesystem, is_published, remote_versions
from pipelines.definitions import defs
from pipelines.jobs import PER_DOMAIN_ASSETS
from pipelines.samples import seed_sample_domains
from pipelines.sensors import landing_zone_sensor
from resources.base_model_source import BaseModelSource
from resources.landing import LandingZone
from resources.lineage import local_copy
from resources.storage import ArtifactStore

REPO = Path(__file__).resolve().parents[2]
BUCKET = "loraline"
LANDING, ARTIFACTS = f"s3://{BUCKET}/landing", f"s3://{BUCKET}/artifacts"
FAST = {"ops": {"qlora_adapter": {"config": {"max_steps": 10, "logging_steps": 5}}}}


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("s3")
    with running_s3(root / "moto.log") as server, pytest.MonkeyPatch.context() as env:
        for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            env.delenv(name, raising=False)
        for name, value in server.env.items():
            env.setenv(name, value)
        env.setenv("LORALINE_LANDING_DIR", LANDING)
        env.setenv("LORALINE_ARTIFACTS_DIR", ARTIFACTS)
        env.setenv("LORALINE_CACHE_DIR", str(root / "cache"))
        env.delenv("LORALINE_BASE_MODEL", raising=False)
        server.make_bucket(BUCKET)
        yield {"root": root, "cache": root / "cache", "server": server}


@pytest.fixture(scope="module")
def chain(bucket: dict):
    seed_sample_domains(bucket["root"] / "seed", rows_per_domain=40)
    fs, _ = filesystem(LANDING)
    fs.put(str(bucket["root"] / "seed" / "support"), f"{BUCKET}/landing/support", recursive=True)  # the domain lands
    with dg.instance_for_test() as instance:
        sensor = {"landing": LandingZone(settle_seconds=0), "base_model_source": BaseModelSource()}
        first = landing_zone_sensor(dg.build_sensor_context(instance=instance, resources=sensor, definitions=defs))
        assert [r.job_name for r in first.run_requests] == ["base_model_job"]  # domains wait for their base
        assert defs.resolve_job_def("base_model_job").execute_in_process(instance=instance).success
        tick = landing_zone_sensor(dg.build_sensor_context(instance=instance, resources=sensor, definitions=defs))
        [request] = tick.run_requests
        assert (request.job_name, request.partition_key) == ("domain_finetune_job", "support")
        for added in tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(added.partitions_def_name, list(added.partition_keys))
        started = time.perf_counter()
        result = defs.resolve_job_def("domain_finetune_job").execute_in_process(
            instance=instance, partition_key="support", run_config=FAST, raise_on_error=False)
        yield {"instance": instance, "result": result, "seconds": time.perf_counter() - started, "fs": fs, **bucket}


def latest(instance: dg.DagsterInstance, asset: str, partition: str | None = "support") -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None), limit=1).records
    return {"run_id": records[0].run_id, **{k: v.value for k, v in records[0].asset_materialization.metadata.items()}}


def test_the_landed_domain_trains_and_its_merged_model_is_published_in_the_bucket(chain: dict) -> None:
    assert chain["result"].success
    fs = chain["fs"]
    merged = latest(chain["instance"], "merged_model")
    assert merged["path"].startswith(f"{ARTIFACTS}/merged_model/support/")
    manifest = json.loads(fs.cat_file(f"{merged['path'].removeprefix('s3://')}/{MANIFEST}"))
    assert {"config.json", "model.safetensors", "README.md", "lineage.json"} <= set(manifest["files"])
    for name, entry in manifest["files"].items():  # every file the manifest names is in the bucket, at its size
        assert fs.info(f"{merged['path'].removeprefix('s3://')}/{name}")["size"] == entry["size"]
    assert merged["model_card"] == f"{merged['path']}/README.md"
    lineage = json.loads(fs.cat_file(f"{merged['path'].removeprefix('s3://')}/lineage.json"))
    assert lineage["adapter_path"] == latest(chain["instance"], "qlora_adapter")["path"]  # the model card names bucket URLs
    raw = latest(chain["instance"], "raw_corpus")
    assert raw["landing_folder"] == f"{LANDING}/support" and raw["path"].startswith(f"{ARTIFACTS}/raw_corpus/support/")
    assert latest(chain["instance"], "base_model", None)["path"].startswith(f"{ARTIFACTS}/base_model/_/")
    for asset in PER_DOMAIN_ASSETS:  # every step published a version, and only published ones are listed
        versions = remote_versions(f"{ARTIFACTS}/{asset}/support")
        assert versions and all(v.published for v in versions), asset


def test_a_rerun_over_unchanged_data_reuses_from_the_bucket_with_the_local_cache_gone(chain: dict) -> None:
    before = {asset: latest(chain["instance"], asset) for asset in PER_DOMAIN_ASSETS}
    shutil.rmtree(chain["cache"])  # another machine, or a wiped cache: only the bucket remains
    again = defs.resolve_job_def("domain_finetune_job").execute_in_process(
        instance=chain["instance"], partition_key="support", run_config=FAST, raise_on_error=False)
    assert again.success
    for asset in PER_DOMAIN_ASSETS:
        after = latest(chain["instance"], asset)
        assert after["reused_from_run"] == before[asset]["run_id"] and after["path"] == before[asset]["path"], asset
    assert len(remote_versions(f"{ARTIFACTS}/merged_model/support")) == 1  # nothing new was published
    staged = local_copy(before["merged_model"]["path"], "merged_model")  # a reader stages the version in, checked
    assert staged.is_relative_to(chain["cache"]) and json.loads((staged / "config.json").read_text())["model_type"] == "llama"


def test_a_publish_killed_half_way_is_never_visible_and_is_swept_later(chain: dict) -> None:
    version = "20261201T120000.000Z-killed00"
    url = f"{ARTIFACTS}/merged_model/support/{version}"
    folder = chain["root"] / "big"
    folder.mkdir()
    for i in range(600):  # many objects, so the kill lands between the first upload and the manifest
        (folder / f"shard-{i:04d}.bin").write_bytes(os.urandom(2048))
    uploader = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from assets.common.object_store import publish_directory; "
         "publish_directory(Path(sys.argv[1]), sys.argv[2])", str(folder), url], cwd=REPO, start_new_session=True)
    fs, key = filesystem(url)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and uploader.poll() is None and not fs.find(key):
            time.sleep(0.02)
        assert uploader.poll() is None, "the upload ended before it could be killed"
        os.killpg(uploader.pid, signal.SIGKILL)
    finally:
        uploader.kill()
        uploader.wait()
    assert fs.find(key)  # objects went up ...
    assert not is_published(url)  # ... but no manifest: no reader sees the version
    with pytest.raises(dg.Failure, match="not published"):
        local_copy(url, "merged_model")
    assert [v.name for v in remote_versions(f"{ARTIFACTS}/merged_model/support") if v.published] == \
        [latest(chain["instance"], "merged_model")["path"].rsplit("/", 1)[1]]
    ArtifactStore(leftover_grace_minutes=10).asset_dir("merged_model", "support")
    assert fs.find(key)  # within the grace period it might be a live upload: kept
    ArtifactStore(leftover_grace_minutes=0).asset_dir("merged_model", "support")
    assert not fs.find(key)
    assert is_published(latest(chain["instance"], "merged_model")["path"])  # the published version is untouched
