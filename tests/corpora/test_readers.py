"""Readers: each suffix, the damage real landed files carry, listing rules and the counting rule."""

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.corpora import readers
from assets.corpora.listing import SUPPORTED_SUFFIXES, list_domain_files
from assets.corpora.parquet_pages import PageHeaderError, batch_rows, largest_payload_page
from assets.corpora.readers import QUARANTINE_SCHEMA, ROW_SCHEMA, ReadResult, read_domain, read_file
from assets.corpora.tables import UNREADABLE, MemoryOutput

CHAT = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def write(folder: Path, name: str, data: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def jsonl(*records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def read_one(tmp_path: Path, name: str, data: str | bytes) -> ReadResult:
    write(tmp_path, name, data)
    return read_domain(tmp_path)


def test_jsonl_all_shapes_with_provenance(tmp_path):
    result = read_one(tmp_path, "sub/a.jsonl", jsonl(
        {"text": "doc"},
        {"messages": CHAT},
        {"id": 3, "instruction": "i", "input": "x", "output": "o"},
    ))
    assert result.rows.schema == ROW_SCHEMA
    assert result.quarantine.is_empty() and result.quarantine.schema == QUARANTINE_SCHEMA
    assert result.files == ["sub/a.jsonl"]
    assert result.rows.to_dicts() == [
        {"source_file": "sub/a.jsonl", "line": 1, "kind": "text", "roles": ["text"], "contents": ["doc"]},
        {"source_file": "sub/a.jsonl", "line": 2, "kind": "chat", "roles": ["user", "assistant"],
         "contents": ["q", "a"]},
        {"source_file": "sub/a.jsonl", "line": 3, "kind": "instruction", "roles": ["user", "assistant"],
         "contents": ["i\n\nx", "o"]},
    ]


def test_jsonl_broken_line_in_the_middle(tmp_path):
    data = jsonl({"text": "one"}) + '{"text": "two" "x": 1}\n' + "\n  \n" + jsonl({"text": "three"})
    result = read_one(tmp_path, "a.jsonl", data)
    assert result.rows["line"].to_list() == [1, 5]  # blank lines 3-4 skipped but still counted
    [bad] = result.quarantine.to_dicts()
    assert bad["line"] == 2
    assert bad["reason"] == "invalid JSON: Expecting ',' delimiter at column 16"
    assert bad["snippet"] == '{"text": "two" "x": 1}'
    assert result.rows_in == 3


def test_jsonl_invalid_utf8_line_keeps_the_rest(tmp_path):
    data = jsonl({"text": "ok"}).encode() + b'{"text": "bad \xff"}\n' + jsonl({"text": "ok2"}).encode()
    result = read_one(tmp_path, "a.jsonl", data)
    assert result.rows["contents"].to_list() == [["ok"], ["ok2"]]
    [bad] = result.quarantine.to_dicts()
    assert (bad["line"], bad["reason"]) == (2, "invalid UTF-8 at byte 14 of the line")
    assert "\ufffd" in bad["snippet"]


def test_jsonl_bom_and_crlf(tmp_path):
    data = b"\xef\xbb\xbf" + b'{"text": "a"}\r\n{"text": "b"}\r\n'
    result = read_one(tmp_path, "a.jsonl", data)
    assert result.quarantine.is_empty()
    assert result.rows["contents"].to_list() == [["a"], ["b"]]


def test_jsonl_record_that_is_not_an_object(tmp_path):
    result = read_one(tmp_path, "a.jsonl", '[1, 2]\n"str"\n')
    assert result.quarantine["reason"].to_list() == [
        "record is a list, expected a JSON object", "record is a string, expected a JSON object"]
    assert result.quarantine["snippet"].to_list() == ["[1, 2]", '"str"']


def test_snippet_is_capped_at_200_characters(tmp_path):
    result = read_one(tmp_path, "a.jsonl", json.dumps({"text": " " * 500}) + "\n")
    assert result.quarantine["reason"].to_list() == ["empty text"]
    assert len(result.quarantine["snippet"][0]) == 200


def test_json_array_with_one_bad_element(tmp_path):
    records = [{"text": "a"}, {"messages": [{"role": "bot", "content": "x"}]}, {"conversations": [
        {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}]
    result = read_one(tmp_path, "a.json", json.dumps(records))
    assert result.rows["line"].to_list() == [1, 3]
    assert result.rows["kind"].to_list() == ["text", "chat"]
    [bad] = result.quarantine.to_dicts()
    assert bad["line"] == 2
    assert bad["reason"] == "message 1: role 'bot' is not one of system/user/assistant"
    assert bad["snippet"].startswith('{"messages"')


def test_json_single_object_with_bom(tmp_path):
    result = read_one(tmp_path, "a.json", b"\xef\xbb\xbf" + json.dumps({"text": "a"}).encode())
    assert result.rows.select("line", "contents").to_dicts() == [{"line": 1, "contents": ["a"]}]


def test_json_that_does_not_parse_is_one_row(tmp_path):
    result = read_one(tmp_path, "a.json", '[\n  {"text": "a"},\n  {"text": }\n]')
    [bad] = result.quarantine.to_dicts()
    assert bad["line"] == 3
    assert bad["reason"].startswith("invalid JSON: Expecting value at line 3")
    assert bad["snippet"] == '  {"text": }'
    assert result.rows.is_empty()


def test_csv_quoted_newline_keeps_line_numbers(tmp_path):
    data = 'id,text\n1,"first line\nsecond line"\n2,plain\n\n3,"a\r\nb\r\nc"\n4,after\n'
    result = read_one(tmp_path, "a.csv", data)
    assert result.quarantine.is_empty()
    assert result.rows["line"].to_list() == [2, 4, 6, 9]
    assert result.rows["contents"].to_list() == [
        ["first line\nsecond line"], ["plain"], ["a\r\nb\r\nc"], ["after"]]


def test_csv_mixed_shapes_empty_cells_are_missing(tmp_path):
    chat = json.dumps(CHAT).replace('"', '""')
    data = ("\ufefftext,instruction,input,output,messages\n"
            "doc,,,,\n"
            ",do it,,done,\n"
            f',,,,"{chat}"\n'
            ",,,,\n"
            ',,,,"[not json"\n'
            "too,many,fields,,,,\n")
    result = read_one(tmp_path, "a.csv", data)
    assert result.rows["kind"].to_list() == ["text", "instruction", "chat"]
    assert result.rows["contents"].to_list()[1] == ["do it", "done"]
    assert result.quarantine.select("line", "reason").to_dicts() == [
        {"line": 6, "reason": "messages: invalid JSON: Expecting value at column 2"},
        {"line": 7, "reason": "row has 7 fields, header has 5"},
    ]
    # The all-empty row 5 is layout, not a record, exactly like a blank .jsonl line.
    assert result.rows_in == 5


def test_csv_invalid_utf8_quarantines_the_row(tmp_path):
    result = read_one(tmp_path, "a.csv", b"text\ngood\nba\xffd\nalso good\n")
    assert result.rows["contents"].to_list() == [["good"], ["also good"]]
    assert result.quarantine.select("line", "reason").to_dicts() == [
        {"line": 3, "reason": "invalid UTF-8 in column 'text'"}]


def test_csv_without_known_columns(tmp_path):
    result = read_one(tmp_path, "a.csv", "foo,bar\n1,2\n")
    [bad] = result.quarantine.to_dicts()
    assert bad["line"] == 0 and "['foo', 'bar']" in bad["reason"]


def test_parquet_all_shapes(tmp_path):
    frame = pl.DataFrame({
        "id": [1, 2, 3, 4],
        "text": ["doc", None, None, None],
        "instruction": [None, "i", None, None],
        "output": [None, "o", None, None],
        "messages": [None, None, CHAT, [{"role": "user", "content": "only a question"}]],
    })
    frame.write_parquet(tmp_path / "a.parquet")
    result = read_domain(tmp_path)
    assert result.rows.select("line", "kind", "contents").to_dicts() == [
        {"line": 1, "kind": "text", "contents": ["doc"]},
        {"line": 2, "kind": "instruction", "contents": ["i", "o"]},
        {"line": 3, "kind": "chat", "contents": ["q", "a"]},
    ]
    assert result.quarantine.select("line", "reason").to_dicts() == [
        {"line": 4, "reason": "chat has no assistant message"}]


def test_parquet_messages_as_json_string(tmp_path):
    pl.DataFrame({"messages": [json.dumps(CHAT)]}).write_parquet(tmp_path / "a.parquet")
    assert read_domain(tmp_path).rows["roles"].to_list() == [["user", "assistant"]]


def test_parquet_unknown_schema_is_one_row(tmp_path):
    pl.DataFrame({"prompt": ["a", "b"], "answer": ["c", "d"]}).write_parquet(tmp_path / "a.parquet")
    result = read_domain(tmp_path)
    [bad] = result.quarantine.to_dicts()
    assert bad["line"] == 0 and "['prompt', 'answer']" in bad["reason"]


def test_corrupt_parquet_is_one_row(tmp_path):
    result = read_one(tmp_path, "a.parquet", b"not parquet at all")
    assert result.quarantine["reason"][0].startswith("unreadable parquet:")


def test_parquet_is_decoded_in_batches_of_bounded_text(tmp_path, monkeypatch):
    # One row group of 40 rows of 10,000 characters: before issue 11 it was decoded whole (a 0.7 MB
    # file decoding to 300 MB of text cost +515 MB); now a batch holds about PARQUET_BATCH_BYTES.
    texts = [f"{i:04d}" + "abcdefghij"[i % 10] * 9_996 for i in range(40)]
    pl.DataFrame({"text": texts, "embedding": [[0.5] * 64] * 40}).write_parquet(
        tmp_path / "a.parquet", row_group_size=40, compression="zstd")
    metadata = pq.ParquetFile(tmp_path / "a.parquet").metadata
    assert metadata.num_row_groups == 1
    monkeypatch.setattr(readers, "PARQUET_BATCH_BYTES", 50_000)
    assert 1 <= batch_rows(metadata.row_group(0), ["text"], 50_000, 10_000) <= 5  # from the footer's sizes
    assert batch_rows(metadata.row_group(0), ["text"], 2**30, 10_000) == 10_000
    batched = read_domain(tmp_path)
    monkeypatch.setattr(readers, "PARQUET_BATCH_BYTES", 2**30)
    assert batched.rows.equals(read_domain(tmp_path).rows)
    assert batched.rows["contents"].to_list() == [[text] for text in texts]


def test_parquet_row_group_with_a_page_over_the_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    # pyarrow puts 1024 values in a page whatever their size: 20 documents of 100,000 characters
    # are one 2 MB page, which no batch size can split (the same shape, 300 MB in 0.5 MB, cost
    # +515 MB before issue 11).
    texts = [f"{i:03d} " + "ab" * 50_000 for i in range(20)]
    pq.write_table(pa.table({"text": texts}), tmp_path / "a.parquet", row_group_size=10, compression="zstd")
    with open(tmp_path / "a.parquet", "rb") as stream:
        metadata = pq.ParquetFile(tmp_path / "a.parquet").metadata
        assert largest_payload_page(stream, metadata.row_group(0), ["text"]) >= 10 * 100_000
    monkeypatch.setattr(readers, "PARQUET_PAGE_BYTES", 100_000)
    result = read_domain(tmp_path)
    assert result.rows.is_empty() and result.file_reads["a.parquet"].stopped
    assert result.quarantine.select("line", "reason").rows() == [
        (1, "rows 1-10 (row group 1) not read: a page decodes to 1000080 bytes at once, over the 100000 bytes "
            "page limit; write the file with smaller pages (or as .jsonl)"),
        (11, "rows 11-20 (row group 2) not read: a page decodes to 1000080 bytes at once, over the 100000 bytes "
             "page limit; write the file with smaller pages (or as .jsonl)")]
    monkeypatch.setattr(readers, "PARQUET_PAGE_BYTES", 2**30)
    assert read_domain(tmp_path).rows["contents"].to_list() == [[text] for text in texts]


def test_page_headers_of_files_written_by_polars_and_pyarrow(tmp_path):
    pl.DataFrame({"text": [f"doc {i}" for i in range(100_000)], "id": list(range(100_000))}).write_parquet(
        tmp_path / "polars.parquet", row_group_size=30_000)
    pq.write_table(pa.table({"text": [f"doc {i}" * 3 for i in range(100_000)]}), tmp_path / "arrow.parquet",
                   row_group_size=40_000, data_page_size=64 * 1024)
    for name in ("polars.parquet", "arrow.parquet"):
        metadata = pq.ParquetFile(tmp_path / name).metadata
        with open(tmp_path / name, "rb") as stream:
            for group in range(metadata.num_row_groups):
                page = largest_payload_page(stream, metadata.row_group(group), ["text"])
                assert 1_000 < page <= 2 * 2**20, (name, group, page)
    broken = bytearray((tmp_path / "arrow.parquet").read_bytes())
    chunk = pq.ParquetFile(tmp_path / "arrow.parquet").metadata.row_group(0).column(0)
    start = min(o for o in (chunk.dictionary_page_offset, chunk.data_page_offset) if o)
    broken[start:start + 4] = b"\x19\xff\xff\xff"  # a list header whose size never ends
    (tmp_path / "broken.parquet").write_bytes(bytes(broken))
    with open(tmp_path / "broken.parquet", "rb") as stream, pytest.raises(PageHeaderError):
        largest_payload_page(stream, pq.ParquetFile(tmp_path / "arrow.parquet").metadata.row_group(0), ["text"])


def test_parquet_damaged_after_its_first_row_group_keeps_the_rows_before(tmp_path):
    pl.DataFrame({"text": [f"document {i}" for i in range(6)]}).write_parquet(
        tmp_path / "a.parquet", row_group_size=3, compression="uncompressed")
    data = bytearray((tmp_path / "a.parquet").read_bytes())
    second = pq.ParquetFile(tmp_path / "a.parquet").metadata.row_group(1).column(0)
    start = second.dictionary_page_offset or second.data_page_offset
    data[start:start + 8] = b"\xff" * 8  # the second row group's page header
    (tmp_path / "a.parquet").write_bytes(bytes(data))
    result = read_domain(tmp_path)
    assert result.rows["line"].to_list() == [1, 2, 3]
    [bad] = result.quarantine.to_dicts()
    assert bad["line"] == 4 and bad["reason"].startswith("unreadable parquet from row 4; the rest of the file is not read")
    assert result.file_reads["a.parquet"].stopped


def test_txt_is_one_document(tmp_path):
    result = read_one(tmp_path, "notes.txt", b"\xef\xbb\xbfLine one.\nLine two.\n")
    assert result.rows.select("line", "kind", "contents").to_dicts() == [
        {"line": 1, "kind": "text", "contents": ["Line one.\nLine two.\n"]}]


def test_txt_invalid_utf8_names_the_byte(tmp_path):
    result = read_one(tmp_path, "notes.txt", b"abc\ndef\xfe")
    assert result.quarantine.select("line", "reason").to_dicts() == [
        {"line": 1, "reason": "invalid UTF-8 at byte 7 of the file"}]


def test_unsupported_suffix_is_one_row(tmp_path):
    write(tmp_path, "data.jsonl", jsonl({"text": "a"}))
    write(tmp_path, "dump.xml", "<a>" * 100)
    result = read_domain(tmp_path)
    [bad] = result.quarantine.to_dicts()
    assert bad["source_file"] == "dump.xml" and bad["line"] == 0
    assert bad["reason"] == f"unsupported file type '.xml' (supported: {', '.join(SUPPORTED_SUFFIXES)})"
    assert result.files == ["data.jsonl", "dump.xml"]


def test_unreadable_file_is_one_row(tmp_path, monkeypatch):
    path = write(tmp_path, "a.jsonl", jsonl({"text": "a"}))
    original = Path.open

    def deny(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", deny)
    output = MemoryOutput()
    read = read_file(path, "a.jsonl", output)
    assert output.kept == [] and read.stopped and read.sha256 == UNREADABLE
    assert output.quarantined == [{"source_file": "a.jsonl", "line": 0,
                                   "reason": "cannot read file: [Errno 13] Permission denied", "snippet": ""}]


def test_listing_skips_hidden_partial_and_settings_files(tmp_path):
    for name in ["b.jsonl", "a/c.csv", "a/domain.yaml", "z.md",
                 ".hidden.jsonl", ".git/x.jsonl", "up.jsonl.tmp", "up.parquet.part",
                 "up.json.partial", "edit.txt~", "domain.yaml", "domain.yml"]:
        write(tmp_path, name, "")
    names = [p.relative_to(tmp_path).as_posix() for p in list_domain_files(tmp_path)]
    # A nested domain.yaml is not the settings file, so it is reported rather than hidden.
    assert names == ["a/c.csv", "a/domain.yaml", "b.jsonl", "z.md"]


def test_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_domain(tmp_path / "nope")


def test_folder_without_data_files_raises(tmp_path):
    write(tmp_path, "domain.yaml", "epochs: 2\n")
    write(tmp_path, ".DS_Store", "x")
    with pytest.raises(ValueError, match=f"{tmp_path}.*no data files"):
        read_domain(tmp_path)


def test_empty_results_keep_the_schemas(tmp_path):
    result = read_one(tmp_path, "empty.jsonl", "")
    assert result.rows.schema == ROW_SCHEMA and result.quarantine.schema == QUARANTINE_SCHEMA
    assert result.rows_in == 0 and result.files == ["empty.jsonl"]


def test_every_record_is_counted_exactly_once(tmp_path):
    write(tmp_path, "a.jsonl", jsonl({"text": "a"}, {"foo": 1}, {"messages": CHAT})
          + "{broken\n\n" + jsonl({"text": " "}))                                    # 5 records
    write(tmp_path, "b.json", json.dumps([{"text": "x"}, 5, {"instruction": "i", "output": "o"}]))  # 3
    write(tmp_path, "c.csv", 'text\n"multi\nline"\n\nok\n')                           # 2
    write(tmp_path, "d.txt", "a whole document")                                     # 1
    write(tmp_path, "e.yaml", "not: data")                                           # 1
    write(tmp_path, "f.json", "{nope")                                               # 1
    pl.DataFrame({"text": ["p", None, "q"]}).write_parquet(tmp_path / "g.parquet")    # 3
    result = read_domain(tmp_path)
    assert result.rows_in == 16
    assert (len(result.rows), len(result.quarantine)) == (9, 7)
    keys = pl.concat([result.rows.select("source_file", "line"),
                      result.quarantine.select("source_file", "line")])
    assert not keys.is_duplicated().any()


@pytest.mark.integration  # a fresh interpreter
def test_pure_modules_do_not_import_dagster():
    code = ("import sys, assets.corpora.readers, assets.corpora.records; "
            "sys.exit('dagster' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
