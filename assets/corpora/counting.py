"""How many records a landed file holds, counted without the readers: the reconciliation's other side.

Pure module (stdlib + pyarrow's footer reader, never dagster). `rows in = kept + quarantined` is
true by construction when both sides come from the reader, so it cannot catch a reader that drops
records. This module counts records its own way, from the bytes, sharing no parsing code with
readers.py/decoding.py:
  .jsonl    lines holding a byte other than ASCII whitespace (LF, CRLF and CR end a line)
  .csv      rows of the csv module after the first non-blank row (the header), blank rows not counted
  .json     elements of a top-level array (a streaming scan of brackets, commas and strings), or 1
            for any other top-level value
  .parquet  num_rows from the footer
  .txt      1 when the file holds anything after its byte-order mark (a .txt file is one document)
Anything else counts as None (not a data format). Every byte is also hashed, so a count can be
matched to the read it checks: a file rewritten in between is not compared.

Memory stays bounded: files are read in 1 MiB chunks and a csv line longer than the cap is passed
on as its head (keeping the parity of its quotes, which is all the csv module needs to find rows).
"""

import codecs
import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import pyarrow.parquet as pq

_CHUNK_BYTES = 1 << 20
LINE_CAP = 1 << 20  # bytes of a csv line passed to the csv module; the rest is dropped
FIELD_CAP = 32 << 20  # characters of one csv field spread over lines, at most
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_JSON_WS = " \t\n\r"
_OUTSIDE = re.compile(r'["\[\]{},]')
_INSIDE = re.compile(r'["\\]')


@dataclass(frozen=True)
class RecordCount:
    records: int | None  # None: not a format the counter knows
    sha256: str          # of the bytes counted


def count_records(path: Path) -> RecordCount:
    """Count the records of one landed file (see the module docstring); OSError propagates."""
    suffix = path.suffix.lower()
    with open(path, "rb") as handle:
        stream = _Hashing(handle)
        if suffix == ".parquet":
            while stream.read(_CHUNK_BYTES):
                pass
            handle.seek(0)
            try:
                records: int | None = pq.ParquetFile(handle).metadata.num_rows
            except (OSError, ValueError):  # not parquet: the reader refuses it whole
                records = 0
        elif suffix in (".jsonl", ".csv", ".json", ".txt"):
            records = _COUNTERS[suffix](stream)
        else:
            records = None
        while stream.read(_CHUNK_BYTES):  # whatever a counter left unread is hashed too
            pass
    return RecordCount(records, stream.sha.hexdigest())


class _Hashing:
    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.sha = raw, hashlib.sha256()

    def read(self, size: int) -> bytes:
        data = self.raw.read(size)
        self.sha.update(data)
        return data


def _utf8_chunks(stream: _Hashing) -> Iterator[bytes]:
    """The file as UTF-8 byte chunks after its byte-order mark (other encodings re-encoded)."""
    first = stream.read(_CHUNK_BYTES)
    bom, codec = next(((bom, name) for bom, name in _BOMS if first.startswith(bom)), (b"", "utf-8"))
    if codec == "utf-8":
        yield first[len(bom):]
        while chunk := stream.read(_CHUNK_BYTES):
            yield chunk
        return
    decoder = codecs.getincrementaldecoder(codec)("replace")
    data = first[len(bom):]
    while True:
        yield decoder.decode(data, final=not data).encode("utf-8")
        if not data:
            return
        data = stream.read(_CHUNK_BYTES)


def _lines(chunks: Iterator[bytes], cap: int) -> Iterator[tuple[bytes, bool]]:
    """(line head with its terminator, holds a non-whitespace byte) of every physical line."""
    parts: list[bytes] = []
    kept, quotes, filled = 0, 0, False
    for chunk in chunks:
        for piece in chunk.splitlines(keepends=True):  # bytes: splits on \n, \r\n and \r only
            body = piece.rstrip(b"\r\n")
            filled = filled or bool(body.strip())
            room = max(cap - kept, 0)
            parts.append(body[:room])
            kept += min(len(body), room)
            quotes += body[room:].count(b'"') if room < len(body) else 0
            if len(body) < len(piece):
                yield _line(parts, quotes, piece[len(body):]), filled
                parts, kept, quotes, filled = [], 0, 0, False
    if parts:
        yield _line(parts, quotes, b""), filled


