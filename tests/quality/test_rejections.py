"""Rejected rows from reading and cleaning, in one table whose counts reconcile."""

import polars as pl

from assets.corpora.readers import QUARANTINE_SCHEMA, ROW_SCHEMA
from assets.quality.cleaning import clean_corpus
from assets.quality.rejections import collect_rejections, reason_counts, reconcile
from assets.settings.cleaning import CleaningConfig


def raw_rows(texts: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"source_file": ["a.jsonl"] * len(texts), "line": list(range(1, len(texts) + 1)), "kind": ["text"] * len(texts),
         "roles": [["text"]] * len(texts), "contents": [[t] for t in texts]},
        schema=ROW_SCHEMA,
    )


def test_read_and_clean_rejections_reconcile_with_reasons_and_snippets() -> None:
    texts = ["a perfectly fine document of some length", "short", "a perfectly fine document of some length", "x" * 500]
    quarantine = pl.DataFrame(
        {"source_file": ["a.jsonl", "b.csv"], "line": [9, 2], "reason": ["invalid JSON: Expecting value", "record is a list"],
         "snippet": ["{oops", "[1, 2]"]},
        schema=QUARANTINE_SCHEMA,
    )
    result = clean_corpus(raw_rows(texts), CleaningConfig(min_chars=10, max_chars=100))
    rejections = collect_rejections(quarantine, result.filtered)
    assert rejections.columns == ["stage", "source_file", "line", "reason", "snippet"]
    assert rejections.filter(pl.col("stage") == "read")["line"].to_list() == [9, 2]
    clean = rejections.filter(pl.col("stage") == "clean")
    assert dict(zip(clean["line"], clean["reason"])) == {2: "too_short", 3: "exact_duplicate", 4: "too_long"}
    assert clean.filter(pl.col("line") == 4)["snippet"].item() == "x" * 200  # snippets are capped
    totals = reconcile(rows_in=len(texts) + quarantine.height, kept=result.clean.height, rejections=rejections)
    assert totals.balanced and totals.filtered == {"too_short": 1, "exact_duplicate": 1, "too_long": 1}
    assert totals.describe() == "6 rows in = 1 kept + 2 quarantined + 3 filtered (1 exact_duplicate + 1 too_long + 1 too_short)"
    assert reason_counts(rejections)["invalid JSON"] == 1


def test_unbalanced_counts_are_detected() -> None:
    empty = collect_rejections(pl.DataFrame(schema=QUARANTINE_SCHEMA), clean_corpus(raw_rows([]), CleaningConfig()).filtered)
    assert empty.is_empty()
    assert not reconcile(rows_in=3, kept=2, rejections=empty).balanced
