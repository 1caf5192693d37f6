"""A domain's landed files written straight to `rows.parquet`, a batch at a time.

`read_domain` hands good rows to a sink every `FLUSH_ROWS` rows; here the sink appends them to a
parquet file, so reading a domain of many GB holds one batch of records in memory, not the domain.
Landing order (file by relative path, then line) is preserved: cleaning relies on it to keep the
first copy of a duplicate.
"""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from assets.common.memory import return_freed_memory
from assets.corpora.readers import ROW_SCHEMA, ReadResult, Rows, _frame, read_domain


@dataclass(frozen=True)
class WrittenDomain:
    read: ReadResult  # rows empty (they are on disk); quarantine, files, empty_files, counts
    kinds: dict[str, int]  # rows per record kind (text, chat, instruction)


def write_domain(domain_dir: Path, rows_path: Path, landing_root: Path | None = None) -> WrittenDomain:
    """Read `domain_dir` into `rows_path` (ROW_SCHEMA), streaming; the quarantine stays in memory."""
    return_freed_memory()
    schema = _frame([], ROW_SCHEMA).to_arrow().schema
    kinds: Counter[str] = Counter()
    with pq.ParquetWriter(rows_path, schema, compression="zstd") as writer:
        def sink(batch: Rows) -> None:
            kinds.update(row["kind"] for row in batch)
            writer.write_table(_frame(batch, ROW_SCHEMA).to_arrow().cast(schema))

        result = read_domain(domain_dir, landing_root, sink=sink)
    return WrittenDomain(result, dict(kinds.most_common()))
