"""Read one domain's landed files into one polars table with provenance, quarantining the rest.

Pure module (polars + stdlib, never dagster). The rule every reader keeps: each input record ends
up exactly once, either in `rows` (canonical schema) or in `quarantine` (with a specific reason),
so `ReadResult.rows_in` is the honest count of what landed. A file-level failure (unreadable,
unsupported suffix, unparseable .json, parquet/csv without a usable column) is one quarantine row
with line 0 (or the error's line), because its records cannot be told apart.

Files are read whole into memory: corpora for adapter training are megabytes to a few gigabytes,
and one code path per format is worth more here than streaming.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import polars as pl

from assets.corpora.records import parse_record

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".txt")
SETTINGS_NAMES = ("domain.yaml", "domain.yml")
# Names left behind by uploads in progress and editors; reading them would ingest half a file.
_PARTIAL_ENDINGS = (".tmp", ".part", ".partial", "~")
# Columns a csv/parquet file may carry; "input" alone identifies no shape, so it is not listed.
SHAPE_COLUMNS = ("messages", "conversations", "instruction", "output", "text")
_ALL_COLUMNS = SHAPE_COLUMNS + ("input",)
_JSON_COLUMNS = ("messages", "conversations")  # tabular files store these as JSON strings
_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\udc80-\udcff]")  # what surrogateescape turns undecodable bytes into
_SNIPPET = 200

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

    @property
    def rows_in(self) -> int:
        return len(self.rows) + len(self.quarantine)


def list_domain_files(domain_dir: Path) -> list[Path]:
    """Every candidate data file under `domain_dir`, sorted by relative path.

    Unsupported suffixes are kept on purpose: they are quarantined so a mis-exported file shows up
    in the report instead of silently vanishing. Hidden names are skipped at any depth (.git,
    .ipynb_checkpoints); the settings file only at the top, where settings are read from.
    """
    found = []
    for path in domain_dir.rglob("*"):
        relative = path.relative_to(domain_dir)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.name.endswith(_PARTIAL_ENDINGS) or not path.is_file():
            continue
        if len(relative.parts) == 1 and path.name in SETTINGS_NAMES:
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.relative_to(domain_dir).as_posix())


def read_domain(domain_dir: Path) -> ReadResult:
    """Read every data file of one domain folder; raise only if there is nothing to read."""
    domain_dir = Path(domain_dir)
    if not domain_dir.is_dir():
        raise FileNotFoundError(f"domain folder {domain_dir} does not exist or is not a folder")
    paths = list_domain_files(domain_dir)
    if not paths:
        raise ValueError(f"domain folder {domain_dir} holds no data files "
                         f"(supported: {', '.join(SUPPORTED_SUFFIXES)})")
    rows: Rows = []
    quarantine: Rows = []
    files = [path.relative_to(domain_dir).as_posix() for path in paths]
    for path, name in zip(paths, files):
        file_rows, file_quarantine = read_file(path, name)
        rows.extend(file_rows)
        quarantine.extend(file_quarantine)
    return ReadResult(_frame(rows, ROW_SCHEMA), _frame(quarantine, QUARANTINE_SCHEMA), files)


def read_file(path: Path, relative_name: str) -> tuple[Rows, Rows]:
    """(rows, quarantine) of one file as dicts keyed like ROW_SCHEMA / QUARANTINE_SCHEMA.

    `line` is the physical start line for .jsonl and .csv (header = line 1), the 1-based element
    for a .json array (1 for a single object), the 1-based row for .parquet, 1 for .txt.
    """
    out = _Collector(relative_name)
    suffix = path.suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        shown = f"'{suffix}'" if suffix else "(no suffix)"
        out.reject(0, f"unsupported file type {shown} (supported: {', '.join(SUPPORTED_SUFFIXES)})",
                   "")
        return out.rows, out.quarantine
    try:
        data = path.read_bytes()
    except OSError as error:
        out.reject(0, f"cannot read file: [Errno {error.errno}] {error.strerror}", "")
        return out.rows, out.quarantine
    reader(data, out)
    return out.rows, out.quarantine


class _Collector:
    """Accumulates one file's outcomes so each reader only says what happened at which line."""

    def __init__(self, source_file: str):
        self.source_file = source_file
        self.rows: Rows = []
        self.quarantine: Rows = []

    def reject(self, line: int, reason: str, snippet: str) -> None:
        self.quarantine.append({"source_file": self.source_file, "line": line,
                                "reason": reason, "snippet": snippet[:_SNIPPET]})

    def add(self, line: int, obj: Any, snippet: Callable[[], str]) -> None:
        # The snippet is built lazily: serialising every good record would double the cost.
        parsed = parse_record(obj)
        if isinstance(parsed, str):
            self.reject(line, parsed, snippet())
        else:
            kind, roles, contents = parsed
            self.rows.append({"source_file": self.source_file, "line": line,
                              "kind": kind, "roles": roles, "contents": contents})


def _frame(records: Rows, schema: pl.Schema) -> pl.DataFrame:
    return pl.DataFrame({name: [r[name] for r in records] for name in schema}, schema=schema)


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


def _strip_bom(data: bytes) -> tuple[bytes, int]:
    """Drop a leading UTF-8 BOM; also return its length so byte offsets stay file offsets."""
    return (data[len(_BOM):], len(_BOM)) if data.startswith(_BOM) else (data, 0)


