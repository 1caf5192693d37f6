"""Read one domain's landed files into one polars table with provenance, quarantining the rest.

Pure module (polars + stdlib, never dagster). The rule every reader keeps: each input record ends
up exactly once, either in `rows` (canonical schema) or in `quarantine` (with a specific reason),
so `ReadResult.rows_in` is the honest count of what landed. A file-level failure (unreadable,
unsupported suffix, unparseable .json, parquet/csv without a usable column, a refused symlink) is
one quarantine row with line 0 (or the error's line), because its records cannot be told apart.

Landed files are not trusted: .jsonl and .csv are streamed line by line and every record is capped
at MAX_RECORD_BYTES, so a 500 MB line costs about that cap in memory, not its size; .json arrays
are streamed element by element (see decoding.py). UTF-8, UTF-16 and UTF-32 with a byte-order mark
are read; NUL bytes and lone surrogates never reach the table.
"""

from __future__ import annotations

import csv
import json
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

import polars as pl

from assets.corpora.decoding import (
    HEAD_BYTES,
    DecodeFailure,
    JsonStop,
    RowFeed,
    RowTooLarge,
    TextStart,
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
from assets.corpora.listing import SUPPORTED_SUFFIXES, os_error, scan_domain_files
from assets.corpora.records import parse_record

# One record (a .jsonl line, a .csv row, a .json element, a .txt file, a parquet row's text) may
# not exceed this. Read at call time, so tests can lower it.
MAX_RECORD_BYTES = 16 * 2**20
# Rows a reader holds before handing them to its sink (see read_file).
FLUSH_ROWS = 10_000
# Columns a csv/parquet file may carry; "input" alone identifies no shape, so it is not listed.
SHAPE_COLUMNS = ("messages", "conversations", "instruction", "output", "text")
_ALL_COLUMNS = SHAPE_COLUMNS + ("input",)
_JSON_COLUMNS = ("messages", "conversations")  # tabular files store these as JSON strings
_REASON_CHARS = 500  # reasons quote user data (keys, column names, paths); keep the report small

ROW_SCHEMA = pl.Schema({
    "source_file": pl.String,  # relative to the domain folder, POSIX separators
    "line": pl.Int64,          # 1-based line / element / row number, see read_file
    "kind": pl.String,         # "text" | "chat" | "instruction"
    "roles": pl.List(pl.String),
    "contents": pl.List(pl.String),
})
QUARANTINE_SCHEMA = pl.Schema({
    "source_file": pl.String,
    "line": pl.Int64,          # 0 when the whole file is quarantined
    "reason": pl.String,
    "snippet": pl.String,      # first 200 characters of the offending raw line or record
})

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class ReadResult:
    rows: pl.DataFrame         # ROW_SCHEMA, even when empty
    quarantine: pl.DataFrame   # QUARANTINE_SCHEMA, even when empty
    files: list[str]           # relative POSIX paths of the files read, sorted
    # Files read that held no record at all (0 bytes, only a BOM, blank lines, `[]`, a csv header).
    empty_files: list[str] = field(default_factory=list)
    kept: int = -1  # rows read fine; equals len(rows) unless they were streamed to a sink

    @property
    def rows_kept(self) -> int:
        return len(self.rows) if self.kept < 0 else self.kept

    @property
    def rows_in(self) -> int:
        return self.rows_kept + len(self.quarantine)


def read_domain(domain_dir: Path, landing_root: Path | None = None,
                sink: Callable[[Rows], None] | None = None) -> ReadResult:
    """Read every data file of one domain folder; raise only if there is nothing to read.
    With a `sink`, good rows go to it in batches (see read_file) and `rows` stays empty."""
    domain_dir = Path(domain_dir)
    if not domain_dir.is_dir():
        raise FileNotFoundError(f"domain folder {domain_dir} does not exist or is not a folder")
    listing = scan_domain_files(domain_dir, landing_root)
    if not listing.paths and not listing.refused:
        raise ValueError(f"domain folder {domain_dir} holds no data files "
                         f"(supported: {', '.join(SUPPORTED_SUFFIXES)})")
    rows: Rows = []
    quarantine: Rows = [{"source_file": name, "line": 0, "reason": printable(reason), "snippet": ""}
                        for name, reason in listing.refused]
    files = [path.relative_to(domain_dir).as_posix() for path in listing.paths]
    empty = []
    kept = 0

    def take(batch: Rows) -> None:
        nonlocal kept
        kept += len(batch)
        if sink is None:
            rows.extend(batch)
        elif batch:
            sink(batch)

    for path, name in zip(listing.paths, files):
        before = kept
        file_rows, file_quarantine = read_file(path, name, take if sink else None)
        take(file_rows)
        if kept == before and not file_quarantine:
            empty.append(name)
        quarantine.extend(file_quarantine)
    return ReadResult(_frame(rows, ROW_SCHEMA), _frame(quarantine, QUARANTINE_SCHEMA), files,
                      sorted(empty), kept)


def read_file(path: Path, relative_name: str, sink: Callable[[Rows], None] | None = None) -> tuple[Rows, Rows]:
    """(rows, quarantine) of one file as dicts keyed like ROW_SCHEMA / QUARANTINE_SCHEMA.

    With a `sink`, rows are handed to it every FLUSH_ROWS rows instead of piling up, so a file of
    millions of records costs one batch of memory; the returned rows are then only the last part.
    A .json file is one document that is either read through or rejected whole, so it is not flushed.

    `line` is the physical start line for .jsonl and .csv (header = line 1; LF, CRLF and lone CR
    each end a line), the 1-based element for a .json array (1 for a single object; the file line
    for a .json that cannot be read through), the 1-based row for .parquet, 1 for .txt.
    """
    suffix = path.suffix.lower()
    out = _Collector(relative_name, sink if suffix != ".json" else None)
    reader = _READERS.get(suffix)
    if reader is None:
        shown = f"'{suffix}'" if suffix else "(no suffix)"
        out.reject(0, f"unsupported file type {shown} (supported: {', '.join(SUPPORTED_SUFFIXES)})",
                   "")
        return out.rows, out.quarantine
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # checked before open: opening a FIFO blocks
            out.reject(0, "not a regular file (a FIFO, socket or device); not read", "")
        elif info.st_size:
            with path.open("rb") as stream:
                start = open_text(stream) if suffix != ".parquet" else TextStart("", 0)
                if start.refusal:
                    out.reject(1 if suffix == ".txt" else 0, start.refusal, start.head)
                else:
                    reader(stream, out, info.st_size, start.codec, start.bom)
    except OSError as error:
        out.reject(0, f"cannot read file: {os_error(error)}", "")
    return out.rows, out.quarantine


class _Collector:
    """Accumulates one file's outcomes so each reader only says what happened at which line."""

    def __init__(self, source_file: str, sink: Callable[[Rows], None] | None = None):
        self.source_file = source_file
        self.rows: Rows = []
        self.quarantine: Rows = []
        self.sink = sink

    def reject(self, line: int, reason: str, raw: str | bytes) -> None:
        self.quarantine.append({"source_file": self.source_file, "line": line,
                                "reason": printable(reason)[:_REASON_CHARS], "snippet": snippet(raw)})

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
        if self.sink is not None and len(self.rows) >= FLUSH_ROWS:
            self.sink(self.rows)
            self.rows = []

    def clear(self) -> None:
        self.rows.clear()
        self.quarantine.clear()


def _frame(records: Rows, schema: pl.Schema) -> pl.DataFrame:
    return pl.DataFrame({name: [r[name] for r in records] for name in schema}, schema=schema)


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
        out.reject(stop.line, reason, stop.snippet)


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
                out.reject(0 if header is None else start,
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
                out.reject(0, _no_columns_reason(header), raw)
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
    try:
        columns = pl.read_parquet_schema(stream).names()
        if not set(columns) & set(SHAPE_COLUMNS):
            out.reject(0, _no_columns_reason(columns), "")
            return
        stream.seek(0)
        # Only the payload columns are read: ids, embeddings and metadata are ignored anyway.
        frame = pl.read_parquet(stream, columns=[c for c in columns if c in _ALL_COLUMNS])
    except (OSError, ValueError, pl.exceptions.PolarsError, pl.exceptions.PanicException) as error:
        # PanicException (a BaseException) is how polars reports some corrupt pages.
        out.reject(0, f"unreadable parquet: {str(error).strip().splitlines()[0][:300]}", "")
        return
    for number, record in enumerate(frame.iter_rows(named=True), start=1):
        _add_tabular(number, record, out, lambda record=record: _dump(record))


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
