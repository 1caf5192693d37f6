"""Read one domain's landed files into one polars table with provenance, quarantining the rest.

Pure module (polars + pyarrow + stdlib, never dagster). The rule every reader keeps: each input
record ends up exactly once, either in the rows (canonical schema) or in the quarantine (with a
specific reason), so `ReadResult.rows_in` is the honest count of what landed. A file-level failure
(unreadable, unsupported suffix, unparseable .json, parquet/csv without a usable column, a refused
symlink) is one quarantine row with line 0 (or the error's line), because its records cannot be
told apart; such a file is marked `stopped` (its count cannot be checked against an independent
count of its records, see counting.py).

Landed files are not trusted, and memory stays bounded for every shape: .jsonl and .csv are
streamed line by line and every record is capped at MAX_RECORD_BYTES; .json arrays are streamed
element by element (see decoding.py); parquet is decoded by row group in batches of about
PARQUET_BATCH_BYTES, and a row group holding a page over PARQUET_PAGE_BYTES (a page is decoded
whole) is refused from the page headers (parquet_pages.py); kept and quarantined rows alike go to
an `Output` every FLUSH_ROWS rows or FLUSH_BYTES characters.
UTF-8, UTF-16 and UTF-32 with a byte-order mark are read; NUL bytes and lone surrogates never
reach the table. Each file is hashed while it is read (hashed_file.py), so its digest describes
exactly the bytes its rows came from.
"""

from __future__ import annotations

import csv
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from assets.corpora.decoding import (
    HEAD_BYTES,
    DecodeFailure,
    JsonStop,
    RowFeed,
    RowTooLarge,
    format_limit,
    invalid_cell,
    iter_json_values,
    iter_lines,
    iter_text,
    json_error,
    open_text,
    printable,
    snippet,
    undecodable_line,
    utf8_stream,
)
from assets.corpora.hashed_file import HashedFile, copy_hashed
from assets.corpora.listing import SUPPORTED_SUFFIXES, os_error, scan_domain_files
from assets.corpora.parquet_pages import batch_rows, largest_payload_page
from assets.corpora.records import parse_record
from assets.corpora.tables import (  # the schemas and ReadResult are imported from here too
    QUARANTINE_SCHEMA,
    ROW_SCHEMA,
    UNREADABLE,
    FileRead,
    MemoryOutput,
    Output,
    ReadResult,
    Rows,
    frame,
)

# One record (a .jsonl line, a .csv row, a .json element, a .txt file, a parquet row's text) may
# not exceed this. Read at call time, so tests can lower it.
MAX_RECORD_BYTES = 16 * 2**20
# A reader hands its rows to the output every FLUSH_ROWS rows or FLUSH_BYTES characters of text,
# whichever comes first: the row count bounds many small rows, the characters a few huge ones.
FLUSH_ROWS = 10_000
FLUSH_BYTES = 16 * 2**20
# Characters of text a parquet batch decodes to at most (estimated from the footer's sizes), and
# the largest page accepted: a page is decompressed whole, whatever the batch size.
PARQUET_BATCH_BYTES = 8 * 2**20
PARQUET_PAGE_BYTES = 64 * 2**20
# Columns a csv/parquet file may carry; "input" alone identifies no shape, so it is not listed.
SHAPE_COLUMNS = ("messages", "conversations", "instruction", "output", "text")
_ALL_COLUMNS = SHAPE_COLUMNS + ("input",)
_JSON_COLUMNS = ("messages", "conversations")  # tabular files store these as JSON strings
_REASON_CHARS = 500  # reasons quote user data (keys, column names, paths); keep the report small

def read_domain(domain_dir: Path, landing_root: Path | None = None, output: Output | None = None,
                spool_dir: Path | None = None) -> ReadResult:
    """Read every data file of one domain folder; raise only if there is nothing to read.

    With an `output`, rows and quarantine rows go to it in batches and the returned frames stay
    empty. Parquet files are copied (hashed on the way) into `spool_dir` (default: a temporary
    folder) and read from the copy, one at a time.
    """
    domain_dir = Path(domain_dir)
    if not domain_dir.is_dir():
        raise FileNotFoundError(f"domain folder {domain_dir} does not exist or is not a folder")
    listing = scan_domain_files(domain_dir, landing_root)
    if not listing.paths and not listing.refused:
        raise ValueError(f"domain folder {domain_dir} holds no data files "
                         f"(supported: {', '.join(SUPPORTED_SUFFIXES)})")
    memory = MemoryOutput() if output is None else None
    out: Output = memory or output  # type: ignore[assignment]
    if listing.refused:
        out.quarantine([{"source_file": name, "line": 0, "reason": printable(reason), "snippet": ""}
                        for name, reason in listing.refused])
    files = [path.relative_to(domain_dir).as_posix() for path in listing.paths]
    reads = {name: read_file(path, name, out, spool_dir) for path, name in zip(listing.paths, files)}
    empty = sorted(name for name, read in reads.items() if not read.kept and not read.quarantined)
    kept = sum(read.kept for read in reads.values())
    quarantined = len(listing.refused) + sum(read.quarantined for read in reads.values())
    rows, quarantine = (memory.kept, memory.quarantined) if memory else ([], [])
    return ReadResult(frame(rows, ROW_SCHEMA), frame(quarantine, QUARANTINE_SCHEMA), files, empty,
                      kept, quarantined, reads, list(listing.refused), list(getattr(listing, "skipped", [])))


