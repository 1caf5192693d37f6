"""The blocking data checks (assets/quality/expectations.py), run through Great Expectations 1.x.

Importing Great Expectations takes seconds, so one module-scoped fixture pays for it once and the
tests share the outcomes of a few small validation runs (each run after the first is ~0.1 s).
"""

import polars as pl
import pytest

from assets.quality.cleaning import content_hash
from assets.quality.expectations import CHECKS, CheckOutcome, _short, run_corpus_checks

MIN_CHARS, MAX_CHARS, MIN_ROWS = 10, 100, 3
SCHEMA = {
    "source_file": pl.String,
    "line": pl.Int64,
    "kind": pl.String,
    "roles": pl.List(pl.String),
    "contents": pl.List(pl.String),
    "content_hash": pl.String,
    "n_chars": pl.Int64,
}


def clean_frame(records: list[list[str]], hashes: list[str] | None = None) -> pl.DataFrame:
    """A clean-corpus table as `clean_corpus` returns it, one chat/text record per entry."""
    roles = [["text"] if len(c) == 1 else ["user", "assistant"] * (len(c) // 2) for c in records]
    return pl.DataFrame(
        {
            "source_file": ["a.jsonl"] * len(records),
            "line": list(range(1, len(records) + 1)),
            "kind": ["text" if r == ["text"] else "chat" for r in roles],
            "roles": roles,
            "contents": records,
            "content_hash": hashes or [content_hash(r, c) for r, c in zip(roles, records)],
            "n_chars": [sum(len(x) for x in c) for c in records],
        },
        schema=SCHEMA,
    )


GOOD = [[f"Record number {i} is fine."] for i in range(4)] + [["Question here?", "An answer."]]


def by_name(outcomes: list[CheckOutcome]) -> dict[str, CheckOutcome]:
    return {o.name: o for o in outcomes}


def check(records, min_chars=MIN_CHARS, max_chars=MAX_CHARS, min_rows=MIN_ROWS, hashes=None):
    return by_name(run_corpus_checks(clean_frame(records, hashes), min_chars, max_chars, min_rows))


@pytest.fixture(scope="module")
def clean_outcomes() -> list[CheckOutcome]:
    # The first call imports Great Expectations (slow); every other test reuses the import.
    return run_corpus_checks(clean_frame(GOOD), MIN_CHARS, MAX_CHARS, MIN_ROWS)


def test_clean_frame_passes_all_four(clean_outcomes):
    assert [o.name for o in clean_outcomes] == list(CHECKS)
    for outcome in clean_outcomes:
        assert outcome.passed, outcome
        assert outcome.unexpected_count == 0
        assert outcome.element_count == len(GOOD)
        assert outcome.examples == []


def test_each_check_names_its_expectation(clean_outcomes):
    expected = {
        "texts_present_and_non_empty": "expect_column_value_lengths_to_be_between",
        "lengths_in_bounds": "expect_column_values_to_be_between",
        "no_duplicates_left": "expect_column_values_to_be_unique",
        "enough_rows_to_train": "expect_table_row_count_to_be_between",
    }
    assert {o.name: o.expectation for o in clean_outcomes} == expected
    for outcome in clean_outcomes:
        assert outcome.description.startswith(outcome.expectation + ": ")


def test_passing_descriptions_carry_counts(clean_outcomes):
    outcomes = by_name(clean_outcomes)
    assert outcomes["no_duplicates_left"].description.endswith("0 of 5 rows fail")
    assert outcomes["enough_rows_to_train"].description.endswith("5 rows, at least 3 required")


def test_every_check_has_a_human_description():
    assert set(CHECKS) == {"texts_present_and_non_empty", "lengths_in_bounds", "no_duplicates_left",
                           "enough_rows_to_train"}
    assert all(text.endswith(".") for text in CHECKS.values())


def test_duplicates_fail_no_duplicates_left(clean_outcomes):
    records = GOOD + [GOOD[0], GOOD[0], GOOD[1]]
    outcomes = check(records)
    dup = outcomes["no_duplicates_left"]
    assert not dup.passed
    # GE counts every row whose value is not unique: 3 copies of GOOD[0] and 2 of GOOD[1].
    assert dup.unexpected_count == 5
    assert dup.element_count == 8
    assert dup.description == "expect_column_values_to_be_unique: 5 of 8 rows fail"
    assert set(dup.examples) == {content_hash(["text"], GOOD[0]), content_hash(["text"], GOOD[1])}
    assert len(dup.examples) <= 5
    assert all(outcomes[name].passed for name in CHECKS if name != "no_duplicates_left")


def test_too_few_rows_fail_enough_rows_to_train(clean_outcomes):
    outcomes = check(GOOD[:2])
    enough = outcomes["enough_rows_to_train"]
    assert not enough.passed
    assert enough.element_count == 2
    assert enough.description == "expect_table_row_count_to_be_between: 2 rows, at least 3 required"
    assert all(outcomes[name].passed for name in CHECKS if name != "enough_rows_to_train")


def test_exactly_min_rows_passes(clean_outcomes):
    assert check(GOOD[:3])["enough_rows_to_train"].passed


def test_empty_corpus_fails_only_the_row_count(clean_outcomes):
    outcomes = check([])
    assert not outcomes["enough_rows_to_train"].passed
    assert outcomes["enough_rows_to_train"].description.endswith("0 rows, at least 3 required")
    assert all(o.element_count == 0 for o in outcomes.values())


def test_too_long_row_fails_lengths_in_bounds(clean_outcomes):
    outcomes = check(GOOD + [["x" * (MAX_CHARS + 1)]])
    lengths = outcomes["lengths_in_bounds"]
    assert not lengths.passed
    assert lengths.unexpected_count == 1
    assert lengths.examples == [MAX_CHARS + 1]
    assert lengths.description == "expect_column_values_to_be_between: 1 of 6 rows fail"
    assert all(outcomes[name].passed for name in CHECKS if name != "lengths_in_bounds")


def test_too_short_row_fails_lengths_in_bounds_and_bounds_are_inclusive(clean_outcomes):
    outcomes = check(GOOD + [["x" * MIN_CHARS], ["y" * MAX_CHARS], ["z" * (MIN_CHARS - 1)]])
    lengths = outcomes["lengths_in_bounds"]
    assert not lengths.passed
    assert lengths.unexpected_count == 1
    assert lengths.examples == [MIN_CHARS - 1]


def test_empty_text_fails_texts_present_and_non_empty(clean_outcomes):
    outcomes = check(GOOD + [[""]], min_chars=0)
    texts = outcomes["texts_present_and_non_empty"]
    assert not texts.passed
    assert texts.unexpected_count == 1
    assert texts.element_count == 6
    assert texts.examples == [""]
    assert texts.description == "expect_column_value_lengths_to_be_between: 1 of 6 rows fail"
    assert outcomes["lengths_in_bounds"].passed  # min_chars=0 isolates the text check


def test_null_contents_fail_texts_present_and_non_empty(clean_outcomes):
    frame = clean_frame(GOOD).with_columns(
        pl.when(pl.col("line") == 1).then(None).otherwise(pl.col("contents")).alias("contents")
    )
    texts = by_name(run_corpus_checks(frame, MIN_CHARS, MAX_CHARS, MIN_ROWS))["texts_present_and_non_empty"]
    assert not texts.passed
    assert texts.unexpected_count == 1
    assert "1 of 5 rows fail" in texts.description


def test_record_with_only_empty_turns_fails_texts_present(clean_outcomes):
    texts = check(GOOD + [["", ""]], min_chars=0)["texts_present_and_non_empty"]
    assert not texts.passed
    assert texts.unexpected_count == 1


def test_several_failures_are_reported_together(clean_outcomes):
    outcomes = check([GOOD[0], GOOD[0]] + [["x" * 500]])
    assert not outcomes["no_duplicates_left"].passed
    assert not outcomes["lengths_in_bounds"].passed
    assert outcomes["enough_rows_to_train"].passed  # 3 rows, exactly MIN_ROWS
    assert outcomes["texts_present_and_non_empty"].passed


def test_examples_are_capped_at_five(clean_outcomes):
    records = GOOD + [["x" * (MAX_CHARS + i)] for i in range(1, 9)]
    lengths = check(records)["lengths_in_bounds"]
    assert lengths.unexpected_count == 8
    assert len(lengths.examples) == 5


def test_short_truncates_long_strings_only():
    assert _short("a" * 120) == "a" * 120
    assert _short("a" * 121) == "a" * 120 + "…"
    assert _short(5) == 5
    assert _short(None) is None
