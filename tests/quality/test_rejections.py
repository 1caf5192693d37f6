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
    assert totals.describe() == ("6 rows in = 1 kept + 2 quarantined + 3 filtered (1 exact_duplicate + 1 too_long + 1 too_short); "
                                 "rows in: records counted in the landed files, independently of the readers")
    assert reason_counts(rejections)["invalid JSON"] == 1


def test_unbalanced_counts_are_detected() -> None:
    empty = collect_rejections(pl.DataFrame(schema=QUARANTINE_SCHEMA), clean_corpus(raw_rows([]), CleaningConfig()).filtered)
    assert empty.is_empty()
    assert not reconcile(rows_in=3, kept=2, rejections=empty).balanced


def test_a_count_the_rows_do_not_reach_fails_and_names_the_file() -> None:
    # Before issue 11 rows_in was kept + quarantined of the same read, so this could not happen.
    empty = collect_rejections(pl.DataFrame(schema=QUARANTINE_SCHEMA), clean_corpus(raw_rows([]), CleaningConfig()).filtered)
    totals = reconcile(rows_in=10, kept=9, rejections=empty, mismatches={"a.jsonl": "counted 10 records, read 9 (9 kept + 0 quarantined)"})
    assert not totals.balanced
    assert totals.describe() == ("10 rows in = 9 kept + 0 quarantined + 0 filtered; rows in: records counted in the landed "
                                 "files, independently of the readers; -1 rows unaccounted "
                                 "(a.jsonl: counted 10 records, read 9 (9 kept + 0 quarantined))")
    assert reconcile(rows_in=9, kept=9, rejections=empty, counted=False).describe().endswith(
        "rows in: rows read (raw_corpus predates the independent count; re-materialize it)")


def test_scrub_pii_scrubs_read_and_clean_snippets_and_reasons() -> None:
    quarantine = pl.DataFrame(
        {"source_file": ["a.jsonl"], "line": [1], "reason": ["role 'jane.doe@example.com' is not one of system/user/assistant"],
         "snippet": ['{"text": "call +1 555 010 9999 or mail jane.doe@example.com"']},
        schema=QUARANTINE_SCHEMA,
    )
    filtered = clean_corpus(raw_rows(["jane.doe@example.com", "a perfectly fine document of some length"]),
                            CleaningConfig(min_chars=25)).filtered
    raw = collect_rejections(quarantine, filtered)
    assert "jane.doe@example.com" in raw.write_csv()
    scrubbed = collect_rejections(quarantine, filtered, scrub_pii=True)
    text = scrubbed.write_csv()
    assert "jane" not in text and "555 010" not in text
    assert scrubbed["snippet"].to_list() == ['{"text": "call <PHONE> or mail <EMAIL>"', "<EMAIL>"]