def read_file(path: Path, relative_name: str, output: Output, spool_dir: Path | None = None) -> FileRead:
    """Read one file into `output` (rows and quarantine rows keyed like ROW_SCHEMA / QUARANTINE_SCHEMA).

    `line` is the physical start line for .jsonl and .csv (header = line 1; LF, CRLF and lone CR
    each end a line), the 1-based element for a .json array (1 for a single object; the file line
    for a .json that cannot be read through), the 1-based row for .parquet, 1 for .txt.
    """
    suffix = path.suffix.lower()
    out = _Collector(relative_name, output)
    reader = _READERS.get(suffix)
    digest = UNREADABLE
    if suffix == ".json":
        output.begin()
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # checked before open: opening a FIFO blocks
            out.stop(0, "not a regular file (a FIFO, socket or device); not read", "")
        else:
            with path.open("rb") as handle:
                stream = HashedFile(handle)
                size = os.fstat(handle.fileno()).st_size
                if reader is None:
                    shown = f"'{suffix}'" if suffix else "(no suffix)"
                    out.stop(0, f"unsupported file type {shown} (supported: {', '.join(SUPPORTED_SUFFIXES)})", "")
                elif size and suffix == ".parquet":
                    _read_copy(stream, out, size, spool_dir)
                elif size:
                    _read_text_file(stream, out, size, reader, suffix)
                digest = stream.finish()
    except OSError as error:
        out.stop(0, f"cannot read file: {os_error(error)}", "")
    out.flush()
    if suffix == ".json":
        output.commit()
    return FileRead(digest, out.kept, out.quarantined, out.stopped)


def _read_text_file(stream: HashedFile, out: _Collector, size: int, reader: Callable, suffix: str) -> None:
    start = open_text(stream)
    if not start.refusal:
        reader(stream, out, size, start.codec, start.bom)
    elif suffix == ".txt":  # a .txt file is one record: refusing it is refusing that record
        out.reject(1, start.refusal, start.head)
    else:
        out.stop(0, start.refusal, start.head)


def _read_copy(stream: HashedFile, out: _Collector, size: int, spool_dir: Path | None) -> None:
    # Parquet is read by random access, which a forward hash cannot follow: the bytes are copied
    # (and hashed) into a private file first, so the rows come from exactly the hashed bytes.
    with tempfile.TemporaryDirectory(prefix=".parquet-", dir=spool_dir) as spool:
        copy = Path(spool) / "landed.parquet"
        copy_hashed(stream, copy)
        with open(copy, "rb") as private:
            _read_parquet(private, out, size, "", 0)


