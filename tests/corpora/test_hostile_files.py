"""Hostile landed files: every reader survives them and reports per file and line.

One parametrized test walks the matrix. Each case builds files in a domain folder
(`<tmp>/landing/domain`, beside `<tmp>/landing/shared` and `<tmp>/outside`), and the test checks:
no exception, exactly the expected rows kept, one specific reason per quarantined row, the empty
files reported, and that every record the files hold is counted once: kept + quarantined.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl
import pytest

from assets.common.hashing import file_sha256
from assets.corpora import decoding, readers
from assets.corpora.counting import count_records
from assets.corpora.listing import list_domain_files
from assets.corpora.readers import ReadResult, read_domain

MiB = 2**20
CHAT = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
UNICODE = "é 日本 😀"  # two-byte, three-byte and four-byte UTF-8; a surrogate pair in UTF-16


class Prefix(str):
    """An expected reason whose tail depends on a library's wording (polars' errors)."""


@dataclass
class Case:
    id: str
    build: Callable[[Path], None]            # writes into the domain folder (and around it)
    records_in: int                          # records the files hold, by construction
    kept: list[tuple[str, int, list[str]]]   # (source_file, line, contents)
    quarantined: list[tuple[str, int, str]]  # (source_file, line, reason); "<tmp>" = tmp_path
    empty: list[str] = field(default_factory=list)
    limit: int | None = None                 # MAX_RECORD_BYTES for this case


def put(folder: Path, name: str, data: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def files(**named: str | bytes) -> Callable[[Path], None]:
    """Builder for plain files; keyword "a_jsonl" is the file "a.jsonl"."""
    def build(domain: Path) -> None:
        for key, data in named.items():
            put(domain, key.replace("_", "."), data)
    return build


def jsonl(*records) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


# The same two records in each text format; `encode` turns the text into the file's bytes.
def two_docs(suffix: str, first: str = "a", second: str = "b") -> str:
    return {
        ".jsonl": jsonl({"text": first}, {"text": second}),
        ".json": json.dumps([{"text": first}, {"text": second}], ensure_ascii=False),
        ".csv": f"text\n{first}\n{second}\n",
        ".txt": f"{first}\n{second}",
    }[suffix]


def two_docs_kept(suffix: str, first: str = "a", second: str = "b") -> list:
    name = "f" + suffix
    if suffix == ".txt":
        return [(name, 1, [f"{first}\n{second}"])]
    lines = {".jsonl": (1, 2), ".json": (1, 2), ".csv": (2, 3)}[suffix]
    return [(name, lines[0], [first]), (name, lines[1], [second])]


TEXT_SUFFIXES = (".jsonl", ".json", ".csv", ".txt")
BOMS = {"utf-8": b"\xef\xbb\xbf", "utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff",
        "utf-32-le": b"\xff\xfe\x00\x00"}


def encoding_cases() -> list[Case]:
    cases = []
    for suffix in TEXT_SUFFIXES:
        for codec, bom in BOMS.items():
            data = bom + two_docs(suffix, UNICODE, "b").encode(codec)
            cases.append(Case(f"bom-{codec}{suffix}", files(**{"f" + suffix: data}),
                              1 if suffix == ".txt" else 2, two_docs_kept(suffix, UNICODE, "b"), []))
        line = 1 if suffix == ".txt" else 0
        for codec, flavour in (("utf-16-le", "UTF-16-LE"), ("utf-16-be", "UTF-16-BE")):
            cases.append(Case(
                f"no-bom-{codec}{suffix}", files(**{"f" + suffix: two_docs(suffix).encode(codec)}), 1,
                [], [("f" + suffix, line, "invalid UTF-8: NUL bytes at every other position (is the "
                                          f"file {flavour} without a byte-order mark?); save it as UTF-8")]))
    return cases


def utf16(text: str) -> bytes:
    return BOMS["utf-16-le"] + text.encode("utf-16-le")


LONE_SURROGATE_LE = b"\x00\xd8"  # a high surrogate unit with no low one after it

MATRIX: list[Case] = [
    # 1. broken JSON lines
    Case("jsonl-broken-lines", files(a_jsonl=jsonl({"text": "one"}) + '{"text": "two" "x": 1}\n'
                                     + '{"text": "abc\n' + jsonl({"text": "three"})), 4,
         [("a.jsonl", 1, ["one"]), ("a.jsonl", 4, ["three"])],
         [("a.jsonl", 2, "invalid JSON: Expecting ',' delimiter at column 16"),
          ("a.jsonl", 3, "invalid JSON: Unterminated string starting at column 10")]),
    Case("json-broken", files(a_json='[\n  {"text": "a"},\n  {"text": }\n]'), 1, [],
         [("a.json", 3, "invalid JSON: Expecting value at line 3 column 12")]),
    Case("json-cut-upload", files(a_json='[{"text": "a"}, {"text": "b"}, {"te'), 1, [],
         [("a.json", 1, "invalid JSON: Unterminated string starting at line 1 column 33")]),
    # 2 + 3. byte-order marks and UTF-16/32 (with and without BOM), each text format
    *encoding_cases(),
    Case("utf16-unpaired-surrogate.jsonl",
         files(a_jsonl=utf16(jsonl({"text": "a"})) + '{"text": "x'.encode("utf-16-le")
               + LONE_SURROGATE_LE + '"}\n'.encode("utf-16-le") + jsonl({"text": "b"}).encode("utf-16-le")),
         3, [("a.jsonl", 1, ["a"]), ("a.jsonl", 3, ["b"])],
         [("a.jsonl", 2, "invalid UTF-16-LE at column 12 of the line (an unpaired surrogate or a cut "
                         "character)")]),
    Case("utf16-cut-last-byte.jsonl", files(a_jsonl=utf16(jsonl({"text": "a"}) + '{"text": "b"}')[:-1]),
         2, [("a.jsonl", 1, ["a"])],
         [("a.jsonl", 2, "invalid UTF-16-LE at column 13 of the line (an unpaired surrogate or a cut "
                         "character)")]),
    Case("utf16-unpaired-surrogate.txt", files(a_txt=utf16("ab") + LONE_SURROGATE_LE), 1, [],
         [("a.txt", 1, "invalid UTF-16-LE at byte 6 of the file")]),
    # 4. invalid UTF-8
    Case("invalid-utf8.jsonl", files(a_jsonl=b'{"text": "ok"}\n{"text": "bad \xff"}\n{"text": "ok2"}\n'),
         3, [("a.jsonl", 1, ["ok"]), ("a.jsonl", 3, ["ok2"])],
         [("a.jsonl", 2, "invalid UTF-8 at byte 14 of the line")]),
    Case("invalid-utf8.json", files(a_json=b'[\n{"text": "ok"},\n{"text": "\xc3("}]'), 1, [],
         [("a.json", 3, "invalid UTF-8 at byte 28 of the file")]),
    Case("invalid-utf8.csv", files(a_csv=b"text\ngood\nba\xffd\n"), 2, [("a.csv", 2, ["good"])],
         [("a.csv", 3, "invalid UTF-8 in column 'text'")]),
    Case("invalid-utf8.txt", files(a_txt=b"abc\ndef\xfe"), 1, [],
         [("a.txt", 1, "invalid UTF-8 at byte 7 of the file")]),
    # 5. CRLF and lone CR line ends
    Case("crlf-and-cr.jsonl", files(a_jsonl=b'{"text": "a"}\r\n{"text": "b"}\r{"text": "c"}\n\r\n{"text": "d"}'),
         4, [("a.jsonl", 1, ["a"]), ("a.jsonl", 2, ["b"]), ("a.jsonl", 3, ["c"]), ("a.jsonl", 5, ["d"])], []),
    Case("lone-cr.csv", files(a_csv=b'text\r"x\ry"\rb\r'), 2, [("a.csv", 2, ["x\ry"]), ("a.csv", 4, ["b"])], []),
    Case("crlf.csv", files(a_csv=b'text\r\n"x\r\ny"\r\nb\r\n'), 2, [("a.csv", 2, ["x\r\ny"]), ("a.csv", 4, ["b"])], []),
    Case("lone-cr.json", files(a_json=b'[{"text": "a"},\r{"text": "b"}]\r'), 2,
         [("a.json", 1, ["a"]), ("a.json", 2, ["b"])], []),
    Case("lone-cr.txt", files(a_txt=b"one\rtwo\r"), 1, [("a.txt", 1, ["one\rtwo\r"])], []),
    # 6. NUL bytes
    Case("nul.jsonl", files(a_jsonl=b'{"text": "a"}\n{"text": "b\x00c"}\n{"text": "d"}\n\x00\x00\x00\x00'),
         4, [("a.jsonl", 1, ["a"]), ("a.jsonl", 3, ["d"])],
         [("a.jsonl", 2, "NUL byte at column 12"), ("a.jsonl", 4, "NUL byte at column 1")]),
    Case("escaped-nul.jsonl", files(a_jsonl='{"text": "b\\u0000c"}\n{"text": "\\ud800"}\n{"text": "ok"}\n'),
         3, [("a.jsonl", 3, ["ok"])],
         [("a.jsonl", 1, "text contains a NUL character at position 2"),
          ("a.jsonl", 2, "text contains an unpaired surrogate U+D800 at position 1")]),
    Case("nul.json", files(a_json=b'[\n{"text": "a"},\n{"text": "b\x00"}]'), 1, [],
         [("a.json", 3, "NUL byte at line 3 column 12")]),
    Case("nul.txt", files(a_txt=b"line one\nli\x00ne two"), 1, [], [("a.txt", 1, "NUL byte at line 2 column 3")]),
    Case("nul.csv", files(a_csv=b"id,text\n1,a\x00b\n2,ok\n"), 2, [("a.csv", 3, ["ok"])],
         [("a.csv", 2, "NUL byte in column 'text' at position 2")]),
    # 7. records over the limit (1 MiB here; 16 MiB in production)
    Case("huge-line.jsonl", files(a_jsonl=b'{"text": "' + b"x" * (40 * MiB) + b'"}\n' + b'{"text": "after"}\n'),
         2, [("a.jsonl", 2, ["after"])],
         [("a.jsonl", 1, f"line of {40 * MiB + 12} bytes exceeds the 1 MiB record limit")], limit=MiB),
    Case("huge.txt", files(a_txt="y" * (2 * MiB)), 1, [],
         [("a.txt", 1, f"file of {2 * MiB} bytes exceeds the 1 MiB record limit")], limit=MiB),
    Case("huge-object.json", files(a_json=json.dumps({"text": "z" * (2 * MiB)})), 1, [],
         [("a.json", 1, f"file of {2 * MiB + 12} bytes exceeds the 1 MiB record limit")], limit=MiB),
    Case("huge-element.json", files(a_json=json.dumps([{"text": "a"}, {"text": "z" * (2 * MiB)}])), 1, [],
         [("a.json", 1, "element 2 is larger than the 1 MiB record limit at line 1 column 17")], limit=MiB),
    Case("large-array-small-elements.json",
         files(a_json=json.dumps([{"text": f"doc {i} " + "w" * 200} for i in range(6000)])),
         6000, [("a.json", i + 1, [f"doc {i} " + "w" * 200]) for i in range(6000)], [], limit=MiB),
    Case("huge-line.csv", files(a_csv="text\n" + "v" * (2 * MiB) + "\nafter\n"), 2, [("a.csv", 3, ["after"])],
         [("a.csv", 2, f"line of {2 * MiB} bytes exceeds the 1 MiB record limit")], limit=MiB),
    Case("unclosed-quote.csv", files(a_csv='text\nok\n"never closed\n' + "more\n" * 300000), 2,
         [("a.csv", 2, ["ok"])],
         [("a.csv", 3, "row starting at line 3 grows past the 1 MiB record limit; "
                       "the rest of the file is not read")], limit=MiB),
    # 8. nesting and numbers json refuses to build
    Case("deep-nesting.jsonl", files(a_jsonl="[" * 100000 + "]" * 100000 + "\n" + '{"a": ' * 100000
                                     + "1" + "}" * 100000 + "\n" + jsonl({"text": "ok"})),
         3, [("a.jsonl", 3, ["ok"])],
         [("a.jsonl", 1, "JSON nested too deeply"), ("a.jsonl", 2, "JSON nested too deeply")]),
    Case("deep-nesting.json", files(a_json="[" * 100000 + "]" * 100000), 1, [],
         [("a.json", 1, "JSON nested too deeply (element 1) at line 1 column 2")]),
    Case("deep-messages.csv", files(a_csv='messages\n"' + "[" * 100000 + '"\n'), 1, [],
         [("a.csv", 2, "messages: JSON nested too deeply")]),
    Case("huge-integer.jsonl", files(a_jsonl='{"text": ' + "9" * 5000 + "}\n"), 1, [],
         [("a.jsonl", 1, "invalid JSON: Exceeds the limit (4300 digits) for integer string conversion")]),
    # 9. wrong types
    Case("wrong-types.jsonl", files(a_jsonl=jsonl(
        {"text": 5}, {"messages": "hi"}, {"messages": [{"content": "q"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "look"},
                                                   {"type": "text", "text": "here"}]},
                      {"role": "assistant", "content": [{"type": "text", "text": "ok"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]},
                      {"role": "assistant", "content": "a"}]},
        {"instruction": ["a"], "output": "b"}, 5, None, "text")), 9,
        [("a.jsonl", 4, ["look\nhere", "ok"])],
        [("a.jsonl", 1, "text must be a string, got int"),
         ("a.jsonl", 2, "messages must be a list, got string"),
         ("a.jsonl", 3, "message 1: missing role"),
         ("a.jsonl", 5, "message 1: content part 1 has type 'image_url'; only text parts can be trained on"),
         ("a.jsonl", 6, "instruction must be a string, got list"),
         ("a.jsonl", 7, "record is an int, expected a JSON object"),
         ("a.jsonl", 8, "record is a null, expected a JSON object"),
         ("a.jsonl", 9, "record is a string, expected a JSON object")]),
    # 10. csv damage
    Case("ragged.csv", files(a_csv="id,text\n1,a\n2,b,extra\n3\n4,d\n"), 4, [("a.csv", 2, ["a"]), ("a.csv", 5, ["d"])],
         [("a.csv", 3, "row has 3 fields, header has 2"), ("a.csv", 4, "row has 1 fields, header has 2")]),
    Case("stray-quote.csv", files(a_csv='text\n"a"b\nok\n'), 2, [("a.csv", 3, ["ok"])],
         [("a.csv", 2, "invalid CSV: ',' expected after '\"'")]),
    Case("unclosed-quote-at-end.csv", files(a_csv='text\nok\n"open\nrest\n'), 2, [("a.csv", 2, ["ok"])],
         [("a.csv", 3, "invalid CSV: unexpected end of data; the rest of the file is not read")]),
    # 11. parquet with the right names but wrong types, and damaged parquet
    Case("wrong-types.parquet", lambda d: (
        pl.DataFrame({"text": [1, 2]}).write_parquet(d / "ints.parquet"),
        pl.DataFrame({"messages": [["hi", "there"]]}).write_parquet(d / "strings.parquet"),
        pl.DataFrame({"text": [b"bytes"]}).write_parquet(d / "binary.parquet")), 4, [],
        [("binary.parquet", 1, "text must be a string, got bytes"),
         ("ints.parquet", 1, "text must be a string, got int"),
         ("ints.parquet", 2, "text must be a string, got int"),
         ("strings.parquet", 1, "message 1: must be an object, got string")]),
    Case("truncated.parquet", lambda d: put(d, "t.parquet", parquet_bytes({"text": ["a"] * 100})[:-20]), 1, [],
         [("t.parquet", 0, Prefix("unreadable parquet: "))]),
    Case("huge-cell.parquet", lambda d: pl.DataFrame({"text": ["w" * (2 * MiB), "ok"]}).write_parquet(d / "p.parquet"),
         2, [("p.parquet", 2, ["ok"])],
         [("p.parquet", 1, f"record of {2 * MiB} characters exceeds the 1 MiB record limit")], limit=MiB),
    # 12. empty files of every type
    Case("empty-files", lambda d: (
        [put(d, "zero" + suffix, b"") for suffix in readers.SUPPORTED_SUFFIXES],
        put(d, "bom-only.jsonl", b"\xef\xbb\xbf"), put(d, "bom-only.txt", b"\xff\xfe"),
        put(d, "blank.jsonl", "\n  \r\n\n"), put(d, "empty-array.json", " [ ] "),
        put(d, "header-only.csv", "text\n"),
        pl.DataFrame({"text": []}, schema={"text": pl.String}).write_parquet(d / "no-rows.parquet"),
        put(d, "real.jsonl", jsonl({"text": "x"}))), 1, [("real.jsonl", 1, ["x"])], [],
        empty=sorted(["zero.jsonl", "zero.json", "zero.parquet", "zero.csv", "zero.txt", "bom-only.jsonl",
                      "bom-only.txt", "blank.jsonl", "empty-array.json", "header-only.csv", "no-rows.parquet"])),
    # 13. symlinks
    Case("symlinks", lambda d: symlink_zoo(d), 8,
         [("inside.jsonl", 1, ["shared"]), ("real.jsonl", 1, ["real"]), ("shared-dir/s.jsonl", 1, ["shared"])],
         [("broken.jsonl", 0, "broken symlink to nowhere.jsonl"),
          ("outside-dir", 0, "symlink to <tmp>/outside points outside the landing root; refused"),
          ("outside.jsonl", 0, "symlink to <tmp>/outside/secret.jsonl points outside the landing root; refused"),
          ("self-loop.jsonl", 0, "broken symlink to self-loop.jsonl"),
          ("sub/loop", 0, "folder <tmp>/landing/domain is read already through another path "
                          "(a symlink loop or a duplicate); skipped")]),
    Case("link-to-the-landing-root", lambda d: (
        put(d, "real.jsonl", jsonl({"text": "real"})), put(d.parent / "other", "x.jsonl", jsonl({"text": "x"})),
        (d / "all").symlink_to(d.parent, target_is_directory=True)), 2,
        [("real.jsonl", 1, ["real"])],
        [("all", 0, "symlink to <tmp>/landing is the landing root or a folder above this domain "
                    "(it would read every domain); refused")]),
    Case("fifo", lambda d: (os.mkfifo(d / "pipe.jsonl"), put(d, "a.jsonl", jsonl({"text": "a"}))), 2,
         [("a.jsonl", 1, ["a"])], [("pipe.jsonl", 0, "not a regular file (a FIFO, socket or device); not read")]),
    # 14. names with spaces, quotes and non-ASCII; a name that is not UTF-8 at all
    Case("unicode-names", lambda d: (
        put(d, "données d'été 2024.jsonl", jsonl({"text": "fr"})), put(d, "日本語 notes.txt", "jp"),
        os.close(os.open(bytes(d) + b"/donn\xe9es.jsonl", os.O_CREAT | os.O_WRONLY))), 3,
        [("données d'été 2024.jsonl", 1, ["fr"]), ("日本語 notes.txt", 1, ["jp"])],
        [("donn\\xe9es.jsonl", 0, "name is not valid UTF-8; rename it to be read")]),
]


def parquet_bytes(columns: dict) -> bytes:
    import io
    buffer = io.BytesIO()
    pl.DataFrame(columns).write_parquet(buffer)
    return buffer.getvalue()


def symlink_zoo(domain: Path) -> None:
    landing, outside = domain.parent, domain.parent.parent / "outside"
    put(landing / ".shared", "s.jsonl", jsonl({"text": "shared"}))  # hidden: where shared files may live
    put(outside, "secret.jsonl", jsonl({"text": "secret"}))
    put(domain, "real.jsonl", jsonl({"text": "real"}))
    (domain / "inside.jsonl").symlink_to("../.shared/s.jsonl")
    (domain / "shared-dir").symlink_to(landing / ".shared", target_is_directory=True)
    (domain / "outside.jsonl").symlink_to(outside / "secret.jsonl")
    (domain / "outside-dir").symlink_to(outside, target_is_directory=True)
    (domain / "broken.jsonl").symlink_to("nowhere.jsonl")
    (domain / "self-loop.jsonl").symlink_to("self-loop.jsonl")
    (domain / "sub").mkdir()
    (domain / "sub" / "loop").symlink_to(domain, target_is_directory=True)


def landing_domain(tmp_path: Path) -> Path:
    domain = tmp_path / "landing" / "domain"
    domain.mkdir(parents=True)
    return domain


def check_report(result: ReadResult) -> None:
    """What must hold for any input: readable snippets and reasons, one row per (file, line)."""
    for row in result.quarantine.iter_rows(named=True):
        assert len(row["snippet"]) <= decoding.SNIPPET_CHARS
        assert "\x00" not in row["snippet"] and "\x00" not in row["reason"]
        assert row["reason"]
    keys = pl.concat([result.rows.select("source_file", "line"), result.quarantine.select("source_file", "line")])
    assert not keys.is_duplicated().any()


@pytest.mark.parametrize("case", MATRIX, ids=lambda case: case.id)
def test_hostile_file(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if case.limit:
        monkeypatch.setattr(readers, "MAX_RECORD_BYTES", case.limit)
    domain = landing_domain(tmp_path)
    case.build(domain)

    result = read_domain(domain)

    kept = [(r["source_file"], r["line"], r["contents"]) for r in result.rows.iter_rows(named=True)]
    assert kept == case.kept
    quarantined = sorted(result.quarantine.select("source_file", "line", "reason").iter_rows())
    expected = sorted((name, line, reason.replace("<tmp>", str(tmp_path.resolve())))
                      for name, line, reason in case.quarantined)
    assert len(quarantined) == len(expected), quarantined
    for got, want in zip(quarantined, expected):
        if isinstance(want[2], Prefix) or want[2].startswith("unreadable parquet"):
            assert got[:2] == want[:2] and got[2].startswith(want[2]), got
        else:
            assert got == want
    assert result.empty_files == case.empty
    assert result.rows_in == len(kept) + len(quarantined) == case.records_in
    check_report(result)
    check_independent_count(domain, result)


def check_independent_count(domain: Path, result: ReadResult) -> None:
    """Every file read through holds as many records, counted without the readers, as the reader
    kept and quarantined; every digest is the file's sha256."""
    paths = dict(zip(result.files, list_domain_files(domain)))
    for name, read in result.file_reads.items():
        count = count_records(paths[name])
        assert read.sha256 == file_sha256(paths[name]) == count.sha256, name
        if not read.stopped:
            assert count.records == read.kept + read.quarantined, (name, count, read)


