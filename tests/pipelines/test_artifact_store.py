"""The artifact store (resources/storage.py) under faults and hostile keys: no path from an unchecked
partition key or asset name; what a SIGKILLed writer leaves (staging, base-model build, checkpoints of
old inputs) is swept at the next step's start, never while its writer lives; old versions are pruned
but never the latest materialization nor what the current merged model's lineage names."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from assets.common.atomic import atomic_directory
from assets.common.domains import InvalidDomainKey
from assets.common.retention import version_folders
from resources.storage import ArtifactStore

HOSTILE_KEYS = ["../x", "a/b", ".", "..", "", "/etc", "x/../../y"]


# --- keys --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_every_path_method_refuses_a_hostile_partition_key(tmp_path, key):
    store = ArtifactStore(root=str(tmp_path / "artifacts"))
    for build in (lambda: store.folder("raw_corpus", key), lambda: store.asset_dir("raw_corpus", key),
                  lambda: store.checkpoint_dir("qlora_adapter", key, {"version": "v"})):
        with pytest.raises(InvalidDomainKey, match="invalid domain key"):
            build()
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize("asset", ["../raw_corpus", "a/b", ".", "..", ""])
def test_a_hostile_asset_name_is_refused(tmp_path, asset):
    with pytest.raises(ValueError, match="invalid asset name"):
        ArtifactStore(root=str(tmp_path)).asset_dir(asset, "d1")


def test_a_partition_key_added_through_dagster_never_becomes_a_path(tmp_path):
    partitions = dg.DynamicPartitionsDefinition(name="domain")

    @dg.asset(partitions_def=partitions)
    def raw_corpus(context: dg.AssetExecutionContext, artifacts: ArtifactStore) -> None:
        with atomic_directory(artifacts.new_location(context, "raw_corpus")) as staging:
            (staging / "rows.parquet").write_bytes(b"x")

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("domain", ["../escaped"])  # the UI accepts such keys
        result = dg.materialize([raw_corpus], instance=instance, partition_key="../escaped", raise_on_error=False,
                                resources={"artifacts": ArtifactStore(root=str(tmp_path / "artifacts"))})
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert error.cause.cls_name == "InvalidDomainKey" and "invalid domain key '../escaped'" in error.cause.message
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # not even the artifacts root, let alone a sibling


# --- leftovers of killed writers ---------------------------------------------------------------------

WRITERS = {
    "staging": "from assets.common.atomic import atomic_directory\n"
               "with atomic_directory(Path(sys.argv[1]) / '20250101T000000.000Z-deadbeef') as staging:\n"
               "    (staging / 'half.parquet').write_bytes(b'partial')\n    print('ready', flush=True)\n    time.sleep(600)\n",
    "build": "from assets.common.atomic import locked_temp_directory\n"
             "with locked_temp_directory(Path(sys.argv[1]), '.build-tiny-llama-') as staging:\n"
             "    (staging / 'model.safetensors').write_bytes(b'partial')\n    print('ready', flush=True)\n    time.sleep(600)\n",
    "checkpoints": "from assets.training.checkpoint import claim_checkpoints\n"
                   "with claim_checkpoints(Path(sys.argv[1]) / 'checkpoints' / 'old-inputs-00000', attempt='old'):\n"
                   "    (Path(sys.argv[1]) / 'checkpoints' / 'old-inputs-00000' / 'step-00000005').mkdir()\n"
                   "    print('ready', flush=True)\n    time.sleep(600)\n",
}


def start_writer(kind: str, folder: Path) -> subprocess.Popen:
    writer = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n" + WRITERS[kind], str(folder)],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    return writer


def kill(writer: subprocess.Popen) -> None:
    writer.send_signal(signal.SIGKILL)
    assert writer.wait() == -signal.SIGKILL


def hidden(folder: Path) -> list[str]:
    return sorted(p.name.split("-")[0] for p in folder.iterdir() if p.name.startswith("."))


def test_a_killed_writers_staging_is_swept_at_the_next_step_but_never_a_live_one(tmp_path):
    store = ArtifactStore(root=str(tmp_path), leftover_grace_minutes=0)
    folder = store.folder("clean_corpus", "d1")
    writer = start_writer("staging", folder)
    try:
        assert store.asset_dir("clean_corpus", "d1") == folder
        assert hidden(folder) == [".20250101T000000.000Z"]  # alive: its staging stays, whatever its age
    finally:
        kill(writer)
    assert list((folder / hidden_name(folder)).iterdir())  # what a kill inside an atomic write leaves
    store.asset_dir("clean_corpus", "d1")
    assert list(folder.iterdir()) == []
    assert ArtifactStore(root=str(tmp_path)).asset_dir("clean_corpus", "d1") == folder  # default grace: nothing to do


def hidden_name(folder: Path) -> str:
    return next(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_killed_base_model_build_is_swept_but_not_within_the_grace_period(tmp_path):
    folder = ArtifactStore(root=str(tmp_path)).folder("base_model")
    writer = start_writer("build", folder)
    kill(writer)
    ArtifactStore(root=str(tmp_path)).asset_dir("base_model")  # default grace (10 min): too recent to judge
    assert hidden(folder) == [".build"]
    ArtifactStore(root=str(tmp_path), leftover_grace_minutes=0).asset_dir("base_model")
    assert list(folder.iterdir()) == []


def test_checkpoints_of_old_inputs_go_once_no_attempt_holds_them(tmp_path):
    store = ArtifactStore(root=str(tmp_path), leftover_grace_minutes=0)
    folder = store.folder("qlora_adapter", "d1")
    writer = start_writer("checkpoints", folder)
    removed: list[str] = []
    try:
        current = store.checkpoint_dir("qlora_adapter", "d1", {"version": "new"}, log=removed.append)
        assert (folder / "checkpoints" / "old-inputs-00000" / "step-00000005").is_dir() and removed == []
    finally:
        kill(writer)
    current.mkdir()
    assert store.checkpoint_dir("qlora_adapter", "d1", {"version": "new"}, log=removed.append) == current
    assert [p.name for p in (folder / "checkpoints").iterdir()] == [current.name]
    assert removed == [f"removed checkpoints {folder / 'checkpoints' / 'old-inputs-00000'} of inputs no longer current"]


# --- retention -----------------------------------------------------------------------------------------

DOMAINS = dg.StaticPartitionsDefinition(["d1"])


def publishing(name: str):
    """A stand-in for a per-domain asset: writes a version through the store, records its path and data version;
    `merged_model` also writes the lineage.json the real one does (adapter path, data versions)."""

    @dg.asset(name=name, partitions_def=DOMAINS, config_schema={"data_version": str, "lineage": dict})
    def step(context: dg.AssetExecutionContext, artifacts: ArtifactStore) -> dg.MaterializeResult:
        location = artifacts.new_location(context, name)
        with atomic_directory(location) as staging:
            (staging / "lineage.json").write_text(json.dumps(context.op_config["lineage"]))
        return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(location))},
                                    data_version=dg.DataVersion(context.op_config["data_version"]))

    return step


def test_retention_keeps_the_newest_the_latest_and_the_merged_models_lineage(tmp_path):
    assets = [publishing(name) for name in ("training_dataset", "qlora_adapter", "merged_model")]
    store = ArtifactStore(root=str(tmp_path), keep_versions=2)

    def materialize(instance, name, data_version, lineage=None):
        config = {"ops": {name: {"config": {"data_version": data_version, "lineage": lineage or {}}}}}
        result = dg.materialize(assets, selection=[name], instance=instance, partition_key="d1", run_config=config, resources={"artifacts": store})
        assert result.success
        logs = [e.message or "" for e in instance.all_logs(result.run_id)]
        return result.get_asset_materialization_events()[0].materialization.metadata["path"].value, logs

    with dg.instance_for_test() as instance:
        dataset_v1, _ = materialize(instance, "training_dataset", "data-1")
        adapter_v1, _ = materialize(instance, "qlora_adapter", "adapter-1")
        materialize(instance, "merged_model", "merged-1", {"adapter_path": adapter_v1, "data_versions": {"training_dataset": "data-1"}})
        adapters = [adapter_v1] + [materialize(instance, "qlora_adapter", f"adapter-{i}")[0] for i in (2, 3, 4)]
        datasets = [dataset_v1] + [materialize(instance, "training_dataset", f"data-{i}")[0] for i in (2, 3, 4, 5)]
        adapter_v5, logs = materialize(instance, "qlora_adapter", "adapter-5")

        # Before writing v5: v1 (the merged model's adapter), v3 and v4 (the newest 2) stay; v2 goes, logged.
        folder = store.folder("qlora_adapter", "d1")
        assert [str(p) for p in version_folders(folder)] == [adapter_v1, adapters[2], adapters[3], adapter_v5]
        assert any(m.startswith(f"retention: deleted qlora_adapter version {adapters[1]}") for m in logs)
        # The training data the merged model was trained on is found by its data version and kept too.
        assert [str(p) for p in version_folders(store.folder("training_dataset", "d1"))] == [dataset_v1, *datasets[2:]]  # v2 went

        # The latest materialization is kept even beyond the newest N (e.g. newer versions of a failed publish).
        for _ in range(3):
            stray = folder / f"29990101T00000{_}.000Z-stray000"
            stray.mkdir()
        materialize(instance, "merged_model", "merged-2", {"adapter_path": adapter_v5, "data_versions": {}})
        again, _ = materialize(instance, "qlora_adapter", "adapter-6")
        names = [str(p) for p in version_folders(folder)]
        assert adapter_v5 in names and adapter_v1 not in names and again in names