class _Collector:
    """One file's outcomes, handed to the output in batches, so each reader only says what
    happened at which line."""

    def __init__(self, source_file: str, output: Output):
        self.source_file = source_file
        self.output = output
        self.rows: Rows = []
        self.quarantine: Rows = []
        self.characters = 0  # text held in self.rows
        self.kept = self.quarantined = 0
        self.stopped = False

    def reject(self, line: int, reason: str, raw: str | bytes) -> None:
        self.quarantine.append({"source_file": self.source_file, "line": line,
                                "reason": printable(reason)[:_REASON_CHARS], "snippet": snippet(raw)})
        self.quarantined += 1
        if len(self.quarantine) >= FLUSH_ROWS:
            self.flush()

    def stop(self, line: int, reason: str, raw: str | bytes) -> None:
        """The rest of the file (from `line`) is not read: one quarantine row stands for it."""
        self.reject(line, reason, raw)
        self.stopped = True

    def add(self, line: int, obj: Any, raw: Callable[[], str]) -> None:
        # The snippet is built lazily: serialising every good record would double the cost.
        parsed = parse_record(obj)
        if isinstance(parsed, str):
            self.reject(line, parsed, raw())
            return
        kind, roles, contents = parsed
        size = sum(map(len, contents))
        if size > MAX_RECORD_BYTES:  # parquet and csv cells are not capped by a line reader
            self.reject(line, f"record of {size} characters exceeds the "
                              f"{format_limit(MAX_RECORD_BYTES)} record limit", raw())
            return
        self.rows.append({"source_file": self.source_file, "line": line,
                          "kind": kind, "roles": roles, "contents": contents})
        self.kept += 1
        self.characters += size
        if len(self.rows) >= FLUSH_ROWS or self.characters >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.output.rows(self.rows)
        if self.quarantine:
            self.output.quarantine(self.quarantine)
        self.rows, self.quarantine, self.characters = [], [], 0

    def clear(self) -> None:
        """Forget everything this file gave so far (a .json that cannot be read through)."""
        self.rows, self.quarantine, self.characters = [], [], 0
        self.kept = self.quarantined = 0
        self.output.rollback()


def _dump(obj: Any) -> str:
    try:
        return json.dumps(obj, ensure_ascii=False, default=str)
    except (RecursionError, ValueError):  # nested deeper than json can write, or a huge integer
        return f"<{type(obj).__name__} that cannot be shown>"


def _read_jsonl(stream: BinaryIO, out: _Collector, size: int, codec: str, bom: int) -> None:
    limit = MAX_RECORD_BYTES
    # Lines are bytes until they pass the size cap; each decodes on its own, so one bad byte costs
    # one line, and U+2028 inside a string (which str.splitlines treats as a break) stays put.
    for line in iter_lines(utf8_stream(stream, codec), limit):
        number, raw = line.number, line.data
        if raw is None:
            out.reject(number, f"line of {line.size} bytes exceeds the {format_limit(limit)} "
                               "record limit", line.head)
            continue
        if not raw.strip():
            continue  # blank lines are layout, not records
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            out.reject(number, undecodable_line(raw, error, codec, bom if number == 1 else 0), raw)
            continue
        if (nul := text.find("\x00")) >= 0:  # json would call it an invalid control character
            out.reject(number, f"NUL byte at column {nul + 1}", text)
            continue
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as error:  # ValueError covers JSONDecodeError
            out.reject(number, json_error(error), text)
            continue
        out.add(number, obj, lambda: text)


def _read_json(stream: BinaryIO, out: _Collector, size: int, codec: str, bom: int) -> None:
    try:
        for number, element in iter_json_values(iter_text(stream, codec, bom), MAX_RECORD_BYTES):
            out.add(number, element, lambda element=element: _dump(element))
    except (JsonStop, DecodeFailure) as stop:
        # A .json that cannot be read to its end stays one row, as when it was parsed whole: what
        # follows the damage cannot be counted, and keeping what precedes it would make a cut
        # upload look healthy.
        reason = stop.reason
        if isinstance(stop, JsonStop) and stop.oversized == "the JSON value":
            reason = f"file of {size} bytes exceeds the {format_limit(MAX_RECORD_BYTES)} record limit"
        out.clear()
        out.stop(stop.line, reason, stop.snippet)


def _read_txt(stream: BinaryIO, out: _Collector, size: int, codec: str, bom: int) -> None:
    # The file is one document, so every row it gives is line 1.
    if size - bom > MAX_RECORD_BYTES:
        out.reject(1, f"file of {size} bytes exceeds the {format_limit(MAX_RECORD_BYTES)} "
                      "record limit", stream.read(HEAD_BYTES).decode(codec, "replace"))
        return
    try:
        text = "".join(iter_text(stream, codec, bom))
    except DecodeFailure as failure:
        out.reject(1, failure.reason, failure.snippet)
        return
    if not text and bom:
        return  # a byte-order mark alone is as empty as a 0-byte file
    if (nul := text.find("\x00")) >= 0:
        line_start = text.rfind("\n", 0, nul) + 1
        out.reject(1, f"NUL byte at line {text.count(chr(10), 0, line_start) + 1} "
                      f"column {nul - line_start + 1}", text[line_start:])
        return
    out.add(1, {"text": text}, lambda: text)