def test_huge_line_snippet_is_its_first_200_characters(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", MiB)
    domain = landing_domain(tmp_path)
    put(domain, "a.jsonl", '{"text": "' + "é" * MiB + '"}\n')
    [row] = read_domain(domain).quarantine.to_dicts()
    assert row["snippet"] == '{"text": "' + "é" * 190


def test_chunk_boundaries_do_not_change_results(tmp_path, monkeypatch):
    """Every streamed format split at every few bytes reads exactly as in one piece."""
    domain = landing_domain(tmp_path)
    put(domain, "a.jsonl", b'{"text": "a"}\r\n{"text": "\xc3\xa9"}\r{"text": 2.5e3}\n\n{"text": "d"}')
    put(domain, "b.json", '[{"text": "a"},\r\n {"messages": ' + json.dumps(CHAT) + '}, 1.25e2, {"text": "' + UNICODE + '"}]')
    put(domain, "c.csv", b'text\r\n"x\r\ny"\r\nz\r"w\rv"\r')
    put(domain, "d.jsonl", utf16(jsonl({"text": UNICODE}, {"text": "b"})))
    put(domain, "e.txt", utf16(UNICODE * 3))
    whole = read_domain(domain)
    for size in (1, 2, 3, 5, 7):
        monkeypatch.setattr(decoding, "CHUNK_BYTES", size)
        split = read_domain(domain)
        assert split.rows.equals(whole.rows) and split.quarantine.equals(whole.quarantine), size
    assert whole.rows.height == 12 and whole.quarantine.height == 2


def test_listing_refuses_links_outside_the_root_and_takes_a_landing_root(tmp_path):
    domain = landing_domain(tmp_path)
    symlink_zoo(domain)
    names = [p.relative_to(domain).as_posix() for p in list_domain_files(domain)]
    assert names == ["inside.jsonl", "real.jsonl", "shared-dir/s.jsonl"]
    # With the domain folder itself as the root, the shared folder is outside too.
    names = [p.relative_to(domain).as_posix() for p in list_domain_files(domain, landing_root=domain)]
    assert names == ["real.jsonl"]
    refused = read_domain(domain, landing_root=domain).quarantine
    assert "shared-dir" in refused["source_file"].to_list()


def test_listing_only_refused_entries_is_a_result_not_an_error(tmp_path):
    domain = landing_domain(tmp_path)
    (domain / "gone.jsonl").symlink_to("nowhere")
    result = read_domain(domain)
    assert result.rows.is_empty() and result.quarantine["reason"].to_list() == ["broken symlink to nowhere"]
    assert result.files == []


def test_read_result_keeps_its_old_constructor():
    rows = pl.DataFrame(schema=readers.ROW_SCHEMA)
    quarantine = pl.DataFrame(schema=readers.QUARANTINE_SCHEMA)
    assert ReadResult(rows, quarantine, []).empty_files == []


def test_snippets_are_short_printable_and_show_nul(tmp_path):
    domain = landing_domain(tmp_path)
    put(domain, "a.jsonl", b'{"text": "b\x00c"}\n{"text": "\xff"}\n' + b'{"x": "' + "日" .encode() * 500 + b'"}\n')
    put(domain, "b.csv", b"text\nba\xffd\n")
    snippets = read_domain(domain).quarantine.select("source_file", "line", "snippet").rows()
    assert snippets[:3] == [("a.jsonl", 1, '{"text": "b\\x00c"}'), ("a.jsonl", 2, '{"text": "\ufffd"}'),
                            ("a.jsonl", 3, '{"x": "' + "日" * 193)]
    assert snippets[3] == ("b.csv", 2, "ba\ufffdd")
