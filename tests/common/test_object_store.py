"""Object-storage roots through fsspec, on `file://` URLs (the same code paths as s3://; the S3
server tests are in tests/deploy/test_object_storage.py): publish with the manifest last, stage in
checked against it, sweep and prune, mirror a landing."""

import json
import os
from pathlib import Path

import pytest

from assets.common.atomic import atomic_directory
from assets.common.object_store import (
    MANIFEST,
    UnpublishedVersion,
    is_published,
    mirror_path,
    mirror_prefix,
    publish_directory,
    read_manifest,
    remote_versions,
    stage_in,
    sweep_unpublished,
    url_of,
)
from assets.common.retention import prune_remote_versions


def _version(folder: Path, text: str = "weights") -> Path:
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_text(text)
    (folder / "sub" / "config.json").write_text("{}")
    return folder


@pytest.fixture
def bucket(tmp_path: Path) -> str:
    (tmp_path / "bucket").mkdir()
    return f"file://{tmp_path}/bucket"


def test_mirror_paths_map_back_to_their_urls(tmp_path: Path, bucket: str) -> None:
    local = mirror_path(f"{bucket}/merged_model/support/v1", tmp_path / "cache")
    assert local.is_relative_to(tmp_path / "cache" / "remote" / "file")
    assert url_of(local) == f"{bucket}/merged_model/support/v1"
    assert url_of(tmp_path / "elsewhere") is None  # a local root stays local
    with pytest.raises(ValueError, match="unsafe"):
        mirror_path(f"{bucket}/../etc", tmp_path / "cache")


def test_publish_writes_files_then_manifest_and_stage_in_checks_them(tmp_path: Path, bucket: str) -> None:
    url = f"{bucket}/a/_/v1"
    manifest = publish_directory(_version(tmp_path / "v1"), url)
    assert set(manifest["files"]) == {"model.safetensors", "sub/config.json"}
    assert read_manifest(url)["files"] == manifest["files"]
    copy = stage_in(url, tmp_path / "copy")
    assert (copy / "sub" / "config.json").read_text() == "{}"
    assert stage_in(url, copy) == copy  # already there: no download
    assert publish_directory(tmp_path / "v1", url)["files"] == manifest["files"]  # same bytes again: a no-op
    with pytest.raises(FileExistsError, match="already published"):
        publish_directory(_version(tmp_path / "other", "different"), url)


def test_a_damaged_object_is_refused_when_staged_in(tmp_path: Path, bucket: str) -> None:
    url = f"{bucket}/a/_/v1"
    publish_directory(_version(tmp_path / "v1"), url)
    (tmp_path / "bucket" / "a" / "_" / "v1" / "model.safetensors").write_text("WEIGHTS")  # same size, other bytes
    with pytest.raises(ValueError, match="sha256"):
        stage_in(url, tmp_path / "copy")
    assert not (tmp_path / "copy").exists() and not list(tmp_path.glob(".copy.staging-*"))


def test_a_publish_that_fails_before_its_manifest_leaves_nothing_visible(tmp_path: Path, bucket: str) -> None:
    url = f"{bucket}/a/_/v1"

    def crash() -> None:
        assert (tmp_path / "bucket" / "a" / "_" / "v1" / "model.safetensors").is_file()  # the files went up
        raise RuntimeError("killed between upload and manifest")

    with pytest.raises(RuntimeError, match="killed"):
        publish_directory(_version(tmp_path / "v1"), url, after_upload=crash)
    assert not is_published(url)
    assert not (tmp_path / "bucket" / "a" / "_" / "v1").exists()  # cleaned up on the way out
    with pytest.raises(UnpublishedVersion, match="no _manifest.json"):
        stage_in(url, tmp_path / "copy")


