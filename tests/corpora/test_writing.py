"""raw_corpus's streamed write (assets/corpora/writing.py): the same rows as read_domain, in batches."""

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from assets.corpora import readers
from assets.corpora.readers import read_domain
from assets.corpora.writing import write_domain


@pytest.fixture
def domain(tmp_path: Path) -> Path:
    folder = tmp_path / "landing" / "docs"
    folder.mkdir(parents=True)
    lines = [json.dumps({"text": f"Document number {i} about rivers."}) for i in range(10)]
    lines.insert(4, "{broken json")
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "b.json").write_text(json.dumps([{"instruction": f"Say {i}", "output": f"Said {i}."} for i in range(7)]))
    (folder / "c.csv").write_text("text\n" + "\n".join(f"Row {i} of the csv file." for i in range(5)) + "\n")
    (folder / "empty.txt").write_text("")
    return folder


def test_streamed_rows_equal_read_rows_in_landing_order(domain: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(readers, "FLUSH_ROWS", 3)  # force several flushes inside one file
    written = write_domain(domain, tmp_path / "rows.parquet")
    whole = read_domain(domain)
    on_disk = pl.read_parquet(tmp_path / "rows.parquet")
    assert on_disk.equals(whole.rows)
    assert pq.ParquetFile(tmp_path / "rows.parquet").num_row_groups >= 5
    assert written.read.rows.is_empty() and written.read.rows_kept == whole.rows.height == 22
    assert written.read.rows_in == whole.rows_in == 23
    assert written.read.quarantine.equals(whole.quarantine)
    assert written.read.empty_files == ["empty.txt"]
    assert written.kinds == {"text": 15, "instruction": 7}
