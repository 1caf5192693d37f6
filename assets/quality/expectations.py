"""The `clean_corpus` suite: what must hold before a domain's text may be tokenized and trained on.

Thresholds come from the domain's cleaning settings (domain.yaml section `cleaning` or the
launchpad), so a domain of short FAQ answers and one of long manuals can hold different bars.
It runs over the clean rows' profile (`cleaning.PROFILE_COLUMNS`) plus one row per row read.
"""

import polars as pl

from assets.expectations.suites import CheckOutcome, Expect, validate
from assets.settings.cleaning import CleaningConfig

# name -> what passing means; the wrapper declares one blocking check per name.
CHECKS: dict[str, str] = {
    "texts_present_and_non_empty": "Every record has text, and no turn the model must learn is empty.",
    "lengths_in_bounds": "Every record's length (characters, all turns) is within the cleaning bounds.",
    "no_duplicates_left": "No two records share a content hash after de-duplication.",
    "enough_rows_to_train": "The domain has at least the minimum number of rows to train on.",
    "most_rows_readable": "At most max_quarantined_share of the rows read were unreadable (quarantined).",
}


def clean_corpus_suite(config: CleaningConfig) -> list[Expect]:
    import great_expectations.expectations as gxe

    return [
        Expect("texts_present_and_non_empty", CHECKS["texts_present_and_non_empty"],
               gxe.ExpectColumnValuesToBeBetween(column="shortest_target", min_value=1)),
        Expect("lengths_in_bounds", CHECKS["lengths_in_bounds"],
               gxe.ExpectColumnValuesToBeBetween(column="n_chars", min_value=config.min_chars, max_value=config.max_chars)),
        Expect("no_duplicates_left", CHECKS["no_duplicates_left"], gxe.ExpectColumnValuesToBeUnique(column="content_hash")),
        Expect("enough_rows_to_train", CHECKS["enough_rows_to_train"],
               gxe.ExpectTableRowCountToBeBetween(min_value=config.min_rows)),
    ]


def readability_suite(config: CleaningConfig) -> list[Expect]:
    import great_expectations.expectations as gxe

    return [Expect("most_rows_readable", CHECKS["most_rows_readable"],
                   gxe.ExpectColumnValuesToBeInSet(column="outcome", value_set=["read"], mostly=1.0 - config.max_quarantined_share))]


def run_corpus_checks(profile: pl.DataFrame, config: CleaningConfig, rows_readable: int = 0, rows_quarantined: int = 0) -> list[CheckOutcome]:
    """Validate the clean rows' profile (columns content_hash, n_chars, shortest_target) and the
    share of readable rows; one outcome per name in CHECKS, in that order."""
    outcomes = validate(profile.select("content_hash", "n_chars", "shortest_target"), "clean_corpus", clean_corpus_suite(config))
    # One row per row that reached the readers: enough for GE to count the share, no text needed.
    read = pl.concat([pl.repeat("read", rows_readable, eager=True), pl.repeat("quarantined", rows_quarantined, eager=True)])
    read = read.cast(pl.String).alias("outcome").to_frame()
    return outcomes + validate(read, "raw_rows", readability_suite(config))