def _read_jsonl(data: bytes, out: _Collector) -> None:
    data, offset = _strip_bom(data)
    # Split bytes, not text: each line decodes on its own, so one bad byte costs one line, and
    # U+2028 inside a string (which str.splitlines treats as a break) stays part of its record.
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")  # CRLF files
        if not raw.strip():
            continue  # blank lines are layout, not records
        snippet = raw.decode("utf-8", errors="replace")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            at = error.start + (offset if number == 1 else 0)
            out.reject(number, f"invalid UTF-8 at byte {at} of the line", snippet)
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as error:
            out.reject(number, f"invalid JSON: {error.msg} at column {error.colno}", snippet)
            continue
        out.add(number, obj, lambda: snippet)


def _read_json(data: bytes, out: _Collector) -> None:
    text = _decode_whole(data, out)
    if text is None:
        return
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        # json counts lines by "\n" only; str.splitlines would also split on U+2028 and drift.
        bad_line = text.split("\n")[error.lineno - 1]
        out.reject(error.lineno, f"invalid JSON: {error.msg} at line {error.lineno} "
                                 f"column {error.colno}", bad_line)
        return
    elements = value if isinstance(value, list) else [value]
    for number, element in enumerate(elements, start=1):
        out.add(number, element, lambda element=element: _dump(element))


def _read_txt(data: bytes, out: _Collector) -> None:
    text = _decode_whole(data, out, line=1)  # the file is one document: always line 1
    if text is not None:
        out.add(1, {"text": text}, lambda: text)


def _decode_whole(data: bytes, out: _Collector, line: int | None = None) -> str | None:
    """Strict UTF-8 of a whole-file format; on failure one quarantine row for the file, at `line`
    or else at the line holding the bad byte, with that line as the snippet."""
    body, offset = _strip_bom(data)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        begin = body.rfind(b"\n", 0, error.start) + 1
        end = body.find(b"\n", error.start)
        snippet = body[begin:end if end >= 0 else len(body)].decode("utf-8", errors="replace")
        out.reject(line or body.count(b"\n", 0, error.start) + 1,
                   f"invalid UTF-8 at byte {error.start + offset} of the file", snippet)
        return None


def _read_csv(data: bytes, out: _Collector) -> None:
    # surrogateescape keeps undecodable bytes as lone surrogates, so the parse goes on and only the
    # rows that hold them are quarantined (a strict decode would lose the whole file).
    text = data.decode("utf-8-sig", errors="surrogateescape")
    # Documents longer than csv's default 128 KiB field limit are normal for a text corpus.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1  # line_num counts physical lines consumed so far
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            # The reader cannot resynchronise after a malformed row: the rest is one record.
            out.reject(start, f"invalid CSV: {error}", "")
            return
        if not cells or not any(cell.strip() for cell in cells):
            continue
        snippet = ",".join(cells).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        if header is None:
            header = [cell.strip() for cell in cells]
            if not set(header) & set(SHAPE_COLUMNS):
                out.reject(0, _no_columns_reason(header), snippet)
                return
            continue
        if len(cells) != len(header):
            out.reject(start, f"row has {len(cells)} fields, header has {len(header)}", snippet)
            continue
        bad = [name for name, cell in zip(header, cells) if _SURROGATE.search(cell)]
        if bad:
            out.reject(start, f"invalid UTF-8 in column '{bad[0]}'", snippet)
            continue
        # csv cannot tell an empty cell from a missing value; treating it as missing lets one file
        # mix text rows and instruction rows.
        record = {name: (cell if cell != "" else None)
                  for name, cell in zip(header, cells) if name in _ALL_COLUMNS}
        _add_tabular(start, record, out, lambda: snippet)


def _read_parquet(data: bytes, out: _Collector) -> None:
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except (OSError, pl.exceptions.PolarsError) as error:
        out.reject(0, f"unreadable parquet: {error}", "")
        return
    if not set(frame.columns) & set(SHAPE_COLUMNS):
        out.reject(0, _no_columns_reason(frame.columns), "")
        return
    # Only the payload columns are converted: ids, embeddings and metadata are ignored anyway.
    frame = frame.select([c for c in frame.columns if c in _ALL_COLUMNS])
    for number, record in enumerate(frame.iter_rows(named=True), start=1):
        _add_tabular(number, record, out, lambda record=record: _dump(record))


def _add_tabular(line: int, record: dict, out: _Collector, snippet: Callable[[], str]) -> None:
    """csv/parquet rows: chat columns may hold JSON text rather than nested values."""
    for name in _JSON_COLUMNS:
        if isinstance(record.get(name), str):
            try:
                record[name] = json.loads(record[name])
            except json.JSONDecodeError as error:
                out.reject(line, f"{name}: invalid JSON: {error.msg} at column {error.colno}",
                           snippet())
                return
    out.add(line, record, snippet)


def _no_columns_reason(columns: list[str]) -> str:
    return (f"no recognised column: found {list(columns)[:20]}; "
            "expected text, messages, conversations or instruction/output")


_READERS: dict[str, Callable[[bytes, _Collector], None]] = {
    ".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv,
    ".parquet": _read_parquet, ".txt": _read_txt,
}