def test_the_sweep_removes_objects_without_a_manifest_after_the_grace(tmp_path: Path, bucket: str) -> None:
    publish_directory(_version(tmp_path / "v1"), f"{bucket}/a/_/v1")
    orphan = tmp_path / "bucket" / "a" / "_" / "v2"
    _version(orphan)  # what a killed publish leaves: files, no manifest
    assert [(v.name, v.published) for v in remote_versions(f"{bucket}/a/_")] == [("v1", True), ("v2", False)]
    assert sweep_unpublished(f"{bucket}/a/_", grace_s=3600) == []  # could be a live upload
    assert sweep_unpublished(f"{bucket}/a/_", grace_s=0) == [f"{bucket}/a/_/v2"]
    assert not orphan.exists() and is_published(f"{bucket}/a/_/v1")


def test_remote_retention_keeps_the_newest_and_the_protected(tmp_path: Path, bucket: str) -> None:
    names = [f"20261201T12000{i}.000Z-run{i}" for i in range(4)]
    for name in names:
        publish_directory(_version(tmp_path / name), f"{bucket}/a/d/{name}")
    gone = prune_remote_versions(f"{bucket}/a/d", keep=2, protected={f"{bucket}/a/d/{names[0]}"})
    assert gone == [f"{bucket}/a/d/{names[1]}"]
    assert [v.name for v in remote_versions(f"{bucket}/a/d")] == [names[0], *names[2:]]


def test_atomic_directory_publishes_under_a_mirror_and_only_there(tmp_path: Path, bucket: str) -> None:
    final = mirror_path(f"{bucket}/raw_corpus/support/v1", tmp_path / "cache")
    with atomic_directory(final) as staging:
        (staging / "rows.parquet").write_text("rows")
    assert final.is_dir() and json.loads((tmp_path / "bucket" / "raw_corpus" / "support" / "v1" / MANIFEST).read_text())["files"]
    local = tmp_path / "artifacts" / "raw_corpus" / "support" / "v1"
    with atomic_directory(local) as staging:
        (staging / "rows.parquet").write_text("rows")
    assert local.is_dir() and not list((tmp_path / "bucket").glob("**/artifacts"))


def test_mirroring_a_landing_downloads_changes_and_refuses_unsafe_names(tmp_path: Path, bucket: str) -> None:
    landing = tmp_path / "bucket" / "landing"
    (landing / "support").mkdir(parents=True)
    (landing / "support" / "a.jsonl").write_text('{"text": "one"}\n')
    (landing / "Bad Name").mkdir()
    (landing / "Bad Name" / "x.txt").write_text("never written locally")
    local = tmp_path / "mirror"
    listed = mirror_prefix(f"{bucket}/landing", local, lambda name: name.islower() and " " not in name)
    assert listed["names"] == ["Bad Name", "support"]
    assert sorted(p.name for p in local.iterdir() if not p.name.startswith(".")) == ["support"]
    copy = local / "support" / "a.jsonl"
    assert copy.read_text() == '{"text": "one"}\n'
    assert copy.stat().st_mtime == pytest.approx((landing / "support" / "a.jsonl").stat().st_mtime, abs=1)
    os.utime(copy, (1, 1))  # marks the copy: an unchanged object is not downloaded again
    mirror_prefix(f"{bucket}/landing", local, lambda name: name == "support", only="support")
    assert copy.stat().st_mtime == 1
    (landing / "support" / "a.jsonl").unlink()
    (landing / "support" / "b.txt").write_text("two")
    mirror_prefix(f"{bucket}/landing", local, lambda name: name == "support", only="support")
    assert sorted(p.name for p in (local / "support").iterdir()) == ["b.txt"]


def test_a_publish_whose_objects_were_swept_meanwhile_is_refused(tmp_path: Path, bucket: str) -> None:
    url = f"{bucket}/a/_/v1"

    def swept() -> None:  # a sweep that took a slow upload for a dead one
        (tmp_path / "bucket" / "a" / "_" / "v1" / "model.safetensors").unlink()

    with pytest.raises(RuntimeError, match="missing or of another size"):
        publish_directory(_version(tmp_path / "v1"), url, after_upload=swept)
    assert not is_published(url)
