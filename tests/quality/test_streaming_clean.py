"""Streamed cleaning (clean_parquet) and the repetition filter: batches change nothing but memory."""

import random
from pathlib import Path

import polars as pl

from assets.corpora.readers import ROW_SCHEMA
from assets.quality.cleaning import clean_corpus, clean_parquet
from assets.settings.cleaning import CleaningConfig

WORDS = "amber basalt cobalt dune ember fjord garnet harbor indigo jasper kelp lagoon mesa nectar onyx".split()


def corpus(n: int, seed: int = 0) -> pl.DataFrame:
    """Random documents with exact and near copies planted far apart, so they cross batches."""
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(60)) + f" #{i}" for i in range(n)]
    for i in range(0, n // 2, 7):
        texts[n - 1 - i] = texts[i]  # exact copy near the end
    for i in range(3, n // 2, 11):
        words = texts[i].split()
        words[5] = "zircon"
        texts[n // 2 + i] = " ".join(words)  # near copy in the second half
    texts[10] = "\n".join(["Buy now, limited offer!"] * 8)  # repetitive
    return pl.DataFrame({"source_file": ["a.jsonl"] * n, "line": list(range(1, n + 1)), "kind": ["text"] * n,
                         "roles": [["text"]] * n, "contents": [[t] for t in texts]}, schema=ROW_SCHEMA)


def test_streamed_batches_give_the_same_result_as_one_batch(tmp_path: Path) -> None:
    raw = corpus(600)
    raw.write_parquet(tmp_path / "rows.parquet", row_group_size=100)
    whole = clean_corpus(raw, CleaningConfig())
    summary = clean_parquet(tmp_path / "rows.parquet", tmp_path / "clean.parquet", tmp_path / "filtered.parquet",
                            CleaningConfig(batch_rows=64))
    assert summary.batches >= 9  # really streamed, not one batch
    clean, filtered = pl.read_parquet(tmp_path / "clean.parquet"), pl.read_parquet(tmp_path / "filtered.parquet")
    assert clean.equals(whole.clean) and filtered.equals(whole.filtered)
    assert summary.counts == whole.counts and summary.rows_in == 600
    assert whole.counts["exact_duplicate"] >= 35 and whole.counts["near_duplicate"] >= 20 and whole.counts["repetitive"] == 1
    assert summary.profile["content_hash"].to_list() == clean["content_hash"].to_list()
    assert summary.rows_clean + sum(summary.counts.values()) == 600
    assert summary.characters == clean["n_chars"].sum()


def test_mostly_repeated_lines_are_filtered_and_the_share_is_configurable() -> None:
    varied = "\n".join(f"Line {i} says something different about the topic." for i in range(6))
    boiler = "\n".join(["Click here to subscribe to our newsletter."] * 3 + ["One real sentence of content here."])
    raw = pl.DataFrame({"source_file": ["a.txt"] * 2, "line": [1, 2], "kind": ["text"] * 2, "roles": [["text"]] * 2,
                        "contents": [[varied], [boiler]]}, schema=ROW_SCHEMA)
    result = clean_corpus(raw, CleaningConfig(min_rows=1))
    assert result.clean["line"].to_list() == [1]
    assert result.filtered["filter"].to_list() == ["repetitive"]
    assert clean_corpus(raw, CleaningConfig(max_repeated_line_share=1.0)).clean.height == 2


def test_an_empty_input_writes_both_files_with_their_schema(tmp_path: Path) -> None:
    pl.DataFrame(schema=ROW_SCHEMA).write_parquet(tmp_path / "rows.parquet")
    summary = clean_parquet(tmp_path / "rows.parquet", tmp_path / "clean.parquet", tmp_path / "filtered.parquet", CleaningConfig())
    assert summary.rows_in == 0 and summary.rows_clean == 0
    assert "split_key" in pl.read_parquet(tmp_path / "clean.parquet").columns
    assert "filter" in pl.read_parquet(tmp_path / "filtered.parquet").columns