def _line(parts: list[bytes], dropped_quotes: int, ending: bytes) -> bytes:
    return b"".join(parts) + (b'"' if dropped_quotes % 2 else b"") + ending


def _count_jsonl(stream: _Hashing) -> int:
    return sum(filled for _, filled in _lines(_utf8_chunks(stream), LINE_CAP))


def _count_csv(stream: _Hashing) -> int:
    lines = (line.decode("utf-8", "replace") for line, _ in _lines(_utf8_chunks(stream), LINE_CAP))
    # A multi-line field is bounded by the field limit (process-wide; readers.py raises it too).
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_CAP))
    reader = csv.reader(lines)  # not strict: a stray quote is one bad row either way
    rows = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return max(rows - 1, 0)  # the first non-blank row is the header
        except csv.Error:  # one row the reader will quarantine
            rows += 1
            continue
        rows += any(cell.strip() for cell in row)


def _count_txt(stream: _Hashing) -> int:
    return int(any(chunk for chunk in _utf8_chunks(stream)))


def _count_json(stream: _Hashing) -> int:
    """Top-level array elements: commas at depth 1 plus one if the array holds anything."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    depth, in_string, escaped = 0, False, False
    top: str | None = None  # "[" for an array, "v" for another value, None before the first byte
    commas, filled = 0, False
    for chunk in _utf8_chunks(stream):
        text, position = decoder.decode(chunk, final=not chunk), 0
        while position < len(text):
            if escaped:
                escaped, position = False, position + 1
                continue
            if in_string:
                found = _INSIDE.search(text, position)
                if found is None:
                    break
                escaped, in_string = found.group() == "\\", found.group() == "\\"
                position = found.end()
                continue
            if top is None:
                stripped = text[position:].lstrip(_JSON_WS)
                if not stripped:
                    break
                top = "[" if stripped[0] == "[" else "v"
                if top == "v":
                    return 1
                depth, position = 1, len(text) - len(stripped) + 1
                continue
            found = _OUTSIDE.search(text, position)
            between = text[position:found.start() if found else len(text)]
            if depth == 1 and not filled and between.strip(_JSON_WS):
                filled = True
            if found is None:
                break
            token, position = found.group(), found.end()
            if token == '"':
                in_string, filled = True, filled or depth >= 1
            elif token in "[{":
                filled, depth = filled or depth == 1, depth + 1
            elif token in "]}":
                depth -= 1
            elif token == "," and depth == 1:
                commas += 1
    return commas + 1 if filled else 0


_COUNTERS = {".jsonl": _count_jsonl, ".csv": _count_csv, ".json": _count_json, ".txt": _count_txt}


@dataclass(frozen=True)
class Tally:
    """The read stage's side of the reconciliation: records the landed files hold."""
    counted: int                  # counted independently, see `tally`
    not_counted: dict[str, str]   # file -> why the reader's own number stands in for a count
    mismatches: dict[str, str]    # file -> "counted N, read M (...)": a reader lost or invented rows


def tally(folder: Path, reads: dict, refused: int) -> Tally:
    """Count every file of a read (`reads`: relative name -> readers.FileRead) again, from its bytes.

    A file whose read stopped early (one quarantine row stands for its unreadable rest) and a file
    whose bytes changed after it was read cannot be compared: the reader's kept + quarantined
    stands in for them, and they are listed. Each refused entry (a link outside the landing, a
    FIFO) counts as the one quarantine row it is.
    """
    counted, not_counted, mismatches = refused, {}, {}
    for name, read in sorted(reads.items()):
        produced = read.kept + read.quarantined
        count, why = _recount(folder / name, read)
        if count is None:
            counted += produced
            not_counted[name] = why
            continue
        counted += count
        if count != produced:
            mismatches[name] = (f"counted {count} records, read {produced} "
                                f"({read.kept} kept + {read.quarantined} quarantined)")
    return Tally(counted, not_counted, mismatches)


def _recount(path: Path, read) -> tuple[int | None, str]:
    """(records, "") or (None, why the file cannot be compared)."""
    if read.stopped:
        return None, "its read stopped early: one quarantine row stands for the rest of the file"
    try:
        count = count_records(path)
    except OSError as error:
        return None, f"cannot be counted: [Errno {error.errno}] {error.strerror}"
    if count.sha256 != read.sha256:
        return None, "it changed after it was read"
    if count.records is None:
        return None, "not a format the counter knows"
    return count.records, ""