def _read_csv(stream: BinaryIO, out: _Collector, size: int, codec: str, bom: int) -> None:
    limit = MAX_RECORD_BYTES
    # The feed caps rows; csv's own field cap (128 KiB by default) would refuse normal documents.
    csv.field_size_limit(max(csv.field_size_limit(), limit + 1))
    feed = RowFeed(iter_lines(utf8_stream(stream, codec), limit), limit)
    # strict: a stray quote is an error on its row instead of silently merging the following rows.
    reader = csv.reader(feed, strict=True)
    header: list[str] | None = None
    while True:
        feed.start_row()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except (RowTooLarge, csv.Error) as error:
            start, head = feed.row_start, feed.row_head
            reason = str(error) if isinstance(error, RowTooLarge) else f"invalid CSV: {error}"
            if header is None or feed.last != start:
                # Inside a multi-line row csv cannot find the next row start: the rest is one record.
                out.stop(0 if header is None else start,
                         reason + "; the rest of the file is not read", head)
                return
            out.reject(start, reason, head)
            continue
        start = feed.row_start
        if not cells or not any(cell.strip() for cell in cells):
            continue
        raw = ",".join(cells)
        if header is None:
            header = [cell.strip() for cell in cells]
            if not set(header) & set(SHAPE_COLUMNS):
                out.stop(0, _no_columns_reason(header), raw)
                return
            continue
        if len(cells) != len(header):
            out.reject(start, f"row has {len(cells)} fields, header has {len(header)}", raw)
            continue
        bad = next((reason for name, cell in zip(header, cells) if name in _ALL_COLUMNS
                    and (reason := invalid_cell(name, cell, codec))), None)
        if bad:
            out.reject(start, bad, raw)
            continue
        # csv cannot tell an empty cell from a missing value; treating it as missing lets one file
        # mix text rows and instruction rows.
        record = {name: (cell if cell != "" else None)
                  for name, cell in zip(header, cells) if name in _ALL_COLUMNS}
        _add_tabular(start, record, out, lambda: raw)


def _read_parquet(stream: BinaryIO, out: _Collector, size: int, codec: str, bom: int) -> None:
    number = 0  # rows handed on (or refused) so far
    try:
        landed = pq.ParquetFile(stream)
        names = landed.schema_arrow.names
        if not set(names) & set(SHAPE_COLUMNS):
            out.stop(0, _no_columns_reason(names), "")
            return
        # Only the payload columns are decoded (ids, embeddings and metadata are ignored anyway),
        # one row group at a time and in batches within it: a small file may decode to gigabytes.
        columns = [name for name in names if name in _ALL_COLUMNS]
        with open(stream.name, "rb") as headers:
            for group in range(landed.metadata.num_row_groups):
                meta = landed.metadata.row_group(group)
                if (page := largest_payload_page(headers, meta, columns)) > PARQUET_PAGE_BYTES:
                    out.stop(number + 1, f"rows {number + 1}-{number + meta.num_rows} (row group {group + 1}) not read: "
                             f"a page decodes to {page} bytes at once, over the {format_limit(PARQUET_PAGE_BYTES)} "
                             "page limit; write the file with smaller pages (or as .jsonl)", "")
                    number += meta.num_rows
                    continue
                rows = batch_rows(meta, columns, PARQUET_BATCH_BYTES, FLUSH_ROWS)
                for batch in landed.iter_batches(rows, row_groups=[group], columns=columns, use_threads=False):
                    for record in batch.to_pylist():
                        number += 1
                        _add_tabular(number, record, out, lambda record=record: _dump(record))
    except (OSError, ValueError, pa.ArrowException) as error:  # PageHeaderError is a ValueError
        message = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        where = f" from row {number + 1}; the rest of the file is not read" if number else ""
        out.stop(number + 1 if number else 0, f"unreadable parquet{where}: {message}", "")


def _add_tabular(line: int, record: dict, out: _Collector, raw: Callable[[], str]) -> None:
    """csv/parquet rows: chat columns may hold JSON text rather than nested values."""
    for name in _JSON_COLUMNS:
        if isinstance(record.get(name), str):
            try:
                record[name] = json.loads(record[name])
            except (ValueError, RecursionError) as error:
                out.reject(line, f"{name}: {json_error(error)}", raw())
                return
    out.add(line, record, raw)


def _no_columns_reason(columns: list[str]) -> str:
    shown = [name[:40] for name in list(columns)[:20]]
    return (f"no recognised column: found {shown}; "
            "expected text, messages, conversations or instruction/output")


# Each reader gets the open file after its byte-order mark, its size, the codec and BOM length.
_READERS: dict[str, Callable[[BinaryIO, _Collector, int, str, int], None]] = {
    ".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv,
    ".parquet": _read_parquet, ".txt": _read_txt,
}
