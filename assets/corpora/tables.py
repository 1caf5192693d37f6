"""The tables a read produces and where they go: schemas, outputs, per-file outcomes.

Pure module (polars, never dagster); readers.py fills these, writing.py streams them to parquet.
"""

from dataclasses import dataclass, field
from typing import Any, Protocol

import polars as pl

UNREADABLE = "unreadable"  # the digest of a file that could not be opened: no bytes, no hash

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


class Output(Protocol):
    """Where a read goes, batch by batch. A .json file is one document, read through or rejected
    whole: its batches come between `begin` and `commit`, and `rollback` drops them."""

    def rows(self, batch: Rows) -> None: ...
    def quarantine(self, batch: Rows) -> None: ...
    def begin(self) -> None: ...
    def rollback(self) -> None: ...
    def commit(self) -> None: ...


@dataclass(frozen=True)
class FileRead:
    """What reading one file gave."""
    sha256: str        # of the bytes read, from the same open file (UNREADABLE if it never opened)
    kept: int
    quarantined: int
    stopped: bool      # a quarantine row stands for (the rest of) the file: its records were not told apart


@dataclass(frozen=True)
class ReadResult:
    rows: pl.DataFrame         # ROW_SCHEMA, even when empty; empty when read into an Output
    quarantine: pl.DataFrame   # QUARANTINE_SCHEMA, even when empty; empty when read into an Output
    files: list[str]           # relative POSIX paths of the files read, sorted
    # Files read that held no record at all (0 bytes, only a BOM, blank lines, `[]`, a csv header).
    empty_files: list[str] = field(default_factory=list)
    kept: int = -1  # rows read fine; equals len(rows) unless they went to an Output
    quarantined: int = -1  # rows quarantined; equals len(quarantine) unless they went to an Output
    file_reads: dict[str, FileRead] = field(default_factory=dict)  # by relative name, as `files`
    refused: list[tuple[str, str]] = field(default_factory=list)   # listed, never read (one quarantine row each)
    skipped: list[tuple[str, str]] = field(default_factory=list)   # left out on purpose (hidden, partial, settings)

    @property
    def rows_kept(self) -> int:
        return len(self.rows) if self.kept < 0 else self.kept

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantine) if self.quarantined < 0 else self.quarantined

    @property
    def rows_in(self) -> int:
        return self.rows_kept + self.rows_quarantined

    @property
    def digests(self) -> dict[str, str]:
        """sha256 of every file read (relative name -> hex), as hashed while it was parsed."""
        return {name: read.sha256 for name, read in self.file_reads.items()}


class MemoryOutput:
    """An Output that keeps everything: read_domain's default, for small folders and tests."""

    def __init__(self) -> None:
        self.kept: Rows = []
        self.quarantined: Rows = []
        self.marks: tuple[int, int] | None = None

    def rows(self, batch: Rows) -> None:
        self.kept.extend(batch)

    def quarantine(self, batch: Rows) -> None:
        self.quarantined.extend(batch)

    def begin(self) -> None:
        self.marks = (len(self.kept), len(self.quarantined))

    def rollback(self) -> None:
        if self.marks:
            del self.kept[self.marks[0]:], self.quarantined[self.marks[1]:]

    def commit(self) -> None:
        self.marks = None


def frame(records: Rows, schema: pl.Schema) -> pl.DataFrame:
    return pl.DataFrame({name: [r[name] for r in records] for name in schema}, schema=schema)
