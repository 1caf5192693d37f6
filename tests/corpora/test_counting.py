"""The independent record count (counting.py) and the hashed read (hashed_file.py): the two sides
raw_corpus compares, each checked on its own."""

import codecs
import hashlib
import io
import json
from pathlib import Path

import polars as pl
import pytest

from assets.corpora import readers
from assets.corpora.counting import count_records, tally
from assets.corpora.hashed_file import HEAD_KEEP, HashedFile
from assets.corpora.readers import read_domain


def put(folder: Path, name: str, data: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("name, data, records", [
    ("a.jsonl", '{"text": "a"}\n\n  \t\n{"text": "b"}\r\n{"text": "c"}\r{"text": "d"}', 4),
    ("a.jsonl", codecs.BOM_UTF16_LE + '{"text": "a"}\n\n{"text": "b"}\n'.encode("utf-16-le"), 2),
    ("a.jsonl", "not json\nnor this\n", 2),
    ("a.jsonl", codecs.BOM_UTF8, 0),
    ("a.csv", 'text,id\n"two\nlines, and a ""quote""",1\n\n,\nplain,2\n', 2),
    ("a.csv", "\n\ntext\n", 0),
    ("a.csv", 'text\nstray " quote\n"fine"\n', 2),
    ("a.json", json.dumps([{"text": "a ] , [ { \" \\\\"}, [1, [2, 3]], {"x": {"y": [1, 2]}}, "s", 5, None]), 6),
    ("a.json", "  [ ]  ", 0),
    ("a.json", '{"text": "one object, with [brackets] and, commas"}', 1),
    ("a.json", "   ", 0),
    ("a.json", codecs.BOM_UTF8 + b'[{"text": "\xc3\xa9"}, {"text": "b"}]', 2),
    ("a.txt", codecs.BOM_UTF8, 0),
    ("a.txt", "  \n", 1),
    ("a.md", "# not data", None),
])
def test_records_are_counted_from_the_bytes(tmp_path: Path, name: str, data, records) -> None:
    path = put(tmp_path, name, data)
    count = count_records(path)
    assert count.records == records
    assert count.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    read = read_domain(tmp_path).file_reads[name]  # the reader agrees wherever it read the file through
    assert read.sha256 == count.sha256
    assert read.stopped or read.kept + read.quarantined == records


def test_parquet_counts_rows_from_the_footer(tmp_path: Path) -> None:
    pl.DataFrame({"text": ["a", None, "c"]}).write_parquet(tmp_path / "a.parquet")
    assert count_records(tmp_path / "a.parquet").records == 3


def test_a_json_array_split_across_chunks_counts_the_same(tmp_path: Path, monkeypatch) -> None:
    from assets.corpora import counting

    elements = [{"text": f"element {i} \\\" ] [ , {{", "n": [i, {"k": "v"}]} for i in range(50)]
    path = put(tmp_path, "a.json", json.dumps(elements))
    for size in (1, 2, 3, 7, 64):
        monkeypatch.setattr(counting, "_CHUNK_BYTES", size)
        assert count_records(path).records == 50, size


def test_tally_compares_files_read_through_and_lists_the_rest(tmp_path: Path, monkeypatch) -> None:
    put(tmp_path, "a.jsonl", '{"text": "a"}\n{"text": "b"}\nbroken\n')
    put(tmp_path, "b.csv", "nothing,useful\n1,2\n3,4\n")
    put(tmp_path, "c.jsonl", '{"text": "c"}\n')
    result = read_domain(tmp_path)
    put(tmp_path, "c.jsonl", '{"text": "c"}\n{"text": "d"}\n')  # rewritten after the read
    counts = tally(tmp_path, result.file_reads, len(result.refused))
    assert counts.counted == 3 + 1 + 1 and counts.mismatches == {}
    assert counts.not_counted == {
        "b.csv": "its read stopped early: one quarantine row stands for the rest of the file",
        "c.jsonl": "it changed after it was read"}
    lossy = {**result.file_reads, "a.jsonl": readers.FileRead(result.file_reads["a.jsonl"].sha256, 2, 0, False)}
    assert tally(tmp_path, lossy, 0).mismatches == {"a.jsonl": "counted 3 records, read 2 (2 kept + 0 quarantined)"}


def test_hashed_file_hashes_exactly_what_it_hands_out_and_only_rewinds_its_head() -> None:
    data = bytes(range(256)) * 1000
    stream = HashedFile(io.BytesIO(data))
    assert stream.read(4096) == data[:4096]
    stream.seek(3)
    assert stream.read(10) == data[3:13] and stream.read(5000) == data[13:5013]
    assert stream.finish() == hashlib.sha256(data).hexdigest()
    stream = HashedFile(io.BytesIO(data))
    stream.read(HEAD_KEEP + 1)
    with pytest.raises(io.UnsupportedOperation):
        stream.seek(0)  # those bytes were not kept: reading them again could read other bytes
