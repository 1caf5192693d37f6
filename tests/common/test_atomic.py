"""Atomic artifact directories (assets/common/atomic.py): all or nothing, never overwrite; locked while
written, and swept once their writer is dead."""

import pytest

from assets.common.atomic import atomic_directory, locked_temp_directory, sweep_leftovers, sweep_locked_folders
from assets.common.locks import FOLDER_LOCK, LockBusy, hold_directory, hold_lock_file


def _entries(directory):
    return sorted(p.name for p in directory.iterdir())


def test_success_publishes_the_contents(tmp_path):
    final = tmp_path / "artifact"
    with atomic_directory(final) as staging:
        assert not final.exists()  # readers never see a half-written folder
        (staging / "weights.bin").write_bytes(b"\x01\x02")
        (staging / "sub").mkdir()
        (staging / "sub" / "config.json").write_text("{}")
    assert final.is_dir()
    assert (final / "weights.bin").read_bytes() == b"\x01\x02"
    assert (final / "sub" / "config.json").read_text() == "{}"
    assert _entries(tmp_path) == ["artifact"]  # no staging left beside it


def test_empty_block_publishes_an_empty_directory(tmp_path):
    final = tmp_path / "empty"
    with atomic_directory(final):
        pass
    assert final.is_dir() and _entries(final) == []
    assert _entries(tmp_path) == ["empty"]


def test_staging_is_a_hidden_sibling(tmp_path):
    final = tmp_path / "artifact"
    with atomic_directory(final) as staging:
        assert staging.parent == final.parent
        assert staging.name.startswith(".")
        assert final.name in staging.name
        assert staging.is_dir()
        assert _entries(staging) == []
        assert _entries(tmp_path) == [staging.name]


def test_staging_names_are_unique(tmp_path):
    with atomic_directory(tmp_path / "a") as first, atomic_directory(tmp_path / "b") as second:
        assert first != second
    with atomic_directory(tmp_path / "c") as third:
        pass
    assert third.name != first.name


def test_exception_leaves_no_staging_and_no_final(tmp_path):
    final = tmp_path / "artifact"
    seen = {}
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_directory(final) as staging:
            seen["staging"] = staging
            (staging / "half.bin").write_bytes(b"partial")
            raise RuntimeError("boom")
    assert not final.exists()
    assert not seen["staging"].exists()
    assert _entries(tmp_path) == []


def test_keyboard_interrupt_also_cleans_up(tmp_path):
    final = tmp_path / "artifact"
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(final) as staging:
            (staging / "x").write_text("x")
            raise KeyboardInterrupt
    assert _entries(tmp_path) == []


def test_existing_final_is_refused_and_untouched(tmp_path):
    final = tmp_path / "artifact"
    final.mkdir()
    (final / "keep.txt").write_text("original")
    entered = False
    with pytest.raises(FileExistsError, match="already exists"):
        with atomic_directory(final):
            entered = True
    assert not entered
    assert (final / "keep.txt").read_text() == "original"
    assert _entries(tmp_path) == ["artifact"]  # no staging created


def test_existing_final_file_is_refused(tmp_path):
    final = tmp_path / "artifact"
    final.write_text("a file")
    with pytest.raises(FileExistsError):
        with atomic_directory(final):
            pass
    assert final.read_text() == "a file"


def test_missing_parents_are_created(tmp_path):
    final = tmp_path / "a" / "b" / "c" / "artifact"
    with atomic_directory(final) as staging:
        (staging / "f").write_text("ok")
    assert (final / "f").read_text() == "ok"
    assert _entries(final.parent) == ["artifact"]


def test_second_publish_after_success_is_refused(tmp_path):
    final = tmp_path / "artifact"
    with atomic_directory(final) as staging:
        (staging / "v").write_text("1")
    with pytest.raises(FileExistsError):
        with atomic_directory(final) as staging:
            (staging / "v").write_text("2")
    assert (final / "v").read_text() == "1"


def test_final_published_concurrently_as_empty_dir_is_not_replaced(tmp_path):
    final = tmp_path / "artifact"
    with pytest.raises(OSError):
        with atomic_directory(final) as staging:
            (staging / "mine").write_text("mine")
            final.mkdir()  # another writer wins the race with an empty folder
    assert _entries(final) == []


def test_failed_rename_leaves_no_staging(tmp_path):
    final = tmp_path / "artifact"
    with pytest.raises(OSError):
        with atomic_directory(final) as staging:
            (staging / "mine").write_text("mine")
            final.mkdir()
            (final / "theirs").write_text("theirs")  # another writer published meanwhile
    assert (final / "theirs").read_text() == "theirs"
    assert _entries(tmp_path) == ["artifact"]


# --- locks and the sweep of dead writers' leftovers (a real SIGKILLed writer: tests/pipelines/test_leftovers.py) ---

def _dead_writers_staging(parent, name="v1"):
    """What a writer killed inside atomic_directory leaves: a hidden staging folder with part of its output."""
    staging = parent / f".{name}.staging-0123abcd"
    staging.mkdir(parents=True)
    (staging / "half.parquet").write_bytes(b"partial")
    return staging


def test_staging_is_locked_while_the_block_runs(tmp_path):
    with atomic_directory(tmp_path / "artifact") as staging:
        with pytest.raises(LockBusy):
            hold_directory(staging)
        assert sweep_leftovers(tmp_path, grace_s=0) == []  # a live writer's folder is never taken
        assert staging.is_dir()
    assert _entries(tmp_path) == ["artifact"]


def test_sweep_removes_a_dead_writers_staging_past_the_grace_period(tmp_path):
    dead = _dead_writers_staging(tmp_path)
    build = tmp_path / ".build-tiny-llama-x1y2"
    build.mkdir()
    (tmp_path / "20250101T000000Z-abcd1234").mkdir()  # a published version: not a leftover
    (tmp_path / ".hidden-but-not-ours").mkdir()
    assert sweep_leftovers(tmp_path, grace_s=3600) == []  # too recent: could be a writer about to lock it
    assert sorted(sweep_leftovers(tmp_path, grace_s=0)) == [build, dead]
    assert _entries(tmp_path) == [".hidden-but-not-ours", "20250101T000000Z-abcd1234"]


def test_sweep_never_follows_a_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / ".v1.staging-deadbeef").symlink_to(outside)
    assert sweep_leftovers(tmp_path / "store", grace_s=0) == []
    assert (outside / "keep.txt").read_text() == "keep"


def test_locked_temp_directory_is_locked_then_removed(tmp_path):
    with locked_temp_directory(tmp_path, ".build-x-") as scratch:
        assert scratch.name.startswith(".build-x-") and scratch.is_dir()
        assert sweep_leftovers(tmp_path, grace_s=0) == []
    assert _entries(tmp_path) == []


def test_sweep_of_locked_folders_spares_the_current_one_and_live_holders(tmp_path):
    for name in ("current", "held", "stale"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "step-00000005").mkdir()
    with hold_lock_file(tmp_path / "held" / FOLDER_LOCK, attempt="live"):
        removed = sweep_locked_folders(tmp_path, grace_s=0, keep="current")
    assert removed == [tmp_path / "stale"]
    assert _entries(tmp_path) == ["current", "held"]
    assert sweep_locked_folders(tmp_path, grace_s=3600, keep="current") == []  # held was touched just now
