"""Content fingerprints (assets/common/hashing.py): stable, order- and mtime-independent."""

import hashlib
import os

import pytest

from assets.common import hashing
from assets.common.hashing import directory_fingerprint, file_sha256, files_fingerprint, json_fingerprint


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_file_sha256_matches_hashlib(tmp_path):
    data = b"hello\nworld\x00\xff"
    path = _write(tmp_path / "f.bin", data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_file_sha256_known_values(tmp_path):
    empty = _write(tmp_path / "empty", b"")
    assert file_sha256(empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    abc = _write(tmp_path / "abc", b"abc")
    assert file_sha256(abc) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_file_sha256_spans_several_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(hashing, "_CHUNK_BYTES", 7)  # force many chunks on a small file
    data = bytes(range(256)) * 3
    path = _write(tmp_path / "multi", data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_file_sha256_of_a_file_larger_than_one_chunk(tmp_path):
    data = os.urandom(hashing._CHUNK_BYTES + 123)
    path = _write(tmp_path / "big", data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_files_fingerprint_independent_of_dict_order(tmp_path):
    a = _write(tmp_path / "a", b"A")
    b = _write(tmp_path / "b", b"B")
    assert files_fingerprint({"a": a, "b": b}) == files_fingerprint({"b": b, "a": a})


def test_files_fingerprint_depends_on_names_and_contents(tmp_path):
    a = _write(tmp_path / "a", b"A")
    b = _write(tmp_path / "b", b"B")
    base = files_fingerprint({"a": a, "b": b})
    assert files_fingerprint({"a": b, "b": a}) != base  # contents swapped between names
    assert files_fingerprint({"a": a, "c": b}) != base  # a renamed file
    assert files_fingerprint({"a": a}) != base  # a missing file
    b.write_bytes(b"B2")
    assert files_fingerprint({"a": a, "b": b}) != base  # a changed byte


def test_files_fingerprint_known_value_and_empty(tmp_path):
    a = _write(tmp_path / "a", b"A")
    line = b"a\0" + hashlib.sha256(b"A").hexdigest().encode() + b"\n"
    assert files_fingerprint({"a": a}) == hashlib.sha256(line).hexdigest()
    assert files_fingerprint({}) == hashlib.sha256(b"").hexdigest()
    assert len(files_fingerprint({"a": a})) == 64


def test_files_fingerprint_ignores_mtime(tmp_path):
    a = _write(tmp_path / "a", b"A")
    before = files_fingerprint({"a": a})
    os.utime(a, (1_000_000, 1_000_000))
    assert files_fingerprint({"a": a}) == before


def test_directory_fingerprint_covers_nested_and_hidden_files(tmp_path):
    root = tmp_path / "d"
    _write(root / "config.json", b"{}")
    _write(root / "sub" / "weights.bin", b"\x01\x02")
    _write(root / ".hidden", b"h")
    expected = files_fingerprint(
        {"config.json": root / "config.json", "sub/weights.bin": root / "sub" / "weights.bin", ".hidden": root / ".hidden"}
    )
    assert directory_fingerprint(root) == expected
    (root / ".hidden").write_bytes(b"changed")
    assert directory_fingerprint(root) != expected


def test_directory_fingerprint_is_location_independent(tmp_path):
    for name in ("one", "two"):
        _write(tmp_path / name / "x" / "y.txt", b"same")
        _write(tmp_path / name / "z.txt", b"also same")
    assert directory_fingerprint(tmp_path / "one") == directory_fingerprint(tmp_path / "two")


def test_directory_fingerprint_ignores_empty_directories(tmp_path):
    root = tmp_path / "d"
    _write(root / "f", b"F")
    before = directory_fingerprint(root)
    (root / "empty").mkdir()
    assert directory_fingerprint(root) == before


def test_directory_fingerprint_detects_a_moved_file(tmp_path):
    root = tmp_path / "d"
    _write(root / "a" / "f", b"F")
    before = directory_fingerprint(root)
    (root / "b").mkdir()
    (root / "a" / "f").rename(root / "b" / "f")
    assert directory_fingerprint(root) != before


def test_directory_fingerprint_of_empty_directory(tmp_path):
    assert directory_fingerprint(tmp_path) == hashlib.sha256(b"").hexdigest()


def test_json_fingerprint_ignores_key_order_and_whitespace():
    assert json_fingerprint({"a": 1, "b": [1, 2]}) == json_fingerprint({"b": [1, 2], "a": 1})
    assert json_fingerprint({"a": {"y": 1, "x": 2}}) == json_fingerprint({"a": {"x": 2, "y": 1}})


def test_json_fingerprint_known_value():
    assert json_fingerprint({"b": 1, "a": [1, "x"]}) == hashlib.sha256(b'{"a":[1,"x"],"b":1}').hexdigest()


def test_json_fingerprint_distinguishes_values_and_types():
    assert json_fingerprint({"a": 1}) != json_fingerprint({"a": 2})
    assert json_fingerprint({"a": 1}) != json_fingerprint({"a": "1"})
    assert json_fingerprint([1, 2]) != json_fingerprint([2, 1])  # lists keep their order


def test_json_fingerprint_accepts_non_json_values_via_str(tmp_path):
    value = {"path": tmp_path}
    assert json_fingerprint(value) == json_fingerprint({"path": str(tmp_path)})


@pytest.mark.parametrize("value", [None, 0, 1.5, "x", [], {}, {"nested": {"deep": [1, {"k": None}]}}])
def test_json_fingerprint_is_hex_sha256(value):
    digest = json_fingerprint(value)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest == json_fingerprint(value)
