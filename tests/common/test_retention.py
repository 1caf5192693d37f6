"""Retention of published versions (assets/common/retention.py): the newest N and the protected stay.
(What the store protects, read from a real Dagster instance: tests/pipelines/test_artifact_store.py.)"""

from assets.common.atomic import sweep_leftovers
from assets.common.retention import prunable, prune_versions, version_folders

NAMES = ["20250101T000000Z-aaaaaaaa", "20250102T000000.001Z-bbbbbbbb", "20250102T000000.002Z-cccccccc",
         "20250103T000000.000Z-dddddddd", "20250104T000000.000Z-eeeeeeee"]


def _versions(tmp_path):
    for name in NAMES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "rows.parquet").write_bytes(b"x")
    (tmp_path / "checkpoints").mkdir()  # qlora_adapter's scratch, beside its versions
    (tmp_path / "unpublished").mkdir()  # merged_model's refused merges
    (tmp_path / f".{NAMES[-1]}x.staging-0000aaaa").mkdir()
    return [tmp_path / name for name in NAMES]


def test_only_version_folders_count_oldest_first(tmp_path):
    versions = _versions(tmp_path)
    assert version_folders(tmp_path) == versions


def test_the_newest_and_the_protected_stay(tmp_path):
    versions = _versions(tmp_path)
    protected = {versions[0].resolve()}  # e.g. the adapter the current merged model was built from
    assert prunable(tmp_path, keep=2, protected=protected) == versions[1:3]
    assert prune_versions(tmp_path, keep=2, protected=protected) == versions[1:3]
    assert version_folders(tmp_path) == [versions[0], *versions[3:]]
    assert {"checkpoints", "unpublished"} <= {p.name for p in tmp_path.iterdir()}  # never versions
    assert not [p for p in tmp_path.iterdir() if ".deleting-" in p.name]  # nothing half-deleted left


def test_a_prune_killed_mid_delete_leaves_a_hidden_folder_the_sweep_removes(tmp_path):
    # prune renames a version to `.<name>.deleting-<hex>` before deleting it: what a kill at that point leaves.
    doomed = tmp_path / f".{NAMES[0]}.deleting-0badf00d"
    doomed.mkdir()
    (doomed / "weights.safetensors").write_bytes(b"half")
    assert version_folders(tmp_path) == []  # not a version any more
    assert sweep_leftovers(tmp_path, grace_s=0) == [doomed]
