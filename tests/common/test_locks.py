"""flock-based locks (assets/common/locks.py): one holder at a time, who holds it, released on exit.
(That a killed holder's lock is free again is tested with a real SIGKILL in tests/pipelines/test_leftovers.py.)"""

import os

import pytest

from assets.common.locks import LockBusy, hold_directory, hold_lock_file, lock_holder


def test_a_lock_file_has_one_holder_and_says_who(tmp_path):
    lock = tmp_path / "scratch" / "folder.lock"
    assert lock_holder(lock) is None  # no file yet: nobody holds it
    with hold_lock_file(lock, attempt="run1-0"):
        holder = lock_holder(lock)
        assert holder["pid"] == os.getpid() and holder["attempt"] == "run1-0"
        with pytest.raises(LockBusy) as busy:  # a second open of the same file, even in this process
            with hold_lock_file(lock, attempt="run2-0"):
                pass
        assert busy.value.holder["attempt"] == "run1-0"
        assert f"pid {os.getpid()}" in str(busy.value) and "attempt run1-0" in str(busy.value)
    assert lock_holder(lock) is None
    with hold_lock_file(lock, attempt="run2-0"):  # free again after the block
        assert lock_holder(lock)["attempt"] == "run2-0"


def test_a_lock_file_deleted_by_its_holder_is_taken_afresh(tmp_path):
    lock = tmp_path / "scratch" / "folder.lock"
    with hold_lock_file(lock):
        lock.unlink()  # the holder removes the folder it guards, lock file included
    with hold_lock_file(lock, attempt="next"):
        assert lock.is_file() and lock_holder(lock)["attempt"] == "next"


def test_a_directory_lock_excludes_a_second_one(tmp_path):
    fd = hold_directory(tmp_path)
    try:
        with pytest.raises(LockBusy):
            hold_directory(tmp_path)
    finally:
        os.close(fd)
    os.close(hold_directory(tmp_path))
