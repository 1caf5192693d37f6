"""Atomic artifact directories (assets/common/atomic.py): all or nothing, never overwrite."""

import pytest

from assets.common.atomic import atomic_directory


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
