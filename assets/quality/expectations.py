"""The blocking data checks on a clean corpus, as a Great Expectations 1.x suite run in-process.

Called directly (an ephemeral context and a pandas batch), not through `dagster-ge`, which pins
GE < 1.0. Each expectation maps to one named predicate that the Dagster wrapper reports as a
blocking asset check, with the counts and a few failing examples.
"""

import os
from dataclasses import dataclass, field
from typing import Any

import polars as pl

# name -> human description of the predicate; the wrapper declares one check per name.
CHECKS: dict[str, str] = {
    "texts_present_and_non_empty": "Every record has non-empty text.",
    "lengths_in_bounds": "Every record's length (characters, all turns) is within the cleaning bounds.",
    "no_duplicates_left": "No two records share a content hash after de-duplication.",
    "enough_rows_to_train": "The domain has at least the minimum number of rows to train on.",
}


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    expectation: str  # the Great Expectations expectation type that decided it
    description: str  # one line a person reads in the UI: which expectation, how many rows
    unexpected_count: int = 0
    element_count: int = 0
    examples: list[Any] = field(default_factory=list)


def run_corpus_checks(
    clean: pl.DataFrame, min_chars: int, max_chars: int, min_rows: int
) -> list[CheckOutcome]:
    """Validate a clean corpus table (columns `contents`, `n_chars`, `content_hash`)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    frame = clean.select(
        # Joined without a separator: a record whose turns are all empty must have empty text.
        pl.col("contents").list.join("").alias("text"), "n_chars", "content_hash"
    ).to_pandas()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("loraline")
        .add_dataframe_asset("clean_corpus")
        .add_batch_definition_whole_dataframe("all_rows")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = {
        "texts_present_and_non_empty": gxe.ExpectColumnValueLengthsToBeBetween(
            column="text", min_value=1, mostly=1.0
        ),
        "lengths_in_bounds": gxe.ExpectColumnValuesToBeBetween(
            column="n_chars", min_value=min_chars, max_value=max_chars
        ),
        "no_duplicates_left": gxe.ExpectColumnValuesToBeUnique(column="content_hash"),
        "enough_rows_to_train": gxe.ExpectTableRowCountToBeBetween(min_value=min_rows),
    }
    outcomes = []
    for name, expectation in suite.items():
        result = batch.validate(expectation)
        details = result.result
        unexpected = int(details.get("unexpected_count") or 0)
        # Nulls are not "unexpected" for length expectations in GE; count them explicitly.
        if name == "texts_present_and_non_empty":
            unexpected += int(frame["text"].isna().sum())
        passed = bool(result.success) and unexpected == 0
        if name == "enough_rows_to_train":
            summary = f"{len(frame)} rows, at least {min_rows} required"
        else:
            summary = f"{unexpected} of {len(frame)} rows fail"
        outcomes.append(
            CheckOutcome(
                name=name,
                passed=passed,
                expectation=expectation.expectation_type,
                description=f"{expectation.expectation_type}: {summary}",
                unexpected_count=unexpected,
                element_count=len(frame),
                examples=[_short(v) for v in (details.get("partial_unexpected_list") or [])[:5]],
            )
        )
    return outcomes


def _short(value: Any) -> Any:
    return value[:120] + "…" if isinstance(value, str) and len(value) > 120 else value
