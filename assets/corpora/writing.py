"""A domain's landed files written straight to `rows.parquet` and `quarantine.parquet`, a batch at a time.

`read_domain` hands kept rows and quarantined rows to an output every `FLUSH_ROWS` rows (or
`FLUSH_BYTES` characters); here the output appends them to two parquet files, so reading a domain
of many GB, or a GB of lines that all fail, holds one batch in memory, not the domain. A .json file
is read through or rejected whole: its batches are spooled to Arrow IPC files beside the outputs
and copied in only once the file has been read to its end.
Landing order (file by relative path, then line) is preserved: cleaning relies on it to keep the
first copy of a duplicate.
"""

import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from assets.common.memory import returning_freed_memory
from assets.common.personal_data import scrub_report_text
from assets.corpora.decoding import SNIPPET_CHARS
from assets.corpora.readers import read_domain
from assets.corpora.tables import QUARANTINE_SCHEMA, ROW_SCHEMA, ReadResult, Rows, frame

ROWS_FILE, QUARANTINE_FILE = "rows.parquet", "quarantine.parquet"
PREVIEW_ROWS = 20  # quarantine rows kept in memory for the metadata preview


@dataclass(frozen=True)
class WrittenDomain:
    read: ReadResult  # rows and quarantine empty (they are on disk); files, counts, digests
    kinds: dict[str, int]  # rows per record kind (text, chat, instruction)
    preview: pl.DataFrame  # the first PREVIEW_ROWS quarantine rows, as written (scrubbed when asked)


def write_domain(domain_dir: Path, out_dir: Path, landing_root: Path | None = None,
                 scrub_pii: bool = False) -> WrittenDomain:
    """Read `domain_dir` into `out_dir`/rows.parquet (ROW_SCHEMA) and quarantine.parquet
    (QUARANTINE_SCHEMA), streaming both. With `scrub_pii`, personal data in the quarantine's
    reasons and snippets is replaced before it is written (see pii.scrub_report_text)."""
    out_dir = Path(out_dir)
    with returning_freed_memory(), tempfile.TemporaryDirectory(prefix=".spool-", dir=out_dir) as spool, \
            _ParquetOutput(out_dir, Path(spool), scrub_pii) as output:
        result = read_domain(domain_dir, landing_root, output, spool_dir=Path(spool))
    preview = frame(output.preview, QUARANTINE_SCHEMA)
    return WrittenDomain(result, dict(output.kinds.most_common()), preview)


class _Table:
    """One parquet output; inside a transaction its batches go to an IPC spool file first."""

    def __init__(self, path: Path, schema: pl.Schema, spool: Path):
        self.schema = frame([], schema).to_arrow().schema
        self.polars_schema = schema
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.spool_path = spool / f"{path.stem}.arrow"
        self.spool: pa.ipc.RecordBatchStreamWriter | None = None

    def arrow(self, batch: Rows) -> pa.Table:
        return frame(batch, self.polars_schema).to_arrow().cast(self.schema)

    def write(self, table: pa.Table, transaction: bool) -> None:
        if not transaction:
            self.writer.write_table(table)
            return
        if self.spool is None:
            self.spool = pa.ipc.new_stream(str(self.spool_path), self.schema)
        self.spool.write_table(table)

    def spooled(self, keep: bool):
        """Close the spool; yield its batches, read one at a time, if `keep` (not memory-mapped:
        mapped pages would count as this process's memory until they are unmapped)."""
        if self.spool is None:
            return
        self.spool.close()
        self.spool = None
        if keep:
            with pa.OSFile(str(self.spool_path)) as source:
                yield from pa.ipc.open_stream(source)
        self.spool_path.unlink()


class _ParquetOutput:
    """read_domain's Output for raw_corpus: kept rows and quarantine rows to parquet in batches."""

    def __init__(self, out_dir: Path, spool: Path, scrub_pii: bool):
        self.tables = {"rows": _Table(out_dir / ROWS_FILE, ROW_SCHEMA, spool),
                       "quarantine": _Table(out_dir / QUARANTINE_FILE, QUARANTINE_SCHEMA, spool)}
        self.scrub_pii = scrub_pii
        self.kinds: Counter[str] = Counter()
        self.preview: Rows = []
        self.transaction = False
        self.pending_kinds: Counter[str] = Counter()
        self.pending_preview: Rows = []

    def __enter__(self) -> "_ParquetOutput":
        return self

    def __exit__(self, *exc) -> None:
        for table in self.tables.values():
            for _ in table.spooled(keep=False):
                pass
            table.writer.close()

    def rows(self, batch: Rows) -> None:
        (self.pending_kinds if self.transaction else self.kinds).update(row["kind"] for row in batch)
        self.tables["rows"].write(self.tables["rows"].arrow(batch), self.transaction)

    def quarantine(self, batch: Rows) -> None:
        table = frame(batch, QUARANTINE_SCHEMA)
        if self.scrub_pii:
            table = table.with_columns(scrub_report_text("reason"), scrub_report_text("snippet", SNIPPET_CHARS))
        preview = self.pending_preview if self.transaction else self.preview
        preview.extend(table.head(max(0, PREVIEW_ROWS - len(self.preview) - len(preview))).to_dicts())
        quarantine = self.tables["quarantine"]
        quarantine.write(table.to_arrow().cast(quarantine.schema), self.transaction)

    def begin(self) -> None:
        self.transaction = True

    def rollback(self) -> None:
        for table in self.tables.values():
            for _ in table.spooled(keep=False):
                pass
        self.pending_kinds.clear()
        self.pending_preview.clear()

    def commit(self) -> None:
        for table in self.tables.values():
            for batch in table.spooled(keep=True):
                table.writer.write_batch(batch)
        self.kinds.update(self.pending_kinds)
        self.preview.extend(self.pending_preview[:PREVIEW_ROWS - len(self.preview)])
        self.rollback()
        self.transaction = False
