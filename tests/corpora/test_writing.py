"""raw_corpus's streamed write (assets/corpora/writing.py): the same rows and quarantine as
read_domain, in batches; a .json file read through or rejected whole; scrubbed report text."""

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
    out = tmp_path / "out"
    out.mkdir()
    written = write_domain(domain, out)
    whole = read_domain(domain)
    on_disk = pl.read_parquet(out / "rows.parquet")
    assert on_disk.equals(whole.rows)
    assert pq.ParquetFile(out / "rows.parquet").num_row_groups >= 5
    assert written.read.rows.is_empty() and written.read.rows_kept == whole.rows.height == 22
    assert written.read.rows_in == whole.rows_in == 23
    assert pl.read_parquet(out / "quarantine.parquet").equals(whole.quarantine)
    assert written.read.quarantine.is_empty() and written.read.rows_quarantined == 1
    assert written.preview.equals(whole.quarantine)
    assert written.read.empty_files == ["empty.txt"]
    assert written.kinds == {"text": 15, "instruction": 7}
    assert sorted(p.name for p in out.iterdir()) == ["quarantine.parquet", "rows.parquet"]  # no spool left


class Recording:
    """An Output that records the size of every batch it is handed."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, int]] = []

    def rows(self, batch) -> None:
        self.batches.append(("rows", len(batch)))

    def quarantine(self, batch) -> None:
        self.batches.append(("quarantine", len(batch)))

    def begin(self) -> None:
        self.batches.append(("begin", 0))

    def rollback(self) -> None:
        self.batches.append(("rollback", 0))

    def commit(self) -> None:
        self.batches.append(("commit", 0))


def test_quarantined_rows_and_json_elements_are_handed_on_in_batches(tmp_path: Path, monkeypatch) -> None:
    # Before issue 11 the quarantine of a whole domain was one list in memory (1 MB of bad lines
    # cost +270 MB) and a .json array was held whole until its end (100 MB cost +670 MB).
    monkeypatch.setattr(readers, "FLUSH_ROWS", 4)
    folder = tmp_path / "landing" / "docs"
    folder.mkdir(parents=True)
    (folder / "bad.jsonl").write_text("not json\n" * 10)
    (folder / "good.json").write_text(json.dumps([{"text": f"element {i}"} for i in range(10)]))
    output = Recording()
    result = read_domain(folder, output=output)
    assert output.batches == [("quarantine", 4), ("quarantine", 4), ("quarantine", 2),
                              ("begin", 0), ("rows", 4), ("rows", 4), ("rows", 2), ("commit", 0)]
    assert (result.rows_kept, result.rows_quarantined) == (10, 10)


def test_a_json_file_cut_after_its_first_batches_leaves_no_row_behind(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(readers, "FLUSH_ROWS", 3)  # the cut comes after three flushed batches
    folder = tmp_path / "landing" / "docs"
    folder.mkdir(parents=True)
    elements = ",".join(json.dumps({"text": f"element {i}"}) for i in range(10))
    (folder / "a.json").write_text("[" + elements + ", {broken")
    (folder / "b.json").write_text(json.dumps([{"text": "kept"}, ["a list"]]))
    out = tmp_path / "out"
    out.mkdir()
    written = write_domain(folder, out)
    rows, quarantine = pl.read_parquet(out / "rows.parquet"), pl.read_parquet(out / "quarantine.parquet")
    assert rows.select("source_file", "line").rows() == [("b.json", 1)]
    assert quarantine.select("source_file", "line").rows() == [("a.json", 1), ("b.json", 2)]
    assert quarantine["reason"][0].startswith("invalid JSON")
    assert written.read.file_reads["a.json"].stopped and not written.read.file_reads["b.json"].stopped
    assert (written.read.rows_kept, written.read.rows_quarantined) == (1, 2)
    assert written.kinds == {"text": 1}
    assert sorted(p.name for p in out.iterdir()) == ["quarantine.parquet", "rows.parquet"]


def test_scrub_pii_keeps_addresses_out_of_the_quarantine_file(tmp_path: Path) -> None:
    folder = tmp_path / "landing" / "docs"
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text(
        '{"text": "write to jane.doe@example.com or call +1 555 010 9999", "broken"\n'
        '{"role": "jane.doe@example.com"}\n'
        + "x" * 190 + " jane.doe@example.com\n")
    out = tmp_path / "out"
    out.mkdir()
    written = write_domain(folder, out, scrub_pii=True)
    text = pl.read_parquet(out / "quarantine.parquet").select("reason", "snippet").write_csv()
    assert written.read.rows_quarantined == 3
    assert "jane" not in text and "555 010" not in text and "<EMAIL>" in text
    assert "jane" not in written.preview.write_csv()
